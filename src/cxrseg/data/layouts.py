"""Where images and masks live in each supported folder layout.

A layout resolves a folder (or explicit ``images``/``masks`` folders) into the folders to list:
one images folder and one or more mask sources, each source naming a structure. Nothing here
reads pixels. Supported layouts:

``standard``
    ``DIR/images/<id>.<ext>`` with ``DIR/masks/<id>.<ext>`` (one structure, named by
    ``DIR/dataset.json`` or ``"foreground"``) or ``DIR/masks/<structure>/<id>.<ext>``.
``explicit``
    ``images=DIR`` and ``masks=DIR`` (read like ``DIR/masks`` above) or
    ``masks={"left_lung": DIR1, "right_lung": DIR2}``; a name given several folders is the
    union of one file from each.
``montgomery``
    ``CXR_png/`` with ``ManualMask/leftMask/`` and ``ManualMask/rightMask/`` -> structures
    ``left_lung`` and ``right_lung``, as the dataset names them.
``shenzhen``
    ``CXR_png/`` with ``mask/<id>_mask.png`` -> structure ``lungs``.
``jsrt``
    JSRT images (``.IMG`` or PNG, in ``images/``, ``All247images/`` or the folder itself) with
    SCR masks ``masks/<structure>/<id>.gif``, also split over folds
    (``scratch/fold1/masks/left lung/JPCLN001.gif``) -> structures ``heart``, ``left_lung``...
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cxrseg.data.dataset import natural_key, structure_name
from cxrseg.errors import InputError
from cxrseg.io import IMAGE_EXTENSIONS, is_image_file

logger = logging.getLogger(__name__)

PathLike = str | Path
MasksArg = PathLike | Mapping[str, PathLike | Sequence[PathLike]]

LAYOUTS = ("auto", "standard", "jsrt", "montgomery", "shenzhen")

#: Structure folders of the SCR database (van Ginneken et al. 2006).
SCR_STRUCTURES = frozenset({"heart", "left lung", "right lung", "left clavicle", "right clavicle"})
_JSRT_IMAGE_DIRS = ("images", "All247images", "all247images", "JSRT", "jsrt")


@dataclass(frozen=True)
class MaskSource:
    """Mask files of one structure.

    Attributes:
        structure: Structure name, or ``None`` for a single unnamed folder whose name comes
            from ``dataset.json`` (``"foreground"`` otherwise).
        folders: Folders listed together as one pool of files (SCR folds); an id found in two
            of them is a duplicate.
    """

    structure: str | None
    folders: tuple[Path, ...]


@dataclass(frozen=True)
class LayoutSpec:
    """Resolved folders of a dataset: the images folder and the mask sources."""

    layout: str
    root: Path | None
    images: Path
    masks: tuple[MaskSource, ...]


def is_image_name(path: Path) -> bool:
    """Whether ``path`` has an image extension and is not hidden (no file access)."""
    return is_image_file(path)


def visible_files(folder: Path) -> list[Path]:
    """Plain files of ``folder`` whose names do not start with a dot, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _subfolders(folder: Path) -> list[Path]:
    found = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(found, key=lambda p: natural_key(p.name))


def _has_images(folder: Path) -> bool:
    return folder.is_dir() and any(is_image_name(p) for p in visible_files(folder))


def _require_dir(path: Path, what: str, hint: str) -> Path:
    if not path.exists():
        raise InputError(f"{what} not found", path=path, hint=hint)
    if not path.is_dir():
        raise InputError(f"{what} is a file, not a folder", path=path, hint=hint)
    return path


def _require_images(folder: Path) -> Path:
    files = visible_files(folder)
    if not any(is_image_name(p) for p in files):
        found = f"{len(files)} other files" if files else "nothing"
        raise InputError(
            f"no image files in the images folder (found {found})",
            path=folder,
            hint=f"put radiographs ({', '.join(sorted(IMAGE_EXTENSIONS))}) in this folder.",
        )
    return folder


