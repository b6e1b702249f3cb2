"""What a dataset is: cases pairing one image with its mask files, and the problems found.

These records are produced by :func:`cxrseg.data.discover` (which only lists files) and read
by :func:`cxrseg.data.validate` and :func:`cxrseg.data.load_case` (which read pixels). They hold
paths and names only, never pixel data.

Naming rules, shared by every layout:

* A case id is the file stem (``case7.png`` -> ``case7``). Mask stems lose one of the mask
  suffixes (default ``_mask``, ``-mask``, ``_label``, ``_seg``, matched case-insensitively),
  so ``CHNCXR_0001_0_mask.png`` pairs with ``CHNCXR_0001_0.png``.
* Cases are listed in natural order: ``case2`` before ``case10``.
* Structure names are snake_case: ``left lung`` (SCR) and ``Left-Lung`` become ``left_lung``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cxrseg.errors import InputError

Severity = Literal["error", "warning"]

#: Suffixes removed from mask file stems to get the case id (matched case-insensitively).
DEFAULT_MASK_SUFFIXES: tuple[str, ...] = ("_mask", "-mask", "_label", "_seg")

#: Mask formats that are refused because lossy compression changes label values.
LOSSY_MASK_EXTENSIONS = frozenset({".jpg", ".jpeg"})

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, str], ...]:
    """Sort key that orders embedded numbers by value: ``case2`` before ``case10``.

    Text parts compare case-insensitively; the original text breaks ties, so the order is total
    and does not depend on the order of the input.
    """
    parts: list[tuple[int, str]] = []
    for index, token in enumerate(_DIGITS.split(text)):
        # re.split with a capture group alternates text (even) and digits (odd).
        if index % 2:
            parts.append((int(token), token))
        else:
            parts.append((0, token.casefold()))
    parts.append((0, text))
    return tuple(parts)


def structure_name(name: str) -> str:
    """Normalise a folder or label name to snake_case: ``"Left Lung"`` -> ``"left_lung"``."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    text = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()
    if not text:
        raise InputError(
            f"structure name {name!r} has no letters or digits",
            hint="rename the mask folder or label, e.g. 'lungs'.",
        )
    return text


_SIDE = re.compile(r"(?<![a-z])(left|right)(?![a-z])", re.IGNORECASE)


def mentions_left_right(name: str) -> bool:
    """Whether a label name has ``left`` or ``right`` as a word (``left_lung``, ``Lung right``)."""
    return _SIDE.search(name) is not None


def swap_left_right_name(name: str) -> str:
    """The structure a horizontal flip turns ``name`` into: ``left_lung`` <-> ``right_lung``.

    ``left``/``right`` are swapped where they stand as words (``left_lung``, ``lung_right``,
    ``Left Lung``; not ``cleft``). The case is kept as far as it says anything: an upper-case
    word stays upper case, a capital initial stays capital (``LEft_lung`` -> ``Right_lung``),
    anything else becomes lower case. Names without a side are returned unchanged.
    """

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        other = "right" if word.lower() == "left" else "left"
        if word.isupper():
            return other.upper()
        return other.capitalize() if word[0].isupper() else other

    return _SIDE.sub(swap, name)


