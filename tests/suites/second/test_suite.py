"""The SECOND suite: the network and its FLOPs, the losses, planning, cells on real-format data,
and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

pytest.importorskip("PIL")

from attnbench.budget import Budget  # noqa: E402
from attnbench.errors import ConfigError, UnknownNameError  # noqa: E402
from attnbench.registry import MECHANISMS  # noqa: E402
from attnbench.run.planning import RunRequest, plan_run  # noqa: E402
from attnbench.suite import CellContext  # noqa: E402
from attnbench.suites.second import SUITE  # noqa: E402
from attnbench.suites.second.losses import (
    change_maps,
    scd_loss,
    semantic_ce,
    weighted_bce,
)  # noqa: E402
from attnbench.suites.second.model import SCDConfig, SCDNet, scd_forward_flops  # noqa: E402
from attnbench.suites.second.synthetic import generate  # noqa: E402
from attnbench.suites.second.task import SecondTask  # noqa: E402
from attnbench.suites.second.train import (
    PairAugment,
    data_key,
    load_splits,
    poly,  # noqa: E402
    train_and_evaluate,
)
from tests.conftest import run_cli  # noqa: E402
from tests.suites.second import fixtures as fx  # noqa: E402

BUILT_INS = ("none", "se", "cbam", "coord", "bmta")


def mechanism(name: str):
    try:
        return MECHANISMS.get(name)
    except UnknownNameError:
        pytest.skip(f"the `{name}` mechanism is not registered")


SMALL = SCDConfig(
    in_channels=3,
    height=32,
    width_px=32,
    stem_width=8,
    widths=(8, 12, 16),
    blocks=(2, 1, 1),
    strides=(2, 2, 1),
    width=12,
    cd_blocks=2,
)


@pytest.mark.parametrize("decoder_attention", [False, True])
def test_declared_flops_equal_the_flop_counter(decoder_attention):
    spec = mechanism("cbam")
    hparams = spec.hparams("smoke")
    config = SCDConfig(**{**SMALL.__dict__, "decoder_attention": decoder_attention})
    model = SCDNet(config, spec, hparams)
    with FlopCounterMode(display=False) as counter:
        outputs = model(torch.randn(2, 2, 3, 32, 32))
    declared = scd_forward_flops(config, spec, hparams, batch=2)
    assert counter.get_total_flops() == declared["total"]
    placements = [name for name, _ in model.mechanisms()]
    assert placements[:4] == [
        "encoder.stage1.1",
        "encoder.stage1.2",
        "encoder.stage2",
        "encoder.stage3",
    ]
    assert len(placements) == (7 if decoder_attention else 4)
    assert [tuple(o.shape) for o in outputs] == [(2, 1, 32, 32), (2, 7, 32, 32), (2, 7, 32, 32)]
    plain = scd_forward_flops(config, None, {}, batch=2)
    assert (
        plain["mechanism_total"] == 0
        and declared["total"] - plain["total"] == declared["mechanism_total"] > 0
    )


def test_the_encoder_is_shared_by_both_dates():
    model = SCDNet(SMALL, mechanism("se"), mechanism("se").hparams("smoke")).eval()
    pair = torch.randn(1, 2, 3, 32, 32)
    swapped = pair.flip(1)
    with torch.no_grad():
        _, a, b = model(pair)
        high, _ = model.encoder(pair[:, 1])
        high_swapped, _ = model.encoder(swapped[:, 0])
    assert torch.equal(high, high_swapped) and a.shape == b.shape


def test_losses_follow_scannet_and_survive_a_batch_without_change():
    torch.manual_seed(0)
    outputs = (
        torch.randn(2, 1, 8, 8, requires_grad=True),
        torch.randn(2, 7, 8, 8, requires_grad=True),
        torch.randn(2, 7, 8, 8, requires_grad=True),
    )
    labels = torch.zeros(2, 2, 8, 8, dtype=torch.long)
    labels[:, 0, 2:5, 2:5], labels[:, 1, 2:5, 2:5] = 3, 5
    ce, dice = scd_loss(outputs, labels, "ce"), scd_loss(outputs, labels, "ce_dice")
    assert dice > ce > 0
    (ce + dice).backward()
    assert all(o.grad is not None and o.grad.abs().sum() > 0 for o in outputs)
    still = torch.zeros_like(labels)
    assert math.isfinite(float(scd_loss(outputs, still, "ce_dice").detach()))
    assert semantic_ce(outputs[1], still[:, 0]) == 0
    changed = (labels[:, 0] > 0).unsqueeze(1).float()
    by_hand = torch.nn.functional.binary_cross_entropy_with_logits(
        outputs[0], changed, reduction="none"
    )
    expected = 0.25 * by_hand[changed == 1].mean() + 0.75 * by_hand[changed == 0].mean()
    assert torch.allclose(weighted_bce(outputs[0], changed), expected)
    with pytest.raises(ValueError, match="loss 'focal'"):
        scd_loss(outputs, labels, "focal")


def test_predictions_are_semantic_classes_inside_the_predicted_change_only():
    change = torch.full((1, 1, 2, 2), -1.0)
    change[0, 0, 0, 0] = 1.0
    logits = torch.zeros(1, 7, 2, 2)
    logits[:, 4] = 1.0
    maps = change_maps((change, logits, logits.roll(1, dims=1)))
    assert maps.tolist() == [[[[4, 0], [0, 0]], [[5, 0], [0, 0]]]]


def test_pair_augment_moves_images_and_labels_together():
    images = torch.arange(4 * 2 * 3 * 5 * 5, dtype=torch.float32).view(4, 2, 3, 5, 5)
    labels = (torch.arange(4 * 2 * 5 * 5) % 7).view(4, 2, 5, 5)
    moved_images, moved_labels = PairAugment(seed=3)(images.clone(), labels.clone())
    for i in range(4):
        matches = [k for k in range(8) if torch.equal(moved_labels[i], _symmetry(labels[i], k))]
        assert matches and torch.equal(moved_images[i], _symmetry(images[i], matches[0]))
    assert moved_labels.dtype == torch.long and not torch.equal(moved_labels, labels)


def test_poly_decay_is_scannets():
    schedule = poly(1.5)
    assert schedule(0, 10) == 1.0 and schedule(10, 10) == 0.0
    assert math.isclose(schedule(5, 10), 0.5**1.5) and schedule(3, None) == 1.0


def _symmetry(x: torch.Tensor, k: int) -> torch.Tensor:
    x = x.rot90(k % 4, dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


def test_synthetic_pairs_are_deterministic_and_follow_seconds_label_convention():
    images, labels = generate(16, 32, seed=0, split="train")
    assert images.shape == (16, 2, 3, 32, 32) and labels.shape == (16, 2, 32, 32)
    assert np.array_equal(images, generate(16, 32, seed=0, split="train")[0])
    assert not np.array_equal(images, generate(16, 32, seed=0, split="val")[0])
    assert np.array_equal(
        labels[:, 0] > 0, labels[:, 1] > 0
    )  # labels only where changed, in both dates
    changed = labels[:, 0] > 0
    assert (labels[:, 0][changed] != labels[:, 1][changed]).all() and 0 < changed.mean() < 0.5
    assert labels.max() <= 6


def test_smoke_plans_every_built_in_on_one_budget_in_the_vision_group():
    for name in BUILT_INS:
        mechanism(name)
    plan = plan_run(RunRequest(suite="second", profile="smoke", seeds=1), device="cpu")
    assert set(BUILT_INS) <= {c.mechanism for c in plan.cells}
    assert {c.task for c in plan.cells} == {"synthetic-64px-ce"} and len(
        {c.budget for c in plan.cells}
    ) == 1
    task = SecondTask.from_config(plan.cells[0].task_config)
    per_pair = 3 * scd_forward_flops(task.network(), None, {}, 1)["total"]
    assert plan.cells[0].budget == Budget("flops", per_pair * 512 * 10)
    assert SUITE.groups == ("vision",) and SUITE.accepts == ("feature_map",)
    vision = plan_run(
        RunRequest(suite="vision", mechanisms=("none",), profile="smoke", seeds=1), device="cpu"
    )
    assert "second" in vision.suites


def test_the_paper_profile_needs_real_data():
    mechanism("none")
    with pytest.raises(ConfigError, match="--set root=DIR"):
        plan_run(RunRequest(suite="second", mechanisms=("none",), profile="paper"), device="cpu")


@pytest.mark.parametrize("write,layout", [(fx.write_lists, "lists"), (fx.write_folders, "folders")])
def test_a_root_switches_to_real_data_and_the_config_states_layout_labels_loss(
    tmp_path, write, layout
):
    mechanism("none")
    root = str(write(tmp_path))
    plan = plan_run(
        RunRequest(
            suite="second",
            mechanisms=("none",),
            profile="paper",
            seeds=1,
            task_settings={"root": root, "batch_size": 2, "labels": "rgb", "loss": "ce_dice"},
        ),
        device="cpu",
    )
    config = plan.cells[0].task_config
    assert (
        config["data"],
        config["layout"],
        config["labels"],
        config["loss"],
        config["normalisation"],
    ) == ("second", layout, "rgb", "ce_dice", "official")
    assert (
        plan.cells[0].task == "second-rgb-ce_dice" and config["image_size"] == 16
    )  # read from the files
    per_pair = 3 * scd_forward_flops(SecondTask.from_config(config).network(), None, {}, 1)["total"]
    assert (
        plan.cells[0].budget.value == per_pair * 4 * 50
    )  # four training pairs, SCanNet's 50 epochs


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"loss": "focal"}, "loss='focal' is not one of ce, ce_dice"),
        ({"strides": [2, 2, 2]}, "must halve the low-level feature exactly once"),
        ({"widths": [16, 32]}, "one value per encoder stage"),
        ({"image_size": 60}, "must be a multiple of 8"),
        ({"synthetic_pairs": [0, 4]}, "synthetic_pairs"),
        ({"batch_size": 600}, "exceeds the 512 training pairs"),
        ({"decoder_attention": "yes"}, "decoder_attention='yes' is not true or false"),
        ({"bogus": 1}, "no task setting 'bogus'"),
        ({"root": "/nonexistent/second"}, "no SECOND folder at /nonexistent/second"),
    ],
)
def test_bad_settings_fail_at_planning(settings, message):
    mechanism("none")
    with pytest.raises(ConfigError, match=message):
        plan_run(
            RunRequest(
                suite="second", mechanisms=("none",), profile="smoke", task_settings=settings
            ),
            device="cpu",
        )


def test_a_root_with_pairs_of_two_sizes_is_named(tmp_path):
    from PIL import Image

    mechanism("none")
    root = fx.write_lists(tmp_path)
    path = root / "label2" / fx.VAL[1]
    Image.fromarray(np.zeros((24, 24), np.uint8), mode="L").save(path)
    with pytest.raises(
        ConfigError, match=f"{path} is 24x24 pixels; expected 16x16 like {root / 'im1'}"
    ):
        plan_run(
            RunRequest(
                suite="second",
                mechanisms=("none",),
                profile="paper",
                task_settings={"root": str(root)},
            ),
            device="cpu",
        )


def real_task(root, **settings) -> SecondTask:
    config = {
        **SUITE.tasks("paper")[0].config,
        "root": str(root),
        "batch_size": 2,
        "stem_width": 8,
        "widths": [8, 8],
        "blocks": [1, 1],
        "strides": [2, 2],
        "width": 8,
        "cd_blocks": 1,
        **settings,
    }
    return SecondTask.from_config(SUITE.make_task(config, "x").config)


def test_a_cell_on_real_format_data_trains_and_scores_the_validation_pairs(tmp_path):
    root = fx.write_lists(tmp_path)
    spec = mechanism("bmta")
    task = real_task(root, labels="rgb", loss="ce_dice", decoder_attention=True)
    outcome = train_and_evaluate(
        task, spec, spec.hparams("smoke"), Budget("steps", 2), 0, CellContext()
    )
    assert outcome.steps == 2
    assert {"OA", "mIoU", "SeK", "Fscd", "Score"} <= set(outcome.metrics)
    assert all(math.isfinite(v) for v in outcome.metrics.values())
    assert any(k.startswith("alpha/") for k in outcome.metrics)  # bmta reports its mixing weight
    assert (
        outcome.details["split_sizes"] == {"train": 4, "val": 2}
        and outcome.details["loss"] == "ce_dice"
    )
    assert np.array(outcome.details["histogram_pred_by_label"]).sum() == 2 * 2 * 16 * 16
    assert outcome.details["normalisation"]["mean"][1] == [
        111.07,
        114.04,
        118.18,
    ]  # SCanNet's date-2 mean
    assert len(outcome.details["mechanism_placements"]) == 2 + 3
    assert (
        outcome.costs["flops_attention"]
        == scd_forward_flops(task.network(), spec, spec.hparams("smoke"), 1)["mechanism_attention"]
    )


def test_train_normalisation_is_per_date(tmp_path):
    task = real_task(fx.write_folders(tmp_path), normalisation="train")
    splits = load_splits(data_key(task))
    images = splits.images["train"].double()
    for date in (0, 1):
        assert np.allclose(splits.mean[date], images[:, date].mean(dim=(0, 2, 3)).tolist())
    assert splits.mean[0] != splits.mean[1]


def test_smoke_end_to_end_through_the_cli_and_a_bad_folder_is_exit_2(tmp_path):
    mechanism("none")
    mechanism("se")
    db = f"sqlite:///{tmp_path / 's.db'}"
    result = run_cli(
        "run",
        "--suite",
        "second",
        "-m",
        "none",
        "-m",
        "se",
        "--seeds",
        "1",
        "--budget",
        "2",
        "--budget-kind",
        "steps",
        "--jobs",
        "1",
        "--set",
        "synthetic_pairs=[8,4]",
        "--set",
        "batch_size=4",
        "--set",
        "loss=ce_dice",
        "--db",
        db,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(
        run_cli("leaderboard", "--suite", "second", "--format", "json", "--db", db).stdout
    )
    assert {r["mechanism"] for r in rows} == {"none", "se"} and len(
        {r["budget_value"] for r in rows}
    ) == 1
    root = fx.write_lists(tmp_path / "bad")
    (root / "label1" / fx.VAL[0]).unlink()
    bad = run_cli(
        "run",
        "--suite",
        "second",
        "--profile",
        "paper",
        "-m",
        "none",
        "--set",
        f"root={root}",
        "--db",
        db,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert (
        f"missing file {root / 'label1' / fx.VAL[0]}" in bad.stderr
        and "Traceback" not in bad.stderr
    )
