"""Which predicted structure is compared with which reference structures (names only, no I/O).

A model and a dataset do not always name their structures alike. :func:`map_structures`
pairs every predicted structure with the reference structures whose union it is compared to:

1. ``explicit`` entries first (``--map PRED=REF[+REF...]``, parsed by :func:`parse_map`);
2. the same name on both sides;
3. ``lungs`` predicted, ``left_lung`` and ``right_lung`` annotated (JSRT/SCR, Montgomery's
   ``leftMask``/``rightMask``): ``lungs = left_lung ∪ right_lung``;
4. a reference with one structure (``foreground`` of a one-mask dataset) and a prediction with one
   structure: they are the same thing, whatever their names.

Structures left without a partner on either side are not evaluated (the caller warns); when
nothing pairs, :class:`StructureMapError` names both sides and suggests the ``--map`` that would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cxrseg.data.dataset import structure_name
from cxrseg.errors import InputError

__all__ = ["StructureMap", "StructureMapError", "map_structures", "parse_map", "suggest_map"]

#: A predicted structure that is the union of annotated ones.
UNIONS: dict[str, tuple[str, ...]] = {"lungs": ("left_lung", "right_lung")}


class StructureMapError(InputError):
    """No predicted structure pairs with a reference structure, or a ``--map`` entry is wrong."""


@dataclass(frozen=True)
class StructureMap:
    """Predicted structure -> the reference structures whose union it is compared with.

    Attributes:
        pairs: ``{predicted: (reference, ...)}`` in prediction order.
        unmatched_predictions: Predicted structures not evaluated.
        unmatched_references: Reference structures not evaluated.
        rules: ``{predicted: why}`` (``"same name"``, ``"union"``, ``"single structure"``,
            ``"--map"``).
    """

    pairs: dict[str, tuple[str, ...]]
    unmatched_predictions: list[str] = field(default_factory=list)
    unmatched_references: list[str] = field(default_factory=list)
    rules: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """The evaluated structures, named as predicted."""
        return list(self.pairs)

    def to_dict(self) -> dict[str, object]:
        """JSON form for reports."""
        return {
            "pairs": {name: list(refs) for name, refs in self.pairs.items()},
            "rules": dict(self.rules),
            "not_evaluated": {
                "predictions": list(self.unmatched_predictions),
                "references": list(self.unmatched_references),
            },
        }


def parse_map(items: Sequence[str] | str | None) -> dict[str, tuple[str, ...]]:
    """``["lungs=left_lung+right_lung", "a=b"]`` (or one comma-separated string) -> a mapping.

    Raises:
        StructureMapError: An entry without ``=`` or with an empty side.
    """
    if items is None:
        return {}
    entries = items.split(",") if isinstance(items, str) else list(items)
    parsed: dict[str, tuple[str, ...]] = {}
    for entry in (e.strip() for e in entries if e.strip()):
        pred, sep, refs = entry.partition("=")
        names = tuple(structure_name(r) for r in refs.split("+") if r.strip())
        if not sep or not pred.strip() or not names:
            raise StructureMapError(
                f"cannot read the structure map entry {entry!r}",
                hint="write PRED=REF or PRED=REF+REF, e.g. --map lungs=left_lung+right_lung",
            )
        parsed[structure_name(pred)] = names
    return parsed


def map_structures(
    predicted: Sequence[str],
    reference: Sequence[str],
    explicit: Mapping[str, Sequence[str]] | None = None,
) -> StructureMap:
    """Pair predicted with reference structures by the rules of the module doc.

    Raises:
        StructureMapError: An ``explicit`` entry names a structure absent on its side, or
            nothing pairs at all (the message lists both sides and suggests a ``--map``).
    """
    pairs: dict[str, tuple[str, ...]] = {}
    rules: dict[str, str] = {}
    for pred, refs in (explicit or {}).items():
        absent = [r for r in refs if r not in reference]
        if pred not in predicted or absent:
            wrong = f"{pred!r} is not predicted" if pred not in predicted else (
                f"{', '.join(map(repr, absent))} not in the references")  # fmt: skip
            raise StructureMapError(
                f"--map {pred}={'+'.join(refs)}: {wrong}; predictions have "
                f"{_names(predicted)}, references have {_names(reference)}",
                hint="name a predicted structure left of '=' and reference structures right.",
            )
        pairs[pred], rules[pred] = tuple(refs), "--map"
    used = {r for refs in pairs.values() for r in refs}
    for pred in predicted:
        if pred in pairs:
            continue
        union = UNIONS.get(pred, ())
        if pred in reference and pred not in used:
            pairs[pred], rules[pred] = (pred,), "same name"
        elif union and pred not in reference and all(r in reference and r not in used
                                                      for r in union):  # fmt: skip
            pairs[pred], rules[pred] = union, "union"
        used.update(pairs.get(pred, ()))
    if not pairs and len(predicted) == 1 and len(reference) == 1:
        pairs[predicted[0]], rules[predicted[0]] = (reference[0],), "single structure"
        used.add(reference[0])
    if not pairs:
        raise StructureMapError(
            f"no predicted structure matches a reference structure; predictions have "
            f"{_names(predicted)}, references have {_names(reference)}",
            hint=f"say which is which, e.g. {suggest_map(predicted, reference)}",
        )
    order = {name: k for k, name in enumerate(reference)}
    pairs = dict(sorted(pairs.items(), key=lambda item: min(order[r] for r in item[1])))
    return StructureMap(
        pairs,
        [p for p in predicted if p not in pairs],
        [r for r in reference if r not in used],
        rules,
    )


def suggest_map(predicted: Sequence[str], reference: Sequence[str]) -> str:
    """A ``--map`` option pairing each predicted name with the references that share a word."""

    def words(name: str) -> set[str]:
        return {w.rstrip("s") for w in name.split("_") if w}

    parts = []
    for pred in predicted:
        alike = [r for r in reference if words(r) & words(pred)]
        parts.append(f"{pred}={'+'.join(alike or list(reference)[:1])}")
    return "--map " + ",".join(parts)


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"
