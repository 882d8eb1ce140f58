"""Dense attention of a pretrained model — the model's own scaled dot-product attention.

Every query attends to every earlier key (or to what the model's mask allows) with softmax(Q K^T *
scaling + mask) V, exactly as transformers' `sdpa` implementation computes it, to which this
delegates: grouped key/value heads, the mask the model built, dropout and scaling all behave as in
the unmodified model. It is the reference every training-free mechanism is compared with. FLOPs are
counted as `mha` counts them and as FlopCounterMode measures SDPA's math path: the full Lq x Lk
score matrix, causal or not, since the math path masks rather than skips.
"""

from __future__ import annotations

from attnbench.mechanism import MechanismSpec
from attnbench.mechanisms._pretrained import (
    attention_flops,
)
from attnbench.mechanisms._pretrained import (
    build_dense as build,
)
from attnbench.mechanisms._pretrained import (
    dense_cache as cache,
)
from attnbench.mechanisms._pretrained import dense_flops as flops

__all__ = ["SPEC", "attention_flops", "build", "cache", "flops"]


SPEC = MechanismSpec(
    name="dense",
    kind="pretrained",
    description=(
        "The pretrained model's own SDPA attention (the reference for training-free mechanisms)."
    ),
    paper="Vaswani et al., Attention Is All You Need, NeurIPS 2017, arXiv:1706.03762",
    build=build,
    flops=flops,
    cache=cache,
    supports_bidirectional=False,
    defaults={},
)
