"""Tiny Med-VQA copies in each official layout, written by code (tiny synthetic images, no
binaries).

* `write_vqa_rad_parquet`: flaviagiammarino/vqa-rad's parquet (`image` struct of bytes and path,
  `question`, `answer`) under ROOT/data, answers including "yes", "Yes.", "no" and open ones.
* `write_mevf`: MEVF's data_RAD (trainset.json/testset.json with the 7 fields, images/). A choice
  question ("left or right?") is CLOSED there although its answer is not yes/no.
* `write_slake`: BoKelvin/SLAKE's train/validation/test.json (en and zh rows, OPEN and CLOSED) and
  imgs/xmlab<id>/source.jpg.
* `write_vqa_med`: VQA-Med-2019's training/validation text files and image folders, and real lines
  of the test reference file (VQAMed2019_Test_Questions_w_Ref_Answers.txt, abachaa/VQA-Med-2019, CC
  BY 4.0; Ben Abacha et al., "VQA-Med: Overview of the Medical Visual Question Answering Task at
  ImageCLEF 2019", CLEF 2019 Working Notes) covering `#` alternatives and `(...)` optional parts.
  Each writer takes `break_with` to plant one bad row: "missing image", "unknown answer type",
  "empty answer".
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

VQA_MED_TEST_LINES = (
    "synpic54082|modality|what modality is shown?|cta - ct angiography",
    "synpic48556|modality|was the mri taken with contrast?|no",
    "synpic36276|modality|is \tthis a t1 weighted image?|yes",
    "synpic21435|plane|in what plane is this ct scan?|axial",
    "synpic16333|organ|what organ system is displayed in this ct scan?|skull and contents",
    (
        "synpic35171|abnormality|what is abnormal in the ct scan?|(angioinvasive aspergillosis"
        " with) septic cerebral emboli"
    ),
    (
        "synpic35942|abnormality|what is the primary abnormality in this image?|esoghageal"
        " spasm#diverticulum"
    ),
    (
        "synpic54143|abnormality|what is the primary abnormality in this image?|anaplastic"
        " oligodendroglioma#multi-cystic complex mass#neoplasm"
    ),
    (
        "synpic22825|modality|what imaging modality was used to take this image?|ct (with gi and iv"
        " contrast)"
    ),
)


def picture(seed: int, size: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def jpeg_bytes(seed: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(picture(seed)).save(out, format="PNG")
    return out.getvalue()


def _save(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(seed))


RAD_ROWS = {
    "train": [
        ("is there a fracture?", "yes"),
        ("is the liver normal?", "Yes."),
        ("is this an mri?", "no"),
        ("what organ is shown?", "brain"),
        ("where is the lesion?", "left lobe"),
        ("is it enlarged?", "no"),
    ],
    "test": [
        ("is there a fracture?", "no"),
        ("what organ is shown?", "brain"),
        ("is the mass left or right?", "left"),
        ("is the heart enlarged?", "yes"),
    ],
}


def write_vqa_rad_parquet(root: Path, break_with: str | None = None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (root / "data").mkdir(parents=True)
    for split, rows in RAD_ROWS.items():
        images = [{"bytes": jpeg_bytes(i), "path": f"{i}.png"} for i in range(len(rows))]
        answers = [a for _, a in rows]
        if split == "test" and break_with == "missing image":
            images[1] = None
        if split == "test" and break_with == "empty answer":
            answers[2] = "  "
        table = pa.table({"image": images, "question": [q for q, _ in rows], "answer": answers})
        pq.write_table(table, root / "data" / f"{split}-00000-of-00001.parquet")
    return root


MEVF_ROWS = {
    "trainset.json": [
        ("synpic1.jpg", "is there a fracture?", "yes", "CLOSED"),
        ("synpic2.jpg", "what organ is shown?", "brain", "OPEN"),
        ("synpic1.jpg", "is the lesion left or right?", "right", "CLOSED"),
        ("synpic3.jpg", "is this normal?", "no", "CLOSED"),
    ],
    "testset.json": [
        ("synpic4.jpg", "is the mass left or right?", "left", "CLOSED"),
        ("synpic5.jpg", "what organ is shown?", "brain", "OPEN"),
        ("synpic4.jpg", "is there a fracture?", "no", "CLOSED "),
    ],
}


def write_mevf(root: Path, break_with: str | None = None) -> Path:
    for name, rows in MEVF_ROWS.items():
        entries = []
        for i, (image, question, answer, kind) in enumerate(rows):
            entries.append(
                {
                    "qid": f"{name[:4]}{i}",
                    "image_name": image,
                    "question": question,
                    "answer": answer,
                    "answer_type": kind,
                    "question_type": "PRES",
                    "phrase_type": "freeform",
                }
            )
            _save(root / "images" / image, int(image[6:-4]))
        if name == "testset.json" and break_with == "unknown answer type":
            entries[1]["answer_type"] = "MAYBE"
        if name == "testset.json" and break_with == "missing image":
            entries[1]["image_name"] = "synpic999.jpg"
        (root / name).write_text(json.dumps(entries))
    return root


SLAKE_ROWS = {
    "train.json": [
        (1, "en", "Is this a CT image?", "Yes", "CLOSED", "Modality"),
        (1, "en", "Which organ is abnormal?", "Lung", "OPEN", "Organ"),
        (1, "zh", "这是CT图像吗?", "是", "CLOSED", "Modality"),
        (2, "en", "Does the picture contain liver?", "No", "CLOSED", "Organ"),
    ],
    "validation.json": [(3, "en", "What modality is used?", "MRI", "OPEN", "Modality")],
    "test.json": [
        (4, "en", "Is this a CT image?", "No", "CLOSED", "Modality"),
        (4, "en", "Which organ is abnormal?", "Lung", "OPEN", "Organ"),
        (5, "zh", "哪个器官不正常?", "肺", "OPEN", "Organ"),
        (5, "en", "Where is the lesion?", "Left Lung", "OPEN", "Position"),
    ],
}


def write_slake(root: Path, break_with: str | None = None) -> Path:
    qid = 0
    for name, rows in SLAKE_ROWS.items():
        entries = []
        for img_id, lang, question, answer, kind, content in rows:
            entries.append(
                {
                    "img_id": img_id,
                    "img_name": f"xmlab{img_id}/source.jpg",
                    "question": question,
                    "answer": answer,
                    "q_lang": lang,
                    "location": "Lung",
                    "modality": "CT",
                    "answer_type": kind,
                    "base_type": "vqa",
                    "content_type": content,
                    "triple": ["", "", ""],
                    "qid": qid,
                }
            )
            qid += 1
            _save(root / "imgs" / f"xmlab{img_id}" / "source.jpg", img_id)
        if name == "test.json" and break_with == "missing image":
            entries[0]["img_name"] = "xmlab77/source.jpg"
        if name == "test.json" and break_with == "unknown answer type":
            entries[1]["answer_type"] = "YESNO"
        if name == "test.json" and break_with == "empty answer":
            entries[3]["answer"] = ""
        (root / name).write_text(json.dumps(entries, ensure_ascii=False))
    return root


def write_vqa_med(root: Path, break_with: str | None = None) -> Path:
    train = root / "ImageClef-2019-VQA-Med-Training"
    val = root / "ImageClef-2019-VQA-Med-Validation"
    test = root / "VQAMed2019Test"
    train_lines = [
        "synpic100|what modality is shown?|cta - ct angiography",
        "synpic101|is this a ct scan?|yes",
        "synpic102|in what plane is this ct scan?|axial",
        "synpic103|what is abnormal in the ct scan?|septic cerebral emboli",
        "synpic104|was the mri taken with contrast?|no",
    ]
    (train / "Train_images").mkdir(parents=True)
    (train / "All_QA_Pairs_train.txt").write_text("\n".join(train_lines) + "\n")
    (val / "Val_images").mkdir(parents=True)
    (val / "All_QA_Pairs_val.txt").write_text("synpic200|what plane is this?|sagittal\n")
    (test / "VQAMed2019_Test_Images").mkdir(parents=True)
    lines = list(VQA_MED_TEST_LINES)
    if break_with == "empty answer":
        lines[3] = "synpic21435|plane|in what plane is this ct scan?|"
    (test / "VQAMed2019_Test_Questions_w_Ref_Answers.txt").write_text("\n".join(lines) + "\n")
    for folder, rows in (
        (train / "Train_images", train_lines),
        (val / "Val_images", ["synpic200|"]),
        (test / "VQAMed2019_Test_Images", lines),
    ):
        for i, line in enumerate(rows):
            image_id = line.split("|")[0]
            if break_with == "missing image" and image_id == "synpic16333":
                continue
            _save(folder / f"{image_id}.jpg", i)
    return root
