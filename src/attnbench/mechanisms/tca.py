"""TCA-Attention — "Training-free Context-adaptive Attention for Efficient Long Context Modeling"
(You, Chen, Zhang, Qiu, Wu, Li, Wang and Tan, arXiv:2512.09238).

Training-free sparse attention for prefill and decoding that also shrinks the KV cache. Offline, one
forward pass over calibration text sets a sparsity configuration per head; online, each block of
`block_size` b keys keeps only its k core tokens, chosen by a redundancy score. A configuration is a
distribution p over k in K = {1, 2, 4, ..., b} with p_k ∝ exp(-(log2 k - mu)^2 / (2 sigma^2)) (the
paper's log-Gaussian candidates): the most redundant fraction p_1 of blocks keeps 1 token, the next
p_2 keeps 2, ..., the least redundant keep all b.

Our reading where the paper's text was not at hand (only its abstract and a summary of the
calibration were): the redundancy of key i in its block is its mean cosine similarity to the block's
other keys; a block's redundancy is the mean over its keys; a block keeps its k least redundant
keys. `calibrate` turns a configuration into cut points on block redundancy (quantiles on the
calibration text, so a block's k depends on that block alone) and gives each key/value head the
sparsest candidate whose relative output error on the calibration text is at most `tolerance`.
Uncalibrated (`budgets=None`) every block keeps `keep` tokens. As in CCA-Attention (the same group's
earlier work, `cca`), query t reads the raw keys of its recent past, from w_t = b floor(max(t -
window + 1, 0) / b), and the core tokens of the complete blocks before w_t. A block is reduced once
complete and out of the window, so the pattern is causal, decoding with a cache equals recomputing,
and evicted keys never return: the KV cache keeps the window plus the core tokens. Budgets are per
key/value head, the unit a cache evicts.

Budget: FLOPs count 4 Dh per (query, key) pair read, pairs(t) = (t - w_t + 1) + sum over blocks
before w_t of k; selection is the redundancy, 2 Dh b^2 per block and key/value head. `last_stats`
holds the measured pairs, their fraction of causal dense attention and the KV cache kept (see
flexprefill.call_stats).
"""

from __future__ import annotations

import math

import torch

from attnbench.errors import ConfigError
from attnbench.mechanism import CacheCost, FlopBreakdown, MechanismSpec
from attnbench.mechanisms._pretrained import allowed_by, call_stats, gathered_attention


