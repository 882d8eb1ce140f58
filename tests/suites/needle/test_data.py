"""RULER NIAH generator: task table, needles and depths, fit to the token budget, determinism,
errors."""

from __future__ import annotations

import math
import re
import sys
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnbench.errors import ConfigError
from attnbench.suites.needle.data import (
    BUILTIN_VOCABULARY,
    DEPTHS,
    TASKS,
    NiahTask,
    Vocabulary,
    generate,
    insert_needle_gkamradt,
    read_essays,
    split_sentences,
    wonderwords_vocabulary,
)

NOISE_LINE = (
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
)
NEEDLE_RE = re.compile(r"One of the special magic (\w+) for (\S+) is: (\S+)\.")
QUERY_RE = re.compile(
    r"^ The special magic (\w+) for (.+) mentioned in the provided text (is|are)$"
)


def ws_tokens(text: str) -> int:
    """The test's tokenizer: whitespace-separated words."""
    return len(text.split())


class EncodeTokenizer:
    def encode(self, text: str) -> list[str]:
        return text.split()


@pytest.fixture(scope="module")
def essay_dir(tmp_path_factory):
    """Numbered sentences, split over two files, so a needle's position can be read off the text."""
    folder = tmp_path_factory.mktemp("essays")
    sentences = [f"Sentence {i} is here." for i in range(4000)]
    (folder / "a.txt").write_text("\n".join(sentences[:1500]) + "\n")
    (folder / "b.txt").write_text("  ".join(sentences[1500:]))
    (folder / "notes.md").write_text("Not an essay.")
    return folder


def query_keys(record) -> list[str]:
    query = QUERY_RE.match(record.answer_prefix).group(2)
    return query.replace(", and ", ", ").split(", ")


def context_of(record) -> str:
    return record.input.split("\n", 1)[1].rsplit("\n", 1)[0]


def unit_tokens(task: NiahTask) -> int:
    """Tokens one more haystack unit adds: a word, a noise line, or a distractor needle."""
    return {"essay": 1, "noise": ws_tokens(NOISE_LINE), "needle": 10}[task.type_haystack]


def test_task_table_is_rulers_synthetic_yaml():
    expected = {  # scripts/synthetic.yaml: haystack, key, value, k, v, q
        "niah_single_1": ("noise", "words", "numbers", 1, 1, 1),
        "niah_single_2": ("essay", "words", "numbers", 1, 1, 1),
        "niah_single_3": ("essay", "words", "uuids", 1, 1, 1),
        "niah_multikey_1": ("essay", "words", "numbers", 4, 1, 1),
        "niah_multikey_2": ("needle", "words", "numbers", 1, 1, 1),
        "niah_multikey_3": ("needle", "uuids", "uuids", 1, 1, 1),
        "niah_multivalue": ("essay", "words", "numbers", 1, 4, 1),
        "niah_multiquery": ("essay", "words", "numbers", 1, 1, 4),
    }
    got = {
        name: (
            t.type_haystack,
            t.type_needle_k,
            t.type_needle_v,
            t.num_needle_k,
            t.num_needle_v,
            t.num_needle_q,
        )
        for name, t in TASKS.items()
    }
    assert got == expected
    assert DEPTHS[:4] == (0, 3, 5, 8) and DEPTHS[-1] == 100 and len(set(DEPTHS)) == 40


