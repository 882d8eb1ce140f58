"""The three ways a pretrained model gives a RewardBench pair its two rewards.

* `ClassifierReward` — a sequence-classification reward model scores prompt+chosen and
  prompt+rejected (scripts/run_rm.py): the reward is the head's single logit.
* `ImplicitReward` — a language model's log-probability of the answer tokens (scripts/run_dpo.py,
  rewardbench/dpo.py): with a reference model Σ log π(y|x) − Σ log π_ref(y|x); without one, Σ log
  π(y|x) reduced by `ref_free_norm` ("sum"; "avg", run_dpo.py's default, the mean per token; "norm",
  minus the L2 norm of the per-token log-probabilities). The sequences and the scored tokens are
  dpo.py's (`formatting.dpo_ids`): BOS + the user turn, then the assistant header, response, end of
  turn and an EOS.
* `JudgeReward` — a language model judges the two responses side by side, twice: chosen shown first
  as A, then second as B. A response's reward is the summed log-probability of its verdict token
  over the two presentations, so a judge that always names the first (or always "A") scores a tie: a
  loss. Mechanisms with a `segments` hyper-parameter (pine) are told each presentation's two
  response spans.

Sequences run one at a time: no padding can change what a mechanism sees. Each scorer returns the
rewards, the lengths it read and what else a pair's record keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from attnbench.errors import ConfigError
from attnbench.suites.rewardbench.formatting import (
    classifier_ids,
    conversation,
    dpo_ids,
    judge_ids,
    uses_chat,
    verdict_tokens,
)


@dataclass
class Scored:
    chosen: float
    rejected: float
    lengths: list[int]  # tokens of every sequence read
    truncated: bool
    extra: dict[str, Any] = field(default_factory=dict)


def _ids(ids: list[int], model: Any) -> Any:
    import torch

    return torch.tensor([ids], device=model.device)


class ClassifierReward:
    def __init__(self, model: Any, tokenizer: Any, chat_template: bool | None, max_length: int):
        labels = int(getattr(model.config, "num_labels", 1))
        if labels != 1:
            raise ConfigError(
                f"the classification head has {labels} labels; a reward model has one"
                " (num_labels=1)"
            )
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.chat = uses_chat(tokenizer, chat_template)

    def reward(self, prompt: str, response: str) -> tuple[float, int, bool]:
        """The head's logit for the conversation, truncated to its last `max_length` tokens (the
        tokenizer's special tokens kept) as run_rm.py's left-truncating tokenizer does."""
        import torch

        kept, truncated = classifier_ids(
            self.tokenizer,
            conversation(self.tokenizer, prompt, response, self.chat),
            self.max_length,
        )
        with torch.inference_mode():
            logit = self.model(input_ids=_ids(kept, self.model)).logits[0, 0]
        return float(logit), len(kept), truncated

    def score(self, row: dict[str, Any]) -> Scored:
        chosen, n_chosen, cut_chosen = self.reward(row["prompt"], row["chosen"])
        rejected, n_rejected, cut_rejected = self.reward(row["prompt"], row["rejected"])
        return Scored(chosen, rejected, [n_chosen, n_rejected], cut_chosen or cut_rejected)


REF_FREE_NORMS = ("sum", "avg", "norm")


class ImplicitReward:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        chat_template: bool | None,
        max_length: int,
        reference: Any | None = None,
        ref_free_norm: str = "sum",
    ):
        if ref_free_norm not in REF_FREE_NORMS:
            raise ConfigError(
                f"ref_free_norm {ref_free_norm!r} is not one of {', '.join(REF_FREE_NORMS)}"
            )
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.reference, self.norm = reference, ref_free_norm
        self.chat = uses_chat(tokenizer, chat_template)

    @staticmethod
    def logprobs(model: Any, ids: list[int], start: int) -> Any:
        """log p(ids[t] | ids[:t]) for every scored token t >= start (empty when there is none)."""
        import torch

        start = max(start, 1)
        if start >= len(ids):
            return torch.zeros(0)
        with torch.inference_mode():
            logits = model(input_ids=_ids(ids, model), logits_to_keep=len(ids) - start + 1).logits[
                0, :-1
            ]
        targets = torch.tensor(ids[start:], device=logits.device)
        return logits.float().log_softmax(-1).gather(-1, targets[:, None])[:, 0].cpu()

    def reward(self, ids: list[int], start: int) -> tuple[float, list[int]]:
        """rewardbench/dpo.py `get_batch_logps` over the scored tokens: the policy's sum minus the
        reference's, or without a reference the sum, mean ("avg") or minus the L2 norm ("norm")."""
        policy = self.logprobs(self.model, ids, start)
        if self.reference is not None:
            value = float(policy.sum() - self.logprobs(self.reference, ids, start).sum())
            return value, [len(ids), len(ids)]
        if self.norm == "sum":
            value = float(policy.sum())
        elif self.norm == "avg":
            value = float(policy.mean()) if len(policy) else 0.0
        else:
            value = -float(policy.norm(p=2))
        return value, [len(ids)]

    def score(self, row: dict[str, Any]) -> Scored:
        (chosen_ids, chosen_start, cut_chosen), (rejected_ids, rejected_start, cut_rejected) = (
            dpo_ids(
                self.tokenizer,
                row["prompt"],
                row["chosen"],
                row["rejected"],
                self.chat,
                self.max_length,
            )
        )
        chosen, n_chosen = self.reward(chosen_ids, chosen_start)
        rejected, n_rejected = self.reward(rejected_ids, rejected_start)
        return Scored(chosen, rejected, n_chosen + n_rejected, cut_chosen or cut_rejected)


class JudgeReward:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        chat_template: bool | None,
        max_length: int,
        declare_segments: bool,
    ):
        self.model, self.tokenizer, self.max_length = model, tokenizer, max_length
        self.chat = uses_chat(tokenizer, chat_template)
        self.verdicts = verdict_tokens(tokenizer)
        self.declare_segments = declare_segments

    def verdict(self, prompt: str, first: str, second: str) -> tuple[float, float, int, bool]:
        """log p(A) and log p(B) of the verdict with `first` shown first as A."""
        import torch

        ids, spans, truncated = judge_ids(
            self.tokenizer, prompt, first, second, self.chat, self.max_length
        )
        options = {"pine_segments": spans} if self.declare_segments else {}
        with torch.inference_mode():
            logits = self.model(
                input_ids=_ids(ids, self.model), logits_to_keep=1, **options
            ).logits[0, -1]
        logprobs = logits.float().log_softmax(-1)
        return (
            float(logprobs[self.verdicts[0]]),
            float(logprobs[self.verdicts[1]]),
            len(ids),
            truncated,
        )

    def score(self, row: dict[str, Any]) -> Scored:
        a1, b1, n1, cut1 = self.verdict(
            row["prompt"], row["chosen"], row["rejected"]
        )  # chosen is A
        a2, b2, n2, cut2 = self.verdict(
            row["prompt"], row["rejected"], row["chosen"]
        )  # chosen is B
        consistent = (a1 > b1) == (b2 > a2) and a1 != b1 and a2 != b2
        return Scored(
            a1 + b2,
            b1 + a2,
            [n1, n2],
            cut1 or cut2,
            {
                "chosen_first": [a1, b1],
                "chosen_second": [a2, b2],
                "position_consistent": consistent,
            },
        )
