"""numba kernels for chains of mesh and affine ops: exact sequential maps, fallback agreement."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from cxrseg.augment import geometry as F
from cxrseg.augment.geometry import compose, kernels
from cxrseg.augment.resample_cv import warp

H, W = 72, 88
MESH_A = F.MeshSpec(5, 4, np.random.default_rng(1).integers(-7, 8, (3, 4, 2)).astype(np.float32))
MESH_B = F.MeshSpec(4, 5, np.random.default_rng(2).normal(0, 4, (4, 3, 2)).astype(np.float32))
# Vertices moved by more than a tile: tiles fold over, so positions run backwards in places.
FOLDED = F.MeshSpec(3, 3, np.array([[[30, -25], [-28, 20]], [[25, 30], [-30, -22]]], np.float32))
ROTATE = F.affine_matrix(H, W, rotation=33, scale=1.2)
TURN = F.affine_matrix(H, W, rotation=120, scale=0.8)  # positions fall in both axes
FLIP = np.array([[-1.0, 0.0, W - 1.0], [0.0, 1.0, 0.0]])
ZOOM_OUT = F.affine_matrix(H, W, scale=0.7)  # samples well outside the image

pytestmark = pytest.mark.skipif(not kernels.available(), reason="numba is not installed")


def vertices(length: int, tiles: int) -> np.ndarray:
    return F.tile_edges(length, tiles).astype(float) - 0.5  # pixel-index units


def mesh_at(mesh: F.MeshSpec, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mesh's map at any positions (float64), from the tile formula; identity outside."""
    gw, gh, d = mesh
    vx, vy = np.zeros((gh + 1, gw + 1)), np.zeros((gh + 1, gw + 1))
    vx[1:-1, 1:-1], vy[1:-1, 1:-1] = d[..., 0], d[..., 1]
    hx = np.stack([np.interp(x, vertices(W, gw), np.eye(gw + 1)[j]) for j in range(gw + 1)], -1)
    hy = np.stack([np.interp(y, vertices(H, gh), np.eye(gh + 1)[i]) for i in range(gh + 1)], -1)
    return x + np.einsum("...i,ij,...j->...", hy, vx, hx), y + np.einsum(
        "...i,ij,...j->...", hy, vy, hx
    )


def step_at(step: object, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(step, F.MeshSpec):
        return mesh_at(step, x, y)
    m = np.asarray(step)
    return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]


