"""The whole pipeline on synthetic radiographs in one call: what ``cxrseg demo`` runs.

:func:`run_demo` chains the public function of every stage and writes, under ``out``::

    phantoms/        training + validation phantoms          cxrseg.phantom.write_phantom_dataset
    test-phantoms/   held-out phantoms (another seed)        cxrseg.phantom.write_phantom_dataset
    augmented/       offline elastic augmentation of the     cxrseg.augment_offline.augment_dataset
                     training phantoms only
    training-set/    phantoms + augmented samples (hard links), and splits.json
    run/             the training run: config.yaml, metrics.csv, curves.png, best/, last/
                                                             cxrseg.training.train
    predictions/     masks of the held-out phantoms, post-processed as chosen on validation
                                                             cxrseg.inference.predict_paths
    evaluation/      cases.csv, summary.json, report.html    cxrseg.evaluation.evaluate
    demo.json        settings, step timings, mean Dice per structure, paths

The validation phantoms are never augmented, and the augmented samples only ever train, so the
validation Dice that picks the best epoch and the post-processing is measured on unseen,
undistorted phantoms; the test phantoms are drawn from another seed and seen only at the end.

Structures: by default both lungs and the heart. They never overlap in the phantoms, so the run
trains one softmax over exclusive classes (the seed project's categorical set-up) and reaches a
mean test Dice above 0.9 in a few CPU minutes. ``structures=STRUCTURES`` adds the two clavicles:
they overlap the lungs, so training switches to sigmoid outputs; at the demo's 128 px they are
a few pixels thick and need far more training than the demo's budget to pass 0.9.
"""

from __future__ import annotations

from cxrseg.demo.run import EventCallback, run_demo
from cxrseg.demo.settings import (
    DEFAULT_OUT,
    DEMO_STRUCTURES,
    MARKER,
    OUTPUTS,
    STEPS,
    DemoResult,
    DemoSettings,
)

__all__ = ["DEFAULT_OUT", "DEMO_STRUCTURES", "MARKER", "OUTPUTS", "STEPS", "DemoResult",
           "DemoSettings", "EventCallback", "run_demo"]  # fmt: skip
