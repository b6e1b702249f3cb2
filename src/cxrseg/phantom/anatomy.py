"""Phantom anatomy: lung, heart, clavicle and body outlines in normalised image coordinates.

Coordinates are ``(x, y)`` in [0, 1], ``x`` to the image's right and ``y`` down; the patient's
left is on the image's right (:data:`LEFT`). Every outline is a closed polygon (M, 2) drawn
from a generator, so a seed gives the same anatomy at every image size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

SHIFT = 4  # fractional bits of the polygon coordinates handed to OpenCV
RIGHT, LEFT = -1, 1  # lateral direction on the image of the patient's right / left side


def fill(outline: np.ndarray, h: int, w: int) -> np.ndarray:
    """Rasterise a closed outline (M, 2) of normalised (x, y) into a uint8 0/1 mask (H, W)."""
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [to_pixels(outline, h, w)], 1, lineType=cv2.LINE_8, shift=SHIFT)
    return mask


def to_pixels(points: np.ndarray, h: int, w: int) -> np.ndarray:
    """Normalised (x, y) points (M, 2) to fixed-point pixel-centre coordinates for OpenCV."""
    return np.round((points * np.array([w, h]) - 0.5) * (1 << SHIFT)).astype(np.int32)


def largest_component(mask: np.ndarray) -> np.ndarray:
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


def lung_outline(rng: np.random.Generator, side: int, width_scale: float) -> np.ndarray:
    """Closed lung outline (96, 2): superellipse, tapered apex, domed base, random harmonics.

    Local coordinates: ``u`` runs from -1 (medial) to +1 (lateral), ``v`` from -1 (apex) to +1
    (base). Taper and dome are monotone maps of one coordinate, so the outline stays simple.
    """
    top = rng.uniform(0.09, 0.15)
    height = rng.uniform(0.54, 0.62) + (rng.uniform(0.0, 0.04) if side == LEFT else 0.0)
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


def heart_outline(rng: np.random.Generator, left_lung: np.ndarray) -> np.ndarray:
    """Closed heart outline (64, 2): a tilted ellipse with harmonics resting on the left base."""
    base = float(np.percentile(left_lung[:, 1], 90))
    rx, ry = rng.uniform(0.12, 0.16), rng.uniform(0.095, 0.12)
    centre = np.array([0.5 + rng.uniform(0.05, 0.09), base - ry * rng.uniform(0.9, 1.2)])
    theta = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)
    radial = _harmonics(rng, theta, 0.04)
    points = centre + np.stack([rx * np.cos(theta), ry * np.sin(theta)], 1) * radial[:, None]
    return _rotate(points, centre, rng.uniform(10.0, 25.0))


def clavicle_outline(rng: np.random.Generator, side: int, lung: np.ndarray) -> np.ndarray:
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
    # a thin shaft (0.6 of the drawn thickness) between a club-shaped sternal end and a flat,
    # wider acromial end, as on a film: 1.3-2.4 % of the image at the shaft
    half = thickness / 2.0 * (0.6 + 0.7 * (1.0 - t) ** 3 + 0.5 * t**4)
    return np.concatenate([centre + normal * half, (centre - normal * half)[::-1]])


def body_outline(rng: np.random.Generator, right: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Closed body outline: neck, shoulders and arms leaving the image, chest wall, abdomen."""
    neck = rng.uniform(0.07, 0.1)
    shoulder = rng.uniform(0.05, 0.1)
    axilla = rng.uniform(0.36, 0.46)
    hips = rng.uniform(-0.01, 0.03)
    halves = []
    for side, lung in ((RIGHT, right), (LEFT, left)):
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
