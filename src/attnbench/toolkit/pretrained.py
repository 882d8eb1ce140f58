"""Pretrained Hugging Face language models with a `pretrained`-kind mechanism as their attention.

    model, tokenizer = load("meta-llama/Llama-3.2-1B", dtype="bfloat16", device="cuda")
    reward_model, _ = load("Ray2333/GRM-Gemma-2B-rewardmodel-ft", head="sequence-classification")
    install(model, MECHANISMS.get("streaming"), {"num_sinks": 4, "window": 2000})
    answers = greedy_generate(model, tokenizer, prompts, max_new_tokens=32)

A mechanism plugs in through transformers' attention interface: its attention function is
registered under a key and the model is switched to that key, so every attention layer of any
model that dispatches through the interface (Llama, Qwen, Mistral, ...) calls it. Nothing is
ever downloaded here: hub ids load only from the local cache. transformers is imported lazily,
so the rest of attnbench works without it.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from attnbench.cell import canonical_json
from attnbench.errors import ConfigError
from attnbench.extras import require_transformers
from attnbench.mechanism import MechanismSpec

DTYPES = ("float32", "bfloat16", "float16", "auto")


def _is_hub_id(model_ref: str) -> bool:
    """`name` or `owner/name` that names no existing file; anything else (`./x`, `~/x`, `/x`,
    `a/b/c`) is a path."""
    if model_ref.startswith((".", "~", os.sep)) or os.path.exists(model_ref):
        return False
    return re.fullmatch(r"[\w.-]+(/[\w.-]+)?", model_ref) is not None


def checkpoint_source(model_ref: str) -> str:
    """A local folder as an absolute path, or a hub id that the local cache holds; else a clear
    error (also when transformers, which reads either, is not installed)."""
    require_transformers()
    if not _is_hub_id(model_ref):
        path = os.path.abspath(os.path.expanduser(model_ref))
        if not os.path.exists(path):
            raise ConfigError(f"model path {model_ref} does not exist")
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise ConfigError(
                f"model path {model_ref} is not a checkpoint folder (it has no config.json)"
            )
        return path
    from huggingface_hub import constants, try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(model_ref, "config.json"), str):
        raise ConfigError(
            f"model {model_ref} is neither a local folder nor in the local Hugging Face cache "
            f"({constants.HF_HUB_CACHE}); "
            f"fetch it first with `hf download {model_ref}` (older clients: "
            f"`huggingface-cli download {model_ref}`)"
        )
    return model_ref


# What a checkpoint is loaded as: transformers' auto class for each head.
HEADS = {
    "causal-lm": "AutoModelForCausalLM",
    "sequence-classification": "AutoModelForSequenceClassification",
}


def load(
    model_ref: str,
    *,
    dtype: str = "float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
    head: str = "causal-lm",
) -> tuple[Any, Any]:
    """(model, tokenizer) from a local checkpoint folder or a locally cached hub id, in eval mode.

    `head`: "causal-lm" (a language model) or "sequence-classification" (e.g. a reward model's
    scalar head).
    """
    transformers = require_transformers()
    if dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if head not in HEADS:
        raise ConfigError(f"model head {head!r} is not one of {', '.join(HEADS)}")
    source = checkpoint_source(model_ref)
    from huggingface_hub import constants

    # the cache that checkpoint_source looked in, whatever transformers read from the environment at
    # import
    options = {
        "local_files_only": True,
        "trust_remote_code": trust_remote_code,
        "cache_dir": constants.HF_HUB_CACHE,
    }
    tokenizer = transformers.AutoTokenizer.from_pretrained(source, **options)
    try:
        model = getattr(transformers, HEADS[head]).from_pretrained(source, dtype=dtype, **options)
    except (
        ValueError
    ) as exc:  # the auto class names no model of this head for the checkpoint's architecture
        if "Unrecognized configuration class" not in str(exc):
            raise
        raise ConfigError(
            f"model {model_ref} has no {head} form in transformers "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from None
    return model.to(device).eval(), tokenizer


def model_shape(model: Any) -> dict[str, int]:
    """Heads, key-value heads, head width and layers of a transformers model's attention, from
    its (text) config."""
    config = (
        model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    )
    heads = int(config.num_attention_heads)
    return {
        "num_heads": heads,
        "num_kv_heads": int(getattr(config, "num_key_value_heads", None) or heads),
        "head_dim": int(getattr(config, "head_dim", None) or config.hidden_size // heads),
        "layers": int(config.num_hidden_layers),
    }


def attention_key(spec: MechanismSpec, hparams: dict[str, Any]) -> str:
    """The AttentionInterface key of one configuration: `attnbench_<name>_<digest>`.

    The digest is the first 8 hex digits of the SHA-256 of the hyper-parameters' canonical JSON, so
    two configurations of one mechanism never overwrite each other's registration, and the key
    holds no character that transformers reads as meaning (a `/` is taken for a hub kernel).
    """
    digest = hashlib.sha256(canonical_json(dict(hparams)).encode()).hexdigest()[:8]
    return f"attnbench_{spec.name}_{digest}"


def install(model: Any, spec: MechanismSpec, hparams: dict[str, Any]) -> str:
    """Make `spec.build(**hparams)` the attention of every layer of `model`; returns the registered
    key.

    The key also gets transformers' SDPA mask function, so the mechanism receives exactly the
    mask that the model's own SDPA attention would: None where causality alone says it all (no
    padding, and Lq == Lk or Lq == 1), else a boolean keep-mask (B, 1, Lq, Lk). A model that
    does not call its attention through the interface is refused rather than left unchanged.
    """
    if spec.kind != "pretrained":
        raise ConfigError(
            f"mechanism {spec.name!r} is of kind {spec.kind!r}; only `pretrained` mechanisms "
            "can be installed in a pretrained model"
        )
    transformers = require_transformers()
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    key = attention_key(spec, hparams)
    transformers.AttentionInterface.register(key, spec.build(**hparams))
    transformers.AttentionMaskInterface.register(key, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    model.set_attn_implementation(key)
    if model.config._attn_implementation != key:
        raise ConfigError(
            f"{type(model).__name__} does not dispatch its attention through transformers' "
            f"AttentionInterface, so mechanism {spec.name!r} cannot be installed in it"
        )
    return key


def greedy_generate(
    model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int, stop_at_eos: bool = True
) -> list[str]:
    """The greedy continuation of each prompt (without the prompt, special tokens skipped).

    Prompts run one at a time, so no padding can change what a mechanism sees. Generation stops
    at the model's own end-of-sequence tokens (its generation config) unless `stop_at_eos` is False.
    """
    import torch

    options: dict[str, Any] = {"do_sample": False, "max_new_tokens": max_new_tokens}
    if not stop_at_eos:
        options["eos_token_id"] = None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if (
        pad is not None
    ):  # only fills finished sequences; passing it keeps generate from warning per prompt
        options["pad_token_id"] = pad
    continuations = []
    with torch.inference_mode():
        for prompt in prompts:
            encoded = tokenizer(prompt, return_tensors="pt").to(model.device)
            # only what a causal LM takes: some tokenizers also return token_type_ids, which
            # generate refuses
            prompt_ids = encoded["input_ids"]
            output = model.generate(
                prompt_ids, attention_mask=encoded.get("attention_mask"), **options
            )
            new_tokens = output[0, prompt_ids.shape[1] :]
            continuations.append(tokenizer.decode(new_tokens, skip_special_tokens=True))
    return continuations
