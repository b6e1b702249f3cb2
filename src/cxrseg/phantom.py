"""Synthetic chest radiographs with known masks: the embedded default data for tests and the demo.

:func:`make_phantom` draws a posteroanterior chest radiograph from a seed: body outline, two lungs
of varied shape, size and position, heart, spine, ribs, clavicles and humeral heads, then lung
texture, global gamma / contrast / brightness, an optional smooth intensity gradient, Gaussian
noise and a slight blur. Every shape is defined in normalised coordinates, so any image size
(square or rectangular) gives the same anatomy scaled to it.

Masks follow the SCR conventions: the heart is subtracted from both lungs (the lungs never overlap
the heart), while the clavicles overlap the upper lungs. The radiological convention applies: the
patient's left lung appears on the image's right side.

:func:`write_phantom_dataset` writes ``n`` phantoms in the standard layout::

    out/images/phantom_0001.png              8-bit grayscale
    out/masks/<structure>/phantom_0001.png   0/255
    out/dataset.json                         names, label indices, seeds, size, generator
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cxrseg._version import __version__
from cxrseg.checks import check_int
from cxrseg.errors import InputError
from cxrseg.io import write_image, write_json, write_mask

__all__ = ["STRUCTURES", "Phantom", "make_phantom", "write_phantom_dataset"]

logger = logging.getLogger(__name__)

STRUCTURES = ("left_lung", "right_lung", "heart", "left_clavicle", "right_clavicle")

MIN_SIZE = 32
"""Smallest side length in pixels; below it the clavicles and heart may vanish."""
MAX_SIZE = 2048
"""Largest side length in pixels: drawing one takes about 55 bytes a pixel (225 MB at 2048)."""

_SHIFT = 4  # fractional bits of the polygon coordinates handed to OpenCV
_RIGHT, _LEFT = -1, 1  # lateral direction on the image of the patient's right / left side


@dataclass(frozen=True)
class Phantom:
    """One synthetic radiograph and its masks.

    Attributes:
        image: float32 array (H, W) in [0, 1]; bright means dense (bone, soft tissue).
        masks: uint8 0/1 array (H, W) per structure, keyed and ordered as :data:`STRUCTURES`.
        seed: The seed it was drawn from.
    """

    image: np.ndarray
    masks: dict[str, np.ndarray]
    seed: int

    def stacked_masks(self) -> np.ndarray:
        """Return the masks as one uint8 0/1 array (C, H, W) in :data:`STRUCTURES` order."""
        return np.stack([self.masks[name] for name in STRUCTURES])


def make_phantom(seed: int, size: int | tuple[int, int] = 256) -> Phantom:
    """Draw one synthetic chest radiograph and its masks.

    The same ``seed`` and ``size`` give a bit-identical result; the random draws do not depend
    on ``size`` (except the pixel noise), so one seed gives the same anatomy at every size.

    Args:
        seed: Non-negative integer seeding ``np.random.default_rng``.
        size: Side length for a square image, or ``(H, W)``; each side at least 32 pixels.

    Returns:
        The phantom: image (H, W) float32 in [0, 1] and one uint8 0/1 mask (H, W) per structure.

    Raises:
        TypeError: If ``seed`` or ``size`` is not an integer / pair of integers.
        ValueError: If ``seed`` is negative or a side is smaller than 32 pixels.
    """
    seed = check_int("seed", seed, minimum=0, hint="; pass e.g. seed=0.")
    h, w = _parse_size(size)
    rng = np.random.default_rng(seed)

    right = _lung_outline(rng, _RIGHT, width_scale=1.0)
    left = _lung_outline(rng, _LEFT, width_scale=float(rng.uniform(0.86, 0.95)))
    heart = _heart_outline(rng, left)
    clavicles = {_RIGHT: _clavicle_outline(rng, _RIGHT, right)}
    clavicles[_LEFT] = _clavicle_outline(rng, _LEFT, left)
    body = _body_outline(rng, right, left)

    heart_mask = _fill(heart, h, w)
    masks = {
        "left_lung": _largest_component(_fill(left, h, w) & (1 - heart_mask)),
        "right_lung": _largest_component(_fill(right, h, w) & (1 - heart_mask)),
        "heart": heart_mask,
        "left_clavicle": _fill(clavicles[_LEFT], h, w),
        "right_clavicle": _fill(clavicles[_RIGHT], h, w),
    }
    image = _render(rng, h, w, body, masks, (right, left), clavicles)
    return Phantom(image=image, masks=masks, seed=seed)


def write_phantom_dataset(
    out: str | Path,
    n: int,
    size: int | tuple[int, int] = 256,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    *,
    overwrite: bool = False,
) -> list[str]:
    """Write ``n`` phantoms in the standard layout under ``out``.

    Case ``i`` (1-based) uses a seed derived from ``(seed, i)``; the derived seeds are recorded in
    ``out/dataset.json``. Only the files named above are written; nothing is deleted.

    Args:
        out: Destination folder; created if missing.
        n: Number of cases, at least 1.
        size: Side length or ``(H, W)`` of every image, each side at least 32 pixels.
        seed: Non-negative base seed.
        progress: Optional ``progress(done, total)`` callback, called after each case.
        overwrite: Write into ``out`` even when ``out/images`` already holds files.

    Returns:
        The case ids written, ``phantom_0001`` ... in order.

    Raises:
        InputError: If ``out/images`` is not empty and ``overwrite`` is false, or ``out`` is a file.
        TypeError, ValueError: If ``n``, ``size`` or ``seed`` is invalid.
    """
    n = check_int("n", n, minimum=1, hint="; pass e.g. n=10.")
    seed = check_int("seed", seed, minimum=0, hint="; pass e.g. seed=0.")
    h, w = _parse_size(size)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("is a file, not a folder.", path=out, hint="choose a folder for --out.")
    images_dir = out / "images"
    if not overwrite and images_dir.is_dir() and any(images_dir.iterdir()):
        raise InputError(
            "already holds images; refusing to mix a new phantom set into it.",
            path=images_dir,
            hint="choose an empty or new folder, or pass overwrite=True (--overwrite).",
        )
    for folder in [images_dir, *(out / "masks" / name for name in STRUCTURES)]:
        folder.mkdir(parents=True, exist_ok=True)

    width = max(4, len(str(n)))
    case_ids: list[str] = []
    case_seeds: dict[str, int] = {}
    if progress is not None:
        progress(0, n)
    for i in range(1, n + 1):
        case_id = f"phantom_{i:0{width}d}"
        case_seed = _case_seed(seed, i)
        phantom = make_phantom(case_seed, (h, w))
        write_image(images_dir / f"{case_id}.png", phantom.image, bit_depth=8)
        for name in STRUCTURES:
            write_mask(out / "masks" / name / f"{case_id}.png", phantom.masks[name] * 255)
        case_ids.append(case_id)
        case_seeds[case_id] = case_seed
        if progress is not None:
            progress(i, n)

    meta = {
        "name": "cxrseg-phantom",
        "labels": {name: index for index, name in enumerate(STRUCTURES, start=1)},
        "structures": list(STRUCTURES),
        "mask_values": {"background": 0, "foreground": 255},
        "seed": seed,
        "size": [h, w],
        "num_cases": n,
        "case_seeds": case_seeds,
        "generator": f"cxrseg.phantom {__version__}",
    }
    write_json(out / "dataset.json", meta, indent=2)
    logger.debug("wrote %d phantoms of size %dx%d to %s", n, h, w, out)
    return case_ids


# --- arguments and small helpers ---


def _parse_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """Return ``(H, W)`` from an int or a pair, refusing sides below :data:`MIN_SIZE`."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        hw = (int(size), int(size))
    elif (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
    ):
        hw = (int(size[0]), int(size[1]))
    else:
        raise TypeError(f"size must be an int or an (H, W) pair of ints, got {size!r}.")
    if min(hw) < MIN_SIZE:
        raise ValueError(f"size {size!r} is too small; each side must be >= {MIN_SIZE} pixels.")
    if max(hw) > MAX_SIZE:
        raise ValueError(
            f"size {size!r} is too large; each side must be <= {MAX_SIZE} pixels (a "
            f"{MAX_SIZE} px phantom takes about 225 MB to draw; larger ones exhaust memory)."
        )
    return hw