def case_id_from_mask(stem: str, suffixes: Sequence[str] = DEFAULT_MASK_SUFFIXES) -> str:
    """Return the case id of a mask file stem by removing one known mask suffix.

    Args:
        stem: File name without extension, e.g. ``"CHNCXR_0001_0_mask"``.
        suffixes: Suffixes to try, longest first; matched case-insensitively.

    Returns:
        The stem without the first matching suffix, or the stem unchanged.
    """
    folded = stem.casefold()
    for suffix in sorted(suffixes, key=len, reverse=True):
        if suffix and folded.endswith(suffix.casefold()) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, tied to the file concerned.

    Attributes:
        severity: ``"error"`` (the case cannot be used) or ``"warning"`` (usable, but check it).
        path: The file or folder concerned.
        message: What is wrong, e.g. ``"mask values {0, 7, 255} are not binary"``.
        hint: What to do about it.
        kind: Short machine-readable tag, e.g. ``"orphan_image"``, ``"mask_values"``.
        case_id: The case concerned, when there is one.
    """

    severity: Severity
    path: Path | None
    message: str
    hint: str = ""
    kind: str = ""
    case_id: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path is not None else ""
        fix = f" Fix: {self.hint}" if self.hint else ""
        return f"{self.severity}: {where}{self.message}.{fix}"

    def as_error(self) -> Problem:
        """Return this problem with severity ``"error"`` (used by strict mode)."""
        if self.severity == "error":
            return self
        return Problem("error", self.path, self.message, self.hint, self.kind, self.case_id)

    def to_dict(self) -> dict[str, str | None]:
        """Return a JSON-ready dict."""
        return {
            "severity": self.severity,
            "path": str(self.path) if self.path is not None else None,
            "case_id": self.case_id,
            "kind": self.kind,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass(frozen=True)
class Case:
    """One image and the mask files of each structure.

    Attributes:
        case_id: Identifier shared by the image and its masks (file stem).
        image: Path of the radiograph.
        masks: Mask files per structure; a structure drawn in several files (e.g. both lungs
            in separate files under one name) is the union of them. In a label-index dataset
            every structure points to the same file and is picked out by its label value.
    """

    case_id: str
    image: Path
    masks: dict[str, list[Path]]

    @property
    def mask_files(self) -> list[Path]:
        """Distinct mask files of the case, in first-seen order."""
        seen: dict[Path, None] = {}
        for paths in self.masks.values():
            for path in paths:
                seen.setdefault(path, None)
        return list(seen)


class ProblemList:
    """Mixin for records holding ``problems``: split them by severity."""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        """Problems of severity ``"error"``."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Problems of severity ``"warning"``."""
        return [p for p in self.problems if p.severity == "warning"]


@dataclass
class Dataset(ProblemList):
    """Cases found in a folder, how they were found, and what was wrong.

    Attributes:
        cases: Complete pairs (an image and a mask for every structure), in natural order.
        structures: Structure names, in the order masks are stacked.
        problems: Problems found while listing files (orphans, duplicates, lossy masks).
        ignored: Files skipped because they are not images (listed, never read).
        layout: ``"standard"``, ``"explicit"``, ``"jsrt"``, ``"montgomery"`` or ``"shenzhen"``.
        root: The dataset folder, or ``None`` for explicit folders.
        input_dirs: Every folder files were taken from; nothing is ever written inside them.
        labels: For label-index masks (one file, values 0..K), the value of each structure;
            ``None`` for binary masks (0/1 or 0/255 per structure).
        strict: Whether warnings count as errors.
    """

    cases: list[Case]
    structures: list[str]
    problems: list[Problem] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    layout: str = "standard"
    root: Path | None = None
    input_dirs: list[Path] = field(default_factory=list)
    labels: dict[str, int] | None = None
    strict: bool = False

    @property
    def case_ids(self) -> list[str]:
        """Ids of the cases, in natural order."""
        return [case.case_id for case in self.cases]

    def case(self, case_id: str) -> Case:
        """Return the case called ``case_id``.

        Raises:
            KeyError: No such case; the message lists a few ids that exist.
        """
        for case in self.cases:
            if case.case_id == case_id:
                return case
        known = ", ".join(self.case_ids[:5])
        raise KeyError(f"no case {case_id!r} in the dataset (cases include: {known})")

    def contains(self, path: str | Path) -> bool:
        """Whether ``path`` lies inside one of the input folders (so must not be written)."""
        target = Path(path).resolve()
        return any(target.is_relative_to(folder.resolve()) for folder in self.input_dirs)


#: :class:`Dataset` under a name that cannot be mistaken for ``torch.utils.data.Dataset``
#: (the torch one that feeds training is :class:`cxrseg.training.dataset.SegmentationDataset`).
CaseFolder = Dataset
