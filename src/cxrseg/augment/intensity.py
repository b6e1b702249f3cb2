"""Transforms, intensity: brightness, contrast, gamma, noise, blur, local contrast, opacity.

They act on the image only, as float32 in [0, 1], and clip their result to [0, 1]. Each has a
NumPy form (:meth:`apply`, one image (H, W) or (H, W, C)) and a torch form (:meth:`apply_torch`,
a batch (N, C, H, W) with one parameter dict per sample) that give the same numbers up to
float rounding. Noise fields are drawn on the CPU from a seed stored in the parameters, so both
forms add the same noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import cv2
import numpy as np

from cxrseg.augment.base import Params, RandomTransform, UniformRange
from cxrseg.checks import check_integer, check_number, check_range

if TYPE_CHECKING:
    import torch

__all__ = [
    "Blur",
    "Brightness",
    "Contrast",
    "Gamma",
    "GaussianNoise",
    "IntensityTransform",
    "LocalContrast",
    "Opacity",
    "gaussian_kernel",
]


def gaussian_kernel(sigma: float, length: int) -> np.ndarray:
    """Normalised 1-D Gaussian kernel of radius ``ceil(3 sigma)``, capped to fit ``length - 1``.

    Returns:
        float32 (2 r + 1,), summing to 1.
    """
    radius = max(0, min(math.ceil(3.0 * sigma), length - 1))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (x / max(sigma, 1e-12)) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with mirrored borders (``cv2.BORDER_REFLECT_101``)."""
    ky = gaussian_kernel(sigma, image.shape[0])
    kx = gaussian_kernel(sigma, image.shape[1])
    return cv2.sepFilter2D(image, -1, kx, ky, borderType=cv2.BORDER_REFLECT_101)