@pytest.mark.parametrize("name", list(TASKS))
@pytest.mark.parametrize("max_seq_length", [400, 1500])
def test_every_task_generates_well_formed_records(name, max_seq_length, essay_dir):
    task = TASKS[name]
    records = generate(
        name,
        count_tokens=ws_tokens,
        max_seq_length=max_seq_length,
        num_samples=3,
        seed=7,
        tokens_to_generate=32,
        essay_dir=essay_dir,
    )
    assert [r.index for r in records] == [0, 1, 2]
    for record in records:
        assert set(record.to_dict()) == {
            "index",
            "input",
            "outputs",
            "length",
            "answer_prefix",
            "depths",
        }
        # fits, and one more haystack unit would not: the binary search found the largest haystack
        assert (
            record.length == ws_tokens(record.input + record.answer_prefix) + 32 <= max_seq_length
        )
        assert max_seq_length - record.length < unit_tokens(task)
        assert len(record.outputs) == task.num_needle_q * task.num_needle_v
        needles = NEEDLE_RE.findall(record.input)
        assert {kind for kind, _, _ in needles} == {task.type_needle_v}
        keys = query_keys(record)
        assert len(keys) == task.num_needle_q
        # each queried key's needles are in the text exactly once, and carry exactly the expected
        # values
        v = task.num_needle_v
        for j, key in enumerate(keys):
            assert sorted(value for _, k, value in needles if k == key) == sorted(
                record.outputs[j * v : (j + 1) * v]
            )
        assert all(record.input.count(f"for {k} is: {v}.") == 1 for _, k, v in needles if k in keys)
        if task.type_haystack != "needle":
            assert len(needles) == task.num_needles
            assert len({k for _, k, _ in needles}) == task.num_keys
        else:
            assert sum(k in keys for _, k, _ in needles) == task.num_needle_v
        assert len(record.depths) == task.num_needles
        assert record.depths == sorted(record.depths) and all(0 <= d <= 100 for d in record.depths)


@pytest.mark.parametrize("name", list(TASKS))
def test_values_have_rulers_formats(name, essay_dir):
    task = TASKS[name]
    record = generate(
        name, count_tokens=ws_tokens, max_seq_length=500, seed=3, essay_dir=essay_dir
    )[0]
    patterns = {
        "numbers": r"[1-9]\d{6}",
        "words": r"[a-z]+-[a-z]+",
        "uuids": r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
    }
    assert all(re.fullmatch(patterns[task.type_needle_v], v) for v in record.outputs)
    assert all(re.fullmatch(patterns[task.type_needle_k], k) for k in query_keys(record))


def test_singular_grammar_when_one_value_is_asked(essay_dir):
    for name, kind in (
        ("niah_single_1", "number"),
        ("niah_single_3", "uuid"),
        ("niah_multikey_1", "number"),
    ):
        record = generate(name, count_tokens=ws_tokens, max_seq_length=400, essay_dir=essay_dir)[0]
        key = query_keys(record)[0]
        assert record.input.startswith(
            f"A special magic {kind} is hidden within the following text. Make sure to "
            f"memorize it. I will quiz you about the {kind} afterwards.\n"
        )
        assert record.input.endswith(
            f"\nWhat is the special magic {kind} for {key} mentioned in the provided text?"
        )
        assert (
            record.answer_prefix
            == f" The special magic {kind} for {key} mentioned in the provided text is"
        )


def test_plural_grammar_for_multivalue_and_multiquery(essay_dir):
    multivalue = generate(
        "niah_multivalue", count_tokens=ws_tokens, max_seq_length=400, essay_dir=essay_dir
    )[0]
    key = query_keys(multivalue)[0]
    assert multivalue.input.startswith(
        "Some special magic numbers are hidden within the following text. Make sure "
        "to memorize it. I will quiz you about the numbers afterwards.\n"
    )
    assert multivalue.input.endswith(
        f"\nWhat are all the special magic numbers for {key} mentioned in the provided text?"
    )
    assert multivalue.answer_prefix.endswith(
        f"numbers for {key} mentioned in the provided text are"
    )
    multiquery = generate(
        "niah_multiquery", count_tokens=ws_tokens, max_seq_length=400, essay_dir=essay_dir
    )[0]
    a, b, c, d = query_keys(multiquery)
    assert (
        f"for {a}, {b}, {c}, and {d} mentioned in the provided text are" in multiquery.answer_prefix
    )
    # the answers follow the order of the query
    values = {k: v for _, k, v in NEEDLE_RE.findall(multiquery.input)}
    assert multiquery.outputs == [values[k] for k in (a, b, c, d)]


def test_noise_haystack_is_the_offline_default_and_rulers_layout():
    record = generate(
        "niah_single_1",
        count_tokens=ws_tokens,
        max_seq_length=300,
        depths=0,
        seed=1,
        tokens_to_generate=0,
    )[0]
    key, value = query_keys(record)[0], record.outputs[0]
    lines = context_of(record).split("\n")
    assert lines[0] == f"One of the special magic numbers for {key} is: {value}."
    assert set(lines[1:]) == {NOISE_LINE}
    assert record.depths == [0.0]


