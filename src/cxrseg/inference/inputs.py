"""The inputs of :func:`cxrseg.inference.predict_paths`: files, folders and globs -> image
files, and the checks made before anything is written (unique ids, an output folder apart)."""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cxrseg.data import natural_key
from cxrseg.errors import InputError
from cxrseg.io import IMAGE_EXTENSIONS, is_image_file

__all__ = ["InputFiles", "check_ids", "check_out", "expand_inputs"]

_GLOB_CHARS = frozenset("*?[")


@dataclass
class InputFiles:
    """What :func:`expand_inputs` found.

    Attributes:
        files: Image files, in order, each once.
        folders: The folders given.
        failed: ``(path, reason)`` of inputs that are missing or not images.
        skipped: Files in the folders (or glob matches) that are not images.
    """

    files: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def expand_inputs(inputs: Iterable[str | Path]) -> InputFiles:
    """Files, folders (their image files, not recursive) and globs -> image files.

    Folder contents and glob matches are sorted naturally (``case2`` before ``case10``); a
    file found twice is kept once. A path that does not exist, a glob without matches and a
    file given by name that cxrseg cannot read as an image are listed as failed.
    """

    found = InputFiles()
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.files.append(path)

    def by_name(paths: Iterable[Path]) -> list[Path]:
        return sorted(paths, key=lambda p: natural_key(str(p)))

    for item in inputs:
        path = Path(item)
        text = str(item)
        if path.is_dir():
            _refuse_model_folder(path)
            found.folders.append(path)
            for child in by_name(p for p in path.iterdir() if p.is_file()):
                if is_image_file(child):
                    add(child)
                elif not child.name.startswith("."):
                    found.skipped.append(child)
        elif path.is_file():
            if is_image_file(path):
                add(path)
            else:
                found.failed.append((path, f"not an image type cxrseg reads "
                                           f"({', '.join(sorted(IMAGE_EXTENSIONS))})"))  # fmt: skip
        elif _GLOB_CHARS & set(text):
            matches = by_name(Path(p) for p in glob.glob(text, recursive=True))
            images = [p for p in matches if p.is_file() and is_image_file(p)]
            found.skipped.extend(p for p in matches if p.is_file() and not is_image_file(p))
            if not images:
                found.failed.append((path, "the pattern matches no image file"))
            for image in images:
                add(image)
        else:
            found.failed.append((path, "no such file or folder"))
    return found


#: Files that mark a folder as a training run or a model, not a folder of radiographs.
_MODEL_MARKERS = ("best/model.json", "model.json", "last/resume.json", "train.log", "splits.json")


def _refuse_model_folder(folder: Path) -> None:
    """Refuse an input folder that is a run or model folder (its curves.png is no radiograph).

    Raises:
        InputError: Naming the file that gives it away and the two commands meant.
    """
    marker = next((m for m in _MODEL_MARKERS if (folder / m).is_file()), None)
    if marker is not None:
        raise InputError(
            f"is a cxrseg run or model folder ({marker}), not a folder of radiographs; its "
            "images (curves.png, overlays) would be segmented as if they were chest X-rays",
            path=folder,
            hint=f"to predict with this model: cxrseg predict {folder} IMAGES... --out DIR "
            "(without --model); otherwise give only folders or files of radiographs.",
        )


def check_ids(files: Sequence[Path]) -> None:
    by_id: dict[str, list[Path]] = {}
    for path in files:
        by_id.setdefault(path.stem, []).append(path)
    clashes = {k: v for k, v in by_id.items() if len(v) > 1}
    if clashes:
        listed = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in clashes.items())
        raise InputError(
            f"several inputs have the same id (file stem), so their outputs would collide: "
            f"{listed}",
            hint="give only one file per id, or rename one of them",
        )


def check_out(out: Path, found: InputFiles) -> None:
    """Refuse an output folder that is, contains or lies inside an input folder or file."""
    target = out.resolve()
    for folder in found.folders:
        place = folder.resolve()
        if target == place or target.is_relative_to(place) or place.is_relative_to(target):
            raise InputError(
                f"the output folder would be mixed with the input folder {folder}",
                path=out,
                hint="choose an --out folder outside the inputs",
            )
    for file in found.files:
        if file.resolve().is_relative_to(target):
            raise InputError(
                f"the output folder holds the input {file}; writing there could overwrite it",
                path=out,
                hint="choose an --out folder outside the inputs",
            )
