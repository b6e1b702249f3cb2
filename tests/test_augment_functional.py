"""Pure geometry: maps of meshes, Gaussian sigmas, elastic fields, affines, flips, composition."""

from __future__ import annotations

import numpy as np
import pytest

from cxrseg.augment import geometry as F


def exact_mesh(x, y, height, width, gw, gh, d):
    """Mesh map evaluated at arbitrary positions (float64), from the tile formula directly."""
    ex = F.tile_edges(width, gw).astype(float) - 0.5  # vertices in pixel-index units
    ey = F.tile_edges(height, gh).astype(float) - 0.5
    vx = np.zeros((gh + 1, gw + 1))
    vy = np.zeros((gh + 1, gw + 1))
    vx[1:-1, 1:-1], vy[1:-1, 1:-1] = d[..., 0], d[..., 1]
    hx = np.stack([np.interp(x, ex, np.eye(gw + 1)[j]) for j in range(gw + 1)], -1)
    hy = np.stack([np.interp(y, ey, np.eye(gh + 1)[i]) for i in range(gh + 1)], -1)
    dx = np.einsum("...i,ij,...j->...", hy, vx, hx)
    dy = np.einsum("...i,ij,...j->...", hy, vy, hx)
    return x + dx, y + dy


def affine_at(matrix, x, y):
    return (
        matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2],
        matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2],
    )


def test_identity_map_gives_pixel_indices():
    map_x, map_y = F.identity_map(3, 4)
    assert map_x.dtype == np.float32 and map_x.shape == (3, 4)
    np.testing.assert_array_equal(map_x[2], [0, 1, 2, 3])
    np.testing.assert_array_equal(map_y[:, 1], [0, 1, 2])


def test_tile_edges_put_the_remainder_in_the_last_tile():
    np.testing.assert_array_equal(F.tile_edges(512, 5), [0, 102, 204, 306, 408, 512])


def test_mesh_map_without_displacement_is_identity():
    maps = F.mesh_map(37, 53, 4, 3, np.zeros((2, 3, 2)))
    for got, want in zip(maps, F.identity_map(37, 53), strict=True):
        np.testing.assert_array_equal(got, want)


def test_mesh_map_matches_the_tile_formula_everywhere():
    d = np.random.default_rng(0).normal(0, 4, (3, 4, 2))
    y, x = np.mgrid[0:61, 0:83].astype(float)
    want_x, want_y = exact_mesh(x, y, 61, 83, 5, 4, d)
    map_x, map_y = F.mesh_map(61, 83, 5, 4, d)
    assert np.abs(map_x - want_x).max() < 1e-4
    assert np.abs(map_y - want_y).max() < 1e-4


def test_mesh_map_keeps_the_image_border_nearly_fixed():
    d = np.full((3, 3, 2), 6.0)
    map_x, _ = F.mesh_map(64, 64, 4, 4, d)
    # The outermost pixel centres sit half a pixel inside the fixed border vertices.
    assert np.abs(map_x[:, 0] - 0).max() <= 6.0 * 0.5 / 16 + 1e-6


def test_mesh_map_rejects_wrong_displacement_shape():
    with pytest.raises(ValueError, match=r"expected \(3, 4, 2\)"):
        F.mesh_map(64, 64, 5, 4, np.zeros((4, 4, 2)))


def test_mesh_map_rejects_more_tiles_than_pixels():
    with pytest.raises(ValueError, match="grid_width=9"):
        F.mesh_map(8, 8, 9, 2, np.zeros((1, 8, 2)))


def test_mesh_map_rejects_non_finite_displacements():
    with pytest.raises(ValueError, match="NaN"):
        F.mesh_map(16, 16, 2, 2, np.full((1, 1, 2), np.nan))


def test_gaussian_sigmas_in_peak_at_the_centre_and_out_at_the_edges():
    inner = F.gaussian_sigmas(200, 200, 6, 6, 8, method="in")
    outer = F.gaussian_sigmas(200, 200, 6, 6, 8, method="out")
    centre = (2, 2)
    assert np.unravel_index(inner.argmax(), inner.shape) == centre
    assert np.unravel_index(outer.argmin(), outer.shape) == centre


def test_gaussian_sigmas_scale_with_magnitude():
    np.testing.assert_allclose(
        F.gaussian_sigmas(100, 120, 4, 4, 6.0), 2 * F.gaussian_sigmas(100, 120, 4, 4, 3.0)
    )