def _blur_torch(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """:func:`_blur` for (N, C, H, W); torch's ``reflect`` padding is OpenCV's REFLECT_101."""
    import torch
    import torch.nn.functional as TF

    n, c, h, w = images.shape
    out = images.reshape(n * c, 1, h, w)
    for axis, length in ((2, h), (3, w)):
        k = torch.from_numpy(gaussian_kernel(sigma, length)).to(images.device, images.dtype)
        r = (k.numel() - 1) // 2
        if r == 0:
            continue
        pad = (0, 0, r, r) if axis == 2 else (r, r, 0, 0)
        shape = (1, 1, -1, 1) if axis == 2 else (1, 1, 1, -1)
        out = TF.conv2d(TF.pad(out, pad, mode="reflect"), k.reshape(shape))
    return out.reshape(n, c, h, w)


def _per_sample(params: list[Params], key: str, neutral: float, like: torch.Tensor) -> torch.Tensor:
    """One value per sample, (N, 1, 1, 1): ``params[key]`` where applied, else ``neutral``."""
    import torch

    values = [float(p[key]) if p["applied"] else neutral for p in params]
    return torch.tensor(values, dtype=like.dtype, device=like.device).reshape(-1, 1, 1, 1)


@dataclass(frozen=True)
class IntensityTransform(RandomTransform):
    """Base of the image-only transforms."""

    def apply(self, image: np.ndarray, params: Params) -> np.ndarray:
        """Transform one float32 image in [0, 1], (H, W) or (H, W, C), for an applied sample."""
        raise NotImplementedError

    def apply_torch(self, images: torch.Tensor, params: list[Params]) -> torch.Tensor:
        """Transform a float batch (N, C, H, W); ``params[i]`` belongs to ``images[i]``.

        The default runs the per-sample torch code of :meth:`apply_one_torch` on the applied
        samples; element-wise transforms override it with one vectorised expression.
        """
        out = images.clone()
        for i, p in enumerate(params):
            if p["applied"]:
                out[i : i + 1] = self.apply_one_torch(images[i : i + 1], p)
        return out

    def apply_one_torch(self, image: torch.Tensor, params: Params) -> torch.Tensor:
        """Transform one sample (1, C, H, W) in torch (subclasses without a vectorised form)."""
        raise NotImplementedError


@dataclass(frozen=True)
class _Factor(UniformRange, IntensityTransform):
    """A factor drawn uniformly from ``[min_factor, max_factor]``."""

    bounds: ClassVar[tuple[str, str]] = ("min_factor", "max_factor")
    key: ClassVar[str] = "factor"
    limits: ClassVar[dict[str, Any]] = {"minimum": 0.0, "strict": True}
    min_factor: float = 0.8
    max_factor: float = 1.2


@dataclass(frozen=True)
class Brightness(_Factor):
    """Multiply intensities by ``factor`` (Augmentor's ``random_brightness``)."""

    name: ClassVar[str] = "brightness"

    def apply(self, image: np.ndarray, params: Params) -> np.ndarray:
        return np.clip(image * np.float32(params["factor"]), 0.0, 1.0)

    def apply_torch(self, images: torch.Tensor, params: list[Params]) -> torch.Tensor:
        return (images * _per_sample(params, "factor", 1.0, images)).clamp(0.0, 1.0)


@dataclass(frozen=True)
class Contrast(_Factor):
    """Stretch intensities about the image mean by ``factor`` (Augmentor's ``random_contrast``)."""

    name: ClassVar[str] = "contrast"

    def apply(self, image: np.ndarray, params: Params) -> np.ndarray:
        mean = np.float32(image.mean(dtype=np.float64))
        return np.clip(mean + (image - mean) * np.float32(params["factor"]), 0.0, 1.0)

    def apply_torch(self, images: torch.Tensor, params: list[Params]) -> torch.Tensor:
        mean = images.double().mean(dim=(1, 2, 3), keepdim=True).to(images.dtype)
        factor = _per_sample(params, "factor", 1.0, images)
        return (mean + (images - mean) * factor).clamp(0.0, 1.0)


@dataclass(frozen=True)
class Gamma(UniformRange, IntensityTransform):
    """Raise intensities to the power ``gamma``, uniform in ``[min_gamma, max_gamma]``."""

    name: ClassVar[str] = "gamma"
    bounds: ClassVar[tuple[str, str]] = ("min_gamma", "max_gamma")
    key: ClassVar[str] = "gamma"
    limits: ClassVar[dict[str, Any]] = {"minimum": 0.0, "strict": True}
    min_gamma: float = 0.7
    max_gamma: float = 1.5

    def apply(self, image: np.ndarray, params: Params) -> np.ndarray:
        return np.power(np.clip(image, 0.0, 1.0), np.float32(params["gamma"]))

    def apply_torch(self, images: torch.Tensor, params: list[Params]) -> torch.Tensor:
        return images.clamp(0.0, 1.0).pow(_per_sample(params, "gamma", 1.0, images))


@dataclass(frozen=True)
class GaussianNoise(UniformRange, IntensityTransform):
    """Add N(0, std) noise per pixel, ``std`` uniform in ``[min_std, max_std]``."""

    name: ClassVar[str] = "gaussian_noise"
    bounds: ClassVar[tuple[str, str]] = ("min_std", "max_std")
    key: ClassVar[str] = "std"
    limits: ClassVar[dict[str, Any]] = {"minimum": 0.0}
    min_std: float = 0.0
    max_std: float = 0.03

    def draw(self, rng: np.random.Generator, height: int, width: int) -> Params:
        return {**super().draw(rng, height, width), "seed": int(rng.integers(2**31))}

    @staticmethod
    def noise(params: Params, channels: int, height: int, width: int) -> np.ndarray:
        """The sample's noise field, float32 (C, H, W), the same for both backends."""
        rng = np.random.default_rng(params["seed"])
        field = rng.standard_normal((channels, height, width), dtype=np.float32)
        return field * np.float32(params["std"])

    def apply(self, image: np.ndarray, params: Params) -> np.ndarray:
        channels = image.shape[2] if image.ndim == 3 else 1
        field = self.noise(params, channels, image.shape[0], image.shape[1])
        field = np.moveaxis(field, 0, -1) if image.ndim == 3 else field[0]
        return np.clip(image + field, 0.0, 1.0)

    def apply_one_torch(self, image: torch.Tensor, params: Params) -> torch.Tensor:
        import torch

        field = torch.from_numpy(self.noise(params, *image.shape[1:]))
        return (image + field.to(image.device, image.dtype)).clamp(0.0, 1.0)


@dataclass(frozen=True)
class Blur(UniformRange, IntensityTransform):
    """Gaussian blur, ``sigma`` (pixels) uniform in ``[min_sigma, max_sigma]``."""

    name: ClassVar[str] = "blur"
    bounds: ClassVar[tuple[str, str]] = ("min_sigma", "max_sigma")
    key: ClassVar[str] = "sigma"
    limits: ClassVar[dict[str, Any]] = {"minimum": 0.0, "strict": True}
    min_sigma: float = 0.5
    max_sigma: float = 1.5

    def apply(self, image: np.ndarray, params: Params) -> np.ndarray:
        return np.clip(_blur(image, float(params["sigma"])), 0.0, 1.0)

    def apply_one_torch(self, image: torch.Tensor, params: Params) -> torch.Tensor:
        return _blur_torch(image, float(params["sigma"])).clamp(0.0, 1.0)


@dataclass(frozen=True)
class LocalContrast(UniformRange, IntensityTransform):
    """Local contrast enhancement (CLAHE-like, but linear and exact in both backends).

    Detail above a Gaussian background of ``sigma`` pixels is amplified by ``amount``, uniform in
    ``[min_amount, max_amount]``: ``out = image + amount * (image - blur(image, sigma))``.
    Negative amounts soften local contrast.
    """

    name: ClassVar[str] = "local_contrast"
    bounds: ClassVar[tuple[str, str]] = ("min_amount", "max_amount")
    key: ClassVar[str] = "amount"
    limits: ClassVar[dict[str, Any]] = {"minimum": -1.0, "maximum": 10.0}
    min_amount: float = 0.0
    max_amount: float = 1.0
    sigma: float = 8.0

    def validate(self) -> None:
        super().validate()
        self.set_field(
            "sigma", check_number(self.name, "sigma", self.sigma, minimum=0, strict=True)
        )

    def apply(self, image: np.ndarray, params: Params) -> np.ndarray:
        amount = np.float32(params["amount"])
        return np.clip(image + amount * (image - _blur(image, self.sigma)), 0.0, 1.0)

    def apply_one_torch(self, image: torch.Tensor, params: Params) -> torch.Tensor:
        detail = image - _blur_torch(image, self.sigma)
        return (image + float(params["amount"]) * detail).clamp(0.0, 1.0)


@dataclass(frozen=True)
class Opacity(IntensityTransform):
    """Soft patches that pull the image towards a grey ``level``: opacities and gas bubbles.

    Each of 1 to ``max_count`` elliptic Gaussian patches (centre anywhere in the middle 70 % of
    the image, radii ``min_radius`` to ``max_radius`` of the image side) blends the image
    towards a level drawn in ``[min_level, max_level]`` by up to ``max_amount``:
    ``out = image + sum(amount * patch * (level - image))``. A bright level over a lung draws a
    dense infiltrate (the lung stays lung in the masks, which this transform never sees); a dark
    level below the diaphragm draws a gas bubble that is not lung.
    """

    name: ClassVar[str] = "opacity"
    min_level: float = 0.7
    max_level: float = 0.95
    max_amount: float = 0.8
    min_radius: float = 0.05
    max_radius: float = 0.2
    max_count: int = 3

    def validate(self) -> None:
        check_range(self.name, "min_level", self.min_level, "max_level", self.max_level,
                    minimum=0.0, maximum=1.0)  # fmt: skip
        check_range(self.name, "min_radius", self.min_radius, "max_radius", self.max_radius,
                    minimum=0.0, maximum=1.0, strict=True)  # fmt: skip
        check_number(self.name, "max_amount", self.max_amount, minimum=0.0, maximum=1.0)
        self.set_field("max_count", check_integer(self.name, "max_count", self.max_count,
                                                  minimum=1))  # fmt: skip

    def draw(self, rng: np.random.Generator, height: int, width: int) -> Params:
        count = int(rng.integers(1, self.max_count + 1))
        patches = [
            [float(v) for v in (rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85),
                                rng.uniform(self.min_radius, self.max_radius),
                                rng.uniform(self.min_radius, self.max_radius),
                                rng.uniform(0.0, self.max_amount),
                                rng.uniform(self.min_level, self.max_level))]
            for _ in range(count)
        ]  # fmt: skip
        return {"patches": patches}

    @staticmethod
    def fields(params: Params, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Blend weight and target level per pixel, float32 (H, W), the same for both backends.

        Overlapping patches add their weights (capped at 1) and average their levels.
        """
        y = (np.arange(height, dtype=np.float32) + 0.5)[:, None] / height
        x = (np.arange(width, dtype=np.float32) + 0.5)[None, :] / width
        weight = np.zeros((height, width), np.float32)
        level = np.zeros((height, width), np.float32)
        for cx, cy, rx, ry, amount, lvl in params["patches"]:
            patch = amount * np.exp(-0.5 * (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2))
            weight += patch.astype(np.float32)
            level += (patch * lvl).astype(np.float32)
        level /= np.maximum(weight, np.float32(1e-6))
        return np.minimum(weight, 1.0), level

    def apply(self, image: np.ndarray, params: Params) -> np.ndarray:
        weight, level = self.fields(params, image.shape[0], image.shape[1])
        if image.ndim == 3:
            weight, level = weight[..., None], level[..., None]
        return np.clip(image + weight * (level - image), 0.0, 1.0)

    def apply_one_torch(self, image: torch.Tensor, params: Params) -> torch.Tensor:
        import torch

        weight, level = (
            torch.from_numpy(f).to(image.device, image.dtype)
            for f in self.fields(params, image.shape[2], image.shape[3])
        )
        return (image + weight * (level - image)).clamp(0.0, 1.0)
