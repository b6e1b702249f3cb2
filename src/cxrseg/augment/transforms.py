"""Transforms, spatial: each draws parameters, a pure geometry function does the work.

Every transform is a small frozen dataclass validated when it is built. ``sample_params(rng,
height, width)`` draws the parameters of one sample as a plain JSON-able dict (``applied`` plus
the numbers), so a sample can be recorded and replayed. Spatial transforms turn parameters into
a backward map (``cv2.remap`` convention, see :mod:`cxrseg.augment.geometry`), which the
:class:`~cxrseg.augment.pipeline.Pipeline` composes with its neighbours and resamples once;
intensity transforms act on the float32 image in [0, 1] and never see the masks.

The distributions follow Augmentor's where it has the same operation (integer displacements
uniform in ``[-magnitude, magnitude]`` for ``random_distortion``, ``N(0, sigma_v)`` per vertex for
``gaussian_distortion``), but the probability is exact: an operation runs when
``rng.random() < probability``, where Augmentor rounds its draw to one decimal (0.5 runs 55 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from cxrseg.augment import geometry as F
from cxrseg.augment.base import Params, RandomTransform, UniformRange
from cxrseg.augment.intensity import (
    Blur,
    Brightness,
    Contrast,
    Gamma,
    GaussianNoise,
    IntensityTransform,
    LocalContrast,
    Opacity,
)
from cxrseg.checks import check_choice, check_integer, check_number
from cxrseg.data.dataset import mentions_left_right, swap_left_right_name
from cxrseg.errors import InputError

Maps = tuple[np.ndarray, np.ndarray]

__all__ = [
    "TRANSFORMS",
    "Blur",
    "Brightness",
    "Contrast",
    "Elastic",
    "FlipLeftRight",
    "FlipTopBottom",
    "Gamma",
    "GaussianDistortion",
    "GaussianNoise",
    "AffineTransform",
    "IntensityTransform",
    "LocalContrast",
    "Opacity",
    "RandomDistortion",
    "Rotate",
    "SpatialTransform",
    "Transform",
    "Translate",
    "Zoom",
    "mentions_left_right",
    "swap_left_right_name",
]

CORNERS = ("bell", "ul", "ur", "dl", "dr")
METHODS = ("in", "out")


@dataclass(frozen=True)
class SpatialTransform(RandomTransform):
    """Base of the geometric transforms: parameters -> one backward map for image and masks."""

    def maps(self, params: Params, height: int, width: int) -> Maps:
        """Backward map ``(map_x, map_y)``, each float32 (H, W), for an applied sample."""
        raise NotImplementedError

    def step(self, params: Params, height: int, width: int) -> F.Step:
        """This sample as a step of :func:`cxrseg.augment.geometry.chain_map`: its map, or
        (affine and mesh ops) the parameters that let a chain be computed in one pass."""
        return self.maps(params, height, width)


@dataclass(frozen=True)
class AffineTransform(SpatialTransform):
    """Base of the affine transforms: runs of them are merged into one matrix, exactly."""

    def matrix(self, params: Params, height: int, width: int) -> np.ndarray:
        """Backward (output -> source) 2 x 3 matrix in pixel-index units, for an applied sample."""
        raise NotImplementedError

    def maps(self, params: Params, height: int, width: int) -> Maps:
        return F.affine_map(height, width, self.matrix(params, height, width))

    def step(self, params: Params, height: int, width: int) -> F.Step:
        return self.matrix(params, height, width)


@dataclass(frozen=True)
class _Mesh(SpatialTransform):
    grid_width: int = 4
    grid_height: int = 4

    def validate(self) -> None:
        for field in ("grid_width", "grid_height"):
            value = check_integer(self.name, field, getattr(self, field), minimum=2)
            self.set_field(field, value)

    def check_size(self, height: int, width: int) -> None:
        if self.grid_width > width or self.grid_height > height:
            raise InputError(
                f"{self.name}: a grid of {self.grid_width} x {self.grid_height} tiles is larger "
                f"than the {width} x {height} image.",
                hint="use at most one tile per pixel (grid_width <= width, grid_height <= height).",
            )
        cell = min(width / self.grid_width, height / self.grid_height)
        magnitude = float(getattr(self, "magnitude", 0))
        if magnitude > cell:
            raise InputError(
                f"{self.name}: magnitude {magnitude:g} px is larger than a grid cell "
                f"({cell:g} px for a {self.grid_width} x {self.grid_height} grid on a "
                f"{width} x {height} image); a vertex moved past its neighbours folds the image "
                "over itself (black images, empty masks).",
                hint=f"use magnitude <= {math.floor(cell)} (the default recipe uses 3 to 4 at "
                "256 px), or fewer grid tiles.",
            )

    def maps(self, params: Params, height: int, width: int) -> Maps:
        displacements = np.asarray(params["displacements"], dtype=np.float32)
        return F.mesh_map(height, width, self.grid_width, self.grid_height, displacements)

    def step(self, params: Params, height: int, width: int) -> F.Step:
        displacements = np.asarray(params["displacements"], dtype=np.float32)
        return F.MeshSpec(self.grid_width, self.grid_height, displacements)


@dataclass(frozen=True)
class RandomDistortion(_Mesh):
    """Augmentor's ``random_distortion``: each inner grid vertex moves by integer dx, dy.

    dx and dy are drawn uniformly from ``[-magnitude, magnitude]`` (pixels), dx then dy per vertex,
    vertices in row-major order; ``params["displacements"]`` has shape (gh - 1, gw - 1, 2).
    """

    name: ClassVar[str] = "random_distortion"
    magnitude: int = 8

    def validate(self) -> None:
        super().validate()
        value = check_number(self.name, "magnitude", self.magnitude, minimum=0)
        if not float(value).is_integer():
            raise InputError(
                f"random_distortion: magnitude={self.magnitude!r} is not an integer; "
                "displacements are whole pixels drawn from [-magnitude, magnitude].",
                hint=f"give an integer such as magnitude={math.floor(value)}, or use "
                "gaussian_distortion for a real-valued magnitude.",
            )
        self.set_field("magnitude", int(value))

    def draw(self, rng: np.random.Generator, height: int, width: int) -> Params:
        shape = (self.grid_height - 1, self.grid_width - 1, 2)
        d = rng.integers(-self.magnitude, self.magnitude, size=shape, endpoint=True)
        return {"displacements": d.tolist()}


@dataclass(frozen=True)
class GaussianDistortion(_Mesh):
    """Augmentor's ``gaussian_distortion``: vertex v moves by dx, dy ~ N(0, sigma_v).

    ``sigma_v`` comes from :func:`cxrseg.augment.geometry.gaussian_sigmas` (a Gaussian surface
    over the image, shaped by ``corner``, ``method``, ``mex``, ``mey``, ``sdx``, ``sdy`` and scaled
    by ``magnitude`` pixels). One draw serves the image and every mask (Augmentor drew again for
    each, so its masks did not match its images).
    """

    name: ClassVar[str] = "gaussian_distortion"
    magnitude: float = 8.0
    corner: str = "bell"
    method: str = "in"
    mex: float = 0.5
    mey: float = 0.5
    sdx: float = 0.05
    sdy: float = 0.05

    def validate(self) -> None:
        super().validate()
        magnitude = check_number(self.name, "magnitude", self.magnitude, minimum=0)
        self.set_field("magnitude", magnitude)
        check_choice(self.name, "corner", self.corner, CORNERS)
        check_choice(self.name, "method", self.method, METHODS)
        for field in ("mex", "mey"):
            self.set_field(field, check_number(self.name, field, getattr(self, field)))
        for field in ("sdx", "sdy"):
            value = check_number(self.name, field, getattr(self, field), minimum=0, strict=True)
            self.set_field(field, value)

    def draw(self, rng: np.random.Generator, height: int, width: int) -> Params:
        sigmas = F.gaussian_sigmas(
            height,
            width,
            self.grid_width,
            self.grid_height,
            self.magnitude,
            corner=self.corner,
            method=self.method,
            mex=self.mex,
            mey=self.mey,
            sdx=self.sdx,
            sdy=self.sdy,
        )
        sigmas = np.asarray(sigmas, dtype=np.float64)[..., None]
        d = rng.normal(0.0, 1.0, size=(*sigmas.shape[:2], 2)) * sigmas
        return {"displacements": d.tolist()}


@dataclass(frozen=True)
class Elastic(SpatialTransform):
    """Smoothed random displacement field (Simard et al. 2003): ``alpha`` px, ``sigma`` px.

    The field itself comes from :func:`cxrseg.augment.geometry.elastic_map` with a seed drawn
    here, so the recorded parameters stay small.
    """

    name: ClassVar[str] = "elastic"
    alpha: float = 34.0
    sigma: float = 4.0

    def validate(self) -> None:
        self.set_field("alpha", check_number(self.name, "alpha", self.alpha, minimum=0))
        sigma = check_number(self.name, "sigma", self.sigma, minimum=0, strict=True)
        self.set_field("sigma", sigma)

    def draw(self, rng: np.random.Generator, height: int, width: int) -> Params:
        seed = int(rng.integers(0, 2**31 - 1))
        return {"alpha": self.alpha, "sigma": self.sigma, "seed": seed}

    def maps(self, params: Params, height: int, width: int) -> Maps:
        return F.elastic_map(height, width, params["alpha"], params["sigma"], params["seed"])


@dataclass(frozen=True)
class Rotate(AffineTransform):
    """Rotation by an angle uniform in ``[-max_left_rotation, max_right_rotation]`` degrees.

    Positive angles turn the image clockwise. With ``crop`` (Augmentor's ``rotate``), the
    result is zoomed so the largest centred rectangle of the image's aspect ratio that lies
    inside the rotated image fills the frame: no empty corners.
    """

    name: ClassVar[str] = "rotate"
    max_left_rotation: float = 10.0
    max_right_rotation: float = 10.0
    crop: bool = True

    def validate(self) -> None:
        for field in ("max_left_rotation", "max_right_rotation"):
            value = check_number(self.name, field, getattr(self, field), minimum=0, maximum=90)
            self.set_field(field, value)
        if not isinstance(self.crop, bool):
            raise TypeError(f"rotate: crop={self.crop!r} must be True or False.")

    def draw(self, rng: np.random.Generator, height: int, width: int) -> Params:
        return {"angle": rng.uniform(-self.max_left_rotation, self.max_right_rotation)}

    def matrix(self, params: Params, height: int, width: int) -> np.ndarray:
        angle = float(params["angle"])
        scale = 1.0
        if self.crop:
            a = math.radians(abs(angle))
            c, s = math.cos(a), math.sin(a)
            scale = 1.0 / min(width / (width * c + height * s), height / (width * s + height * c))
        return F.affine_matrix(height, width, rotation=angle, scale=scale)


@dataclass(frozen=True)
class Zoom(UniformRange, AffineTransform):
    """Scaling about the centre by a factor uniform in ``[min_factor, max_factor]``; >1 zooms in."""

    name: ClassVar[str] = "zoom"
    bounds: ClassVar[tuple[str, str]] = ("min_factor", "max_factor")
    key: ClassVar[str] = "factor"
    limits: ClassVar[dict[str, Any]] = {"minimum": 0.0, "strict": True}
    min_factor: float = 1.0
    max_factor: float = 1.2

    def matrix(self, params: Params, height: int, width: int) -> np.ndarray:
        return F.affine_matrix(height, width, scale=float(params["factor"]))


@dataclass(frozen=True)
class Translate(AffineTransform):
    """Shift by up to ``max_x`` of the width and ``max_y`` of the height (uniform, both signs).

    ``params`` keep the shift as fractions of the image size (``x``, ``y``).
    """

    name: ClassVar[str] = "translate"
    max_x: float = 0.1
    max_y: float = 0.1

    def validate(self) -> None:
        for field in ("max_x", "max_y"):
            value = check_number(self.name, field, getattr(self, field), minimum=0, maximum=1)
            self.set_field(field, value)

    def draw(self, rng: np.random.Generator, height: int, width: int) -> Params:
        return {
            "x": rng.uniform(-self.max_x, self.max_x),
            "y": rng.uniform(-self.max_y, self.max_y),
        }

    def matrix(self, params: Params, height: int, width: int) -> np.ndarray:
        shift = (float(params["x"]) * width, float(params["y"]) * height)
        return F.affine_matrix(height, width, translate=shift)


@dataclass(frozen=True)
class FlipLeftRight(AffineTransform):
    """Mirror left-right. Masks named ``left_*``/``right_*`` swap names, so labels stay anatomical.

    With ``swap_left_right=False`` a pipeline refuses masks whose names say left or right, since
    the flipped ``left_lung`` would lie where the right lung belongs.
    """

    name: ClassVar[str] = "flip_left_right"
    swap_left_right: bool = True

    def validate(self) -> None:
        if not isinstance(self.swap_left_right, bool):
            raise TypeError(
                f"flip_left_right: swap_left_right={self.swap_left_right!r} must be True or False."
            )

    def matrix(self, params: Params, height: int, width: int) -> np.ndarray:
        return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class FlipTopBottom(AffineTransform):
    """Mirror top-bottom."""

    name: ClassVar[str] = "flip_top_bottom"

    def matrix(self, params: Params, height: int, width: int) -> np.ndarray:
        return np.array([[1.0, 0.0, 0.0], [0.0, -1.0, height - 1.0]])


Transform = SpatialTransform | IntensityTransform

TRANSFORMS: dict[str, type[RandomTransform]] = {
    cls.name: cls
    for cls in (
        RandomDistortion,
        GaussianDistortion,
        Elastic,
        Rotate,
        Zoom,
        Translate,
        FlipLeftRight,
        FlipTopBottom,
        Brightness,
        Contrast,
        Gamma,
        GaussianNoise,
        Blur,
        LocalContrast,
        Opacity,
    )
}
"""Op name (as in pipeline YAML files and ``Pipeline`` methods) -> transform class."""
