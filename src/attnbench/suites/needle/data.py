"""RULER's needle-in-a-haystack generator (NVIDIA/RULER `scripts/data/synthetic/niah.py`), offline.

A needle is "One of the special magic {values} for {key} is: {value}."; each example hides the
needles of `num_needle_k` keys with `num_needle_v` values each in a haystack and asks for the values
of `num_needle_q` of the keys. The haystack is RULER's repeated noise line, distractor needles of
other keys, or essays read from a local folder of .txt files (RULER uses Paul Graham's; we ship
none). Its size is the largest one, found by binary search, for which the prompt's tokens plus
`tokens_to_generate` fit in `max_seq_length`, counted by the caller's tokenizer. `TASKS` holds
RULER's eight NIAH tasks as configured in `scripts/synthetic.yaml`; records carry RULER's jsonl
fields plus the needles' depths.

Key words are "adjective-noun". RULER draws them from the word lists of the `wonderwords` package;
we do not depend on it, and do not switch on it silently when it is installed (the same seed would
then give different data on different machines). The default is a built-in vocabulary of 115
adjectives x 139 nouns (15,985 keys, no key a substring of another); `wonderwords_vocabulary()`
builds RULER's own lists (912 x 6,782) from an installed `wonderwords` (MIT) for an explicit
`vocabulary=` argument.

Where we differ from RULER, and why:
* Keys within an example are distinct, distractor keys never equal a real key, and a key's values
  are distinct. RULER draws them independently; with a small vocabulary a repeated key would make
  the question ambiguous.
* Each example is drawn from its own `random.Random`, seeded from `seed` (no global state). RULER
  seeds the global generators once and shuffles the needles with a fresh `random.Random(seed)`, i.e.
  in the same order in every example; we shuffle with the example's generator.
* RULER searches the haystack size once with a first example and, for an example that then does not
  fit, steps down by 500 words / 25 lines; we search with example 0 and search again, downward, for
  an example that does not fit.
* Sentences are split by a small regex (RULER uses nltk's punkt, which needs a data download).
* `index` is the example's index (RULER's record overwrites it with the answer's character offset, a
  shadowed variable), and empty text between two needles at the same position is not joined twice.
"""

from __future__ import annotations

import itertools
import math
import numbers
import random
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attnbench.errors import ConfigError
from attnbench.values import check_whole

NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
TEMPLATE = (
    "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize"
    " it. I will quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are all the"
    " special magic {type_needle_v} for {query} mentioned in the provided text?"
)
ANSWER_PREFIX = " The special magic {type_needle_v} for {query} mentioned in the provided text are"
TOKENS_TO_GENERATE = 128
DEPTHS = tuple(int(d) for d in np.round(np.linspace(0, 100, num=40, endpoint=True)).astype(int))
HAYSTACKS = ("noise", "essay", "needle")
NEEDLE_TYPES = ("words", "numbers", "uuids")


@dataclass(frozen=True)
class NiahTask:
    """One NIAH configuration, with RULER's argument names (`scripts/synthetic.yaml`)."""

    name: str
    type_haystack: str
    type_needle_k: str
    type_needle_v: str
    num_needle_k: int = 1
    num_needle_v: int = 1
    num_needle_q: int = 1

    def __post_init__(self) -> None:
        if self.type_haystack not in HAYSTACKS:
            raise ConfigError(
                f"{self.name}: type_haystack {self.type_haystack!r} is not one of"
                f" {', '.join(HAYSTACKS)}"
            )
        for field in ("type_needle_k", "type_needle_v"):
            kind = getattr(self, field)
            if kind not in NEEDLE_TYPES:
                raise ConfigError(
                    f"{self.name}: {field} {kind!r} is not one of {', '.join(NEEDLE_TYPES)}"
                )
        for field in ("num_needle_k", "num_needle_v", "num_needle_q"):
            check_whole(f"{self.name}: {field}", getattr(self, field))

    @property
    def num_keys(self) -> int:
        """Keys hidden: RULER raises `num_needle_k` to `num_needle_q` so that every query has a
        key."""
        return max(self.num_needle_k, self.num_needle_q)

    @property
    def num_needles(self) -> int:
        return self.num_keys * self.num_needle_v