def window_start(t: torch.Tensor | int, block_size: int, window: int):
    """w_t: the first raw key of query t, the last `window` tokens rounded back to a block start."""
    ahead = t - window + 1
    ahead = ahead.clamp(min=0) if isinstance(ahead, torch.Tensor) else max(ahead, 0)
    return block_size * (ahead // block_size)


def redundancy(key: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per complete block of key (B, Hkv, L, Dh): token redundancy (B, Hkv, n, b) and block
    redundancy (B, Hkv, n)."""
    n = key.shape[2] // block_size
    unit = torch.nn.functional.normalize(key[:, :, : n * block_size].float(), dim=-1).unflatten(
        2, (n, block_size)
    )
    similarity = unit @ unit.transpose(-1, -2)
    tokens = (similarity.sum(-1) - 1) / max(block_size - 1, 1)
    return tokens, tokens.mean(-1)


def keep_counts(
    block_redundancy: torch.Tensor, block_size: int, keep: int, cuts: list | None
) -> torch.Tensor:
    """k per block (B, Hkv, n): `keep` everywhere, or K[number of a head's cut points above the
    redundancy]."""
    if cuts is None:
        return torch.full_like(block_redundancy, min(keep, block_size), dtype=torch.long)
    choices = torch.tensor(
        [2**i for i in range(int(math.log2(block_size)) + 1)], device=block_redundancy.device
    )
    cut = torch.tensor(
        cuts, device=block_redundancy.device, dtype=block_redundancy.dtype
    )  # (Hkv, |K| - 1)
    return choices[(block_redundancy[..., None] < cut[None, :, None, :]).sum(-1)]


def kept_keys(key: torch.Tensor, block_size: int, keep: int, cuts: list | None) -> torch.Tensor:
    """(B, Hkv, L) True where a key of a complete block is one of its block's core tokens."""
    tokens, blocks = redundancy(key, block_size)
    counts = keep_counts(blocks, block_size, keep, cuts)
    ranks = tokens.argsort(dim=-1, stable=True).argsort(-1)  # 0 = least redundant
    kept = torch.zeros(key.shape[:3], dtype=torch.bool, device=key.device)
    kept[:, :, : tokens.shape[2] * block_size] = (ranks < counts[..., None]).flatten(-2)
    return kept


def tca_attention(
    query,
    key,
    value,
    scaling: float,
    block_size: int,
    window: int,
    kept: torch.Tensor,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, int]:
    """Queries at the last Lq of Lk positions read their raw window and the core tokens before
    it."""
    batch, heads, q_len, _ = query.shape
    kv_len, groups = key.shape[2], heads // key.shape[1]
    out, pairs, dev = torch.empty_like(query), 0, query.device
    chunk = max(block_size, 128)  # queries per step
    for start in range(kv_len - q_len, kv_len, chunk):
        t = torch.arange(start, min(kv_len, start + chunk), device=dev)
        w = window_start(t, block_size, window)
        first, last = int(w[0]), int(w[-1])
        core = kept[:, :, :last].repeat_interleave(groups, 1)
        width = int(core.sum(-1).max())
        core_index = core.int().argsort(dim=-1, descending=True, stable=True)[..., :width]
        core_valid = torch.arange(width, device=dev) < core.sum(-1, keepdim=True)
        raw = torch.arange(first, int(t[-1]) + 1, device=dev)
        index = torch.cat([core_index, raw.expand(batch, heads, -1)], -1)
        keep = torch.cat(
            [
                core_valid[:, :, None, :] & (core_index[:, :, None, :] < w[:, None]),
                ((raw >= w[:, None]) & (raw <= t[:, None])).expand(batch, heads, -1, -1),
            ],
            -1,
        )
        if allowed is not None:
            rows = allowed[:, :, t - (kv_len - q_len)].expand(batch, heads, -1, -1)
            keep &= rows.gather(-1, index[:, :, None, :].expand(-1, -1, len(t), -1))
        rows_out = slice(start - (kv_len - q_len), start - (kv_len - q_len) + len(t))
        out[:, :, rows_out] = gathered_attention(
            query[:, :, rows_out], key, value, index, keep, scaling
        )
        pairs += int(keep.sum())
    return out, pairs


def build(block_size: int = 64, window: int = 1024, keep: int = 16, budgets: dict | None = None):
    """An attention function with transformers' AttentionInterface signature; `last_stats` holds its
    budget.

    `budgets` is what `calibrate` returns: per layer (its index as a string), each key/value head's
    cut points and mean kept tokens per block. Layers it does not name keep `keep` tokens per block.
    """
    if block_size < 1 or block_size & (block_size - 1) or window < 1 or not 1 <= keep <= block_size:
        raise ConfigError(
            "tca needs a power-of-two block_size, window >= 1 and 1 <= keep <= block_size "
            f"(got block_size={block_size}, window={window}, keep={keep})"
        )

    def tca(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
        layer = (budgets or {}).get(str(getattr(module, "layer_idx", None)))
        kept = kept_keys(key, block_size, keep, None if layer is None else layer["cuts"])
        out, pairs = tca_attention(
            query,
            key,
            value,
            scaling,
            block_size,
            window,
            kept,
            allowed_by(attention_mask, key.shape[2]),
        )
        raw_from = window_start(key.shape[2], block_size, window)  # what the next token reads raw
        complete = key.shape[2] // block_size
        selection = 2 * query.shape[-1] * key.shape[0] * key.shape[1] * complete * block_size**2
        tca.last_stats = call_stats(
            query,
            key,
            pairs,
            selection,
            int(kept[:, :, :raw_from].sum())
            + key.shape[0] * key.shape[1] * (key.shape[2] - raw_from),
        )
        return out.transpose(1, 2).contiguous(), None

    tca.last_stats = {}
    return tca


def mean_keep(block_size: int, keep: int, budgets: dict | None) -> float:
    """Core tokens per block, averaged over the calibrated heads (or `keep`)."""
    if not budgets:
        return float(min(keep, block_size))
    means = [k for layer in budgets.values() for k in layer["mean_keep"]]
    return sum(means) / len(means)


def pairs_per_head(seq_len: int, block_size: int, window: int, keep: float) -> float:
    """(query, key) pairs one head reads in a prefill of seq_len tokens."""
    total = 0.0
    for t in range(seq_len):
        w = window_start(t, block_size, window)
        total += (t - w + 1) + (w // block_size) * keep
    return total


def flops(
    batch: int,
    seq_len: int,
    num_heads: int,
    head_dim: int,
    causal: bool = True,
    block_size: int = 64,
    window: int = 1024,
    keep: int = 16,
    budgets: dict | None = None,
    num_kv_heads: int | None = None,
    **_: object,
) -> FlopBreakdown:
    """A prefill's FLOPs: 4 Dh per pair read (calibrated: the heads' mean core tokens per block).
    The redundancy runs per key/value head; without `num_kv_heads` (the harness passes query heads)
    it is counted per query head, an upper bound."""
    pairs = pairs_per_head(seq_len, block_size, window, mean_keep(block_size, keep, budgets))
    kv_heads = num_heads if num_kv_heads is None else num_kv_heads
    selection = 2 * head_dim * batch * kv_heads * (seq_len // block_size) * block_size**2
    return FlopBreakdown(
        attention=round(4 * head_dim * batch * num_heads * pairs), selection=selection
    )


def cache(
    seq_len: int,
    num_kv_heads: int,
    head_dim: int,
    bytes_per_element: int = 2,
    block_size: int = 64,
    window: int = 1024,
    keep: int = 16,
    budgets: dict | None = None,
    **_: object,
) -> CacheCost:
    """The raw window plus the core tokens of every block before it are kept (evicting); all are
    read."""
    raw_from = window_start(seq_len, block_size, window)
    tokens = seq_len - raw_from + (raw_from // block_size) * mean_keep(block_size, keep, budgets)
    kept = round(2 * tokens * num_kv_heads * head_dim * bytes_per_element)
    return CacheCost(kv_stored=kept, kv_read_per_token=kept)


def calibrate(
    model,
    tokenizer,
    texts: list[str],
    block_size: int = 64,
    window: int = 1024,
    tolerance: float = 0.05,
    spreads: tuple[float, ...] = (0.5, 1.0, 2.0),
) -> dict:
    """Per-head budgets from one forward pass over `texts`: the `budgets` hyper-parameter of
    `build`.

    The model runs its own attention while each layer's queries, keys and values are recorded; then
    for every key/value head the candidate configurations (mu in 0, 0.5, ..., log2 b; sigma in
    `spreads`) are tried from the sparsest up, and the first whose output differs from dense
    attention by at most `tolerance` (relative Frobenius norm, over all texts) is kept, or every
    token if none qualifies.
    """
    import transformers
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    recorded: dict[int, list] = {}

    def record(module, query, key, value, attention_mask, scaling=None, **kwargs):
        out = sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, **kwargs
        )
        recorded.setdefault(module.layer_idx, []).append(
            (query, key, value, scaling, out[0].transpose(1, 2))
        )
        return out

    previous = model.config._attn_implementation
    transformers.AttentionInterface.register("attnbench_tca_calibration", record)
    model.set_attn_implementation("attnbench_tca_calibration")
    try:
        with torch.no_grad():
            for text in texts:
                encoded = tokenizer(text, return_tensors="pt").to(model.device)
                model(input_ids=encoded["input_ids"], attention_mask=encoded.get("attention_mask"))
    finally:
        model.set_attn_implementation(previous)
    sizes = [2**i for i in range(int(math.log2(block_size)) + 1)]
    candidates = []
    for mu in [i / 2 for i in range(2 * len(sizes) - 1)]:
        for sigma in spreads:
            p = torch.tensor(
                [math.exp(-((math.log2(k) - mu) ** 2) / (2 * sigma**2)) for k in sizes]
            )
            p = p / p.sum()
            candidates.append((float((p * torch.tensor(sizes)).sum()), p))
    candidates.sort(key=lambda c: c[0])
    budgets = {}
    for layer, calls in recorded.items():
        cuts, means = [], []
        for head in range(calls[0][1].shape[1]):
            chosen = (
                [2.0] * (len(sizes) - 1),
                float(block_size),
            )  # cosine <= 1 < 2: every block keeps all
            spread = torch.cat(
                [
                    redundancy(k[:, head : head + 1], block_size)[1].flatten()
                    for _, k, _, _, _ in calls
                ]
            )
            for expected, p in (
                candidates if spread.numel() else []
            ):  # no complete block: nothing to reduce
                levels = (1 - p.cumsum(0)[:-1]).clamp(0, 1).to(spread.dtype)
                head_cuts = [torch.quantile(spread, level).item() for level in levels]
                if _relative_error(calls, head, head_cuts, block_size, window) <= tolerance:
                    chosen = (head_cuts, expected)
                    break
            cuts.append(chosen[0])
            means.append(chosen[1])
        budgets[str(layer)] = {"cuts": cuts, "mean_keep": means}
    return budgets


def _relative_error(calls, head: int, head_cuts: list, block_size: int, window: int) -> float:
    """Relative output error of one key/value head's query heads with the given cut points."""
    error = reference = 0.0
    for query, key, value, scaling, dense_out in calls:
        groups = query.shape[1] // key.shape[1]
        heads = slice(head * groups, (head + 1) * groups)
        k, v = key[:, head : head + 1], value[:, head : head + 1]
        kept = kept_keys(k, block_size, block_size, [head_cuts])
        out, _ = tca_attention(query[:, heads], k, v, scaling, block_size, window, kept)
        error += float((out - dense_out[:, heads]).square().sum())
        reference += float(dense_out[:, heads].square().sum())
    return math.sqrt(error / max(reference, 1e-30))


SPEC = MechanismSpec(
    name="tca",
    kind="pretrained",
    description=(
        "TCA-Attention: per-head calibrated budgets; each block keeps its least redundant keys; "
        "prefill and decode, evicting."
    ),
    paper=(
        "You et al., Training-free Context-adaptive Attention for Efficient Long Context Modeling, "
        "arXiv:2512.09238"
    ),
    build=build,
    flops=flops,
    flops_exact=False,
    cache=cache,
    supports_bidirectional=False,
    defaults={"block_size": 64, "window": 1024, "keep": 16, "budgets": None},
    profile_defaults={"smoke": {"block_size": 8, "window": 16, "keep": 2}},
)
