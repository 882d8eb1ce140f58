"""PINE — "Eliminating Position Bias of Language Models: A Mechanistic Approach" (Wang, Zhang, Li,
Huang, Han, Ji, Kakade, Peng and Ji, ICLR 2025, arXiv:2407.01100; code wzq016/PINE).

An input [prefix, segment 1 .. segment N, suffix] whose segments (documents, answer options) should
be read without regard to their order. Two sources of position bias are removed. Causal masking:
attention between segments is bidirectional, every segment token sees every other segment (and its
own causally). Position encoding: for each (query, head) the segments are sorted by their
position-free importance — the mean weight of softmax(q · k * scaling) over a segment's tokens, with
q and k *before* RoPE — and laid out by cumulative length in that order, the most important closest
to the query; RoPE is then recomputed for that layout. All segments end at the same position E
(prefix length plus total segment length), so each segment occupies [E - n_j - shift_j, E -
shift_j). A segment token's layout puts its own segment last (shift 0) and orders the others by the
segment-to-segment importance (its own segment masked, summed over its tokens); a suffix token (and
every decoded token) orders them by its own importance. Prefix tokens attend as usual. The result
does not depend on the order in which the segments are given.

Segments are spans [start, end) in token indices, contiguous and in order, shared by the batch. They
are declared per call, `model(input_ids, pine_segments=[(s_1, e_1), ...])` — transformers forwards
the keyword to every attention call, also in a hand-written decoding loop over the cache — or fixed
when the mechanism is installed, hyper-parameter `segments`, which is the way to use
`model.generate` (transformers 5 refuses generate keywords it does not know). Without segments (or
with one) PINE is the model's own SDPA, exactly. Inputs must use the default positions 0..L-1 (no
padding).

Through the attention interface q and k arrive already rotated, for the positions 0..L-1. RoPE is a
rotation per frequency pair, so the score under a new layout is the rotated query turned once more,
by (delta_q - delta_k) steps, where delta = new position - original position: delta_k is constant
over a segment's keys, so each query is turned once per segment (and once for the other keys).
Position-free scores turn q and k back by their positions. The frequencies come from the module's
config (transformers' RoPE initialisers: default, linear, llama3, yarn, ...; length-dependent
`dynamic` scaling is refused); this holds for models that rotate the whole head with `rotate_half`
(Llama, Qwen2, Mistral). The official code is eager and unbatched; this one batches and works in
query chunks.

Budget: without segments the FLOPs are `dense`'s, exactly. With them `last_stats` reports the
(query, key) pairs read — more than causal attention, as segments see each other — and the
position-free scoring, 2 Dh per (query, segment key) pair of the queries inside or after the
segments.
"""

from __future__ import annotations

import torch

from attnbench.errors import ConfigError
from attnbench.mechanism import MechanismSpec
from attnbench.mechanisms._pretrained import allowed_by, build_dense, call_stats, dense_fallback
from attnbench.mechanisms._pretrained import dense_cache as cache
from attnbench.mechanisms._pretrained import dense_flops as flops

CHUNK = 512  # queries per step, so that no (query, key) tensor covers the whole prompt


def rope_frequencies(config, head_dim: int, device) -> torch.Tensor:
    """RoPE's inverse frequencies (Dh / 2,) as the model computes them."""
    params = dict(
        getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    )
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type == "default":
        theta = params.get("rope_theta", getattr(config, "rope_theta", 10000.0))
        return 1.0 / theta ** (
            torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim
        )
    if rope_type == "dynamic":
        raise ConfigError(
            "pine cannot re-position keys under length-dependent (dynamic) RoPE scaling"
        )
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    return ROPE_INIT_FUNCTIONS[rope_type](config, device)[0]