@settings(max_examples=25, deadline=None)
@given(st.floats(0, 100), st.sampled_from(["niah_single_1", "niah_multikey_2"]))
def test_line_haystack_needle_at_requested_depth(depth, name):
    record = generate(name, count_tokens=ws_tokens, max_seq_length=700, depths=[depth], seed=2)[0]
    lines = context_of(record).split("\n")
    needle = f"for {query_keys(record)[0]} is: {record.outputs[0]}."
    at = next(i for i, line in enumerate(lines) if line.endswith(needle))
    assert at == int((len(lines) - 1) * (depth / 100))
    assert record.depths == [depth]


@settings(max_examples=25, deadline=None)
@given(
    depths=st.lists(st.floats(0, 100), min_size=4, max_size=4),
    max_seq_length=st.integers(300, 3000),
)
def test_essay_needles_at_requested_depths_between_sentences(depths, max_seq_length, essay_dir):
    record = generate(
        "niah_multivalue",
        count_tokens=ws_tokens,
        max_seq_length=max_seq_length,
        depths=depths,
        essay_dir=essay_dir,
    )[0]
    context = context_of(record)
    matches = list(NEEDLE_RE.finditer(context))
    assert len(matches) == 4
    haystack = " ".join(NEEDLE_RE.sub("", context).split())
    assert read_essays(essay_dir).startswith(
        haystack
    )  # the needles were added, nothing of the essay lost
    total = context.count("Sentence")
    for match, depth in zip(matches, sorted(depths)):
        before, after = context[: match.start()].rstrip(), context[match.end() :]
        # between whole sentences, or after the cut last one
        assert before == "" or before.endswith(".") or NEEDLE_RE.sub("", after).strip() == ""
        count = before.count("Sentence")
        assert count - 1e-9 <= total * depth / 100 < count + 1 + 1e-9
    assert record.depths == sorted(depths)


def test_sampled_depths_follow_ruler(essay_dir):
    seen = set()
    for record in generate(
        "niah_multikey_1",
        count_tokens=ws_tokens,
        max_seq_length=2000,
        num_samples=20,
        essay_dir=essay_dir,
    ):
        assert len(set(record.depths)) == 4 and set(record.depths) <= set(
            DEPTHS
        )  # without replacement, on the grid
        seen.update(record.depths)
        context = context_of(record)
        total = len(re.findall(r"Sentence \d+", context))
        for match, depth in zip(NEEDLE_RE.finditer(context), record.depths):
            before = len(re.findall(r"Sentence \d+", context[: match.start()]))
            assert before == int(total * (depth / 100))
    assert len(seen) > 20
    # lines: a uniformly random line index (RULER's random.sample(range(num_haystack), ...)), never
    # past the last
    ats = set()
    for record in generate(
        "niah_single_1", count_tokens=ws_tokens, max_seq_length=500, num_samples=200
    ):
        lines = context_of(record).split("\n")
        at = next(i for i, line in enumerate(lines) if line.startswith("One of"))
        assert record.depths == [100 * at / (len(lines) - 1)]
        ats.add(at)
    assert ats == set(range(len(lines) - 1))


def test_needles_are_shuffled(essay_dir):
    orders = []
    for record in generate(
        "niah_multivalue",
        count_tokens=ws_tokens,
        max_seq_length=600,
        num_samples=20,
        essay_dir=essay_dir,
    ):
        in_text = [v for _, _, v in NEEDLE_RE.findall(record.input)]
        assert sorted(in_text) == sorted(record.outputs)
        orders.append(in_text == record.outputs)
    assert not all(orders)


@settings(max_examples=40, deadline=None)
@given(
    max_seq_length=st.integers(150, 4000),
    name=st.sampled_from(list(TASKS)),
    tokens_to_generate=st.integers(0, 64),
)
def test_prompt_fits_and_is_close_to_the_target(
    max_seq_length, name, tokens_to_generate, essay_dir
):
    task = TASKS[name]
    try:
        record = generate(
            name,
            count_tokens=EncodeTokenizer(),
            max_seq_length=max_seq_length,
            tokens_to_generate=tokens_to_generate,
            essay_dir=essay_dir,
        )[0]
    except ConfigError as exc:  # only when the needles and template alone are too long
        assert "below what" in str(exc) and max_seq_length < 150 + 64 + 40
        return
    assert max_seq_length - unit_tokens(task) < record.length <= max_seq_length


