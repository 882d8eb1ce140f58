"""lm-eval's LongBench tasks pointed at the official rows: the task folder one `--backend lm-eval`
cell runs.

lm-evaluation-harness ships a task per LongBench dataset (`longbench_hotpotqa`,
`longbench_hotpotqa_e`, ...) that reads the Hub mirror `Xnhyacinth/LongBench`, whose rows call the
official `input` field `question`. Here each task includes lm-eval's own YAML and changes only where
its test split comes from: a JSON Lines file of the official rows (the native backend's, from a data
folder or the THUDM/LongBench cache) with `question` added. Prompts, stop sequences, answer lengths
and metrics stay lm-eval's. Nothing here imports lm-eval, so planning can check for it quickly.
"""

from __future__ import annotations

import json
from importlib import metadata, util
from pathlib import Path
from typing import Any, Iterable

from attnbench.errors import ConfigError
from attnbench.suites.longbench.metrics import package_versions

INSTALL_HINT = "pip install 'attnbench[lm-eval]'"
MODULES = ("lm_eval", "accelerate")  # lm-eval, and what its Hugging Face wrapper imports

# What lm-eval's variant does differently from THUDM's LongBench (SUITES.md 2.4); stored with every
# result.
VARIANT_NOTE = (
    "lm-eval's longbench tasks, not THUDM's protocol: a long prompt keeps its last max_length"
    " tokens (not the first and last halves), trec/triviaqa/samsum/lsht answers end at lm-eval's"
    " newline stop sequence instead of being cut to their first line, predictions are stripped"
    " before scoring, code_sim_score skips blank lines, a chat template (when used) wraps every"
    " dataset; LongBench-E buckets are attnbench's grouping of lm-eval's row scores (lm-eval"
    " reports none)"
)


def missing_modules() -> list[str]:
    """Checked without importing them: importing lm-eval takes seconds, and planning should not."""
    return [name for name in MODULES if util.find_spec(name) is None]


def require_lm_eval() -> None:
    """One clear line naming the extra when lm-eval (or its Hugging Face wrapper's needs) is not
    installed."""
    missing = missing_modules()
    if missing:
        raise ConfigError(
            f"--backend lm-eval needs {' and '.join(missing)}, not installed here; "
            f"install it with {INSTALL_HINT}"
        )


def metric_version() -> str:
    """E.g. `lm-eval==0.4.13 longbench tasks rouge==1.0.1 jieba==0.42.1 fuzzywuzzy==0.18.0+difflib`:
    lm-eval's release fixes its task versions, and its metrics run on the same packages as the
    official ones.
    """
    try:
        version = metadata.version("lm_eval")
    except metadata.PackageNotFoundError:
        version = "missing"
    return f"lm-eval=={version} longbench tasks {package_versions()}"


def task_name(config: str) -> str:
    """lm-eval's name for an official config: `hotpotqa` -> `longbench_hotpotqa`, `trec_e` ->
    `longbench_trec_e`."""
    return f"longbench_{config}"


def task_yaml(config: str) -> Path:
    """lm-eval's own YAML of a config, found without importing lm-eval."""
    require_lm_eval()
    path = Path(util.find_spec("lm_eval").origin).parent / "tasks" / "longbench" / f"{config}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"this lm-eval ({metric_version().split()[0]}) has no task {task_name(config)} ({path})"
        )
    return path


def mirror_row(row: dict[str, Any]) -> dict[str, Any]:
    """An official row as lm-eval's prompts read it: the question under `question` as well as
    `input`."""
    return {**row, "question": row["input"]}


def write_task(folder: Path, config: str, rows: Iterable[dict[str, Any]]) -> str:
    """`<config>.jsonl` (the rows) and `<config>.yaml` (lm-eval's task reading them) in `folder`;
    the task name.

    The datasets cache of the JSON file goes into `folder` too, so nothing is left in the user's
    cache.
    """
    data = folder / f"{config}.jsonl"
    data.write_text(
        "".join(json.dumps(mirror_row(r), ensure_ascii=False) + "\n" for r in rows),
        encoding="utf-8",
    )
    override = {
        "include": str(task_yaml(config)),
        "task": task_name(config),
        "dataset_path": "json",
        "dataset_name": None,
        "test_split": "test",
        "dataset_kwargs": {
            "data_files": {"test": str(data)},
            "cache_dir": str(folder / "datasets-cache"),
        },
    }
    (folder / f"{config}.yaml").write_text(
        json.dumps(override, indent=1), encoding="utf-8"
    )  # JSON is YAML
    return task_name(config)
