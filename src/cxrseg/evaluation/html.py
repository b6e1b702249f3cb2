"""The evaluation report: one self-contained HTML file.

Everything the page needs is inside it: CSS and a few lines of script inline, box plots as inline
SVG, thumbnails as PNG ``data:`` URIs. It loads nothing from the network and opens from a file
share, a mail attachment or a CI artifact alike. Sections:

1. what was compared (paths, counts, pixel spacing, ids left out) and the empty-mask rule;
2. summary table per structure and metric: mean ± std, median, 5th percentile, n, NaN count;
3. box plots per metric, one box per structure (quartiles, median line, whiskers at 1.5 IQR,
   outliers as dots, mean as a diamond);
4. the worst cases first, by ascending mean Dice over the evaluated structures, each with a
   triptych: the image; the reference filled and outlined in green; the prediction filled and
   outlined in red with the reference outline in green over it (yellow where they coincide);
5. every case and structure in a table sortable by clicking a column header.

All text from file names and structure names is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cxrseg._version import __version__
from cxrseg.evaluation.page_assets import CSS, SCRIPT
from cxrseg.evaluation.results import EMPTY_MASK_RULE, UNITS, EvaluationResult
from cxrseg.io import atomic_write
from cxrseg.metrics import mask_boundary
from cxrseg.report.contact_sheet import overlay

__all__ = [
    "COLORS",
    "box_plot_svg",
    "png_data_uri",
    "render_report",
    "triptych",
    "triptych_data_uri",
    "write_report",
]

COLORS = {"reference": (40, 200, 60), "prediction": (230, 40, 40), "both": (250, 220, 30)}
"""Overlay colours (RGB): reference green, prediction red, coinciding outlines yellow."""
_GAP = 4


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fmt(value: float, metric: str) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.3f}" if metric in ("dice", "jaccard") else f"{value:.2f}"


def _td(value: float, metric: str, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return f'<td{cls} data-value="{float(value)!r}">{_fmt(value, metric)}</td>'


# --- thumbnails ---


def _shrink(array: np.ndarray, side: int) -> np.ndarray:
    import cv2

    height, width = array.shape
    scale = min(1.0, side / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(array.astype(np.float32), size, interpolation=cv2.INTER_AREA)


def triptych(
    image: np.ndarray,
    reference: Mapping[str, np.ndarray],
    prediction: Mapping[str, np.ndarray],
    *,
    side: int = 160,
) -> np.ndarray:
    """Image, reference overlay and prediction overlay side by side.

    Args:
        image: (H, W) float image in [0, 1].
        reference: (H, W) reference mask per structure; non-zero is foreground.
        prediction: (H, W) predicted mask per structure.
        side: Longest side of each panel in pixels (images are only ever shrunk).

    Returns:
        (h, 3 w + 8, 3) uint8 RGB: the image; the reference in green; the prediction in red
        with the reference outline in green (yellow where the outlines coincide).

    Raises:
        ValueError: ``side`` below 16, or a mask whose shape differs from the image.
    """
    if side < 16:
        raise ValueError(f"side must be at least 16 pixels, got {side}; e.g. side=160")
    for name, mask in [*reference.items(), *prediction.items()]:
        if mask.shape != image.shape:
            raise ValueError(
                f"mask {name!r} has shape {mask.shape} but the image has {image.shape}; "
                "restore the mask to the image size first"
            )
    small = np.clip(_shrink(image, side), 0.0, 1.0)
    ref = {name: _shrink(m != 0, side) >= 0.5 for name, m in reference.items()}
    pred = {name: _shrink(m != 0, side) >= 0.5 for name, m in prediction.items()}
    gray = overlay(small, {})
    ref_panel = overlay(small, ref, dict.fromkeys(ref, COLORS["reference"]))
    pred_panel = overlay(small, pred, dict.fromkeys(pred, COLORS["prediction"]))
    ref_edge = np.zeros(small.shape, dtype=bool)
    pred_edge = np.zeros(small.shape, dtype=bool)
    for mask in ref.values():
        ref_edge |= mask_boundary(mask)
    for mask in pred.values():
        pred_edge |= mask_boundary(mask)
    pred_panel[ref_edge] = COLORS["reference"]
    pred_panel[ref_edge & pred_edge] = COLORS["both"]
    gap = np.full((small.shape[0], _GAP, 3), 255, dtype=np.uint8)
    return np.concatenate([gray, gap, ref_panel, gap, pred_panel], axis=1)


def png_data_uri(pixels: np.ndarray) -> str:
    """Encode a uint8 (H, W) or (H, W, 3) array as a ``data:image/png;base64,...`` URI."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def triptych_data_uri(
    image: np.ndarray,
    reference: Mapping[str, np.ndarray],
    prediction: Mapping[str, np.ndarray],
    *,
    side: int = 160,
) -> str:
    """:func:`triptych` as a PNG data URI."""
    return png_data_uri(triptych(image, reference, prediction, side=side))