def test_same_seed_same_examples_other_seed_other_examples(essay_dir):
    def run(seed, num_samples=4):
        return [
            r.to_dict()
            for r in generate(
                "niah_multikey_2",
                count_tokens=ws_tokens,
                max_seq_length=600,
                num_samples=num_samples,
                seed=seed,
            )
        ]

    assert run(5) == run(5)
    assert run(5, num_samples=2) == run(5)[:2]  # an example does not depend on how many are drawn
    assert [r["input"] for r in run(5)] != [r["input"] for r in run(6)]
    assert len({r["input"] for r in run(5)}) == 4
    essay = [
        generate(
            "niah_single_2", count_tokens=ws_tokens, max_seq_length=600, seed=s, essay_dir=essay_dir
        )[0]
        for s in (5, 5, 6)
    ]
    assert essay[0] == essay[1] and essay[0].input != essay[2].input


def test_distractor_keys_differ_from_the_real_key_even_with_a_tiny_vocabulary():
    tiny = Vocabulary(adjectives=("red",), nouns=("fox", "owl"))
    record = generate(
        "niah_multikey_2", count_tokens=ws_tokens, max_seq_length=800, vocabulary=tiny
    )[0]
    key = query_keys(record)[0]
    keys = [k for _, k, _ in NEEDLE_RE.findall(record.input)]
    assert keys.count(key) == 1 and set(keys) == {"red-fox", "red-owl"}
    with pytest.raises(ConfigError, match="distinct type_needle_k words"):
        generate(
            "niah_multikey_2",
            count_tokens=ws_tokens,
            max_seq_length=800,
            vocabulary=Vocabulary(("a",), ("b",)),
        )


def test_builtin_vocabulary_keys_are_never_substrings_of_each_other():
    adjectives, nouns = BUILTIN_VOCABULARY.adjectives, BUILTIN_VOCABULARY.nouns
    assert len(set(adjectives)) == len(adjectives) and len(set(nouns)) == len(nouns)
    assert all(re.fullmatch(r"[a-z]+", w) for w in adjectives + nouns)
    assert not [(a, b) for a in adjectives for b in adjectives if a != b and b.endswith(a)]
    assert not [(a, b) for a in nouns for b in nouns if a != b and b.startswith(a)]
    assert len(BUILTIN_VOCABULARY) > 10_000


def test_wonderwords_vocabulary_reads_rulers_lists(monkeypatch):
    lists = {"adjectivelist.txt": ["quick", "lazy", "quick", ""], "nounlist.txt": ["fox", "dog"]}
    fake = types.ModuleType("wonderwords")
    fake.random_word = types.SimpleNamespace(_get_words_from_text_file=lists.__getitem__)
    monkeypatch.setitem(sys.modules, "wonderwords", fake)
    assert wonderwords_vocabulary() == Vocabulary(
        adjectives=("lazy", "quick"), nouns=("dog", "fox")
    )
    monkeypatch.setitem(sys.modules, "wonderwords", None)
    with pytest.raises(ConfigError, match="pip install wonderwords"):
        wonderwords_vocabulary()


def test_read_essays(tmp_path):
    (tmp_path / "2.txt").write_text("Second   essay.\n\nEnds here.")
    (tmp_path / "1.txt").write_text("First essay.\t")
    (tmp_path / "skip.json").write_text("{}")
    assert read_essays(tmp_path) == "First essay. Second essay. Ends here."
    assert split_sentences(read_essays(tmp_path)) == ["First essay.", "Second essay.", "Ends here."]


def test_split_sentences():
    text = 'He said "Stop." Then 3 dogs ran! Why? (Nobody knows.) e.g. this stays one. End'
    # no break before a lower-case word, so "e.g." does not end a sentence (nor does "knows.)" here)
    assert split_sentences(text) == [
        'He said "Stop."',
        "Then 3 dogs ran!",
        "Why?",
        "(Nobody knows.) e.g. this stays one.",
        "End",
    ]
    assert split_sentences("") == []


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: p, "has no .txt files"),
        (lambda p: (p / "e.txt").write_text("  \n ") and p, "hold no text"),
        (lambda p: (p / "bad.txt").write_bytes(b"ok \xff\xfe") and p, "cannot read essay"),
    ],
)
def test_unreadable_essay_folder_raises(tmp_path, make, message):
    folder = make(tmp_path)
    with pytest.raises(ConfigError, match=message):
        read_essays(folder)
    with pytest.raises(ConfigError, match=message):
        generate("niah_single_2", count_tokens=ws_tokens, max_seq_length=500, essay_dir=folder)