TASKS: dict[str, NiahTask] = {
    task.name: task
    for task in (
        NiahTask("niah_single_1", "noise", "words", "numbers"),
        NiahTask("niah_single_2", "essay", "words", "numbers"),
        NiahTask("niah_single_3", "essay", "words", "uuids"),
        NiahTask("niah_multikey_1", "essay", "words", "numbers", num_needle_k=4),
        NiahTask("niah_multikey_2", "needle", "words", "numbers"),
        NiahTask("niah_multikey_3", "needle", "uuids", "uuids"),
        NiahTask("niah_multivalue", "essay", "words", "numbers", num_needle_v=4),
        NiahTask("niah_multiquery", "essay", "words", "numbers", num_needle_q=4),
    )
}


@dataclass(frozen=True)
class Vocabulary:
    """Adjectives and nouns; a "words" key or value is `adjective-noun`, uniform over the pairs."""

    adjectives: tuple[str, ...]
    nouns: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "adjectives", tuple(self.adjectives))
        object.__setattr__(self, "nouns", tuple(self.nouns))
        if not self.adjectives or not self.nouns:
            raise ConfigError("vocabulary needs at least one adjective and one noun")

    def __len__(self) -> int:
        return len(self.adjectives) * len(self.nouns)

    def draw(self, rng: random.Random) -> str:
        return f"{rng.choice(self.adjectives)}-{rng.choice(self.nouns)}"


# Our own lists: no adjective ends another and no noun starts another, so no key is a substring of
# another.
BUILTIN_VOCABULARY = Vocabulary(
    adjectives=tuple(
        """
        able acidic afraid agile alert amber ancient angry arctic ashen awake azure bashful bitter
        blazing bold brave breezy brief bright brisk broad bumpy calm candid careful cheerful chilly
        clever cloudy coastal cosmic crimson crisp curious dapper daring dazzling dusty eager early
        earnest elegant fancy fearless fierce fluffy foggy frail frosty gentle giant gleaming glossy
        golden graceful grumpy handsome happy hasty hidden hollow humble jolly joyful keen lanky
        lively lonely loyal lucky magnetic mellow merry mighty modest muddy narrow nimble noisy odd
        orange patient polite proud quiet rapid rustic sandy scarlet shiny silent silver sleepy
        smooth snowy spicy steady stormy sturdy sunny swift tender tidy timid tiny velvet vivid
        wandering wary windy wise witty wooden zealous""".split()
    ),
    nouns=tuple(
        """
        acorn anchor apple arrow badger bagel ballad banjo barrel beacon beaver biscuit blanket
        bonnet bottle bridge bucket butter cabin cactus camel candle canoe canyon carpet castle
        cello cherry chimney cliff clock cloud comet compass coral cottage crayon cricket dagger
        daisy desert dolphin dragon drum eagle elbow ember falcon feather fiddle forest fossil
        fountain garden garlic glacier goblet granite guitar hammer harbor helmet heron honey island
        jacket jaguar kettle kitten ladder lantern lemon lizard lobster magnet mango maple marble
        meadow mirror monkey mountain muffin napkin nugget oasis orchid otter oyster paddle parrot
        pebble pepper piano pickle pillow pirate planet pocket pony puzzle quilt rabbit raven ribbon
        river rocket saddle salmon sandal scarf shovel spider sponge squirrel statue sunset teapot
        temple thimble tiger tomato tractor trumpet tulip turnip turtle umbrella valley violin
        volcano wagon walnut whistle willow window wizard yogurt zebra""".split()
    ),
)


def wonderwords_vocabulary() -> Vocabulary:
    """RULER's vocabulary: `wonderwords`' adjectivelist.txt x nounlist.txt, read as RULER reads
    them."""
    try:
        from wonderwords import random_word
    except ImportError:
        raise ConfigError(
            "wonderwords_vocabulary needs the wonderwords package (pip install wonderwords)"
        ) from None

    def read(name: str) -> tuple[str, ...]:
        return tuple(sorted({w for w in random_word._get_words_from_text_file(name) if w}))

    return Vocabulary(adjectives=read("adjectivelist.txt"), nouns=read("nounlist.txt"))


