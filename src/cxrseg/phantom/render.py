"""Phantom rendering: attenuation of soft tissue, air and bone, then acquisition effects.

:func:`render` composes the radiograph from the outlines and masks drawn by
:mod:`cxrseg.phantom.anatomy`: soft tissue thickening towards the body's middle, air darkest in
mid-lung with texture, bone (spine, ribs, clavicles, humeral heads), then gamma, contrast,
brightness, an optional gradient, noise and a slight blur.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from cxrseg.phantom.anatomy import LEFT, RIGHT, SHIFT, fill, to_pixels


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


def render(
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
    body_mask = fill(body, h, w)
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
    shapes = fill(lungs[0], grid.h, grid.w) | fill(lungs[1], grid.h, grid.w)
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
    for side, lung in zip((RIGHT, LEFT), lungs, strict=True):
        reach = float(np.abs(lung[:, 0] - 0.5).max()) + 0.01
        for k in range(10):
            y0 = apex - 0.02 + k * spacing + rng.uniform(-0.005, 0.005)
            posterior_x = spine_x + side * (0.03 + t * (reach - 0.03))
            posterior = np.hstack([posterior_x, y0 - 0.04 * np.sin(np.pi * t) + 0.07 * t**2])
            anterior_x = 0.5 + side * (reach - t * (reach - 0.14))
            anterior = np.hstack([anterior_x, y0 + 0.05 + 0.12 * t - 0.02 * np.sin(np.pi * t)])
            lines = ((posterior_ribs, posterior), (anterior_ribs, anterior))
            for canvas, line in lines[: 2 if k < 7 else 1]:
                pts = to_pixels(line, h, w)
                cv2.polylines(canvas, [pts], False, 255, thick, cv2.LINE_AA, shift=SHIFT)
    fields = (masks["left_lung"] | masks["right_lung"]).astype(np.float32)
    thorax = np.clip(_smooth(fields, 0.05 * s) * 2.0, 0.0, 1.0)
    ribs = (posterior_ribs + 0.45 * anterior_ribs.astype(np.float32)) / 255.0
    bones = 0.5 * spine + ribs * (0.2 + 0.5 * thorax)

    humeri = np.zeros((h, w), np.uint8)
    axes = (round(0.08 * w * (1 << SHIFT)), round(0.08 * h * (1 << SHIFT)))
    for side, clavicle in clavicles.items():
        end = clavicle[np.argmax(side * clavicle[:, 0])]
        cx, cy = to_pixels(end[None] + [[side * 0.04, 0.07]], h, w)[0]
        cv2.ellipse(humeri, (int(cx), int(cy)), axes, 0, 0, 360, 90, -1, cv2.LINE_AA, SHIFT)
    bones = bones + humeri.astype(np.float32) / 255.0
    return _smooth((bones + _clavicles(rng, grid, masks)).astype(np.float32), 0.003 * s)


def _clavicles(rng: np.random.Generator, grid: _Grid, masks: dict[str, np.ndarray]) -> np.ndarray:
    """Clavicle bone (H, W): a cortical tube, bright at its rims and faint inside, about as
    dense as a rib (0.75-1.1 against the ribs' 0.2-0.7 over the lungs), so it stands out from
    the lungs and ribs it crosses no more than on a real film."""
    both = masks["left_clavicle"] | masks["right_clavicle"]
    depth = cv2.distanceTransform(both, cv2.DIST_L2, 3)
    rim = np.exp(-depth / max(0.004 * grid.s, 0.5))
    return rng.uniform(0.75, 1.1) * both * (0.5 + 0.5 * rim)
