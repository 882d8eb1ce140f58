"""`attnbench bench kernels` and suite `kernels` on a CPU: the FLOP accounting, the baselines'
masks, the figures, the store, and the one clear line without a GPU. Kernels run through Triton's
interpreter.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")

from attnbench.budget import Budget  # noqa: E402
from attnbench.cell import CellSpec  # noqa: E402
from attnbench.cli import main  # noqa: E402
from attnbench.errors import SkipCell  # noqa: E402
from attnbench.mechanisms.dma import keep_mask  # noqa: E402
from attnbench.mechanisms.moba import keys_read  # noqa: E402
from attnbench.registry import MECHANISMS  # noqa: E402
from attnbench.run.planning import RunRequest, plan_run  # noqa: E402
from attnbench.suites.kernels import SUITE  # noqa: E402
from attnbench.suites.kernels.device import describe, peak_bf16_tflops  # noqa: E402
from attnbench.suites.kernels.metrics import figures  # noqa: E402
from attnbench.suites.kernels.workloads import (  # noqa: E402
    Contender,
    Shape,
    Workload,
    block_routing,
    build_workload,
    sparse_workload,
)

SHAPE = Shape(batch=2, heads=2, seq_len=44, head_dim=16, dtype=torch.float32, device="cpu", tile=16)


def dense_pairs(mechanism: str, hparams: dict, workload: Workload) -> torch.Tensor:
    """(B, H, L, L) pairs the mechanism's own reference code allows, from the workload's inputs."""
    q, k, _ = workload.contenders[0].inputs[:3]
    length = SHAPE.seq_len
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    if mechanism == "moba":
        tiles = block_routing(q, k, hparams["block_size"], hparams["top_k"])
        return (
            tiles.repeat_interleave(hparams["block_size"], -1).repeat_interleave(
                hparams["block_size"], -2
            )[..., :length, :length]
            & causal
        )
    if mechanism == "sliding_window":
        return (
            causal & ~torch.ones(length, length, dtype=torch.bool).tril(-hparams["window"])
        ).expand(2, 2, -1, -1)
    key_bias = workload.contenders[0].inputs[3].detach()
    return keep_mask(key_bias, hparams["window"], True)


@pytest.mark.parametrize(
    "mechanism,hparams",
    [
        ("moba", {"block_size": 8, "top_k": 3}),
        ("sliding_window", {"window": 12}),
        ("dma", {"window": 7}),
    ],
)
def test_sparse_workloads_count_their_pairs_and_all_three_contenders_agree(mechanism, hparams):
    workload = build_workload(mechanism, hparams, SHAPE)
    kernel, sdpa, flex = workload.contenders
    pairs = dense_pairs(mechanism, hparams, workload)
    assert kernel.flops_forward == 4 * SHAPE.head_dim * int(pairs.sum())
    assert workload.density == pytest.approx(int(pairs.sum()) / (4 * 44 * 45 / 2))
    if (
        mechanism == "moba"
    ):  # block routing reads exactly what the mechanism's effective-FLOP formula counts
        assert int(pairs.sum()) == 4 * keys_read(44, 8, 3)
    assert sdpa.flops_forward == 4 * SHAPE.head_dim * 4 * 44 * 45 / 2
    q, k, v = kernel.inputs[:3]
    bias = kernel.inputs[3].detach()[:, :, None, :] if mechanism == "dma" else 0.0
    expected = F.scaled_dot_product_attention(
        q, k, v, attn_mask=torch.where(pairs, bias, float("-inf"))
    )
    with torch.no_grad():
        torch.testing.assert_close(kernel.run(), expected, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(flex.run(), expected, atol=2e-5, rtol=1e-4)


def test_linear_workloads_have_no_flex_and_three_backward_passes():
    workload = build_workload("lightning", {}, SHAPE)
    assert [c.name for c in workload.contenders] == ["kernel", "sdpa"]
    kernel = workload.contenders[0]
    assert kernel.flops_backward == 3 * kernel.flops_forward > 0
    assert math.isnan(workload.density)


def test_figures_turn_timings_into_speedups_tflops_and_goals():
    run = lambda: None  # noqa: E731
    workload = Workload(
        "moba",
        [
            Contender("kernel", run, (), 1e12),
            Contender("sdpa", run, (), 8e12),
            Contender("flex", run, (), 1e12),
        ],
        density=0.125,
    )
    timings = {
        "kernel": {"fwd_s": 0.01, "fwdbwd_s": 0.05, "peak_bytes": 1000},
        "sdpa": {"fwd_s": 0.05, "fwdbwd_s": 0.2, "peak_bytes": 3000},
    }
    out = figures(workload, timings, peak_tflops=200.0)
    assert out["kernel_fwd_tflops"] == pytest.approx(100.0)
    assert out["kernel_fwdbwd_tflops"] == pytest.approx(1e12 * 3.5 / 0.05 / 1e12)
    assert out["speedup_fwd_vs_sdpa"] == pytest.approx(5.0)
    assert out["goal_fwd_vs_sdpa"] == pytest.approx(5.0 / (0.8 / 0.125))  # 0.78: short of the goal
    assert out["kernel_fwd_peak_fraction"] == pytest.approx(0.5)
    assert out["kernel_peak_bytes"] == 1000
    assert not any("flex" in key for key in out)  # a baseline that did not run leaves no figure


def test_a_contender_leaves_no_gradients_for_the_next_one_to_count_as_allocated():
    """The contenders share q, k, v: gradients left on them would be counted as 'before' memory and
    understate the next contender's peak by their size."""
    from attnbench.suites.kernels.timing import Repetitions, measure

    workload = build_workload("sliding_window", {"window": 12}, SHAPE)
    kernel = workload.contenders[0]
    timing = measure(kernel, "cpu", Repetitions(min_reps=1, max_reps=1, target_seconds=0.0))
    assert timing["fwdbwd_s"] > 0
    assert all(tensor.grad is None for tensor in kernel.inputs)