def _case_seed(seed: int, index: int) -> int:
    """Derive the seed of case ``index`` from the base ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _fill(outline: np.ndarray, h: int, w: int) -> np.ndarray:
    """Rasterise a closed outline (M, 2) of normalised (x, y) into a uint8 0/1 mask (H, W)."""
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [_to_pixels(outline, h, w)], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return mask


def _to_pixels(points: np.ndarray, h: int, w: int) -> np.ndarray:
    """Normalised (x, y) points (M, 2) to fixed-point pixel-centre coordinates for OpenCV."""
    return np.round((points * np.array([w, h]) - 0.5) * (1 << _SHIFT)).astype(np.int32)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest 4-connected component of a uint8 0/1 mask (H, W)."""
    x, y, w, h = cv2.boundingRect(mask)  # label only the bounding box: a few times faster
    if w == 0:
        return mask
    crop = mask[y : y + h, x : x + w]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(crop, connectivity=4)
    if count <= 2:
        return mask
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    out = np.zeros_like(mask)
    out[y : y + h, x : x + w] = labels == keep
    return out


def _rotate(points: np.ndarray, centre: np.ndarray, degrees: float) -> np.ndarray:
    angle = math.radians(degrees)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return (points - centre) @ rot.T + centre


def _harmonics(rng: np.random.Generator, theta: np.ndarray, amplitude: float) -> np.ndarray:
    """Random radial factor ``1 + sum_k a_k cos(k theta + phi_k)`` for k = 2..4."""
    k = np.arange(2, 5)[:, None]
    amps = rng.uniform(-amplitude, amplitude, size=(3, 1))
    phases = rng.uniform(0.0, 2 * np.pi, size=(3, 1))
    return 1.0 + (amps * np.cos(k * theta[None, :] + phases)).sum(axis=0)


