"""Find a dataset on disk: list files, pair images with masks by case id, record problems.

:func:`discover` is fast: it lists folders and never reads pixels. Problems that leave nothing
to work with (missing or empty folders, no pair at all) raise :class:`~cxrseg.errors.InputError`
at once; per-file problems are recorded in :attr:`Dataset.problems` so that every one of them
can be shown together:

* image without a mask, or mask without an image ("orphan"): warning, the file is left out;
* image with masks for only some structures: error, the case is left out;
* two files with one id (``a.png`` and ``a.tif``): error, the id is left out;
* mask in a lossy format (JPEG): error;
* files without an image extension: ignored and listed in :attr:`Dataset.ignored`.

With ``strict=True`` every problem is an error. Pixel-level checks (values, sizes, unreadable
files) are done by :func:`cxrseg.data.validate`.

Label-index masks (one file per case holding values 0..K) need their labels named, either in
``DIR/dataset.json`` (nnU-Net style: ``{"labels": {"background": 0, "heart": 1, "lungs": 2}}``)
or with ``labels={"heart": 1, "lungs": 2}``; they then give one structure per label. Masks
without named labels are binary (0/1 or 0/255); :func:`validate` reports label-index values
found in them, with the ``dataset.json`` to write (structures ``label_1``..``label_K``).
"""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cxrseg.data.dataset import (
    DEFAULT_MASK_SUFFIXES,
    LOSSY_MASK_EXTENSIONS,
    Case,
    Dataset,
    Problem,
    case_id_from_mask,
    natural_key,
    structure_name,
)
from cxrseg.data.layouts import (
    LayoutSpec,
    MasksArg,
    MaskSource,
    PathLike,
    is_image_name,
    resolve_layout,
    visible_files,
)
from cxrseg.errors import InputError
from cxrseg.io import check_name, parse_json

logger = logging.getLogger(__name__)

DEFAULT_STRUCTURE = "foreground"


_LABELS_HINT = 'write {"labels": {"background": 0, "lungs": 1}} (one entry per label value).'


def parse_labels(raw: Mapping[str, object], path: Path | None = None) -> dict[str, int]:
    """Check a label mapping and return its foreground labels.

    Args:
        raw: ``{"background": 0, "lungs": 1}`` (name -> value) or ``{"1": "lungs"}``
            (value -> name, the older nnU-Net form).
        path: The file the mapping came from, for error messages.

    Returns:
        Snake_case structure name -> label value, for values above 0, sorted by value.

    Raises:
        InputError: Values that are not integers 0..255, shared values, or no label above 0.
    """
    pairs = list(raw.items())
    if pairs and all(isinstance(v, str) for _, v in pairs):
        pairs = [(str(v), k) for k, v in pairs]
    labels: dict[str, int] = {}
    for name, value in pairs:
        number = int(value) if isinstance(value, str) and value.isdigit() else value
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 255:
            raise InputError(
                f"label {name!r} has value {value!r}; label values must be integers 0..255",
                path=path,
                hint=_LABELS_HINT,
            )
        if number > 0:
            labels[check_name(structure_name(str(name)), "label", path)] = number
    if len(set(labels.values())) != len(labels):
        raise InputError(f"two labels share one value in {labels}", path=path, hint=_LABELS_HINT)
    if not labels:
        raise InputError("no label has a value above 0", path=path, hint=_LABELS_HINT)
    return dict(sorted(labels.items(), key=lambda item: item[1]))


def read_labels(path: Path) -> dict[str, int]:
    """Read the foreground labels of an nnU-Net style ``dataset.json`` (see :func:`parse_labels`).

    Raises:
        InputError: The file is not JSON, has no ``labels`` mapping, or bad label values.
    """
    try:
        content = parse_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read dataset.json ({exc})", path=path, hint=_LABELS_HINT) from exc
    raw = content.get("labels") if isinstance(content, dict) else None
    if not isinstance(raw, dict) or not raw:
        raise InputError("dataset.json has no 'labels' mapping", path=path, hint=_LABELS_HINT)
    return parse_labels(raw, path)


def _list_ids(
    folders: Sequence[Path],
    id_of: Callable[[str], str],
    ignored: list[Path],
) -> dict[str, list[Path]]:
    """Map case id -> image files found in ``folders`` (several when ids collide)."""
    found: dict[str, list[Path]] = {}
    for folder in folders:
        for path in visible_files(folder):
            if is_image_name(path):
                found.setdefault(id_of(path.stem), []).append(path)
            else:
                ignored.append(path)
    return found


def _duplicates(found: dict[str, list[Path]], what: str, problems: list[Problem]) -> set[str]:
    duplicated = {case_id for case_id, paths in found.items() if len(paths) > 1}
    for case_id in sorted(duplicated, key=natural_key):
        paths = found[case_id]
        names = ", ".join(p.name for p in paths)
        problems.append(
            Problem(
                "error",
                paths[0].parent,
                f"duplicate {what} id {case_id!r}: {names}; the case is left out",
                f"keep one of {names} (remove or rename the others).",
                "duplicate_id",
                case_id,
            )
        )
    return duplicated


