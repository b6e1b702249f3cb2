"""Seeded splits: disjoint, complete, order-independent, k-fold, saved once and reused."""

from __future__ import annotations

import json

import pytest

from cxrseg.data import Splits, load_or_create_splits, make_splits, natural_key
from cxrseg.errors import InputError

IDS = [f"case{i}" for i in range(1, 21)]


def test_splits_are_disjoint_and_cover_every_id():
    splits = make_splits(IDS, seed=3, val_fraction=0.2, test_fraction=0.1)
    parts = [set(splits.train), set(splits.val), set(splits.test)]
    assert sum(map(len, parts)) == len(IDS)
    assert set.union(*parts) == set(IDS)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (14, 4, 2)


def test_split_ids_are_in_natural_order():
    splits = make_splits(IDS, seed=1)
    assert splits.train == sorted(splits.train, key=natural_key)
    assert splits.val == sorted(splits.val, key=natural_key)


def test_same_seed_same_split_whatever_the_input_order():
    a = make_splits(IDS, seed=7, test_fraction=0.2)
    b = make_splits(list(reversed(IDS)), seed=7, test_fraction=0.2)
    assert a == b


def test_another_seed_gives_another_split():
    assert make_splits(IDS, seed=0).val != make_splits(IDS, seed=1).val


def test_small_fraction_still_gives_one_case():
    splits = make_splits(IDS[:3], val_fraction=0.01)
    assert (len(splits.train), len(splits.val)) == (2, 1)


def test_kfold_val_folds_are_disjoint_and_cover_all_non_test_ids():
    splits = make_splits(IDS, seed=2, test_fraction=0.1, folds=5)
    vals = [set(val) for _, val in splits.folds]
    assert len(vals) == 5 and all(len(v) == 18 // 5 or len(v) == 18 // 5 + 1 for v in vals)
    assert set.union(*vals) == set(IDS) - set(splits.test)
    assert sum(map(len, vals)) == 18
    for train, val in splits.folds:
        assert set(train) == set(IDS) - set(val) - set(splits.test)


def test_select_changes_the_fold_but_not_the_test_set():
    splits = make_splits(IDS, seed=2, test_fraction=0.1, folds=4)
    third = splits.select(2)
    assert (third.train, third.val) == splits.folds[2]
    assert third.test == splits.test and third.fold == 2


def test_fold_out_of_range():
    with pytest.raises(ValueError, match="fold 5 does not exist; choose 0..4"):
        make_splits(IDS, folds=5, fold=5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_fraction": 1.0}, "val_fraction must be a number in \\[0, 1\\), got 1.0"),
        ({"test_fraction": -0.1}, "test_fraction must be"),
        ({"folds": 1}, "folds must be an integer >= 2"),
        ({"folds": 30}, "cannot give 0 test \\+ 30 folds"),
        ({"val_fraction": 0.6, "test_fraction": 0.45}, "cannot give"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_splits(IDS, **kwargs)


def test_duplicate_ids_are_refused():
    with pytest.raises(ValueError, match="repeated: \\['case1'\\]"):
        make_splits([*IDS, "case1"])


def test_dict_round_trip():
    splits = make_splits(IDS, seed=4, folds=3, fold=1)
    assert Splits.from_dict(json.loads(json.dumps(splits.to_dict())), fold=1) == splits


def test_load_or_create_writes_then_reuses(tmp_path):
    path = tmp_path / "splits.json"
    first = load_or_create_splits(path, IDS, seed=5, test_fraction=0.1)
    saved = json.loads(path.read_text())
    assert (saved["seed"], saved["ids"], saved["test"]) == (5, first.ids, first.test)
    again = load_or_create_splits(path, list(reversed(IDS)), seed=99)  # the file wins
    assert again == first
    assert [p.name for p in tmp_path.iterdir()] == ["splits.json"]  # no temporary left


def test_folder_path_holds_splits_json(tmp_path):
    load_or_create_splits(tmp_path, IDS)
    assert (tmp_path / "splits.json").is_file()


def test_saved_ids_missing_from_dataset_are_named(tmp_path):
    path = tmp_path / "splits.json"
    load_or_create_splits(path, IDS)
    with pytest.raises(InputError, match="not in the dataset: case19, case20") as info:
        load_or_create_splits(path, IDS[:18])
    assert "delete the file" in str(info.value.hint)


def test_new_ids_are_logged_not_assigned(tmp_path, caplog):
    path = tmp_path / "splits.json"
    load_or_create_splits(path, IDS)
    splits = load_or_create_splits(path, [*IDS, "case21"])
    assert "case21" not in splits.ids
    assert "1 cases are in no split" in caplog.text


def test_unreadable_splits_file_is_named(tmp_path):
    path = tmp_path / "splits.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="cannot read the saved splits") as info:
        load_or_create_splits(path, IDS)
    assert info.value.path == path
