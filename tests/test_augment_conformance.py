"""Conformance with Augmentor 0.2.12: same mesh geometry, same pixels within a grey level.

Augmentor's random draws are patched to return known values, so its mesh and ours come from the
same displacements. Its mesh is captured where it reaches ``PIL.Image.Image.transform`` and
turned into a map with PIL's quad formula (written out independently here), so the geometry is
compared without going through PIL's bicubic filter.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from cxrseg.augment.geometry import gaussian_sigmas, mesh_map
from cxrseg.augment.resample_cv import warp

Augmentor = pytest.importorskip("Augmentor")
Operations = pytest.importorskip("Augmentor.Operations")
Image = pytest.importorskip("PIL.Image")


def smooth_image(height: int, width: int, seed: int) -> np.ndarray:
    """A radiograph-like uint8 image: soft blobs on a gradient, no sharp edges."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    out = 60.0 + 80.0 * x / width + 30.0 * y / height
    for _ in range(6):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.08, 0.25) * min(height, width)
        out += rng.uniform(-60, 60) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    return np.clip(out, 0, 255).astype(np.uint8)


def pil_mesh_map(mesh: list, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """PIL's MESH backward map (quad transform per box) in pixel-index units."""
    map_x = np.full((height, width), np.nan)
    map_y = np.full((height, width), np.nan)
    for (x0, y0, x1, y1), quad in mesh:
        nw, sw, se, ne = np.asarray(quad, dtype=np.float64).reshape(4, 2)
        a_s, a_t = 1.0 / (x1 - x0), 1.0 / (y1 - y0)
        v, u = np.mgrid[0 : y1 - y0, 0 : x1 - x0] + 0.5
        for k, out in ((0, map_x), (1, map_y)):
            a0 = nw[k]
            a1 = (ne[k] - nw[k]) * a_s
            a2 = (sw[k] - nw[k]) * a_t
            a3 = (se[k] - sw[k] - ne[k] + nw[k]) * a_s * a_t
            out[y0:y1, x0:x1] = a0 + a1 * u + a2 * v + a3 * u * v - 0.5
    return map_x, map_y


@pytest.fixture
def captured_meshes(monkeypatch: pytest.MonkeyPatch) -> list:
    """Record the mesh of every ``Image.transform`` call Augmentor makes."""
    meshes: list = []
    original = Image.Image.transform

    def recording(self, size, method, data=None, *args, **kwargs):  # noqa: ANN001, ANN202
        meshes.append([[list(box), list(quad)] for box, quad in data])
        return original(self, size, method, data, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "transform", recording)
    return meshes


def patch_randint(monkeypatch: pytest.MonkeyPatch, values: np.ndarray) -> None:
    """Make ``random.randint`` in Augmentor return ``values`` in order (dx, dy per vertex)."""
    stream = iter(values.ravel().tolist())
    monkeypatch.setattr(Operations.random, "randint", lambda lo, hi: next(stream))


def patch_normal(monkeypatch: pytest.MonkeyPatch, z: np.ndarray, scales: list[float]) -> None:
    """Make ``np.random.normal(loc, scale, 1)`` return ``loc + scale * z_k``; record scales."""
    stream = iter(z.ravel().tolist())

    def normal(loc: float, scale: float, size: int) -> np.ndarray:
        scales.append(scale)
        return np.array([loc + scale * next(stream)])

    monkeypatch.setattr(Operations.np.random, "normal", normal)


CASES = [(512, 512, 5, 5), (97, 130, 4, 3), (64, 48, 3, 5)]


@pytest.mark.parametrize(("height", "width", "gw", "gh"), CASES)
def test_distort_geometry_matches_augmentor(monkeypatch, captured_meshes, height, width, gw, gh):
    rng = np.random.default_rng(height + gw)
    d = rng.integers(-6, 7, size=(gh - 1, gw - 1, 2))
    patch_randint(monkeypatch, d)
    op = Operations.Distort(1.0, gw, gh, 6)
    op.perform_operation([Image.fromarray(smooth_image(height, width, 0))])
    ref_x, ref_y = pil_mesh_map(captured_meshes[0], height, width)
    map_x, map_y = mesh_map(height, width, gw, gh, d)
    assert np.abs(map_x - ref_x).max() < 1e-4
    assert np.abs(map_y - ref_y).max() < 1e-4


@pytest.mark.parametrize(("height", "width", "gw", "gh"), CASES)
def test_gaussian_geometry_matches_augmentor(monkeypatch, captured_meshes, height, width, gw, gh):
    z = np.random.default_rng(gh).standard_normal((gh - 1, gw - 1, 2))
    scales: list[float] = []
    patch_normal(monkeypatch, z, scales)
    op = Operations.GaussianDistortion(1.0, gw, gh, 8, "bell", "in", 0.5, 0.5, 0.05, 0.05)
    op.perform_operation([Image.fromarray(smooth_image(height, width, 1))])
    sigmas = gaussian_sigmas(height, width, gw, gh, 8)
    map_x, map_y = mesh_map(height, width, gw, gh, z * sigmas[..., None])
    ref_x, ref_y = pil_mesh_map(captured_meshes[0], height, width)
    assert np.abs(map_x - ref_x).max() < 1e-4
    assert np.abs(map_y - ref_y).max() < 1e-4


@pytest.mark.parametrize(
    ("corner", "method"), list(itertools.product(["bell", "ul", "ur", "dl", "dr"], ["in", "out"]))
)
def test_gaussian_sigmas_match_augmentor(monkeypatch, corner, method):
    height, width, gw, gh = 120, 90, 5, 4
    z = np.zeros((gh - 1, gw - 1, 2))
    scales: list[float] = []
    patch_normal(monkeypatch, z, scales)
    op = Operations.GaussianDistortion(1.0, gw, gh, 7, corner, method, 0.4, 0.6, 0.08, 0.03)
    op.perform_operation([Image.fromarray(smooth_image(height, width, 2))])
    expected = np.asarray(scales[::2]).reshape(gh - 1, gw - 1)  # one scale per vertex, dx then dy
    got = gaussian_sigmas(height, width, gw, gh, 7, corner, method, 0.4, 0.6, 0.08, 0.03)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_gaussian_sigma_table_of_the_spec():
    """The 512 x 512, 5 x 5, magnitude 8 'bell'/'in' table of the Augmentor reference notes."""
    table = [
        [0.215, 1.070, 1.087, 0.225],
        [1.070, 5.317, 5.401, 1.121],
        [1.087, 5.401, 5.486, 1.139],
        [0.225, 1.121, 1.139, 0.236],
    ]
    np.testing.assert_allclose(gaussian_sigmas(512, 512, 5, 5, 8), table, atol=6e-4)


def test_distort_pixels_within_one_grey_level(monkeypatch):
    height = width = 256
    image = smooth_image(height, width, 3)
    d = np.random.default_rng(3).integers(-8, 9, size=(4, 4, 2))
    patch_randint(monkeypatch, d)
    (ref,) = Operations.Distort(1.0, 5, 5, 8).perform_operation([Image.fromarray(image)])
    ours, _ = warp(image, None, mesh_map(height, width, 5, 5, d), interpolation="bicubic")
    assert np.abs(ours.astype(float) - np.asarray(ref, dtype=float)).mean() <= 1.0


def test_gaussian_pixels_within_one_grey_level(monkeypatch):
    height = width = 256
    image = smooth_image(height, width, 4)
    z = np.random.default_rng(4).standard_normal((4, 4, 2))
    patch_normal(monkeypatch, z, [])
    op = Operations.GaussianDistortion(1.0, 5, 5, 8, "bell", "in", 0.5, 0.5, 0.05, 0.05)
    (ref,) = op.perform_operation([Image.fromarray(image)])
    maps = mesh_map(height, width, 5, 5, z * gaussian_sigmas(height, width, 5, 5, 8)[..., None])
    ours, _ = warp(image, None, maps, interpolation="bicubic")
    assert np.abs(ours.astype(float) - np.asarray(ref, dtype=float)).mean() <= 1.0


def test_augmentor_gaussian_misaligns_masks_but_we_do_not(monkeypatch):
    """Augmentor#151: its mask gets extra draws, so identical inputs come out different."""
    height = width = 128
    image = smooth_image(height, width, 5)
    z = np.random.default_rng(5).standard_normal((2, 4, 4, 2))  # draws for image, then mask
    patch_normal(monkeypatch, z, [])
    op = Operations.GaussianDistortion(1.0, 5, 5, 8, "bell", "in", 0.5, 0.5, 0.05, 0.05)
    out_image, out_mask = op.perform_operation([Image.fromarray(image), Image.fromarray(image)])
    augmentor_differs = np.mean(np.asarray(out_image) != np.asarray(out_mask))
    maps = mesh_map(height, width, 5, 5, z[0] * gaussian_sigmas(height, width, 5, 5, 8)[..., None])
    ours, (mask,) = warp(image, [image], maps, interpolation="nearest")
    assert augmentor_differs > 0.1
    np.testing.assert_array_equal(ours, mask)


DATA = Path(__file__).parents[2] / "shared" / "data"


@pytest.mark.realdata
@pytest.mark.skipif(not DATA.is_dir(), reason="real data not found at ../shared/data")
def test_distort_pixels_on_a_real_radiograph(monkeypatch):
    image = np.asarray(
        Image.open(DATA / "montgomery" / "images" / "MCUCXR_0001_0.png").convert("L")
    )
    height, width = image.shape
    d = np.random.default_rng(6).integers(-8, 9, size=(4, 4, 2))
    patch_randint(monkeypatch, d)
    (ref,) = Operations.Distort(1.0, 5, 5, 8).perform_operation([Image.fromarray(image)])
    ours, _ = warp(image, None, mesh_map(height, width, 5, 5, d), interpolation="bicubic")
    assert np.abs(ours.astype(float) - np.asarray(ref, dtype=float)).mean() <= 1.0
