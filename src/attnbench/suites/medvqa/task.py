"""The Med-VQA suite's tasks: the settings of one task, how they are checked, and each profile's
tasks."""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import ClassVar

from attnbench.errors import ConfigError
from attnbench.suite import TaskSettings
from attnbench.values import check_one_of, check_split_sizes, check_whole, is_number, is_whole

DATA = ("synthetic", "vqa-rad", "vqa-rad-mevf", "slake", "vqa-med-2019")
LANGUAGES = ("en", "zh", "all")
STEMMERS = ("snowball", "none")
BLEU_NLTK = (
    "3.2",
    "3.3",
)  # method0's arithmetic (suites/medvqa/bleu.py): 3.2 is what the published BLEU needs
DEFAULT_SYNTHETIC = (
    (400, 100, 200),
    0,
)  # images per split (train, val, test; three questions each), seed
INTS = (
    "image_size",
    "patch_size",
    "dim",
    "text_layers",
    "fusion_layers",
    "mlp_ratio",
    "text_heads",
    "max_question_tokens",
    "batch_size",
)


@dataclass(frozen=True)
class MedVQATask(TaskSettings):
    suite_title: ClassVar[str] = "Med-VQA"

    data: str
    root: str | None
    language: str
    lenient: bool
    synthetic_images: tuple[int, ...] | None
    data_seed: int | None
    image_size: int
    patch_size: int
    dim: int
    text_layers: int
    fusion_layers: int
    mlp_ratio: int
    text_heads: int
    max_question_tokens: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    epochs_for_default_budget: float
    bleu_stemmer: str = "snowball"
    bleu_nltk: str = "3.2"

    @property
    def label(self) -> str:
        if self.data == "synthetic":
            return f"synthetic-{self.image_size}px"
        return f"{self.data}-{self.language}" if self.data == "slake" else self.data

    def normalised(self) -> MedVQATask:
        """Synthetic data gets its generator settings; real data has none (what the config says is
        used). `lenient` also takes the words true and false, as a shell user types them, and
        `bleu_nltk` the number 3.2 or 3.3 that `--set bleu_nltk=3.3` parses to."""
        if isinstance(self.lenient, str) and self.lenient.lower() in ("true", "false"):
            return replace(self, lenient=self.lenient.lower() == "true").normalised()
        if isinstance(self.bleu_nltk, float) and not isinstance(
            self.bleu_nltk, bool
        ):  # --set bleu_nltk=3.3
            return replace(self, bleu_nltk=f"{self.bleu_nltk:g}").normalised()
        if self.data == "synthetic":
            return replace(
                self,
                synthetic_images=self.synthetic_images or DEFAULT_SYNTHETIC[0],
                data_seed=DEFAULT_SYNTHETIC[1] if self.data_seed is None else self.data_seed,
            )
        return replace(self, synthetic_images=None, data_seed=None)

    def validate(self) -> None:
        """Fail at planning time, with the setting named; real data is read (not decoded) here."""
        check_one_of("Med-VQA data", self.data, DATA)
        check_one_of("Med-VQA language", self.language, LANGUAGES)
        check_one_of("Med-VQA bleu_stemmer", self.bleu_stemmer, STEMMERS)
        check_one_of("Med-VQA bleu_nltk", self.bleu_nltk, BLEU_NLTK)
        if not isinstance(self.lenient, bool):
            raise ConfigError(f"Med-VQA lenient={self.lenient!r} must be True or False")
        for name in INTS:
            check_whole(f"Med-VQA {name}", getattr(self, name))
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"Med-VQA patch_size={self.patch_size} must divide image_size={self.image_size}"
            )
        if self.dim % self.text_heads:
            raise ConfigError(f"Med-VQA text_heads={self.text_heads} must divide dim={self.dim}")
        for name in ("learning_rate", "epochs_for_default_budget"):
            if not is_number(getattr(self, name)) or not getattr(self, name) > 0:
                raise ConfigError(
                    f"Med-VQA {name}={getattr(self, name)!r} must be a positive number"
                )
        if not is_number(self.weight_decay) or self.weight_decay < 0:
            raise ConfigError(f"Med-VQA weight_decay={self.weight_decay!r} must be a number >= 0")
        if self.data == "synthetic":
            if self.root is not None:
                raise ConfigError(
                    "Med-VQA root is set but data=synthetic: also --set data=vqa-rad (or "
                    "vqa-rad-mevf, slake, vqa-med-2019)"
                )
            check_split_sizes("Med-VQA synthetic_images", self.synthetic_images, "image counts")
            if not is_whole(self.data_seed):
                raise ConfigError(f"Med-VQA data_seed={self.data_seed!r} must be an integer")
        if self.root is not None and not isinstance(self.root, str):
            raise ConfigError(f"Med-VQA root={self.root!r} must be a folder path")
        if self.data == "vqa-med-2019" and self.bleu_stemmer == "snowball":
            from attnbench.suites.medvqa.bleu import snowball_stemmer

            snowball_stemmer()
        if self.root is not None:
            _require_pillow()
        if self.data == "synthetic" or self.root is not None:
            questions, _ = train_questions(self)
            if self.batch_size > questions:
                raise ConfigError(
                    f"Med-VQA batch_size={self.batch_size} exceeds the {questions} training"
                    " questions"
                )

    def model_config(self, vocab_size: int, num_answers: int):
        from attnbench.suites.medvqa.model import ModelConfig

        return ModelConfig(
            self.image_size,
            self.patch_size,
            self.dim,
            vocab_size,
            self.max_question_tokens,
            self.text_layers,
            self.fusion_layers,
            self.mlp_ratio,
            num_answers,
            self.text_heads,
        )

    def metric_version(self) -> str:
        version = "medvqa-exact-nfkc-lower-v1"
        if self.data == "vqa-med-2019":
            version += (
                f"/vqa-med-bleu-regex-nltk179stop-{self.bleu_stemmer}-method0-nltk{self.bleu_nltk}"
            )
        return version


