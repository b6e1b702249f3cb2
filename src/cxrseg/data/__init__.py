"""Datasets on disk: find and pair files, check them, split them, load cases.

* :func:`discover` lists a folder (standard, explicit, JSRT/SCR, Montgomery or Shenzhen layout)
  and pairs images with masks by case id, without reading pixels.
* :func:`validate` reads every file and returns per-case statistics and every problem.
* :func:`load_case` returns a case's float32 image and uint8 0/1 mask per structure.
* :func:`make_splits` / :func:`load_or_create_splits` give seeded train/val/test or k-fold
  splits, saved to ``splits.json`` and reused; :func:`read_fold_file` reads cross-validation
  folds from a user's file.

The torch ``Dataset`` over loaded cases is training's input and lives in
:mod:`cxrseg.training.dataset` (it needs torch and :mod:`cxrseg.augment`).
"""

from __future__ import annotations

from cxrseg.data.dataset import (
    DEFAULT_MASK_SUFFIXES,
    Case,
    CaseFolder,
    Dataset,
    Problem,
    case_id_from_mask,
    mentions_left_right,
    natural_key,
    structure_name,
    swap_left_right_name,
)
from cxrseg.data.discovery import discover, parse_labels, read_labels
from cxrseg.data.folds import read_fold_file
from cxrseg.data.layouts import LAYOUTS
from cxrseg.data.loading import RESIZE_MODES, check_mask_values, load_case, resize_pair
from cxrseg.data.splits import (
    SPLITS_FILE,
    Splits,
    adopt_splits,
    load_or_create_splits,
    make_splits,
)
from cxrseg.data.validation import CaseStats, ValidationReport, validate

__all__ = [
    "CaseFolder",
    "RESIZE_MODES",
    "resize_pair",
    "DEFAULT_MASK_SUFFIXES",
    "LAYOUTS",
    "SPLITS_FILE",
    "Case",
    "CaseStats",
    "Dataset",
    "Problem",
    "Splits",
    "ValidationReport",
    "case_id_from_mask",
    "check_mask_values",
    "discover",
    "load_case",
    "adopt_splits",
    "load_or_create_splits",
    "make_splits",
    "natural_key",
    "parse_labels",
    "read_fold_file",
    "read_labels",
    "mentions_left_right",
    "structure_name",
    "swap_left_right_name",
    "validate",
]
