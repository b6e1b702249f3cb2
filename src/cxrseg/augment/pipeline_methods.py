"""Pipeline: Augmentor's method names (plus cxrseg's), each appending one transform.

:class:`~cxrseg.augment.pipeline.Pipeline` inherits these, so ``p.random_distortion(...)``,
``p.gaussian_distortion(...)``, ``p.rotate(...)``, ``p.zoom(...)``, ``p.flip_left_right(...)``,
``p.random_brightness(...)`` ... work as in Augmentor and return the pipeline for chaining.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxrseg.augment import transforms as T
from cxrseg.augment.base import RandomTransform

if TYPE_CHECKING:
    from cxrseg.augment.pipeline import Pipeline

__all__ = ["PipelineMethods"]


class PipelineMethods:
    """Mixin: one method per transform, named as in Augmentor where it has one."""

    def add(self, transform: RandomTransform) -> Pipeline:
        """Append a transform; returns the pipeline."""
        raise NotImplementedError

    def random_distortion(
        self, probability: float, grid_width: int, grid_height: int, magnitude: int
    ) -> Pipeline:
        """Augmentor's elastic mesh distortion; see :class:`~.transforms.RandomDistortion`."""
        return self.add(T.RandomDistortion(probability, grid_width, grid_height, magnitude))

    def gaussian_distortion(
        self,
        probability: float,
        grid_width: int,
        grid_height: int,
        magnitude: float,
        corner: str,
        method: str,
        mex: float = 0.5,
        mey: float = 0.5,
        sdx: float = 0.05,
        sdy: float = 0.05,
    ) -> Pipeline:
        """Augmentor's Gaussian mesh distortion; see :class:`~.transforms.GaussianDistortion`."""
        return self.add(
            T.GaussianDistortion(
                probability, grid_width, grid_height, magnitude, corner, method, mex, mey, sdx, sdy
            )
        )

    def elastic(self, probability: float, alpha: float = 34.0, sigma: float = 4.0) -> Pipeline:
        """Smooth random displacement field; see :class:`~.transforms.Elastic`."""
        return self.add(T.Elastic(probability, alpha, sigma))

    def rotate(
        self,
        probability: float,
        max_left_rotation: float,
        max_right_rotation: float,
        crop: bool = True,
    ) -> Pipeline:
        """Rotation, cropped like Augmentor's; see :class:`~.transforms.Rotate`."""
        return self.add(T.Rotate(probability, max_left_rotation, max_right_rotation, crop))

    def zoom(self, probability: float, min_factor: float, max_factor: float) -> Pipeline:
        """Central zoom; see :class:`~.transforms.Zoom`."""
        return self.add(T.Zoom(probability, min_factor, max_factor))

    def translate(self, probability: float, max_x: float = 0.1, max_y: float = 0.1) -> Pipeline:
        """Shift by fractions of the size; see :class:`~.transforms.Translate`."""
        return self.add(T.Translate(probability, max_x, max_y))

    def flip_left_right(self, probability: float, swap_left_right: bool = True) -> Pipeline:
        """Mirror left-right, swapping left/right masks; see :class:`~.transforms.FlipLeftRight`."""
        return self.add(T.FlipLeftRight(probability, swap_left_right))

    def flip_top_bottom(self, probability: float) -> Pipeline:
        """Mirror top-bottom."""
        return self.add(T.FlipTopBottom(probability))

    def brightness(self, probability: float, min_factor: float, max_factor: float) -> Pipeline:
        """Multiply intensities; see :class:`~.intensity.Brightness`."""
        return self.add(T.Brightness(probability, min_factor, max_factor))

    def contrast(self, probability: float, min_factor: float, max_factor: float) -> Pipeline:
        """Stretch about the mean; see :class:`~.intensity.Contrast`."""
        return self.add(T.Contrast(probability, min_factor, max_factor))

    random_brightness = brightness
    random_contrast = contrast

    def gamma(self, probability: float, min_gamma: float, max_gamma: float) -> Pipeline:
        """Power law; see :class:`~.intensity.Gamma`."""
        return self.add(T.Gamma(probability, min_gamma, max_gamma))

    def gaussian_noise(self, probability: float, min_std: float, max_std: float) -> Pipeline:
        """Additive noise; see :class:`~.intensity.GaussianNoise`."""
        return self.add(T.GaussianNoise(probability, min_std, max_std))

    def blur(self, probability: float, min_sigma: float, max_sigma: float) -> Pipeline:
        """Gaussian blur; see :class:`~.intensity.Blur`."""
        return self.add(T.Blur(probability, min_sigma, max_sigma))

    def local_contrast(
        self, probability: float, min_amount: float, max_amount: float, sigma: float = 8.0
    ) -> Pipeline:
        """Local contrast enhancement; see :class:`~.intensity.LocalContrast`."""
        return self.add(T.LocalContrast(probability, min_amount, max_amount, sigma))

    def opacity(
        self,
        probability: float,
        min_level: float = 0.7,
        max_level: float = 0.95,
        max_amount: float = 0.8,
        min_radius: float = 0.05,
        max_radius: float = 0.2,
        max_count: int = 3,
    ) -> Pipeline:
        """Soft patches towards a grey level (opacities, gas); see :class:`~.intensity.Opacity`."""
        return self.add(T.Opacity(probability, min_level, max_level, max_amount, min_radius,
                                  max_radius, max_count))  # fmt: skip