def test_dense_bf16_peaks_match_the_most_specific_name():
    assert peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_bf16_tflops("NVIDIA H200 NVL") == 835.0
    assert peak_bf16_tflops("Tesla T4") is None
    assert describe("cpu")["peak_bf16_tflops"] is None


def test_the_paper_plan_is_the_issue_grid():
    plan = plan_run(RunRequest(suite="kernels", profile="paper", seeds=1), "cpu")
    lengths = {
        c.mechanism: sorted(c.task_config["seq_len"] for c in plan.cells if c.mechanism == m)
        for m in ("moba", "dma")
        for c in plan.cells
        if c.mechanism == m
    }
    assert lengths["moba"] == [1024 * 2**i for i in range(8)]
    assert max(lengths["dma"]) == 32 * 1024
    moba = next(c for c in plan.cells if c.mechanism == "moba")
    assert (moba.hparams["block_size"], moba.hparams["top_k"], moba.task_config["dtype"]) == (
        64,
        8,
        "bfloat16",
    )
    assert set(plan.mechanisms) == {"moba", "sliding_window", "dma", "lightning", "linear"}


def test_without_a_gpu_or_the_interpreter_a_cell_is_skipped(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    task = SUITE.tasks("paper")[0]
    cell = CellSpec(
        "kernels",
        "moba",
        "paper",
        task.label,
        task.config,
        {"block_size": 64, "top_k": 8},
        Budget("steps", 1),
        0,
    )
    with pytest.raises(SkipCell, match="CUDA GPU"):
        SUITE.run_cell(cell, MECHANISMS.get("moba"), type("Ctx", (), {"device": "cpu"})())


def test_bench_without_a_gpu_says_so_in_one_line_and_exits_2(capsys):
    assert main(["bench", "kernels"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a CUDA GPU" in err[0]


def test_bench_interpret_stores_and_exports_the_run(tmp_path, capsys):
    db, export = f"sqlite:///{tmp_path / 'k.db'}", tmp_path / "kernels-cpu.parquet"
    code = main(
        [
            "bench",
            "kernels",
            "--interpret",
            "-m",
            "sliding_window",
            "-L",
            "40",
            "--db",
            db,
            "--export",
            str(export),
        ]
    )
    assert code == 0, capsys.readouterr()
    frame = pd.read_parquet(export)
    assert set(frame["suite"]) == {"kernels"} and set(frame["mechanism"]) == {"sliding_window"}
    metrics = dict(zip(frame["metric"], frame["value"]))
    assert (
        metrics["kernel_fwd_ms"] > 0
        and metrics["speedup_fwd_vs_sdpa"] > 0
        and "flex_fwd_ms" in metrics
    )
    details = json.loads(frame["details"].iloc[0])
    assert details["device"]["name"].startswith("cpu") and details["implementation"] == {
        "sliding_window": "triton"
    }
    assert frame["run_device"].iloc[0].startswith("cpu")
    assert (
        main(["bench", "kernels", "--interpret", "-L", "1000", "--db", db]) == 2
    )  # not a length of the profile


@pytest.mark.parametrize(
    "mechanism,hparams",
    [
        ("moba", {"block_size": 16, "top_k": 2}),
        ("sliding_window", {"window": 12}),
        ("dma", {"window": 7}),
    ],
)
def test_flex_blocks_cover_the_pattern_and_only_complete_blocks_are_full(mechanism, hparams):
    """FlexAttention on a GPU gets blocks of 128 over 64-token tiles; here 32 over 16."""
    workload = sparse_workload(mechanism, hparams, SHAPE, flex_block=32)
    pairs = dense_pairs(mechanism, hparams, workload)
    padded = F.pad(pairs, (0, 64 - 44, 0, 64 - 44)).view(2, 2, 2, 32, 2, 32)
    some, every = padded.any(-1).any(-2), padded.sum((-1, -3))
    mask = workload.block_mask
    listed = mask.to_dense().bool()
    full = torch.zeros_like(listed)
    for b, h, m in torch.cartesian_prod(torch.arange(2), torch.arange(2), torch.arange(2)):
        full[b, h, m, mask.full_kv_indices[b, h, m, : mask.full_kv_num_blocks[b, h, m]].long()] = (
            True
        )
    sizes = torch.tensor([32, 12])
    assert not (some & ~listed).any()
    if mechanism != "dma":  # DMA's tiles may hold no kept pair (a superset); the others are exact
        assert torch.equal(listed, some)
    assert torch.equal(full, every == sizes[:, None] * sizes[None, :])