# --- anatomy, in normalised (x, y) image coordinates: x to the image's right, y down ---


def _lung_outline(rng: np.random.Generator, side: int, width_scale: float) -> np.ndarray:
    """Closed lung outline (96, 2): superellipse, tapered apex, domed base, random harmonics.

    Local coordinates: ``u`` runs from -1 (medial) to +1 (lateral), ``v`` from -1 (apex) to +1
    (base). Taper and dome are monotone maps of one coordinate, so the outline stays simple.
    """
    top = rng.uniform(0.09, 0.15)
    height = rng.uniform(0.54, 0.62) + (rng.uniform(0.0, 0.04) if side == _LEFT else 0.0)
    width = rng.uniform(0.3, 0.36) * width_scale
    medial = 0.5 + side * rng.uniform(0.035, 0.06)
    exponent = rng.uniform(2.3, 3.2)
    taper = rng.uniform(0.35, 0.55)
    dome = rng.uniform(0.12, 0.25)
    tilt = rng.uniform(-4.0, 4.0)

    theta = np.linspace(0.0, 2 * np.pi, 96, endpoint=False)
    cos, sin = np.cos(theta), np.sin(theta)
    radial = _harmonics(rng, theta, 0.03)
    u = np.sign(cos) * np.abs(cos) ** (2 / exponent) * radial
    v = np.sign(sin) * np.abs(sin) ** (2 / exponent) * radial
    u = -1.0 + (u + 1.0) * (taper + (1.0 - taper) * np.clip((v + 1.0) / 2.0, 0.0, None) ** 0.7)
    v = v - dome * np.clip(1.0 - (u + 0.15) ** 2, 0.0, 1.0) * np.clip(v, 0.0, None) ** 2
    points = np.stack([medial + side * (u + 1.0) / 2.0 * width, top + (v + 1.0) / 2.0 * height], 1)
    centre = np.array([medial + side * width / 2.0, top + height / 2.0])
    return _rotate(points, centre, side * tilt)