@dataclass(frozen=True)
class NeedleRecord:
    """One example in RULER's jsonl fields, plus the depth (percent) of each needle in text
    order."""

    index: int
    input: str
    outputs: list[str]
    length: int
    answer_prefix: str
    depths: list[float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`: a break after . ! or ? (and a closing quote or bracket) before a
    capital or digit."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def read_essays(folder: str | Path) -> str:
    """The text of the .txt files directly in `folder`, in name order, whitespace collapsed to
    single spaces."""
    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"essay haystack folder {str(path)!r} does not exist or is not a folder")
    files = sorted(p for p in path.glob("*.txt") if p.is_file())
    if not files:
        raise ConfigError(f"essay haystack folder {str(path)!r} has no .txt files")
    texts = []
    for file in files:
        try:
            texts.append(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read essay {str(file)!r}: {exc}") from None
    text = re.sub(r"\s+", " ", " ".join(texts)).strip()
    if not text:
        raise ConfigError(f"essay haystack folder {str(path)!r}: its .txt files hold no text")
    return text


def _check_depth(depth: Any, what: str = "depth") -> float:
    if (
        isinstance(depth, bool)
        or not isinstance(depth, numbers.Real)
        or not math.isfinite(depth)
        or not 0 <= depth <= 100
    ):
        raise ConfigError(f"{what} {depth!r} is outside 0-100 (a percent of the haystack)")
    return depth


def insert_needle_gkamradt(
    context_tokens: Sequence,
    needle_tokens: Sequence,
    depth_percent: float,
    period_tokens: Sequence,
    *,
    context_length: int | None = None,
    buffer: int = 200,
) -> list:
    """gkamradt's `LLMNeedleHaystackTester.insert_needle` on token lists.

    With `context_length`, the context is first cut so that context + needle fit in `context_length
    - buffer` (gkamradt's `final_context_length_buffer`, 200). Depth 100 appends the needle;
    otherwise the insertion point `int(len(context) * (depth_percent / 100))` walks back until the
    token before it is one of `period_tokens` (the tokens of "."), or reaches the start.
    """
    depth_percent = _check_depth(depth_percent, "depth_percent")
    context, needle = list(context_tokens), list(needle_tokens)
    if context_length is not None:
        room = context_length - buffer
        if room < len(needle):
            raise ConfigError(
                f"context_length {context_length} minus buffer {buffer} leaves no room for the "
                f"{len(needle)}-token needle"
            )
        if len(context) + len(needle) > room:
            context = context[: room - len(needle)]
    if depth_percent == 100:
        return context + needle
    point = int(len(context) * (depth_percent / 100))
    while point > 0 and context[point - 1] not in period_tokens:
        point -= 1
    return context[:point] + needle + context[point:]


def _token_counter(tokenizer: Any) -> Callable[[str], int]:
    # An object with `encode` first: Hugging Face tokenizers are callable too, but return an
    # encoding.
    encode = getattr(tokenizer, "encode", None)
    if callable(encode):
        return lambda text: len(encode(text))
    if callable(tokenizer):

        def count(text: str) -> int:
            n = tokenizer(text)
            if isinstance(n, bool) or not isinstance(n, numbers.Integral):
                raise ConfigError(f"count_tokens returned {type(n).__name__}, not an int")
            return int(n)

        return count
    raise ConfigError("count_tokens must be a callable text -> int or an object with encode(text)")


def _draw(kind: str, vocabulary: Vocabulary, rng: random.Random) -> str:
    if kind == "numbers":
        return str(rng.randint(10**6, 10**7 - 1))
    if kind == "words":
        return vocabulary.draw(rng)
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _draw_distinct(
    count: int, kind: str, vocabulary: Vocabulary, rng: random.Random, taken: set[str]
) -> list[str]:
    drawn: list[str] = []
    while len(drawn) < count:
        item = _draw(kind, vocabulary, rng)
        if item not in taken:
            taken.add(item)
            drawn.append(item)
    return drawn


def _singular(template: str) -> str:
    # RULER's replacements, in RULER's order, when one value is asked for.
    return (
        template.replace("Some", "A")
        .replace("are all", "is")
        .replace("are", "is")
        .replace("answers", "answer")
    )


@dataclass(frozen=True)
class _Example:
    """The parts of one example that do not depend on the haystack size."""

    task: NiahTask
    seed: int
    vocabulary: Vocabulary
    essay_words: tuple[str, ...]
    depths: tuple[float, ...] | None

    def build(self, num_haystack: int) -> tuple[str, str, list[str], list[float]]:
        """(input, answer_prefix, outputs, depths) with `num_haystack` words, noise lines or
        distractors.

        Every draw that does not depend on `num_haystack` comes first, and the haystack's own draws
        come from a generator seeded there, so a larger size only adds haystack: the prompt's length
        grows with it.
        """
        task, rng = self.task, random.Random(self.seed)
        taken: set[str] = set()
        keys = _draw_distinct(task.num_keys, task.type_needle_k, self.vocabulary, rng, taken)
        values = [
            _draw_distinct(task.num_needle_v, task.type_needle_v, self.vocabulary, rng, set())
            for _ in keys
        ]
        needles = [
            NEEDLE.format(type_needle_v=task.type_needle_v, key=key, value=value)
            for key, vals in zip(keys, values)
            for value in vals
        ]
        rng.shuffle(needles)
        queried = rng.sample(range(task.num_keys), task.num_needle_q)
        depths = sorted(self.depths) if self.depths is not None else None
        if depths is None and task.type_haystack == "essay":
            depths = sorted(rng.sample(DEPTHS, len(needles)))
        haystack_rng = random.Random(rng.getrandbits(64))

        if task.type_haystack == "essay":
            words = itertools.islice(itertools.cycle(self.essay_words), num_haystack)
            sentences = split_sentences(" ".join(words))
            positions = [int(len(sentences) * (depth / 100)) for depth in depths]
            separator = " "
        else:
            if task.type_haystack == "noise":
                sentences = [NOISE] * num_haystack
            else:
                sentences = [
                    NEEDLE.format(
                        type_needle_v=task.type_needle_v,
                        key=_draw_distinct(
                            1, task.type_needle_k, self.vocabulary, haystack_rng, set(keys)
                        )[0],
                        value=_draw(task.type_needle_v, self.vocabulary, haystack_rng),
                    )
                    for _ in range(num_haystack)
                ]
            if depths is not None:
                positions = [int(num_haystack * (depth / 100)) for depth in depths]
            else:  # RULER: random line indices, not the depth grid
                if num_haystack >= len(needles):
                    positions = sorted(haystack_rng.sample(range(num_haystack), len(needles)))
                else:
                    positions = sorted(haystack_rng.randint(0, num_haystack) for _ in needles)
                depths = [100 * p / num_haystack if num_haystack else 0.0 for p in positions]
            separator = "\n"

        pieces, last = [], 0
        for position, needle in zip(positions, needles):
            pieces.extend(sentences[last:position])
            pieces.append(needle)
            last = position
        pieces.extend(sentences[last:])
        context = separator.join(pieces)

        query_keys = [keys[i] for i in queried]
        query = (
            ", ".join(query_keys[:-1]) + ", and " + query_keys[-1]
            if len(query_keys) > 1
            else query_keys[0]
        )
        template, prefix, type_needle_v = TEMPLATE, ANSWER_PREFIX, task.type_needle_v
        if task.num_needle_q * task.num_needle_v == 1:
            template, prefix, type_needle_v = (
                _singular(template),
                _singular(prefix),
                type_needle_v[:-1],
            )
        return (
            template.format(type_needle_v=type_needle_v, context=context, query=query),
            prefix.format(type_needle_v=type_needle_v, query=query),
            [value for i in queried for value in values[i]],
            [float(d) for d in depths],
        )


def _largest_fitting(tokens_at: Callable[[int], int], budget: int, lo: int, hi: int) -> int:
    """Largest n in [lo, hi) with tokens_at(n) <= budget, given that lo fits and hi does not."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if tokens_at(mid) <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def _prompt_tokens(example: _Example, count: Callable[[str], int]) -> Callable[[int], int]:
    """Tokens of the example's prompt (input + answer prefix) at a haystack size, each size
    counted once."""
    cache: dict[int, int] = {}

    def tokens_at(num_haystack: int) -> int:
        if num_haystack not in cache:
            text, prefix, _, _ = example.build(num_haystack)
            cache[num_haystack] = count(text + prefix)
        return cache[num_haystack]

    return tokens_at


def _resolve_task(task: str | NiahTask) -> NiahTask:
    if isinstance(task, NiahTask):
        return task
    if task not in TASKS:
        raise ConfigError(f"unknown NIAH task {task!r}; known: {', '.join(TASKS)}")
    return TASKS[task]


def _resolve_depths(
    depths: float | Sequence[float] | None, task: NiahTask
) -> tuple[float, ...] | None:
    if depths is None:
        return None
    if isinstance(depths, numbers.Real) and not isinstance(depths, bool):
        depths = [depths] * task.num_needles
    depths = tuple(_check_depth(d) for d in depths)
    if len(depths) != task.num_needles:
        raise ConfigError(
            f"{task.name} hides {task.num_needles} needles but {len(depths)} depths were given"
        )
    return depths


def generate(
    task: str | NiahTask,
    *,
    count_tokens: Any,
    max_seq_length: int,
    num_samples: int = 1,
    seed: int = 42,
    tokens_to_generate: int = TOKENS_TO_GENERATE,
    essay_dir: str | Path | None = None,
    vocabulary: Vocabulary | None = None,
    depths: float | Sequence[float] | None = None,
) -> list[NeedleRecord]:
    """`num_samples` examples of a NIAH task (a name in `TASKS` or a `NiahTask`), fully determined
    by `seed`.

    `count_tokens` is a callable text -> number of tokens, or a tokenizer with `encode(text)` (a
    Hugging Face tokenizer's `encode` counts its special tokens too, which only makes the fit
    conservative). Each example's `length` (prompt tokens + `tokens_to_generate`) is at most
    `max_seq_length`, with the haystack as large as that allows. `essay_dir` is required for essay
    haystacks. `depths` (percent, 0-100; one number for every needle, or one per needle) places the
    needles; by default they are drawn as RULER draws them (from `DEPTHS` without replacement for
    essays, uniformly random lines otherwise).
    """
    task = _resolve_task(task)
    count = _token_counter(count_tokens)
    for name, value, least in (
        ("max_seq_length", max_seq_length, 1),
        ("tokens_to_generate", tokens_to_generate, 0),
        ("num_samples", num_samples, 0),
    ):
        check_whole(name, value, least)
    fixed_depths = _resolve_depths(depths, task)
    if fixed_depths is None and task.type_haystack == "essay" and task.num_needles > len(DEPTHS):
        raise ConfigError(
            f"{task.name} hides {task.num_needles} needles, more than the {len(DEPTHS)} depths"
        )
    essay_words: tuple[str, ...] = ()
    if task.type_haystack == "essay":
        if essay_dir is None:
            raise ConfigError(
                f"{task.name} needs an essay haystack: pass essay_dir, a folder of .txt files"
            )
        essay_words = tuple(read_essays(essay_dir).split(" "))
    vocabulary = BUILTIN_VOCABULARY if vocabulary is None else vocabulary
    # Distinct keys (and a distractor key besides them) and distinct values per key must exist.
    needed = {
        "type_needle_k": task.num_keys + (task.type_haystack == "needle"),
        "type_needle_v": task.num_needle_v,
    }
    for field, count_needed in needed.items():
        if getattr(task, field) == "words" and len(vocabulary) < count_needed:
            raise ConfigError(
                f"{task.name} needs {count_needed} distinct {field} words but the vocabulary makes "
                f"only {len(vocabulary)}"
            )
    budget = max_seq_length - tokens_to_generate
    master = random.Random(seed)
    examples = [
        _Example(task, master.getrandbits(64), vocabulary, essay_words, fixed_depths)
        for _ in range(num_samples)
    ]

    records: list[NeedleRecord] = []
    size = None
    for index, example in enumerate(examples):
        tokens_at = _prompt_tokens(example, count)
        if size is None:  # RULER's search, once, on the first example
            if tokens_at(0) > budget:
                raise ConfigError(
                    f"max_seq_length {max_seq_length} is below what {task.name} needs without any "
                    f"haystack: {tokens_at(0)} prompt tokens + {tokens_to_generate} to generate"
                )
            step = 500 if task.type_haystack == "essay" else 25 if max_seq_length >= 4096 else 5
            per_unit = max(tokens_at(step), 1) / step
            hi = max(int(max_seq_length / per_unit * 3), 2 * step)
            lo = 0
            while tokens_at(hi) <= budget:
                lo, hi = hi, 2 * hi
            size = _largest_fitting(tokens_at, budget, lo, hi)
        used = size
        if tokens_at(used) > budget:
            if tokens_at(0) > budget:
                raise ConfigError(
                    f"max_seq_length {max_seq_length} is below what {task.name} example {index} "
                    f"needs without any haystack: {tokens_at(0)} prompt tokens + "
                    f"{tokens_to_generate} to generate"
                )
            used = _largest_fitting(tokens_at, budget, 0, used)
        text, prefix, outputs, used_depths = example.build(used)
        records.append(
            NeedleRecord(
                index=index,
                input=text,
                outputs=outputs,
                length=tokens_at(used) + tokens_to_generate,
                answer_prefix=prefix,
                depths=used_depths,
            )
        )
    return records