# --- box plots ---


def _ticks(low: float, high: float, count: int = 5) -> np.ndarray:
    """Round tick values covering ``[low, high]`` (steps of 1, 2 or 5 times a power of ten)."""
    if high <= low:
        pad = abs(low) * 0.05 or 0.05
        low, high = low - pad, high + pad
    raw = (high - low) / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = math.floor(low / step), math.ceil(high / step)
    return np.arange(first, last + 1) * step


def box_plot_svg(groups: Mapping[str, Sequence[float]], *, title: str, unit: str = "") -> str:
    """Inline SVG box plot, one box per group (structure), NaN and infinite values left out.

    Boxes span the quartiles with a line at the median, whiskers reach the furthest value within
    1.5 interquartile ranges, values beyond are dots and the mean is a diamond. Each box is
    labelled with its group name and number of values.
    """
    slot, left, top, plot_h, width_min = 96, 54, 30, 170, 240
    width = max(width_min, left + slot * len(groups) + 12)
    clean = {
        k: np.asarray([v for v in vals if math.isfinite(v)], float) for k, vals in groups.items()
    }
    finite = np.concatenate([v for v in clean.values()] + [np.empty(0)])
    ticks = _ticks(float(finite.min()), float(finite.max())) if finite.size else _ticks(0.0, 1.0)
    lo, hi = float(ticks[0]), float(ticks[-1])

    def y(value: float) -> float:
        return top + plot_h * (hi - value) / (hi - lo)

    label = f"{title} ({unit})" if unit else title
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + plot_h + 46}" '
        f'role="img" aria-label="{_e(label)}" font-family="system-ui,sans-serif" font-size="11">',
        f'<text x="{width / 2:.0f}" y="16" text-anchor="middle" font-size="13" '
        f'font-weight="600">{_e(label)}</text>',
    ]
    for tick in ticks:
        parts.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="#e3e6ee"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end">{float(tick):.4g}</text>'
        )
    for index, (name, values) in enumerate(clean.items()):
        cx = left + slot * index + slot / 2
        n_text = f"n={values.size}"
        parts.append(
            f'<text x="{cx:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_e(name)}</text>'
            f'<text x="{cx:.1f}" y="{top + plot_h + 30}" text-anchor="middle" '
            f'fill="#667">{n_text}</text>'
        )
        if values.size == 0:
            continue
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        reach = 1.5 * (q3 - q1)
        inside = values[(values >= q1 - reach) & (values <= q3 + reach)]
        w_lo, w_hi = float(inside.min()), float(inside.max())
        mean = float(values.mean())
        parts.append(
            f"<g><title>{_e(name)}: median {med:.4g}, quartiles {q1:.4g}–{q3:.4g}, "
            f"mean {mean:.4g}, n={values.size}</title>"
            f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(w_lo):.1f}" y2="{y(w_hi):.1f}" '
            f'stroke="#456"/><rect x="{cx - 22:.1f}" y="{y(q3):.1f}" width="44" '
            f'height="{max(y(q1) - y(q3), 1):.1f}" fill="#cfe0f5" stroke="#456"/>'
            f'<line x1="{cx - 22:.1f}" x2="{cx + 22:.1f}" y1="{y(med):.1f}" y2="{y(med):.1f}" '
            f'stroke="#123" stroke-width="2"/>'
        )
        for whisker in (w_lo, w_hi):
            parts.append(
                f'<line x1="{cx - 10:.1f}" x2="{cx + 10:.1f}" y1="{y(whisker):.1f}" '
                f'y2="{y(whisker):.1f}" stroke="#456"/>'
            )
        for value in values[(values < w_lo) | (values > w_hi)]:
            parts.append(f'<circle cx="{cx:.1f}" cy="{y(value):.1f}" r="2.5" fill="#c33"/>')
        my = y(mean)
        parts.append(
            f'<path d="M{cx:.1f} {my - 4:.1f}L{cx + 4:.1f} {my:.1f}L{cx:.1f} {my + 4:.1f}'
            f'L{cx - 4:.1f} {my:.1f}Z" fill="#f80" stroke="#123" stroke-width=".5"/></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


# --- page ---


def _summary_table(result: EvaluationResult) -> str:
    rows = []
    for name in result.structures:
        for i, metric in enumerate(result.metrics):
            s = result.summary[name][metric]
            head = (
                f'<td class="id" rowspan="{len(result.metrics)}">{_e(name)}</td>' if i == 0 else ""
            )
            unit = f" ({_e(UNITS[metric])})" if UNITS[metric] else ""
            rows.append(
                f'<tr>{head}<td class="id">{_e(metric)}{unit}</td>'
                f"<td>{_fmt(s['mean'], metric)} ± {_fmt(s['std'], metric)}</td>"
                f"<td>{_fmt(s['median'], metric)}</td><td>{_fmt(s['p05'], metric)}</td>"
                f"<td>{int(s['n'])}</td><td>{int(s['n_nan'])}</td></tr>"
            )
    return (
        '<table id="summary"><thead><tr><th class="id">structure</th><th class="id">metric</th>'
        "<th>mean ± std</th><th>median</th><th>5th percentile</th><th>n</th><th>NaN</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _worst_table(result: EvaluationResult, thumbnails: Mapping[str, str]) -> str:
    mm = "hd95_mm" in result.metrics and all(c.spacing is not None for c in result.cases)
    distance = "hd95_mm" if mm else "hd95"
    rows = []
    for rank, case in enumerate(result.worst(len(thumbnails)), start=1):
        lines = "".join(
            f'<tr><td class="id">{_e(n)}</td>{_td(case.metrics[n]["dice"], "dice")}'
            f"{_td(case.metrics[n][distance], distance)}</tr>"
            for n in result.structures
        )
        rows.append(
            f'<tr><td>{rank}</td><td class="id">{_e(case.case_id)}'
            f"{_codes(result, case.case_id)}</td>"
            f"{_td(case.mean_dice, 'dice', 'mean-dice')}"
            f'<td><img class="thumb" src="{thumbnails[case.case_id]}" '
            f'alt="{_e(case.case_id)}: image, reference, prediction"></td>'
            f'<td><table class="inner"><thead><tr><th class="id">structure</th><th>Dice</th>'
            f"<th>HD95 ({UNITS[distance]})</th></tr></thead><tbody>{lines}</tbody></table>"
            "</td></tr>"
        )
    return (
        '<table id="worst-cases"><thead><tr><th>rank</th><th class="id">id</th>'
        '<th>mean Dice</th><th class="id">image · reference · prediction</th>'
        '<th class="id">per structure</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _all_table(result: EvaluationResult) -> str:
    heads = "".join(
        f"<th>{_e(m)}{' (' + UNITS[m] + ')' if UNITS[m] else ''}</th>" for m in result.metrics
    )
    rows = [
        f'<tr><td class="id">{_e(case.case_id)}</td><td class="id">{_e(name)}</td>'
        + "".join(_td(case.metrics[name][m], m) for m in result.metrics)
        + f'<td class="id">{_codes(result, case.case_id)}</td></tr>'
        for case in result.cases
        for name in result.structures
    ]
    return (
        '<table id="all-cases" class="sortable"><thead><tr><th class="id">id</th>'
        f'<th class="id">structure</th>{heads}<th class="id">flags</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _codes(result: EvaluationResult, case_id: str) -> str:
    codes = dict.fromkeys(flag["code"] for flag in result.flags.get(case_id, []))
    return f' <span class="flag">{_e(", ".join(codes))}</span>' if codes else ""


def _flags_section(result: EvaluationResult) -> str:
    """Cases ``cxrseg predict`` flagged, worst first, with their Dice: do flags catch them?"""
    if not result.flags:
        return "<p>No quality flags: the predictions were not made by cxrseg predict.</p>"
    flagged = [case for case in result.worst() if result.flags.get(case.case_id)]
    rows = "".join(
        f'<tr><td class="id">{_e(c.case_id)}</td>{_td(c.mean_dice, "dice")}<td class="id">'
        + "<br>".join(_e(f"{f['code']}: {f['message']}") for f in result.flags[c.case_id])
        + "</td></tr>"
        for c in flagged
    )
    head = f"<p>{len(flagged)} of {len(result.cases)} cases flagged by cxrseg predict.</p>"
    return head + (
        '<table id="flagged"><thead><tr><th class="id">id</th><th>mean Dice</th>'
        f'<th class="id">flags</th></tr></thead><tbody>{rows}</tbody></table>'
        if flagged
        else ""
    )


def _what_was_compared(result: EvaluationResult) -> str:
    """The paths, counts and structure pairs, then the ids left out."""
    known = sum(case.spacing is not None for case in result.cases)
    pairs = result.structure_map.get("pairs") or {n: [n] for n in result.structures}
    meta = [
        ("predictions", result.predictions.resolve()),
        ("references", result.references.resolve()),
        ("cases", len(result.cases)),
        (
            "structures",
            ", ".join(n if r == [n] else f"{n} = {' + '.join(r)}" for n, r in pairs.items()),
        ),  # fmt: skip
        ("pixel spacing known", f"{known} of {len(result.cases)} cases"),
        ("cxrseg", __version__),
    ]
    notes = [
        f"{label}: {', '.join(ids)}"
        for label, ids in (
            ("reference cases without a prediction (left out)", result.missing_predictions),
            ("predictions without a reference case (left out)", result.missing_references),
        )
        if ids
    ]
    rows = "".join(f'<tr><th class="id">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in meta)
    return f'<table class="meta"><tbody>{rows}</tbody></table>' + "".join(
        f'<p class="note">{_e(note)}</p>' for note in notes
    )


def render_report(
    result: EvaluationResult, thumbnails: Mapping[str, str], *, title: str = "cxrseg evaluation"
) -> str:
    """The report page as a string.

    Args:
        result: What :func:`cxrseg.evaluation.evaluate` computed.
        thumbnails: Triptych data URI per case id, for the worst cases in order (see
            :func:`triptych_data_uri`); their number is the length of the worst-case table.
        title: Page title.
    """
    plots = "".join(
        box_plot_svg(
            {n: [c.metrics[n][metric] for c in result.cases] for n in result.structures},
            title=metric,
            unit=UNITS[metric],
        )
        for metric in result.metrics
    )
    legend = "".join(
        f'<span class="swatch" style="background:rgb{color}"></span>{_e(name)}'
        for name, color in COLORS.items()
    )
    body = [
        f"<h1>{_e(title)}</h1>",
        _what_was_compared(result),
        f"<p><b>Empty masks.</b> {_e(EMPTY_MASK_RULE)}</p>",
        "<h2>Summary</h2>",
        _summary_table(result),
        "<h2>Distributions</h2><p>Box: quartiles, line: median, whiskers: furthest value within "
        "1.5 interquartile ranges, dots: values beyond, diamond: mean. Undefined (NaN) values "
        "are left out.</p>",
        f'<div class="plots">{plots}</div>',
        "<h2>Quality flags</h2>",
        _flags_section(result),
        f"<h2>Worst {len(thumbnails)} cases</h2>",
        "<p>Sorted by ascending mean Dice over " + _e(", ".join(result.structures)) + ". "
        "Thumbnails: the image; the reference; the prediction with the reference outline. "
        f"Colours: {legend}</p>",
        _worst_table(result, thumbnails),
        "<h2>All cases</h2><p>Click a column header to sort.</p>",
        _all_table(result),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{_e(title)}</title><style>{CSS}</style></head>'
        f"<body>{''.join(body)}<script>{SCRIPT}</script></body></html>\n"
    )


def write_report(
    path: str | Path,
    result: EvaluationResult,
    thumbnails: Mapping[str, str],
    *,
    title: str = "cxrseg evaluation",
) -> Path:
    """Write :func:`render_report` to ``path`` atomically and return the path."""
    path = Path(path)
    page = render_report(result, thumbnails, title=title)
    with atomic_write(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
