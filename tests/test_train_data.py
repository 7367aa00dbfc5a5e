"""Training data: the world's train split, the user's CIRR / FashionIQ / CSV files through the evaluation
loaders, and folders of unlabeled images."""

import numpy as np
import pytest

from cir.errors import CirError
from cir.train.data import load_image_data, load_triplet_data, scene_triplets


def test_scene_triplets_come_from_the_train_split_with_groups():
    data = scene_triplets(seed=0, groups=5, triplets_per_group=3)
    assert len(data) == 15 and len(np.unique(data.groups)) == 5
    assert all(data.images[i].id.startswith("train-") for i in np.concatenate([data.reference, data.target]))
    train, val = data.split_by_group(0.2, seed=0)
    assert len(train) + len(val) == 15 and not set(train.groups) & set(val.groups)  # whole groups


def test_cirr_files_train_split_with_img_sets_as_groups(scene_exports):
    data = load_triplet_data(f"cirr:{scene_exports / 'cirr'}")
    assert len(data) == 16 and len(np.unique(data.groups)) == 8  # 8 groups x 2 triplets
    assert all(p.is_file() and "/train/" in p.as_posix() for p in data.images)


def test_fashioniq_files_all_categories(scene_exports):
    data = load_triplet_data(f"fashioniq:{scene_exports / 'fashioniq'}")
    assert len(data) > 0 and len(np.unique(data.groups)) == len(data)  # no groups in FashionIQ: one per query
    assert all(p.is_file() for p in data.images)


def test_csv_needs_its_image_folder(scene_exports):
    root = scene_exports / "triplets"
    data = load_triplet_data(f"csv:{root / 'triplets.csv'}", images=root / "images")
    assert len(data) > 0 and data.texts[0]
    with pytest.raises(CirError, match="--images DIR"):
        load_triplet_data(f"csv:{root / 'triplets.csv'}")


def test_unknown_data_names_the_forms():
    with pytest.raises(CirError, match="scenes, cirr:ROOT, fashioniq:ROOT or csv:FILE"):
        load_triplet_data("cirr")


def test_unlabeled_images_from_a_folder_or_the_world(scene_exports, tmp_path):
    found = load_image_data(str(scene_exports / "triplets" / "images"))
    assert found and all(p.suffix == ".png" for p in found)
    assert len(load_image_data("scenes", scene_groups=3)) == 18
    with pytest.raises(CirError, match="not a folder"):
        load_image_data(str(tmp_path / "nothing"))