@functools.lru_cache(maxsize=8)
def _counts(
    data: str,
    root: str | None,
    language: str,
    lenient: bool,
    synthetic: tuple | None,
    seed: int | None,
    size: int,
) -> tuple[int, int]:
    """(training questions, answer classes) of a data set, from its records only."""
    from attnbench.suites.medvqa.normalise import normalise_answer

    if data == "synthetic":
        from attnbench.suites.medvqa.synthetic import generate

        rows = generate(synthetic, 1, seed).splits["train"]
    else:
        from attnbench.suites.medvqa.loaders import load

        rows = load(data, root, language, lenient).splits["train"]
    return len(rows), len({normalise_answer(e.answer) for e in rows})


def train_questions(task: MedVQATask) -> tuple[int, int]:
    return _counts(
        task.data,
        task.root,
        task.language,
        task.lenient,
        task.synthetic_images,
        task.data_seed,
        task.image_size,
    )


def _require_pillow() -> None:
    import importlib.util

    if importlib.util.find_spec("PIL") is None:
        raise ConfigError("Med-VQA reads images with Pillow: pip install 'attnbench[vision]'")


SMOKE = dict(
    data="synthetic",
    root=None,
    language="en",
    lenient=False,
    synthetic_images=DEFAULT_SYNTHETIC[0],
    data_seed=DEFAULT_SYNTHETIC[1],
    image_size=32,
    patch_size=8,
    dim=64,
    text_layers=1,
    fusion_layers=2,
    mlp_ratio=2,
    text_heads=4,
    max_question_tokens=12,
    batch_size=32,
    learning_rate=2e-3,
    weight_decay=0.05,
    epochs_for_default_budget=20,
)
PAPER = dict(
    data="vqa-rad",
    root=None,
    language="en",
    lenient=False,
    synthetic_images=None,
    data_seed=None,
    image_size=224,
    patch_size=16,
    dim=256,
    text_layers=2,
    fusion_layers=2,
    mlp_ratio=4,
    text_heads=8,
    max_question_tokens=24,
    batch_size=64,
    learning_rate=1e-3,
    weight_decay=0.05,
    epochs_for_default_budget=40,
)
TASKS = {"smoke": (MedVQATask(**SMOKE),), "paper": (MedVQATask(**PAPER),)}
