"""cxrseg: chest radiograph segmentation from folder to report.

Importing the package does no I/O and imports neither torch nor OpenCV; the stages live in
submodules (``cxrseg.io``, ``cxrseg.data``, ``cxrseg.augment``, ``cxrseg.models``, ...).
"""

from __future__ import annotations

from cxrseg._version import __version__
from cxrseg.errors import CxrsegError, InputError

__all__ = ["CxrsegError", "InputError", "__version__"]
