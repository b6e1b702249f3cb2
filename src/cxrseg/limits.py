"""Upper bounds on numbers read from files a user may not control (checkpoints, exported models,
configs) that would otherwise size allocations or output folders.

A leaf with no imports, so that reading a model's metadata (:mod:`cxrseg.inference`) does not
import the training configuration and its schema library.
"""

from __future__ import annotations

__all__ = ["MAX_LABELS", "MAX_SIZE"]

#: Largest training size; checkpoints and exported models saying more are refused as tampered.
MAX_SIZE = 2048
#: Most structures a model may segment (each is a folder of masks under ``predict --out``).
MAX_LABELS = 64
