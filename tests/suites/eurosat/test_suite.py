"""The EuroSAT suite: backbones and their FLOPs, synthetic data, planning, cells, and one CLI
run."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

pytest.importorskip("sklearn")

from attnbench.budget import Budget  # noqa: E402
from attnbench.errors import ConfigError, UnknownNameError  # noqa: E402
from attnbench.mechanism import FlopBreakdown, MechanismSpec  # noqa: E402
from attnbench.mechanisms import mha  # noqa: E402
from attnbench.registry import MECHANISMS  # noqa: E402
from attnbench.run.planning import RunRequest, plan_run  # noqa: E402
from attnbench.suite import CellContext  # noqa: E402
from attnbench.suites.eurosat import SUITE  # noqa: E402
from attnbench.suites.eurosat.data import CLASSES  # noqa: E402
from attnbench.suites.eurosat.model import (
    CNN,
    CNNConfig,
    ViT,
    ViTConfig,
    cnn_forward_flops,  # noqa: E402
    vit_forward_flops,
)
from attnbench.suites.eurosat.synthetic import PATTERNS, generate  # noqa: E402
from attnbench.suites.eurosat.task import EuroSATTask  # noqa: E402
from attnbench.suites.eurosat.train import (
    data_key,
    load_splits,
    train_and_evaluate,  # noqa: E402
    warm_restarts,
)
from attnbench.toolkit.vision import DihedralAugment  # noqa: E402
from tests.conftest import run_cli  # noqa: E402


class Gate(nn.Module):
    """A stand-in feature_map mechanism: a 1x1-convolution gate that reports a value, as bmta
    reports alpha."""

    def __init__(self, channels: int, reported: float = 0.25) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.reported = reported

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))

    def reported_values(self) -> dict[str, float]:
        return {"alpha": self.reported}


def gate_flops(batch: int, channels: int, height: int, width: int, **_: object) -> FlopBreakdown:
    return FlopBreakdown(attention=2 * batch * channels**2 * height * width)


GATE = MechanismSpec(
    name="test_gate",
    kind="feature_map",
    description="1x1 gate (tests)",
    paper="-",
    build=lambda channels, **h: Gate(channels, **h),
    flops=gate_flops,
    defaults={"reported": 0.25},
    supports_causal=False,
)
CAUSAL_ONLY = replace(mha.SPEC, name="test_causal_only", supports_bidirectional=False)


@pytest.fixture
def registered():
    for spec in (GATE, CAUSAL_ONLY):
        MECHANISMS.register(spec)
    yield
    for spec in (GATE, CAUSAL_ONLY):
        MECHANISMS.unregister(spec.name)


def measured(fn) -> int:
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


SMALL_CNN = CNNConfig(
    in_channels=5,
    num_classes=10,
    image_size=13,
    stem_width=8,
    widths=(8, 12, 16),
    blocks=(2, 1, 2),
    strides=(1, 2, 2),
    dropblock=(0.1, 0.0, 0.2),
    dropblock_size=3,
    dropout=0.5,
)


def test_cnn_flops_equal_flop_counter_forward_and_training():
    model = CNN(SMALL_CNN, GATE, {})
    x = torch.randn(3, 5, 13, 13)
    declared = cnn_forward_flops(SMALL_CNN, GATE, {}, batch=3)
    assert measured(lambda: model(x)) == declared["total"]
    assert declared["mechanism_total"] == 3 * 2 * (
        2 * 8**2 * 13 * 13 + 12**2 * 7 * 7 + 2 * 16**2 * 4 * 4
    )
    step = measured(lambda: model(x).sum().backward())
    # Backward counts twice the forward, except that the stem's input needs no gradient.
    assert step == 3 * declared["total"] - declared["stem"]
    assert [name for name, _ in model.mechanisms()] == [
        "stage1.1",
        "stage1.2",
        "stage2",
        "stage3.1",
        "stage3.2",
    ]


def test_cnn_without_a_mechanism_is_the_none_baseline():
    plain = cnn_forward_flops(SMALL_CNN, None, {}, batch=2)
    assert plain["mechanism_total"] == 0
    assert (
        measured(lambda: CNN(SMALL_CNN, GATE, {}).eval()(torch.randn(2, 5, 13, 13)))
        == plain["total"] + cnn_forward_flops(SMALL_CNN, GATE, {}, 2)["mechanism_total"]
    )
    try:
        none = MECHANISMS.get("none")
    except UnknownNameError:
        pytest.skip("the `none` mechanism is not registered")
    assert cnn_forward_flops(SMALL_CNN, none, none.hparams("smoke"), batch=2) == plain


def test_the_paper_cnn_is_the_authors_12_layer_network():
    task = EuroSATTask.from_config(SUITE.tasks("paper")[0].config)
    config = task.cnn_config()
    assert len(list(config.layout())) == 11  # + the stem: the authors' 12 layers
    plain = sum(p.numel() for p in CNN(config, GATE, {}).parameters()) - sum(
        c * c for _, _, c, *_ in config.layout()
    )
    assert plain == 12_724_042  # the authors' balanced_12layer.py without its attention modules


def test_vit_flops_equal_flop_counter():
    config = ViTConfig(
        in_channels=3, num_classes=10, image_size=16, patch_size=4, dim=32, depth=2, mlp_ratio=2
    )
    model = ViT(config, mha.SPEC, {"num_heads": 4})
    x = torch.randn(2, 3, 16, 16)
    declared = vit_forward_flops(config, mha.SPEC, {"num_heads": 4}, batch=2)
    assert measured(lambda: model(x)) == declared["total"]
    assert (
        measured(lambda: model(x).sum().backward())
        == 3 * declared["total"] - declared["patch_embedding"]
    )
    assert declared["mechanism_total"] == 2 * mha.flops(2, 16, 32, num_heads=4, causal=False).total


def test_synthetic_data_is_deterministic_balanced_and_splits_differ():
    images, labels = generate(4, 32, seed=0, split="train")
    assert images.shape == (40, 3, 32, 32) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [4] * 10
    again, _ = generate(4, 32, seed=0, split="train")
    assert np.array_equal(images, again)
    assert not np.array_equal(images, generate(4, 32, seed=0, split="test")[0])
    assert len({images[labels == k].mean().round(1) for k in range(10)}) > 1
    assert [p.__name__.replace("_", "") for p in PATTERNS] == [c.lower() for c in CLASSES]


def test_dihedral_augment_gives_each_image_one_of_its_eight_symmetries():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4).repeat(8, 1, 1, 1)
    out = DihedralAugment(seed=1)(x.clone())
    for original, augmented in zip(x, out):
        symmetries = [original.rot90(k, (-2, -1)) for k in range(4)]
        symmetries += [s.flip(-1) for s in symmetries]
        assert any(torch.equal(augmented, s) for s in symmetries)
    assert not torch.equal(out, x)


def test_warm_restarts_follow_pytorch_sgdr_in_epochs():
    schedule = warm_restarts(steps_per_epoch=10, first_epochs=2, growth=2)
    assert schedule(0, None) == 1.0
    assert math.isclose(schedule(10, None), 0.5)  # half-way through the first 2-epoch cycle
    assert schedule(20, None) == 1.0 and math.isclose(
        schedule(40, None), 0.5
    )  # restart; then a 4-epoch cycle
    assert schedule(60, None) == 1.0


def test_plan_pairs_feature_maps_with_the_cnn_and_sequences_with_the_vit_on_one_budget(registered):
    plan = plan_run(
        RunRequest(
            suite="eurosat",
            mechanisms=("test_gate", "mha", "test_causal_only"),
            profile="smoke",
            seeds=1,
        ),
        device="cpu",
    )
    assert {(c.mechanism, c.task) for c in plan.cells} == {
        ("test_gate", "synthetic-32px-cnn"),
        ("mha", "synthetic-32px-vit"),
    }
    assert any("skips test_causal_only" in note and "causal-only" in note for note in plan.notes)
    assert len({c.budget for c in plan.cells}) == 1
    task = EuroSATTask.from_config(plan.cells[0].task_config)
    per_image = 3 * cnn_forward_flops(task.cnn_config(), None, {}, 1)["total"]
    assert plan.cells[0].budget == Budget("flops", per_image * 3000 * 10)
    assert plan.cells[0].hparams == {"reported": 0.25}
    assert next(c for c in plan.cells if c.mechanism == "mha").hparams["num_heads"] == 4
    assert SUITE.groups == ("vision",)


def test_the_paper_profile_needs_real_data(registered):
    with pytest.raises(ConfigError, match="--set root=DIR .*attnbench data eurosat"):
        plan_run(
            RunRequest(suite="eurosat", mechanisms=("test_gate",), profile="paper"), device="cpu"
        )


def test_a_root_switches_to_the_real_data_and_every_config_states_its_split(registered, tmp_path):
    pytest.importorskip("PIL")
    from tests.suites.eurosat.fixtures import write_both

    root = str(write_both(tmp_path))
    plan = plan_run(
        RunRequest(
            suite="eurosat",
            mechanisms=("test_gate",),
            profile="smoke",
            seeds=1,
            task_settings={"root": root, "batch_size": 4},
        ),
        device="cpu",
    )
    config = plan.cells[0].task_config
    assert plan.cells[0].task == "eurosat-rgb-random70-15-15-cnn"
    assert (config["data"], config["split"], config["split_ratios"], config["split_seed"]) == (
        "eurosat",
        "random",
        [0.7, 0.15, 0.15],
        42,
    )
    assert config["image_size"] == 64 and config["synthetic_per_class"] is None
    official = plan_run(
        RunRequest(
            suite="eurosat",
            mechanisms=("test_gate",),
            profile="paper",
            seeds=1,
            task_settings={"root": root, "split": "official", "batch_size": 4},
        ),
        device="cpu",
    )
    config = official.cells[0].task_config
    assert official.cells[0].task == "eurosat-rgb-official-cnn"
    assert config["split_ratios"] is None and config["split_seed"] is None
    per_image = (
        3 * cnn_forward_flops(EuroSATTask.from_config(config).cnn_config(), None, {}, 1)["total"]
    )
    assert (
        official.cells[0].budget.value == per_image * 10 * 80
    )  # 10 images in the train list, 80 epochs


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"widths": [16, 32]}, "one value per CNN stage"),
        ({"patch_size": 5}, "must divide the image size 32"),
        ({"schedule": "step"}, "schedule='step' is not one of"),
        ({"class_weights": [1.0, 2.0]}, "10 positive numbers"),
        ({"synthetic_per_class": [0, 1, 1]}, "synthetic_per_class"),
        ({"dropblock_size": 4}, "must be odd"),
        ({"bogus": 1}, "no task setting 'bogus'"),
        ({"root": "/nonexistent/eurosat"}, "no EuroSAT rgb images at /nonexistent"),
        (
            {"root": "/nonexistent/eurosat", "bands": "all", "split": "official"},
            "no EuroSAT all images",
        ),
    ],
)
def test_bad_settings_fail_at_planning(registered, settings, message):
    with pytest.raises(ConfigError, match=message):
        plan_run(
            RunRequest(
                suite="eurosat", mechanisms=("test_gate",), profile="smoke", task_settings=settings
            ),
            device="cpu",
        )


TINY = dict(synthetic_per_class=(6, 2, 3), batch_size=8)


def test_a_cnn_cell_trains_and_stores_metrics_costs_and_reported_values():
    task = EuroSATTask.from_config({**SUITE.tasks("smoke")[0].config, **TINY})
    outcome = train_and_evaluate(
        task, GATE, {"reported": 0.25}, Budget("steps", 3), 0, CellContext()
    )
    assert (
        outcome.steps == 3
        and outcome.flops == 3 * 3 * cnn_forward_flops(task.cnn_config(), GATE, {}, 8)["total"]
    )
    metrics = outcome.metrics
    assert (
        0 <= metrics["accuracy"] <= 1
        and 0 <= metrics["macro_accuracy"] <= 1
        and "val_accuracy" in metrics
    )
    assert {f"accuracy/{name}" for name in ("AnnualCrop", "SeaLake")} <= set(metrics)
    assert {k: v for k, v in metrics.items() if k.startswith("alpha/")} == {
        "alpha/stage1": 0.25,
        "alpha/stage2": 0.25,
        "alpha/stage3": 0.25,
        "alpha/mean": 0.25,
    }
    assert (
        outcome.costs["flops_attention"]
        == cnn_forward_flops(task.cnn_config(), GATE, {}, 1)["mechanism_attention"]
    )
    assert np.array(outcome.details["confusion_matrix"]).sum() == 30
    assert outcome.details["split_sizes"] == {"train": 60, "val": 20, "test": 30}


def test_a_vit_cell_trains_a_sequence_mechanism_bidirectionally():
    task = EuroSATTask.from_config({**SUITE.tasks("smoke")[1].config, **TINY})
    outcome = train_and_evaluate(
        task, mha.SPEC, {"num_heads": 4}, Budget("steps", 2), 0, CellContext()
    )
    assert outcome.steps == 2 and math.isfinite(outcome.metrics["final_train_loss"])
    assert not any(k.startswith("alpha/") for k in outcome.metrics)
    assert (
        outcome.costs["flops_attention"]
        == 2 * mha.flops(1, 64, 64, num_heads=4, causal=False).attention
    )


def test_a_cell_reads_the_13_band_layout_with_the_official_split_and_the_paper_recipe(tmp_path):
    pytest.importorskip("tifffile")
    from tests.suites.eurosat.fixtures import write_both

    root = str(write_both(tmp_path))
    config = {
        **SUITE.tasks("paper")[0].config,
        "root": root,
        "bands": "all",
        "split": "official",
        "batch_size": 4,
        "stem_width": 8,
        "widths": [8, 8],
        "blocks": [1, 1],
        "strides": [2, 2],
        "dropblock": [0.1, 0.2],
    }
    task = EuroSATTask.from_config(SUITE.make_task(config, "x").config)
    outcome = train_and_evaluate(
        task, GATE, {"reported": 0.5}, Budget("steps", 2), 1, CellContext()
    )
    assert outcome.details["split_sizes"] == {"train": 10, "val": 10, "test": 10}
    assert len(outcome.details["normalisation"]["mean"]) == 13
    assert {"accuracy", "macro_accuracy", "kappa", "val_accuracy", "alpha/mean"} <= set(
        outcome.metrics
    )


def test_a_random_split_of_real_data_is_disjoint_and_sized_by_its_ratios(tmp_path):
    pytest.importorskip("PIL")
    from tests.suites.eurosat.fixtures import write_rgb

    write_rgb(tmp_path)
    task = EuroSATTask.from_config(
        SUITE.make_task(
            {**SUITE.tasks("smoke")[0].config, "root": str(tmp_path), "batch_size": 4}, "x"
        ).config
    )
    splits = load_splits(data_key(task))
    assert {name: len(y) for name, y in splits.labels.items()} == {"train": 21, "val": 4, "test": 5}
    flat = {
        tuple(image.flatten()[:64].tolist()) for part in splits.images.values() for image in part
    }
    assert len(flat) == 30
    assert torch.allclose(splits.images["train"].mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)


def test_smoke_run_end_to_end_through_the_cli(tmp_path):
    try:
        MECHANISMS.get("none")
    except UnknownNameError:
        pytest.skip("the `none` mechanism is not registered")
    db = f"sqlite:///{tmp_path / 'e.db'}"
    result = run_cli(
        "run",
        "--suite",
        "eurosat",
        "-m",
        "none",
        "-m",
        "mha",
        "--seeds",
        "1",
        "--budget",
        "2",
        "--budget-kind",
        "steps",
        "--jobs",
        "1",
        "--set",
        "synthetic_per_class=[6,2,3]",
        "--set",
        "batch_size=8",
        "--db",
        db,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(
        run_cli("leaderboard", "--suite", "eurosat", "--format", "json", "--db", db).stdout
    )
    assert {r["mechanism"] for r in rows} == {"none", "mha"} and len(
        {r["budget_value"] for r in rows}
    ) == 1
    paper = run_cli("run", "--suite", "eurosat", "--profile", "paper", "-m", "none", "--db", db)
    assert paper.returncode == 2 and "attnbench data eurosat" in paper.stderr
    assert len(paper.stderr.strip().splitlines()) == 1