def sources_from_mask_folder(folder: Path) -> tuple[MaskSource, ...]:
    """Mask sources of a ``masks`` folder: its files (one structure) or its subfolders.

    Image files directly inside make one unnamed structure; otherwise each subfolder holding
    images is a structure named after the folder (snake_case).

    Raises:
        InputError: The folder holds no mask files at all.
    """
    if _has_images(folder):
        return (MaskSource(None, (folder,)),)
    subs = [sub for sub in _subfolders(folder) if _has_images(sub)]
    if not subs:
        raise InputError(
            "no mask files in the masks folder",
            path=folder,
            hint="put masks here as <id>.png (one structure) or <structure>/<id>.png.",
        )
    return tuple(MaskSource(structure_name(sub.name), (sub,)) for sub in subs)


def _explicit(images: PathLike, masks: MasksArg | None) -> LayoutSpec:
    image_dir = _require_images(
        _require_dir(Path(images), "images folder", "check the --images path.")
    )
    if masks is None:
        raise InputError(
            "images given without masks",
            path=image_dir,
            hint="pass --masks DIR (or --masks NAME=DIR once per structure).",
        )
    if isinstance(masks, (str, Path)):
        folder = _require_dir(Path(masks), "masks folder", "check the --masks path.")
        return LayoutSpec("explicit", None, image_dir, sources_from_mask_folder(folder))
    sources: list[MaskSource] = []
    for name, value in masks.items():
        folders = [value] if isinstance(value, (str, Path)) else list(value)
        for item in folders:
            folder = _require_dir(Path(item), f"masks folder of {name!r}", "check the path.")
            sources.append(MaskSource(structure_name(name), (folder,)))
    if not sources:
        raise InputError("no mask folders given", hint="pass --masks DIR or --masks NAME=DIR.")
    return LayoutSpec("explicit", None, image_dir, tuple(sources))


def _standard(root: Path) -> LayoutSpec:
    images = _require_images(
        _require_dir(root / "images", "images folder", f"put radiographs in {root / 'images'}.")
    )
    masks = root / "masks"
    if not masks.is_dir():
        count = sum(is_image_name(p) for p in visible_files(images))
        raise InputError(
            f"no masks folder next to the {count} images in {images}",
            path=masks,
            hint=f"put masks in {masks}/<id>.png (or <structure>/<id>.png), "
            "or pass --images DIR --masks DIR.",
        )
    return LayoutSpec("standard", root, images, sources_from_mask_folder(masks))


def _montgomery(root: Path) -> LayoutSpec:
    hint = "expected CXR_png/ and ManualMask/leftMask/, ManualMask/rightMask/ (Montgomery set)."
    images = _require_images(_require_dir(root / "CXR_png", "images folder", hint))
    manual = root / "ManualMask"
    sources = tuple(
        MaskSource(name, (_require_dir(manual / folder, "mask folder", hint),))
        for name, folder in (("left_lung", "leftMask"), ("right_lung", "rightMask"))
    )
    return LayoutSpec("montgomery", root, images, sources)


def _shenzhen(root: Path) -> LayoutSpec:
    hint = "expected CXR_png/ and mask/<id>_mask.png (Shenzhen set)."
    images = _require_images(_require_dir(root / "CXR_png", "images folder", hint))
    masks = _require_dir(root / "mask", "mask folder", hint)
    return LayoutSpec("shenzhen", root, images, (MaskSource("lungs", (masks,)),))


def _scr_mask_dirs(root: Path, max_depth: int = 3) -> list[Path]:
    """Folders named ``masks`` (up to ``max_depth`` below ``root``) holding SCR structures."""
    found: list[Path] = []
    frontier = [root]
    for _ in range(max_depth + 1):
        following: list[Path] = []
        for folder in frontier:
            for sub in _subfolders(folder):
                if sub.name.lower() == "masks":
                    names = {s.name.lower() for s in _subfolders(sub)}
                    if names & SCR_STRUCTURES:
                        found.append(sub)
                        continue
                following.append(sub)
        frontier = following
    return sorted(found)


def _jsrt_images(root: Path) -> Path | None:
    for name in _JSRT_IMAGE_DIRS:
        if _has_images(root / name):
            return root / name
    if _has_images(root):
        return root
    return None