def test_gkamradt_insertion_rule():
    period = [0]
    context = [1, 2, 0, 3, 4, 0, 5, 6]
    needle = [9, 9]
    assert insert_needle_gkamradt(context, needle, 50, period) == [
        1,
        2,
        0,
        9,
        9,
        3,
        4,
        0,
        5,
        6,
    ]  # 4 -> back to 3
    assert insert_needle_gkamradt(context, needle, 75, period) == [
        1,
        2,
        0,
        3,
        4,
        0,
        9,
        9,
        5,
        6,
    ]  # 6 is after "."
    assert insert_needle_gkamradt(context, needle, 100, period) == context + needle
    assert insert_needle_gkamradt(context, needle, 0, period) == needle + context
    assert insert_needle_gkamradt([1, 2, 3], needle, 90, period) == needle + [
        1,
        2,
        3,
    ]  # no period: the start
    # trimmed to context_length - buffer - len(needle) tokens first
    assert insert_needle_gkamradt(context, needle, 100, period, context_length=208) == [
        1,
        2,
        0,
        3,
        4,
        0,
        9,
        9,
    ]
    assert (
        insert_needle_gkamradt(context, needle, 100, period, context_length=10, buffer=0)
        == context + needle
    )
    with pytest.raises(ConfigError, match="no room"):
        insert_needle_gkamradt(context, needle, 50, period, context_length=201)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 4), max_size=40), st.floats(0, 100))
def test_gkamradt_rule_properties(context, depth):
    needle, period = [7, 8], {0}
    out = insert_needle_gkamradt(context, needle, depth, period)
    assert len(out) == len(context) + 2
    at = next(i for i in range(len(out) - 1) if out[i : i + 2] == needle)
    assert out[:at] + out[at + 2 :] == context
    if depth == 100:
        assert at == len(context)
    else:
        target = int(len(context) * (depth / 100))
        assert at <= target and (at == 0 or context[at - 1] == 0)
        assert 0 not in context[at:target]  # the nearest period before the target


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(task="niah_single_9"), "unknown NIAH task 'niah_single_9'"),
        (dict(depths=150), "depth 150 is outside 0-100"),
        (dict(depths=-1.0), "depth -1.0 is outside 0-100"),
        (dict(depths=math.nan), "outside 0-100"),
        (dict(depths=[10, 20]), "hides 1 needles but 2 depths"),
        (dict(max_seq_length=60), "max_seq_length 60 is below what niah_single_1 needs"),
        (dict(max_seq_length=0), "max_seq_length=0 must be an integer >= 1"),
        (dict(count_tokens=42), "count_tokens must be"),
        (dict(count_tokens=lambda text: "many"), "count_tokens returned str"),
        (dict(task="niah_single_2"), "needs an essay haystack"),
    ],
)
def test_bad_input_raises_config_error(kwargs, message):
    args = dict(task="niah_single_1", count_tokens=ws_tokens, max_seq_length=500) | kwargs
    with pytest.raises(ConfigError, match=message):
        generate(args.pop("task"), **args)


def test_bad_custom_task_and_gkamradt_depth():
    with pytest.raises(ConfigError, match="type_haystack 'book'"):
        NiahTask("custom", "book", "words", "numbers")
    with pytest.raises(ConfigError, match="num_needle_v=0 must be an integer >= 1"):
        NiahTask("custom", "noise", "words", "numbers", num_needle_v=0)
    with pytest.raises(ConfigError, match="depth_percent 101 is outside 0-100"):
        insert_needle_gkamradt([0], [1], 101, [0])


def test_custom_task_object():
    task = NiahTask(
        "mine", "noise", "numbers", "words", num_needle_k=2, num_needle_v=2, num_needle_q=2
    )
    record = generate(task, count_tokens=ws_tokens, max_seq_length=500)[0]
    assert len(record.outputs) == 4 and all(
        re.fullmatch(r"[a-z]+-[a-z]+", v) for v in record.outputs
    )
    assert record.input.startswith("Some special magic words are hidden")