@pytest.mark.parametrize(("kwargs", "match"), [({"corner": "middle"}, "corner"),
                                               ({"method": "around"}, "method")])  # fmt: skip
def test_gaussian_sigmas_reject_unknown_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        F.gaussian_sigmas(64, 64, 4, 4, 8, **kwargs)


def test_elastic_map_is_replayable_from_its_seed():
    a = F.elastic_map(40, 50, 10.0, 4.0, seed=7)
    b = F.elastic_map(40, 50, 10.0, 4.0, seed=7)
    c = F.elastic_map(40, 50, 10.0, 4.0, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_elastic_map_displacement_scales_with_alpha():
    ident_x, _ = F.identity_map(40, 50)
    small = F.elastic_map(40, 50, 5.0, 3.0, seed=1)[0] - ident_x
    large = F.elastic_map(40, 50, 15.0, 3.0, seed=1)[0] - ident_x
    np.testing.assert_allclose(large, 3 * small, atol=1e-4)
    assert np.abs(small).max() > 0


def test_elastic_map_with_zero_alpha_is_identity():
    maps = F.elastic_map(20, 30, 0.0, 3.0, seed=3)
    np.testing.assert_array_equal(maps[1], F.identity_map(20, 30)[1])


def test_affine_matrix_with_default_parameters_is_identity():
    np.testing.assert_allclose(F.affine_matrix(30, 40), [[1, 0, 0], [0, 1, 0]], atol=1e-12)


def test_positive_rotation_turns_clockwise():
    matrix = F.affine_matrix(11, 11, rotation=90)
    # Clockwise by 90 degrees: the source's top-left corner shows at the top-right.
    np.testing.assert_allclose(affine_at(matrix, 10, 0), (0, 0), atol=1e-9)


def test_scale_above_one_zooms_in_about_the_centre():
    matrix = F.affine_matrix(21, 21, scale=2.0)
    np.testing.assert_allclose(affine_at(matrix, 12, 10), (11, 10), atol=1e-12)


def test_translate_moves_content_right_and_down():
    matrix = F.affine_matrix(20, 20, translate=(5, -2))
    np.testing.assert_allclose(affine_at(matrix, 7, 3), (2, 5), atol=1e-12)


def test_shear_shifts_rows_by_tan_of_the_angle():
    matrix = F.affine_matrix(21, 21, shear=45)
    # Forward: x += (y - cy); so the output at (10 + 3, 13) shows the source at (10, 13).
    np.testing.assert_allclose(affine_at(matrix, 13, 13), (10, 13), atol=1e-12)


@pytest.mark.parametrize(("kwargs", "match"), [({"scale": 0.0}, "scale"),
                                               ({"shear": 90.0}, "shear")])  # fmt: skip
def test_affine_matrix_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        F.affine_matrix(10, 10, **kwargs)


def test_affine_map_applies_the_matrix_at_every_pixel():
    matrix = F.affine_matrix(30, 40, rotation=17, scale=(1.1, 0.9), translate=(3, 1))
    y, x = np.mgrid[0:30, 0:40].astype(float)
    want_x, want_y = affine_at(matrix, x, y)
    map_x, map_y = F.affine_map(30, 40, matrix)
    assert np.abs(map_x - want_x).max() < 1e-4 and np.abs(map_y - want_y).max() < 1e-4


def test_flip_map_mirrors_indices():
    map_x, map_y = F.flip_map(3, 4, horizontal=True, vertical=True)
    assert (map_x[0, 0], map_y[0, 0], map_x[2, 3], map_y[2, 3]) == (3, 2, 0, 0)


def test_compose_affine_matches_composed_maps():
    a = F.affine_matrix(50, 60, rotation=30)
    b = F.affine_matrix(50, 60, scale=1.3, translate=(4, -3))
    composed = F.affine_map(50, 60, F.compose_affine(a, b))
    maps = F.compose_maps(F.affine_map(50, 60, a), F.affine_map(50, 60, b))
    for got, want in zip(maps, composed, strict=True):
        assert np.abs(got - want).max() < 1e-3


def test_flipping_twice_gives_identity():
    flip = F.flip_map(9, 12, horizontal=True)
    for got, want in zip(F.compose_maps(flip, flip), F.identity_map(9, 12), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)


H, W = 96, 112
D1 = np.random.default_rng(1).integers(-8, 9, (3, 4, 2)).astype(float)
D2 = np.random.default_rng(2).normal(0, 5, (4, 3, 2))
ROT = F.affine_matrix(H, W, rotation=23, scale=1.15)


def _mesh1(x, y):
    return exact_mesh(x, y, H, W, 5, 4, D1)


def _mesh2(x, y):
    return exact_mesh(x, y, H, W, 4, 5, D2)


def _rot(x, y):
    return affine_at(ROT, x, y)


EXACT = {"mesh": _mesh1, "mesh2": _mesh2, "rotation": _rot}
MAPS = {
    "mesh": F.mesh_map(H, W, 5, 4, D1),
    "mesh2": F.mesh_map(H, W, 4, 5, D2),
    "rotation": F.affine_map(H, W, ROT),
}


@pytest.mark.parametrize(
    ("first", "second"),
    [("mesh", "mesh2"), ("mesh2", "mesh"), ("mesh", "rotation"), ("rotation", "mesh")],
)
def test_composed_map_agrees_with_one_op_after_the_other(first, second):
    y, x = np.mgrid[0:H, 0:W].astype(float)
    sx, sy = EXACT[second](x, y)
    want_x, want_y = EXACT[first](sx, sy)
    got_x, got_y = F.compose_maps(MAPS[first], MAPS[second])
    inside = (sx >= 0) & (sx <= W - 1) & (sy >= 0) & (sy <= H - 1)
    assert inside.mean() > 0.8
    error = np.hypot(got_x - want_x, got_y - want_y)[inside]
    assert error.max() < 0.05


def test_compose_maps_rejects_different_sizes():
    with pytest.raises(ValueError, match="same size"):
        F.compose_maps(F.identity_map(10, 10), F.identity_map(10, 12))


def test_chain_of_three_folded_from_the_start_stays_exact():
    y, x = np.mgrid[0:H, 0:W].astype(float)
    want_x, want_y = _mesh1(*_rot(*_mesh2(x, y)))
    got_x, got_y = F.compose_maps(F.compose_maps(MAPS["mesh"], MAPS["rotation"]), MAPS["mesh2"])
    sx, sy = _rot(*_mesh2(x, y))
    inside = (sx >= 0) & (sx <= W - 1) & (sy >= 0) & (sy <= H - 1)
    assert np.hypot(got_x - want_x, got_y - want_y)[inside].max() < 0.05


def test_elastic_field_first_is_interpolated_bilinearly():
    from scipy.ndimage import map_coordinates

    elastic = F.elastic_map(H, W, 6.0, 5.0, seed=4)
    sx, sy = MAPS["mesh"]
    want = [map_coordinates(m.astype(float), [sy, sx], order=1, mode="nearest") for m in elastic]
    got = F.compose_maps(elastic, MAPS["mesh"])
    inside = (sx >= 0) & (sx <= W - 1) & (sy >= 0) & (sy <= H - 1)
    assert np.hypot(got[0] - want[0], got[1] - want[1])[inside].max() < 0.05


def test_maps_survive_pickling_for_worker_processes():
    import pickle

    maps = F.mesh_map(20, 24, 3, 3, np.ones((2, 2, 2)))
    restored = pickle.loads(pickle.dumps(maps))
    np.testing.assert_array_equal(restored[0], maps[0])
    assert restored.mesh[0] == 3


def test_chain_with_an_elastic_field_first_stays_exact():
    from scipy.ndimage import map_coordinates

    elastic = F.elastic_map(H, W, 6.0, 5.0, seed=5)
    y, x = np.mgrid[0:H, 0:W].astype(float)
    sx, sy = _mesh1(*_rot(x, y))
    want = [map_coordinates(m.astype(float), [sy, sx], order=1, mode="nearest") for m in elastic]
    got = F.compose_maps(F.compose_maps(elastic, MAPS["mesh"]), MAPS["rotation"])
    inside = (sx >= 0) & (sx <= W - 1) & (sy >= 0) & (sy <= H - 1)
    assert np.hypot(got[0] - want[0], got[1] - want[1])[inside].max() < 0.05


def test_gaussian_sigmas_come_back_as_a_fresh_array_each_time():
    first = F.gaussian_sigmas(64, 64, 4, 4, 8)
    expected = first.copy()
    first[:] = -1  # the table behind it is cached: a caller's change must not leak
    np.testing.assert_array_equal(F.gaussian_sigmas(64, 64, 4, 4, 8), expected)
