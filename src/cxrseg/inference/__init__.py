"""Prediction: load a run, checkpoint or exported ONNX model and segment radiographs.

::

    from cxrseg.inference import Predictor, predict_paths

    predictor = Predictor.from_checkpoint("runs/mont256", tta=True)
    prediction = predictor.predict(image)          # masks at the image's original size
    predict_paths(predictor, ["scans/"], "predictions/")

Submodules: :mod:`~cxrseg.inference.model_file` (finding the model, its metadata, version
checks), :mod:`~cxrseg.inference.preprocess` (the training resize and normalisation in NumPy,
and their inverse), :mod:`~cxrseg.inference.backends` (PyTorch or ONNX Runtime),
:mod:`~cxrseg.inference.predictor` and :mod:`~cxrseg.inference.paths` (files in, standard
layout out). Importing this package does not import torch; an ONNX model runs without it.
"""

from __future__ import annotations

from cxrseg.inference.backends import OnnxBackend, TorchBackend
from cxrseg.inference.model_file import ModelFile, ModelInfo, locate_model, model_info
from cxrseg.inference.paths import InputFiles, PredictSummary, expand_inputs, predict_paths
from cxrseg.inference.predictor import FLIPS, Prediction, Predictor, mirror_name

__all__ = [
    "FLIPS",
    "InputFiles",
    "ModelFile",
    "ModelInfo",
    "OnnxBackend",
    "PredictSummary",
    "Prediction",
    "Predictor",
    "TorchBackend",
    "expand_inputs",
    "locate_model",
    "mirror_name",
    "model_info",
    "predict_paths",
]
