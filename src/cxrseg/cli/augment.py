"""The `cxrseg augment` command: offline elastic augmentation to disk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cxrseg.cli._app import app, console, fail, progress_bar
from cxrseg.cli._threads import Threads, use_threads


@app.command("augment")
def augment_command(
    data: Annotated[Path, typer.Argument(help="Dataset folder (standard, Montgomery, ...).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", metavar="DIR", help="Output folder, outside DATA.")
    ],
    number: Annotated[int, typer.Option("-n", "--number", help="Number of samples to write.")],
    size: Annotated[int, typer.Option(help="Side of the square images written, in pixels.")] = 512,
    resize: Annotated[
        str, typer.Option(help="squash (ignore aspect ratio) or letterbox (keep it, pad with 0).")
    ] = "squash",
    pipeline_file: Annotated[
        Path | None,
        typer.Option("--pipeline", metavar="FILE", help="Pipeline YAML (as saved by a run)."),
    ] = None,
    random_distortion: Annotated[
        tuple[int, int, int] | None,
        typer.Option(metavar="GW GH MAG", help="Augmentor's random_distortion, probability 1."),
    ] = None,
    gaussian_distortion: Annotated[
        tuple[int, int, float, str, str] | None,
        typer.Option(
            metavar="GW GH MAG CORNER METHOD",
            help="Augmentor's gaussian_distortion, probability 1 (CORNER: bell|ul|ur|dl|dr, "
            "METHOD: in|out).",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default: the pipeline's, or 0).")] = None,
    workers: Annotated[int, typer.Option(help="Threads; the output does not depend on it.")] = 1,
    threads: Threads = None,
) -> None:
    """Write N augmented image/mask pairs, with a manifest; rerun to continue an interrupted run."""
    # lazy: start-up time
    from cxrseg.augment.pipeline import Pipeline
    from cxrseg.augment_offline import augment_dataset

    use_threads(threads)  # after the imports: it sets the pools they loaded

    flags = random_distortion is not None or gaussian_distortion is not None
    if pipeline_file is not None and flags:
        raise fail("give either --pipeline or --random-distortion/--gaussian-distortion, not both.")
    if pipeline_file is None and not flags:
        raise fail(
            "choose the augmentation: --pipeline FILE.yaml, --random-distortion GW GH MAG or "
            "--gaussian-distortion GW GH MAG CORNER METHOD."
        )
    try:
        if pipeline_file is not None:
            pipeline = Pipeline.from_yaml(pipeline_file)
        else:
            pipeline = Pipeline(seed=0 if seed is None else seed)
            if random_distortion is not None:
                pipeline.random_distortion(1.0, *random_distortion)
            if gaussian_distortion is not None:
                pipeline.gaussian_distortion(1.0, *gaussian_distortion)
        with progress_bar("augment") as progress:
            summary = augment_dataset(
                data,
                out,
                number,
                pipeline=pipeline,
                size=size,
                resize=resize,
                seed=seed,
                workers=workers,
                progress=progress,
            )
    except (ValueError, TypeError) as exc:
        raise fail(str(exc)) from exc
    from rich.markup import escape  # lazy: start-up time

    console.print(
        f"{summary.written} samples written, {summary.skipped} already there: "
        f"{escape(str(summary.out))} (manifest {escape(summary.manifest.name)})"
    )