def sequential(steps: list, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact map of the ops one after the other: the last op is evaluated first."""
    for step in reversed(steps):
        x, y = step_at(step, x, y)
    return x, y


def pixels() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:H, 0:W].astype(float)
    return x, y


CHAINS = {
    "mesh, mesh": [MESH_A, MESH_B],
    "mesh": [MESH_A],
    "mesh, rotate, mesh": [MESH_A, ROTATE, MESH_B],
    "rotate, mesh": [ROTATE, MESH_A],
    "mesh, turn": [MESH_A, TURN],
    "flip, mesh, flip": [FLIP, MESH_B, FLIP],
    "mesh, zoom out": [MESH_B, ZOOM_OUT],
    "folded, mesh": [FOLDED, MESH_A],
    "mesh, folded": [MESH_A, FOLDED],
    "three meshes": [MESH_A, MESH_B, TURN, MESH_A],
}


@pytest.mark.parametrize("name", list(CHAINS))
def test_chain_map_is_the_exact_sequential_map_everywhere(name: str) -> None:
    steps = CHAINS[name]
    want_x, want_y = sequential(steps, *pixels())
    got_x, got_y = F.chain_map(H, W, steps)
    # float32 rounding only: no interpolation, inside the image and outside it alike.
    assert np.hypot(got_x - want_x, got_y - want_y).max() < 1e-3


@pytest.mark.parametrize("name", ["mesh, mesh", "mesh, rotate, mesh", "folded, mesh", "mesh"])
def test_numpy_fallback_gives_the_same_map(name: str) -> None:
    steps = [compose._check_step(s, H, W, i) for i, s in enumerate(CHAINS[name])]
    want = sequential(steps, *pixels())
    got = compose._described_at(steps, H, W, *F.identity_map(H, W))
    x, y = pixels()
    # The fallback interpolates a mesh's field (OpenCV: 1/32 px); compare where it is defined.
    sx, sy = sequential(steps[1:], x, y)
    inside = (sx > -0.5) & (sx < W - 0.5) & (sy > -0.5) & (sy < H - 0.5)
    assert np.hypot(got[0] - want[0], got[1] - want[1])[inside].max() < 0.05


def test_chain_map_without_numba_uses_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = F.chain_map(H, W, [MESH_A, ROTATE, MESH_B])
    monkeypatch.setattr(kernels, "numba", None)
    assert not kernels.available()
    slow = F.chain_map(H, W, [MESH_A, ROTATE, MESH_B])
    single = F.mesh_map(H, W, *MESH_A)
    x, y = pixels()
    sx, sy = sequential([ROTATE, MESH_B], x, y)
    inside = (sx > 0) & (sx < W - 1) & (sy > 0) & (sy < H - 1)
    assert np.hypot(slow[0] - fast[0], slow[1] - fast[1])[inside].max() < 0.05
    want = mesh_at(MESH_A, x, y)
    assert np.abs(single[0] - want[0]).max() < 1e-4 and np.abs(single[1] - want[1]).max() < 1e-4


def test_kernels_need_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "numba", None)
    with pytest.raises(RuntimeError, match="numba is not installed"):
        kernels.evaluate_grid(H, W, kernels.plan(H, W, [MESH_A]))


def test_plan_folds_affines_into_the_next_mesh() -> None:
    chain = kernels.plan(H, W, [ROTATE, FLIP, MESH_A, TURN, MESH_B, FLIP])
    assert len(chain) == 3  # (rotate, flip, mesh A), (turn, mesh B), flip
    assert chain[-1].coef.shape == (1, 1, 2, 4)


def test_chain_evaluated_at_other_positions_is_exact() -> None:
    elastic = F.elastic_map(H, W, 8.0, 4.0, seed=3)
    want = sequential([MESH_A, ROTATE, MESH_B], *(m.astype(float) for m in elastic))
    got = F.compose_maps(F.chain_map(H, W, [MESH_A, ROTATE, MESH_B]), elastic)
    assert np.hypot(got[0] - want[0], got[1] - want[1]).max() < 1e-3


def test_composing_chains_matches_one_chain() -> None:
    left = F.chain_map(H, W, [MESH_A, ROTATE])
    right = F.chain_map(H, W, [MESH_B, FLIP])
    whole = F.chain_map(H, W, [MESH_A, ROTATE, MESH_B, FLIP])
    got = F.compose_maps(left, right)
    assert np.abs(got[0] - whole[0]).max() < 1e-4 and np.abs(got[1] - whole[1]).max() < 1e-4


def test_chain_with_an_elastic_field_in_the_middle() -> None:
    elastic = F.elastic_map(H, W, 6.0, 5.0, seed=5)
    got = F.chain_map(H, W, [MESH_A, elastic, ROTATE])
    want = F.compose_maps(F.mesh_map(H, W, *MESH_A), F.compose_maps(elastic, F.affine_map(
        H, W, ROTATE)))  # fmt: skip
    np.testing.assert_allclose(got[0], want[0], atol=1e-3)
    np.testing.assert_allclose(got[1], want[1], atol=1e-3)


def test_resampling_with_the_kernel_map_matches_the_reference_map() -> None:
    y, x = np.mgrid[0:H, 0:W]
    image = (127 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)).astype(np.uint8)
    mask = ((x - 40) ** 2 + (y - 36) ** 2 < 300).astype(np.uint8) * 255
    steps = [MESH_A, MESH_B]
    ref_x, ref_y = (m.astype(np.float32) for m in sequential(steps, *pixels()))
    ref = cv2.remap(image, ref_x, ref_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    out, (out_mask,) = warp(image, [mask], F.chain_map(H, W, steps))
    assert np.abs(out.astype(int) - ref).max() <= 1
    assert set(np.unique(out_mask)) <= {0, 255}
    _, (same,) = warp(mask, [mask], F.chain_map(H, W, steps), interpolation="nearest")
    np.testing.assert_array_equal(same, out_mask)  # image and mask stay aligned


def test_chain_map_of_nothing_is_the_identity() -> None:
    for got, want in zip(F.chain_map(H, W, []), F.identity_map(H, W), strict=True):
        np.testing.assert_array_equal(got, want)


def test_chain_maps_survive_pickling() -> None:
    maps = F.chain_map(H, W, [MESH_A, ROTATE])
    restored = pickle.loads(pickle.dumps(maps))
    assert len(restored.chain) == 2
    again = F.compose_maps(restored, F.mesh_map(H, W, *MESH_B))
    want = F.chain_map(H, W, [MESH_A, ROTATE, MESH_B])
    np.testing.assert_array_equal(again[0], want[0])


def test_unknown_step_is_refused() -> None:
    with pytest.raises(TypeError, match="step #1 is a str"):
        F.chain_map(H, W, [MESH_A, "rotate"])


def test_mesh_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match=r"expected \(3, 4, 2\)"):
        F.chain_map(H, W, [F.MeshSpec(5, 4, np.zeros((4, 4, 2)))])


def test_map_of_another_size_is_refused() -> None:
    with pytest.raises(ValueError, match=r"step #0 is a map of shape \(10, 10\)"):
        F.chain_map(H, W, [F.identity_map(10, 10)])


def test_non_finite_matrix_is_refused() -> None:
    with pytest.raises(ValueError, match="NaN or infinity"):
        F.chain_map(H, W, [np.full((2, 3), np.nan)])


def test_chain_map_leaves_the_callers_displacements_alone() -> None:
    d = np.ones((3, 4, 2), np.float32)
    maps = F.chain_map(H, W, [F.MeshSpec(5, 4, d)])
    d[:] = 5.0  # still writable, and the map remembers the values it was made from
    assert not maps.chain[0].displacements.flags.writeable
    assert float(maps.chain[0].displacements.max()) == 1.0
