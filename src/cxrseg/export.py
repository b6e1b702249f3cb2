"""The old home of :mod:`cxrseg.inference.export` (kept so ``cxrseg.export`` imports still work)."""

from __future__ import annotations

from cxrseg.inference.export import (
    EXPORT_FORMATS,
    ExportCheckError,
    default_export_path,
    export_model,
    onnx_bytes,
)

__all__ = [
    "EXPORT_FORMATS",
    "ExportCheckError",
    "default_export_path",
    "export_model",
    "onnx_bytes",
]