def _heart_outline(rng: np.random.Generator, left_lung: np.ndarray) -> np.ndarray:
    """Closed heart outline (64, 2): a tilted ellipse with harmonics resting on the left base."""
    base = float(np.percentile(left_lung[:, 1], 90))
    rx, ry = rng.uniform(0.12, 0.16), rng.uniform(0.095, 0.12)
    centre = np.array([0.5 + rng.uniform(0.05, 0.09), base - ry * rng.uniform(0.9, 1.2)])
    theta = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)
    radial = _harmonics(rng, theta, 0.04)
    points = centre + np.stack([rx * np.cos(theta), ry * np.sin(theta)], 1) * radial[:, None]
    return _rotate(points, centre, rng.uniform(10.0, 25.0))


def _clavicle_outline(rng: np.random.Generator, side: int, lung: np.ndarray) -> np.ndarray:
    """Closed clavicle band (64, 2) from the sternum across the lung apex to the shoulder."""
    apex = float(lung[:, 1].min())
    medial = np.array([0.5 + side * rng.uniform(0.04, 0.07), apex + rng.uniform(0.07, 0.1)])
    lateral = np.array([0.5 + side * rng.uniform(0.38, 0.44), apex + rng.uniform(-0.03, 0.0)])
    sag = rng.uniform(0.01, 0.03)
    thickness = rng.uniform(0.022, 0.03)

    t = np.linspace(0.0, 1.0, 32)[:, None]
    centre = medial + (lateral - medial) * t
    centre[:, 1:] += sag * np.sin(2 * np.pi * t)  # gentle S-curve
    tangent = np.gradient(centre, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    half = thickness / 2.0 * (1.0 + 0.35 * (1.0 - t) ** 2 + 0.25 * t**4)  # club-shaped ends
    return np.concatenate([centre + normal * half, (centre - normal * half)[::-1]])


def _body_outline(rng: np.random.Generator, right: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Closed body outline: neck, shoulders and arms leaving the image, chest wall, abdomen."""
    neck = rng.uniform(0.07, 0.1)
    shoulder = rng.uniform(0.05, 0.1)
    axilla = rng.uniform(0.36, 0.46)
    hips = rng.uniform(-0.01, 0.03)
    halves = []
    for side, lung in ((_RIGHT, right), (_LEFT, left)):
        chest = float(np.abs(lung[:, 0] - 0.5).max()) + rng.uniform(0.03, 0.07)
        lateral = np.array([neck, neck * 1.25, 0.25, 0.56, 0.56, chest, chest + 0.01, chest + hips])
        ys = np.array(
            [-0.02, shoulder * 0.6, shoulder, shoulder + 0.04, axilla, axilla + 0.1, 0.7, 1.1]
        )
        halves.append(np.stack([0.5 + side * lateral, ys], 1))
    outline = np.concatenate([halves[0], halves[1][::-1]])
    for _ in range(2):  # Chaikin corner cutting rounds the shoulders and the axillae
        after = np.roll(outline, -1, axis=0)
        cut = np.stack([0.75 * outline + 0.25 * after, 0.25 * outline + 0.75 * after], 1)
        outline = cut.reshape(-1, 2)
    return outline


# --- rendering ---


class _Grid:
    """Normalised pixel-centre coordinates of an (H, W) image: ``x`` (1, W), ``y`` (H, 1)."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.s = math.sqrt(h * w)  # unit of blur widths and line thicknesses
        self.x = ((np.arange(w, dtype=np.float32) + 0.5) / w)[None, :]
        self.y = ((np.arange(h, dtype=np.float32) + 0.5) / h)[:, None]


def _smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (H, W); large sigmas run on a downsampled copy to stay fast."""
    if sigma <= 0:
        return image
    h, w = image.shape
    factor = max(1, int(sigma // 2))
    if factor == 1:
        return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    small = cv2.resize(
        image, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA
    )
    small = cv2.GaussianBlur(small, (0, 0), sigma / factor, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _texture(rng: np.random.Generator, grid: _Grid) -> np.ndarray:
    """Smooth random field (H, W) of two scales from fixed-size draws: the same at every size."""
    coarse = rng.standard_normal((20, 20)).astype(np.float32)
    fine = rng.standard_normal((44, 44)).astype(np.float32)
    both = 0.6 * cv2.resize(coarse, (44, 44), interpolation=cv2.INTER_CUBIC) + 0.4 * fine
    return cv2.resize(both, (grid.w, grid.h), interpolation=cv2.INTER_CUBIC)


def _render(
    rng: np.random.Generator,
    h: int,
    w: int,
    body: np.ndarray,
    masks: dict[str, np.ndarray],
    lungs: tuple[np.ndarray, np.ndarray],
    clavicles: dict[int, np.ndarray],
) -> np.ndarray:
    """Compose the radiograph (H, W) float32 in [0, 1] from the outlines and masks."""
    grid = _Grid(h, w)
    body_mask = _fill(body, h, w)
    depth = cv2.distanceTransform(body_mask, cv2.DIST_L2, 3)
    across = np.sqrt(np.clip(1.0 - ((grid.x - 0.5) / 0.55) ** 2, 0.0, 1.0))
    tissue = _smooth(1.0 - np.exp(-depth / (0.05 * grid.s)), 0.004 * grid.s) * (0.6 + 0.4 * across)
    tissue = tissue * (1.0 + 0.06 * _smooth(masks["heart"].astype(np.float32), 0.01 * grid.s))
    air = _air(rng, grid, masks, lungs)
    bones = _bones(rng, grid, masks, lungs, clavicles) * body_mask

    # attenuation, soft-clipped at the top so dense bone over soft tissue does not saturate
    density = (
        rng.uniform(0.85, 0.95) * tissue
        - rng.uniform(0.55, 0.72) * air
        + rng.uniform(0.15, 0.22) * bones
    )
    image = np.where(density < 0.8, density, 0.8 + 0.2 * np.tanh((density - 0.8) / 0.2))

    # acquisition: gamma, contrast, brightness, optional smooth gradient, noise, slight blur
    image = np.clip(image, 0.0, 1.0) ** rng.uniform(0.8, 1.25)
    image = (image - 0.5) * rng.uniform(0.85, 1.15) + 0.5 + rng.uniform(-0.05, 0.05)
    if rng.random() < 0.5:
        angle = rng.uniform(0.0, 2 * np.pi)
        ramp = (grid.x - 0.5) * math.cos(angle) + (grid.y - 0.5) * math.sin(angle)
        image = image + rng.uniform(0.03, 0.1) * ramp * body_mask
    noise, blur = rng.uniform(0.008, 0.025), rng.uniform(0.5, 0.8)
    # the only size-dependent draw comes last, so the anatomy is the same at every size
    image = image + noise * rng.standard_normal((h, w), dtype=np.float32)
    image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), blur)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _air(
    rng: np.random.Generator,
    grid: _Grid,
    masks: dict[str, np.ndarray],
    lungs: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Air (H, W): darkest mid-lung, lighter at the bases and behind the heart; lung texture."""
    s = grid.s
    fields = masks["left_lung"] | masks["right_lung"]
    shapes = _fill(lungs[0], grid.h, grid.w) | _fill(lungs[1], grid.h, grid.w)
    behind_heart = shapes & masks["heart"]
    inner = cv2.distanceTransform(fields, cv2.DIST_L2, 3)
    air = (1.0 - np.exp(-inner / (0.03 * s))) * (1.0 - 0.3 * np.clip((grid.y - 0.3) / 0.5, 0, 1))
    air = _smooth((air + 0.12 * behind_heart).astype(np.float32), 0.006 * s)
    air = air * (1.0 + rng.uniform(0.08, 0.16) * _texture(rng, grid))
    apex = min(float(lung[:, 1].min()) for lung in lungs)
    trachea_x = 0.5 + rng.uniform(-0.01, 0.01)
    trachea = np.exp(-(((grid.x - trachea_x) / 0.014) ** 2)) * (grid.y < apex + 0.1)
    return air + 0.35 * _smooth(trachea.astype(np.float32), 0.01 * s)


def _bones(
    rng: np.random.Generator,
    grid: _Grid,
    masks: dict[str, np.ndarray],
    lungs: tuple[np.ndarray, np.ndarray],
    clavicles: dict[int, np.ndarray],
) -> np.ndarray:
    """Bone (H, W): spine with vertebrae, ribs (clearest over the lungs), clavicles, humeri."""
    h, w, s = grid.h, grid.w, grid.s
    spine_x, spine_w = 0.5 + rng.uniform(-0.01, 0.01), rng.uniform(0.035, 0.045)
    period = rng.uniform(0.04, 0.05)
    vertebrae = 0.7 + 0.3 * np.cos(np.pi * (grid.y - rng.uniform(0, period)) / period) ** 2
    spine = np.exp(-(((grid.x - spine_x) / spine_w) ** 4)) * vertebrae

    # posterior and anterior ribs on separate uint8 canvases (OpenCV anti-aliases only uint8)
    posterior_ribs, anterior_ribs = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    thick = max(1, round(0.014 * s))
    apex = min(float(lung[:, 1].min()) for lung in lungs)
    spacing = rng.uniform(0.05, 0.06)
    t = np.linspace(0.0, 1.0, 20)[:, None]
    for side, lung in zip((_RIGHT, _LEFT), lungs, strict=True):
        reach = float(np.abs(lung[:, 0] - 0.5).max()) + 0.01
        for k in range(10):
            y0 = apex - 0.02 + k * spacing + rng.uniform(-0.005, 0.005)
            posterior_x = spine_x + side * (0.03 + t * (reach - 0.03))
            posterior = np.hstack([posterior_x, y0 - 0.04 * np.sin(np.pi * t) + 0.07 * t**2])
            anterior_x = 0.5 + side * (reach - t * (reach - 0.14))
            anterior = np.hstack([anterior_x, y0 + 0.05 + 0.12 * t - 0.02 * np.sin(np.pi * t)])
            lines = ((posterior_ribs, posterior), (anterior_ribs, anterior))
            for canvas, line in lines[: 2 if k < 7 else 1]:
                pts = _to_pixels(line, h, w)
                cv2.polylines(canvas, [pts], False, 255, thick, cv2.LINE_AA, shift=_SHIFT)
    fields = (masks["left_lung"] | masks["right_lung"]).astype(np.float32)
    thorax = np.clip(_smooth(fields, 0.05 * s) * 2.0, 0.0, 1.0)
    ribs = (posterior_ribs + 0.45 * anterior_ribs.astype(np.float32)) / 255.0
    bones = 0.5 * spine + ribs * (0.2 + 0.5 * thorax)

    humeri = np.zeros((h, w), np.uint8)
    axes = (round(0.08 * w * (1 << _SHIFT)), round(0.08 * h * (1 << _SHIFT)))
    for side, clavicle in clavicles.items():
        end = clavicle[np.argmax(side * clavicle[:, 0])]
        cx, cy = _to_pixels(end[None] + [[side * 0.04, 0.07]], h, w)[0]
        cv2.ellipse(humeri, (int(cx), int(cy)), axes, 0, 0, 360, 90, -1, cv2.LINE_AA, _SHIFT)
    bones = bones + humeri.astype(np.float32) / 255.0
    bones = bones + 1.2 * (masks["left_clavicle"] | masks["right_clavicle"])
    return _smooth(bones.astype(np.float32), 0.003 * s)