def rotate(x: torch.Tensor, steps: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
    """Turn x (..., Dh) by `steps` positions (broadcast over x[..., 0]), as RoPE with rotate_half
    does."""
    angle = steps[..., None].to(torch.float64) * frequencies.to(torch.float64)
    angle = torch.cat([angle, angle], -1)
    first, second = x.chunk(2, -1)
    return x * angle.cos().to(x.dtype) + torch.cat([-second, first], -1) * angle.sin().to(x.dtype)


def checked_segments(segments, q_len: int, kv_len: int) -> torch.Tensor:
    """(N, 2) long tensor of [start, end) spans, validated against the call."""
    spans = torch.as_tensor([tuple(span) for span in segments], dtype=torch.long)
    if (
        spans.ndim != 2
        or spans.shape[1] != 2
        or (spans[:, 0] >= spans[:, 1]).any()
        or spans[0, 0] < 0
        or (spans[1:, 0] != spans[:-1, 1]).any()
        or spans[-1, 1] > kv_len
    ):
        raise ConfigError(
            f"pine_segments must be contiguous [start, end) spans in order within the {kv_len} "
            f"tokens, got {segments}"
        )
    if kv_len - q_len > spans[0, 0] and kv_len - q_len < spans[-1, 1]:
        raise ConfigError(
            "pine needs every segment token in one call (a chunked prefill split the segments)"
        )
    return spans


def layout_shifts(
    q_free: torch.Tensor, k_free: torch.Tensor, spans: torch.Tensor, t: torch.Tensor, scaling: float
) -> torch.Tensor:
    """shift (B, H, Lq, N): how far back from E each segment sits in the layout of query t (t >= P).

    q_free (B, H, Lq, Dh) and k_free (B, H, E - P, Dh), the segments' keys, are position-free (RoPE
    undone).
    """
    start, end, dev = int(spans[0, 0]), int(spans[-1, 1]), q_free.device
    lengths, ends = (spans[:, 1] - spans[:, 0]).to(dev), spans[:, 1].contiguous().to(dev)
    segment_of = torch.bucketize(
        torch.arange(start, end, device=dev), ends, right=True
    )  # of each region key
    own = torch.bucketize(t, ends, right=True).where((t >= start) & (t < end), -1)
    importance = torch.empty(*q_free.shape[:3], len(spans), device=dev)
    for i in range(0, q_free.shape[2], CHUNK):
        scores = (q_free[:, :, i : i + CHUNK] @ k_free.transpose(-1, -2) * scaling).masked_fill(
            own[i : i + CHUNK, None] == segment_of[None, :], float("-inf")
        )  # a segment token skips its own
        weights = torch.softmax(scores, -1, dtype=torch.float32)
        importance[:, :, i : i + CHUNK] = (
            torch.zeros(*weights.shape[:3], len(spans), device=dev).index_add_(
                -1, segment_of, weights
            )
            / lengths
        )  # mean weight per token of each segment
    inside = own >= 0
    if inside.any():  # a segment's tokens share one order: its summed importance, itself first
        per_segment = torch.zeros(*importance.shape[:2], len(spans), len(spans), device=dev)
        per_segment.index_add_(2, own[inside], importance[:, :, inside])
        per_segment.diagonal(dim1=-2, dim2=-1).fill_(float("inf"))
        importance[:, :, inside] = per_segment[:, :, own[inside]]
    order = importance.argsort(dim=-1, descending=True, stable=True)
    ahead = lengths[order].cumsum(-1) - lengths[order]
    return torch.zeros_like(order).scatter_(-1, order, ahead)


def pine_attention(
    query, key, value, allowed, scaling: float, spans: torch.Tensor, frequencies
) -> tuple:
    """Output (B, H, Lq, Dh), (query, key) pairs read, and position-free pairs scored."""
    batch, heads, q_len, _ = query.shape
    kv_len, dev = key.shape[2], query.device
    k = key.repeat_interleave(heads // key.shape[1], 1)
    v = value.repeat_interleave(heads // key.shape[1], 1)
    t = torch.arange(kv_len - q_len, kv_len, device=dev)
    start, end = int(spans[0, 0]), int(spans[-1, 1])
    scored = t >= start
    shift = torch.zeros(batch, heads, q_len, len(spans), dtype=torch.long, device=dev)
    if scored.any():
        q_free = rotate(query[:, :, scored], -t[scored], frequencies)
        k_free = rotate(k[:, :, start:end], -torch.arange(start, end, device=dev), frequencies)
        shift[:, :, scored] = layout_shifts(q_free, k_free, spans, t[scored], scaling)
    spans = spans.to(dev)
    own = torch.bucketize(t, spans[:, 1].contiguous(), right=True)
    in_segment = (t >= start) & (t < end)
    new_t = torch.where(
        in_segment, end - spans[own.clamp(max=len(spans) - 1), 1] + t, t
    )  # own segment last
    delta_q = new_t - t
    out, pairs = torch.empty_like(query), 0
    keys = torch.arange(kv_len, device=dev)
    outside = (keys < start) | (keys >= end)
    for i in range(0, q_len, CHUNK):
        rows = slice(i, i + CHUNK)
        scores = torch.empty(batch, heads, len(t[rows]), kv_len, dtype=query.dtype, device=dev)
        visible = torch.empty(scores.shape, dtype=torch.bool, device=dev)
        turned = rotate(query[:, :, rows], delta_q[rows].expand(batch, heads, -1), frequencies)
        scores[..., outside] = turned @ k[:, :, outside].transpose(-1, -2) * scaling
        visible[..., outside] = (keys[outside] <= new_t[rows, None]).expand(batch, heads, -1, -1)
        for j, (s, e) in enumerate(spans.tolist()):
            delta_k = (
                end - e - shift[:, :, rows, j]
            )  # (B, H, rows): new - original position of segment j
            turned = rotate(query[:, :, rows], delta_q[rows] - delta_k, frequencies)
            scores[..., s:e] = turned @ k[:, :, s:e].transpose(-1, -2) * scaling
            new_k = end - (e - s) - shift[:, :, rows, j, None] + torch.arange(e - s, device=dev)
            visible[..., s:e] = new_k <= new_t[rows, None]
        if allowed is not None:
            visible &= allowed[:, :, -1:, :]
        weights = torch.softmax(
            scores.masked_fill(~visible, float("-inf")).to(
                torch.promote_types(query.dtype, torch.float32)
            ),
            -1,
        ).to(v.dtype)
        out[:, :, rows] = weights @ v
        pairs += int(visible.sum())
    return out, pairs, batch * heads * int(scored.sum()) * (end - start)


def build(segments: list | None = None):
    """An attention function with transformers' AttentionInterface signature; `last_stats` holds its
    budget.

    The keyword `pine_segments` of a call, else `segments`, declares the segments (see the module
    docstring).
    """
    dense = build_dense()

    def pine(
        module,
        query,
        key,
        value,
        attention_mask,
        scaling=None,
        dropout=0.0,
        pine_segments=None,
        **kwargs,
    ):
        q_len, kv_len = query.shape[2], key.shape[2]
        pine_segments = segments if pine_segments is None else pine_segments
        if pine_segments is None or len(pine_segments) < 2:
            return dense_fallback(
                pine,
                dense,
                module,
                query,
                key,
                value,
                attention_mask,
                scaling=scaling,
                dropout=dropout,
                **kwargs,
            )
        spans = checked_segments(pine_segments, q_len, kv_len)
        positions = kwargs.get("position_ids")
        if positions is not None and not torch.equal(
            positions.to(query.device),
            torch.arange(kv_len - q_len, kv_len, device=query.device).expand_as(positions),
        ):
            raise ConfigError("pine with segments needs the default positions 0..L-1 (no padding)")
        scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
        frequencies = rope_frequencies(module.config, query.shape[-1], query.device)
        out, pairs, scored = pine_attention(
            query, key, value, allowed_by(attention_mask, kv_len), scaling, spans, frequencies
        )
        pine.last_stats = call_stats(
            query, key, pairs, 2 * query.shape[-1] * scored, mode="segments"
        )
        return out.transpose(1, 2).contiguous(), None

    pine.last_stats = {}
    return pine


SPEC = MechanismSpec(
    name="pine",
    kind="pretrained",
    description=(
        "PINE: bidirectional attention between declared segments, re-positioned per query by "
        "position-free importance (order-invariant)."
    ),
    paper=(
        "Wang et al., Eliminating Position Bias of Language Models: A Mechanistic Approach, ICLR"
        " 2025, arXiv:2407.01100"
    ),
    build=build,
    flops=flops,
    cache=cache,
    supports_bidirectional=False,
    defaults={"segments": None},
)