def _near_miss(case_id: str, candidates: Sequence[str]) -> str:
    """A hint for an orphan: the other side's id it probably meant."""
    for other in candidates:
        if case_id.casefold() == other.casefold():
            return f" (the image {other!r} differs only in letter case: rename one of them)"
        if case_id.startswith(other) and len(case_id) > len(other):
            suffix = case_id[len(other) :]
            return f" (looks like image {other!r} + suffix {suffix!r}: add it to mask_suffixes)"
    close = difflib.get_close_matches(case_id, list(candidates), n=1, cutoff=0.85)
    return f" (closest image id: {close[0]!r})" if close else ""


def _pair(
    spec: LayoutSpec, suffixes: Sequence[str], source_names: list[str]
) -> tuple[list[Case], list[Problem], list[Path]]:
    """Cases whose image has a mask per structure; a problem for everything left out."""
    problems: list[Problem] = []
    ignored: list[Path] = []
    images = _list_ids([spec.images], lambda stem: stem, ignored)
    bad_ids = _duplicates(images, "image", problems)
    masks = [_list_masks(source, suffixes, ignored, problems, bad_ids) for source in spec.masks]
    cases: list[Case] = []
    for case_id in sorted(images, key=natural_key):
        if case_id not in bad_ids:
            case = _case(case_id, images[case_id][0], masks, spec, source_names, problems)
            if case is not None:
                cases.append(case)
    _orphan_masks(spec, images, masks, bad_ids, problems)
    return cases, problems, ignored


def _list_masks(
    source: MaskSource,
    suffixes: Sequence[str],
    ignored: list[Path],
    problems: list[Problem],
    bad_ids: set[str],
) -> dict[str, list[Path]]:
    """Mask files of one structure by case id; lossy and duplicate masks mark their case bad."""
    found = _list_ids(source.folders, lambda stem: case_id_from_mask(stem, suffixes), ignored)
    for case_id, paths in found.items():
        for path in paths:
            if path.suffix.lower() in LOSSY_MASK_EXTENSIONS:
                problems.append(
                    Problem(
                        "error",
                        path,
                        f"mask saved as {path.suffix} (lossy compression changes label values)",
                        "export the mask as PNG (or another lossless format).",
                        "lossy_mask",
                        case_id,
                    )
                )
                bad_ids.add(case_id)
    bad_ids |= _duplicates(found, "mask", problems)
    return found


def _case(
    case_id: str,
    image: Path,
    masks: list[dict[str, list[Path]]],
    spec: LayoutSpec,
    source_names: list[str],
    problems: list[Problem],
) -> Case | None:
    """The case of one image, or None (and a problem) when it lacks some structure's mask."""
    have = [i for i, found in enumerate(masks) if case_id in found]
    if not have:
        problems.append(
            Problem(
                "warning",
                image,
                "image has no mask; it is left out",
                f"add its mask as {case_id}.png to the mask folder, or remove the image.",
                "orphan_image",
                case_id,
            )
        )
        return None
    if len(have) < len(masks):
        missing = [
            f"{source_names[i]} (in {spec.masks[i].folders[0]})"
            for i in range(len(masks))
            if i not in have
        ]
        problems.append(
            Problem(
                "error",
                image,
                f"image has masks for some structures but none for {', '.join(missing)}; "
                "it is left out",
                f"add the missing mask files named {case_id}.<ext>.",
                "missing_structure",
                case_id,
            )
        )
        return None
    by_structure: dict[str, list[Path]] = {}
    for name, found in zip(source_names, masks, strict=True):
        by_structure.setdefault(name, []).append(found[case_id][0])
    return Case(case_id, image, by_structure)


def _orphan_masks(
    spec: LayoutSpec,
    images: dict[str, list[Path]],
    masks: list[dict[str, list[Path]]],
    bad_ids: set[str],
    problems: list[Problem],
) -> None:
    """A warning for each mask without an image (with the closest image id as a hint)."""
    orphan_images = [p.case_id for p in problems if p.kind == "orphan_image" and p.case_id]
    for found in masks:
        for case_id in sorted(set(found) - set(images) - bad_ids, key=natural_key):
            path = found[case_id][0]
            problems.append(
                Problem(
                    "warning",
                    path,
                    f"mask has no image with id {case_id!r}{_near_miss(case_id, orphan_images)}; "
                    "it is left out",
                    f"add the image {case_id}.<ext> to {spec.images}, or remove the mask.",
                    "orphan_mask",
                    case_id,
                )
            )