def _looks_like_jsrt(root: Path) -> bool:
    """SCR mask folders, with JSRT images (``.IMG`` or ``JPC*`` names) or SCR's fold folders."""
    mask_dirs = _scr_mask_dirs(root)
    if not mask_dirs:
        return False
    if mask_dirs != [root / "masks"]:  # e.g. scratch/fold1/masks
        return True
    images = _jsrt_images(root)
    files = visible_files(images) if images is not None else []
    return any(p.suffix.lower() == ".img" or p.name.upper().startswith("JPC") for p in files)


def _jsrt(root: Path) -> LayoutSpec:
    hint = "expected JSRT images (.IMG or PNG) and SCR masks as masks/<structure>/<id>.gif."
    images = _jsrt_images(root)
    if images is None:
        raise InputError("no JSRT images found", path=root, hint=hint)
    mask_dirs = _scr_mask_dirs(root)
    if not mask_dirs:
        raise InputError("no SCR masks folder found", path=root, hint=hint)
    by_name: dict[str, list[Path]] = {}
    for masks in mask_dirs:
        for sub in _subfolders(masks):
            if _has_images(sub):
                by_name.setdefault(structure_name(sub.name), []).append(sub)
    sources = tuple(MaskSource(name, tuple(folders)) for name, folders in sorted(by_name.items()))
    return LayoutSpec("jsrt", root, images, sources)


_RESOLVERS = {
    "standard": _standard,
    "jsrt": _jsrt,
    "montgomery": _montgomery,
    "shenzhen": _shenzhen,
}


def _detect(root: Path) -> str:
    if (root / "CXR_png").is_dir() and (root / "ManualMask").is_dir():
        return "montgomery"
    if (root / "CXR_png").is_dir() and (root / "mask").is_dir():
        return "shenzhen"
    if _looks_like_jsrt(root):
        return "jsrt"
    if (root / "images").is_dir():
        return "standard"
    entries = [p for p in root.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise InputError(
            "the folder is empty",
            path=root,
            hint="put radiographs in images/ and masks in masks/ inside it.",
        )
    loose = [p for p in entries if p.is_file() and is_image_name(p)]
    if loose:
        raise InputError(
            f"found {len(loose)} image files directly in the folder but no images/ and "
            "masks/ folders",
            path=root,
            hint="move radiographs to images/ and masks to masks/, "
            "or pass --images DIR --masks DIR.",
        )
    raise InputError(
        "no known dataset layout (looked for images/ + masks/, CXR_png/ + ManualMask/, "
        "CXR_png/ + mask/, JSRT + SCR masks/)",
        path=root,
        hint="arrange the data as images/<id>.png + masks/<id>.png, "
        "or pass --images DIR --masks DIR.",
    )


def resolve_layout(
    root: PathLike | None,
    images: PathLike | None = None,
    masks: MasksArg | None = None,
    layout: str = "auto",
) -> LayoutSpec:
    """Find the images folder and mask sources of a dataset.

    Args:
        root: Dataset folder, or ``None`` when ``images`` and ``masks`` are given.
        images: Explicit images folder (instead of ``root``).
        masks: Explicit masks folder, or a mapping of structure name to folder(s).
        layout: ``"auto"`` to detect, or one of ``"standard"``, ``"jsrt"``, ``"montgomery"``,
            ``"shenzhen"`` to insist on it.

    Raises:
        InputError: Missing or empty folders, an unknown layout, or conflicting arguments.
    """
    if layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}", hint=f"use one of {', '.join(LAYOUTS)}.")
    if images is not None or masks is not None:
        if root is not None:
            raise InputError(
                "give either a dataset folder or --images/--masks, not both",
                path=root,
                hint="drop the folder argument, or drop --images/--masks.",
            )
        if images is None:
            raise InputError(
                "masks given without images", hint="pass --images DIR as well as --masks."
            )
        if layout not in ("auto", "standard"):
            raise InputError(
                f"layout {layout!r} cannot be combined with --images/--masks",
                hint="use --layout auto, or pass the dataset folder instead.",
            )
        return _explicit(images, masks)
    if root is None:
        raise InputError("no dataset given", hint="pass a dataset folder or --images/--masks.")
    folder = _require_dir(
        Path(root), "dataset folder", "check the path; it should hold images/ and masks/."
    )
    name = _detect(folder) if layout == "auto" else layout
    logger.debug("layout of %s: %s", folder, name)
    return _RESOLVERS[name](folder)
