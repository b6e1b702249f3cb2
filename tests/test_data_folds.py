"""Fold files (``cxrseg train --folds-file``): the two formats and every way they can be wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxrseg.data import make_splits, read_fold_file
from cxrseg.errors import InputError

IDS = [f"case{i}" for i in range(6)]


def _file(tmp_path: Path, text: str, name: str = "folds.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_text_file_gives_each_fold_its_cases(tmp_path: Path) -> None:
    text = "# two folds\ncase0 0\ncase1,1\ncase2\t0\ncase3 1  # note\n\ncase4 0\ncase5 test\n"
    splits = read_fold_file(_file(tmp_path, text), IDS)
    assert splits.k == 2 and splits.test == ["case5"]
    assert splits.folds[0] == (["case1", "case3"], ["case0", "case2", "case4"])
    assert splits.folds[1] == (["case0", "case2", "case4"], ["case1", "case3"])


def test_file_names_stand_for_their_case_ids(tmp_path: Path) -> None:
    text = "".join(f"{i}.IMG {n % 2}\n" for n, i in enumerate(IDS))
    assert read_fold_file(_file(tmp_path, text), IDS).folds[0][1] == ["case0", "case2", "case4"]


def test_a_json_file_and_a_saved_splits_file_give_the_same_folds(tmp_path: Path) -> None:
    groups = {"folds": [["case0", "case1", "case2"], ["case3", "case4", "case5"]]}
    from_json = read_fold_file(_file(tmp_path, json.dumps(groups), "f.json"), IDS)
    saved = make_splits(IDS, seed=3, folds=3)
    again = read_fold_file(_file(tmp_path, json.dumps(saved.to_dict()), "s.json"), IDS)
    assert from_json.folds[1][1] == ["case3", "case4", "case5"] and from_json.test == []
    assert again.folds == saved.folds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("case0 0\ncase1 1\ncase2 0\ncase3 1\ncase4 0\ncase5 0\ncase5 1\n", "more than once"),
        ("case0 0\ncase1 1\ncase2 0\ncase3 1\ncase4 0\ncase5 0\nzzz 1\n", "not cases.*zzz"),
        ("case0 0\ncase1 1\n", "in no fold: case2, case3"),
        ("case0 0\ncase1 2\n", r"fold\(s\) 1 list no case"),
        ("case0 0\ncase1 one\n", "line 2: expected 'CASE_ID FOLD'"),
        ("".join(f"{i} 0\n" for i in IDS), "1 fold.*at least 2"),
        ("# nothing\n", "lists no fold"),
    ],
)
def test_a_bad_text_file_is_refused_with_the_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        read_fold_file(_file(tmp_path, text), IDS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ('{"fold": []}', 'no "folds" list'),
        ('{"folds": [["case0"], 3]}', "fold 1 is not a list"),
        ('{"folds": [["case0", "case1", "case2"], [], ["case3", "case4", "case5"]]}',
         r"fold\(s\) 1 list no case"),
        ('{"folds": [["case0", "case1", "case2"], ["case3", "case4"]], "test": "case5"}',
         '"test" is not a list'),
    ],
)  # fmt: skip
def test_a_bad_json_file_is_refused_with_the_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        read_fold_file(_file(tmp_path, text, "folds.json"), IDS)


def test_a_missing_fold_file_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found.*--folds-file"):
        read_fold_file(tmp_path / "nope.txt", IDS)
