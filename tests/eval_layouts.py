"""Tiny benchmark folders written by hand in the official layouts (independent of cir's exporter)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from PIL import Image


def image(path: Path, colour: tuple[int, int, int], suffix_format: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path, format=suffix_format)


def colour(i: int) -> tuple[int, int, int]:
    return (37 * i % 256, 91 * i % 256, 53 * i % 256)


def dump(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_cirr(root: Path) -> Path:
    names = [f"dev-{i}-img{i}" for i in range(8)]
    for i, n in enumerate(names):
        image(root / "dev" / f"{n}.png", colour(i))
    dump(root / "image_splits" / "split.rc2.val.json", {n: f"./dev/{n}.png" for n in names})
    members = names[:6]
    val = [
        {"pairid": 12, "reference": names[0], "target_hard": names[1], "target_soft": {names[1]: 1.0},
         "caption": "add a cat", "img_set": {"id": 3, "members": members, "reference_rank": 0, "target_rank": 1}},
        {"pairid": 40, "reference": names[2], "target_hard": names[5], "target_soft": {names[5]: 1.0},
         "caption": "remove the dog", "img_set": {"id": 3, "members": members, "reference_rank": 2, "target_rank": 5}},
    ]
    dump(root / "captions" / "cap.rc2.val.json", val)
    for i, n in enumerate(names):
        image(root / "test1" / f"test1-{n}.png", colour(i + 50))
    dump(root / "image_splits" / "split.rc2.test1.json", {f"test1-{n}": f"./test1/test1-{n}.png" for n in names})
    test = [{"pairid": 7, "reference": f"test1-{names[3]}", "caption": "make it red",
             "img_set": {"id": 0, "members": [f"test1-{n}" for n in members], "reference_rank": 3}}]
    dump(root / "captions" / "cap.rc2.test1.json", test)
    return root


def write_fashioniq(root: Path) -> Path:
    for ci, cat in enumerate(("dress", "shirt", "toptee")):
        ids = [f"B00{cat}{i}" for i in range(5)]
        for i, v in enumerate(ids):  # mixed suffixes, as in the real release
            suffix = ".png" if i % 2 else ".jpg"
            image(root / "images" / f"{v}{suffix}", colour(10 * ci + i), "PNG" if suffix == ".png" else "JPEG")
        dump(root / "image_splits" / f"split.{cat}.val.json", ids)
        dump(root / "captions" / f"cap.{cat}.val.json", [
            {"target": ids[1], "candidate": ids[0], "captions": ["is red.", "has long sleeves"]},
            {"target": ids[3], "candidate": ids[4], "captions": ["is shorter", "is blue"]},
        ])
    return root


def write_circo(root: Path) -> Path:
    ids = [101, 7, 55, 12, 900, 3]
    images = []
    for i, v in enumerate(ids):
        name = f"{v:012d}.jpg"
        image(root / "COCO2017_unlabeled" / "unlabeled2017" / name, colour(i), "JPEG")
        images.append({"license": 1, "file_name": name, "coco_url": "", "height": 8, "width": 8, "id": v})
    dump(root / "COCO2017_unlabeled" / "annotations" / "image_info_unlabeled2017.json", {"info": {}, "images": images})
    dump(root / "annotations" / "val.json", [
        {"reference_img_id": 101, "target_img_id": 55, "relative_caption": "has two dogs", "shared_concept": "a park",
         "gt_img_ids": [55, 12, 3], "id": 0},
        {"reference_img_id": 7, "target_img_id": 900, "relative_caption": "is at night", "shared_concept": "a city",
         "gt_img_ids": [900], "id": 5},
    ])
    dump(root / "annotations" / "test.json", [
        {"reference_img_id": 12, "relative_caption": "in winter", "shared_concept": "a house", "id": 2},
    ])
    return root


def write_triplets(root: Path) -> tuple[Path, Path]:
    images = root / "images"
    for i in range(6):
        image(images / f"img{i}.png", colour(i))
    path = root / "triplets.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query_image", "query_text", "target_image"])
        w.writerow(["img0.png", "add a laptop", "img1.png"])
        w.writerow(["img1.png", "remove the laptop", "img0.png"])
        w.writerow(["img2.png", "add a cat, remove the dog", "img3.png"])
    return path, images


def write_text2image(root: Path) -> tuple[Path, Path]:
    images = root / "images"
    for i in range(5):
        image(images / f"a{i}.jpg", colour(i), "JPEG")
    path = root / "articles.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["article_id", "title", "image_id"])
        for i in range(5):
            w.writerow([f"art{i}", f"headline number {i}", f"a{i}"])  # ids without suffix, as in NewsImages
    return path, images
