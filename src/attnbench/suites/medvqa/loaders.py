"""The three Med-VQA data sets in their official layouts (four loaders: VQA-RAD comes in two).

* `vqa-rad`: Hugging Face `flaviagiammarino/vqa-rad` (CC0-1.0), parquet with columns `image`
  (bytes), `question`, `answer`: ROOT/data/{train,test}-*.parquet (or ROOT/{train,test}-*.parquet).
  No answer type is given: closed means a yes/no answer (which differs from the official
  answer_type: CLOSED also covers choice questions). No validation split.
* `vqa-rad-mevf`: MEVF's `data_RAD` folder (aioz-ai/MICCAI19-MedVQA): ROOT/trainset.json,
  ROOT/testset.json (fields qid, image_name, question, answer, answer_type CLOSED|OPEN, ...) and
  ROOT/images/<image_name>.
* `slake`: `BoKelvin/SLAKE` (CC-BY-4.0): ROOT/{train,validation,test}.json (fields qid, img_name,
  question, answer, q_lang en|zh, answer_type, content_type, ...) and ROOT/imgs/<img_name>
  (`xmlab<id>/source.jpg`); one language (`en` by default) or `all`.
* `vqa-med-2019`: ImageCLEF VQA-Med 2019 (CC BY 4.0): ROOT/ImageClef-2019-VQA-Med-Training/
  {All_QA_Pairs_train.txt, Train_images/},
  ROOT/ImageClef-2019-VQA-Med-Validation/{All_QA_Pairs_val.txt, Val_images/}
  (`<image-id>|<question>|<answer>`) and ROOT/VQAMed2019Test/
  {VQAMed2019_Test_Questions_w_Ref_Answers.txt, VQAMed2019_Test_Images/}
  (`<image-id>|<category>|<question>| <answer>`, answers with `#` alternatives and `(...)` optional
  parts). Closed means a yes/no answer.
"""

from __future__ import annotations

import json
from pathlib import Path

from attnbench.errors import ConfigError
from attnbench.suites.medvqa.records import Example, MedVQAData, RowChecker

DATA = ("vqa-rad", "vqa-rad-mevf", "slake", "vqa-med-2019")
LANGUAGES = ("en", "zh", "all")
VQA_MED = {
    "train": ("ImageClef-2019-VQA-Med-Training", "All_QA_Pairs_train.txt", "Train_images"),
    "val": ("ImageClef-2019-VQA-Med-Validation", "All_QA_Pairs_val.txt", "Val_images"),
    "test": (
        "VQAMed2019Test",
        "VQAMed2019_Test_Questions_w_Ref_Answers.txt",
        "VQAMed2019_Test_Images",
    ),
}


def load(data: str, root: str | Path, language: str = "en", lenient: bool = False) -> MedVQAData:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ConfigError(
            f"no {data} data at {root}: the folder does not exist ({HOW_TO_GET.get(data, '')})"
        )
    checker = RowChecker(lenient)
    if data == "vqa-rad":
        loaded = _vqa_rad_parquet(root, checker)
    elif data == "vqa-rad-mevf":
        loaded = _vqa_rad_mevf(root, checker)
    elif data == "slake":
        if language not in LANGUAGES:
            raise ConfigError(f"SLAKE language {language!r} is not one of {', '.join(LANGUAGES)}")
        loaded = _slake(root, language, checker)
    elif data == "vqa-med-2019":
        loaded = _vqa_med(root, checker)
    else:
        raise ConfigError(f"Med-VQA data {data!r} is not one of {', '.join(DATA)}")
    loaded.skipped = checker.skipped
    for split in ("train", "test"):
        if not loaded.splits.get(split):
            raise ConfigError(f"{data} at {root}: the {split} split holds no usable question")
    return loaded


HOW_TO_GET = {
    "vqa-rad": (
        "download the parquet files of https://huggingface.co/datasets/flaviagiammarino/vqa-rad"
        " into ROOT/data"
    ),
    "vqa-rad-mevf": "ROOT is MEVF's data_RAD folder (https://github.com/aioz-ai/MICCAI19-MedVQA)",
    "slake": (
        "download train/validation/test.json and unzip imgs.zip from"
        " https://huggingface.co/datasets/BoKelvin/SLAKE"
    ),
    "vqa-med-2019": (
        "unzip the training and validation zips and copy VQAMed2019Test from "
        "https://github.com/abachaa/VQA-Med-2019"
    ),
}