def _declared_labels(spec: LayoutSpec, labels: Mapping[str, int] | None) -> dict[str, int] | None:
    """Labels given by the caller, else those of ``dataset.json`` next to the folders, else None."""
    if labels is not None:
        return parse_labels(labels)
    folder = spec.root if spec.root is not None else spec.masks[0].folders[0].parent
    if (folder / "dataset.json").is_file():
        return read_labels(folder / "dataset.json")
    return None


def _structures(
    spec: LayoutSpec, declared: dict[str, int] | None
) -> tuple[list[str], dict[str, int] | None, str]:
    """Structure names per mask source, label values (None: binary), name of an unnamed folder.

    Per-structure folders are binary masks; declared labels only order them. A single unnamed
    folder takes the name of a single declared label, or holds label-index masks when several
    labels are declared.
    """
    if any(source.structure is not None for source in spec.masks):
        names = [source.structure or DEFAULT_STRUCTURE for source in spec.masks]
        if declared:
            rank = {name: i for i, name in enumerate(declared)}
            names = sorted(names, key=lambda name: rank.get(name, len(rank)))
        return names, None, DEFAULT_STRUCTURE
    if not declared:
        return [DEFAULT_STRUCTURE] * len(spec.masks), None, DEFAULT_STRUCTURE
    if len(declared) == 1:
        name = next(iter(declared))
        return [name] * len(spec.masks), None, name
    return [DEFAULT_STRUCTURE] * len(spec.masks), declared, DEFAULT_STRUCTURE


def discover(
    root: PathLike | None = None,
    *,
    images: PathLike | None = None,
    masks: MasksArg | None = None,
    layout: str = "auto",
    strict: bool = False,
    mask_suffixes: Sequence[str] = DEFAULT_MASK_SUFFIXES,
    labels: Mapping[str, int] | None = None,
) -> Dataset:
    """List a dataset's files and pair each image with its masks by case id.

    Args:
        root: Dataset folder in one of the supported layouts (see :mod:`cxrseg.data.layouts`).
        images: Images folder, instead of ``root``.
        masks: Masks folder (files = one structure, subfolders = one structure each) or a
            mapping ``{structure: folder or [folders]}``; several folders under one name are
            the union of one file from each.
        layout: ``"auto"`` (detect) or ``"standard"``, ``"jsrt"``, ``"montgomery"``,
            ``"shenzhen"``.
        strict: Count every problem as an error.
        mask_suffixes: Suffixes removed from mask stems to get the case id.
        labels: Structure name -> value for label-index masks; overrides ``dataset.json``.

    Returns:
        The cases in natural order, the structures, problems and ignored files.

    Raises:
        InputError: Missing or empty folders, an unknown layout, or no image with a mask.
    """
    spec = resolve_layout(root, images, masks, layout)
    ordered, label_values, unnamed = _structures(spec, _declared_labels(spec, labels))
    source_names = [source.structure or unnamed for source in spec.masks]
    cases, problems, ignored = _pair(spec, mask_suffixes, source_names)
    if label_values is not None:
        cases = [
            Case(c.case_id, c.image, {name: c.masks[unnamed] for name in label_values})
            for c in cases
        ]
        structures = list(label_values)
    else:
        structures = list(dict.fromkeys(ordered))
    if not cases:
        raise _no_pairs(spec, problems)
    if strict:
        problems = [p.as_error() for p in problems]
    folders = [spec.images, *(f for s in spec.masks for f in s.folders)]
    dataset = Dataset(
        cases=cases,
        structures=structures,
        problems=problems,
        ignored=sorted(ignored, key=lambda p: natural_key(str(p))),
        layout=spec.layout,
        root=spec.root,
        input_dirs=list(dict.fromkeys([*([spec.root] if spec.root else []), *folders])),
        labels=label_values,
        strict=strict,
    )
    logger.info(
        "%s: %d cases, structures %s, %d problems (%s layout)",
        spec.root or spec.images,
        len(cases),
        structures,
        len(problems),
        spec.layout,
    )
    return dataset


def _no_pairs(spec: LayoutSpec, problems: list[Problem]) -> InputError:
    orphans_img = [p for p in problems if p.kind == "orphan_image"]
    orphans_mask = [p for p in problems if p.kind == "orphan_mask"]
    detail = f"{len(orphans_img)} images without a mask, {len(orphans_mask)} masks without an image"
    if orphans_img and orphans_mask:
        detail += f", e.g. image {orphans_img[0].case_id!r} and mask {orphans_mask[0].case_id!r}"
    others = [str(p) for p in problems if p.kind not in ("orphan_image", "orphan_mask")][:3]
    if others:
        detail += "; " + "; ".join(others)
    folders = ", ".join(str(f) for s in spec.masks for f in s.folders)
    return InputError(
        f"no image has a mask ({detail})",
        path=spec.images,
        hint=f"name each mask like its image (<id>.png, or <id>_mask.png) in {folders}.",
    )