def _vqa_rad_parquet(root: Path, checker: RowChecker) -> MedVQAData:
    import pyarrow.parquet as pq

    images: dict[str, bytes] = {}
    splits: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    for split in ("train", "test"):
        files = sorted(root.glob(f"data/{split}-*.parquet")) or sorted(
            root.glob(f"{split}-*.parquet")
        )
        if not files:
            raise ConfigError(
                f"no VQA-RAD {split} parquet under {root} (expected data/{split}-*.parquet; "
                f"{HOW_TO_GET['vqa-rad']})"
            )
        for path in files:
            table = pq.read_table(path)
            missing = {"image", "question", "answer"} - set(table.column_names)
            if missing:
                raise ConfigError(
                    f"{path} lacks the column(s) {', '.join(sorted(missing))} of"
                    " flaviagiammarino/vqa-rad"
                )
            for i, row in enumerate(table.to_pylist()):
                picture = row["image"]
                encoded = picture.get("bytes") if isinstance(picture, dict) else picture
                key = f"{path.name}:{i}"
                example = checker.example(
                    str(path),
                    f"row {i}",
                    key,
                    bool(encoded),
                    row["question"],
                    row["answer"],
                    no_image=f"row {i} has no image",
                )
                if example:
                    images[key] = encoded
                    splits[split].append(example)
    return MedVQAData("vqa-rad", splits, images.__getitem__)


def _read_json(path: Path) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"missing {path}")
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"{path} must hold a JSON list of question objects")
    return rows


def _field(path: Path, row: dict, name: str):
    if name not in row:
        raise ConfigError(
            f"{path}: a question has no {name!r} field (question {row.get('qid', '?')})"
        )
    return row[name]


def _vqa_rad_mevf(root: Path, checker: RowChecker) -> MedVQAData:
    folder = root / "images"
    splits: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    for split, name in (("train", "trainset.json"), ("test", "testset.json")):
        path = root / name
        for row in _read_json(path):
            image = str(_field(path, row, "image_name"))
            example = checker.example(
                str(path),
                row.get("qid", "?"),
                image,
                (folder / image).is_file(),
                _field(path, row, "question"),
                _field(path, row, "answer"),
                _field(path, row, "answer_type"),
                str(row.get("question_type", "")),
            )
            if example:
                splits[split].append(example)
    return MedVQAData("vqa-rad-mevf", splits, lambda key: folder / key)


def _slake(root: Path, language: str, checker: RowChecker) -> MedVQAData:
    folder = root / "imgs"
    splits: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    for split, name in (("train", "train.json"), ("val", "validation.json"), ("test", "test.json")):
        path = root / name
        for row in _read_json(path):
            if language != "all" and _field(path, row, "q_lang") != language:
                continue
            image = str(_field(path, row, "img_name"))
            example = checker.example(
                str(path),
                row.get("qid", "?"),
                image,
                (folder / image).is_file(),
                _field(path, row, "question"),
                _field(path, row, "answer"),
                _field(path, row, "answer_type"),
                str(row.get("content_type", "")),
            )
            if example:
                splits[split].append(example)
    return MedVQAData("slake", splits, lambda key: folder / key)


def _vqa_med(root: Path, checker: RowChecker) -> MedVQAData:
    splits: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
    for split, (folder, name, image_dir) in VQA_MED.items():
        path = root / folder / name
        if not path.is_file():
            if split == "val":
                continue
            raise ConfigError(f"missing {path} ({HOW_TO_GET['vqa-med-2019']})")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split("|")
            expected = 4 if split == "test" else 3
            if len(fields) != expected:
                raise ConfigError(
                    f"{path} line {number}: expected {expected} '|'-separated fields, got"
                    f" {len(fields)}"
                )
            image_id, *rest = fields
            category, question, answer = rest if split == "test" else ("", *rest)
            image = f"{folder}/{image_dir}/{image_id.strip()}.jpg"
            example = checker.example(
                f"{path} line {number}",
                image_id.strip(),
                image,
                (root / image).is_file(),
                question,
                answer,
                None,
                category.strip(),
            )
            if example:
                splits[split].append(example)
    return MedVQAData("vqa-med-2019", splits, lambda key: root / key)
