"""Augmentation throughput: cxrseg's seed pipeline beside Augmentor, albumentations and the floor.

Every figure is measured in this one run, on the same image and mask pair (a 512 x 512
phantom radiograph, uint8, and its lung mask, 0/255):

* cxrseg core: draw parameters, the exact map of the two meshes in one pass
  (``functional.chain_map``, numba kernel), one bilinear remap of the image and one nearest
  remap of the mask (``resample.warp``);
* cxrseg Pipeline: the same seed pipeline through ``cxrseg.augment.pipeline.Pipeline``;
* Augmentor 0.2.12 ``DataPipeline`` (bicubic for image and mask alike);
* albumentations ``GridDistortion`` and ``ElasticTransform`` (image + mask);
* the floor: one ``cv2.remap`` of the image (bilinear) and the mask (nearest) with a map made
  beforehand, i.e. what any one-resample method must at least spend.

Usage::

    python benchmarks/bench_augment.py                 # CPU, one and two threads
    python benchmarks/bench_augment.py --device cuda   # GPU, batches of 256 (grid_sample)

The seed pipeline is Augmentor's ``random_distortion(1, 5, 5, 8)`` followed by
``gaussian_distortion(1, 5, 5, 8, "bell", "in")``. Each CPU figure is given per wall-clock
second and per CPU second of the process (pairs per second per core, steadier on a shared
machine). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

GRID = 5
MAGNITUDE_RANDOM = 8
MAGNITUDE_GAUSSIAN = 8


def test_pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A phantom radiograph (uint8) and its left lung mask (0/255)."""
    from cxrseg.phantom import make_phantom

    phantom = make_phantom(seed=0, size=size)
    image = np.round(phantom.image * 255).astype(np.uint8)
    mask = (phantom.masks["left_lung"] > 0).astype(np.uint8) * 255
    return image, mask


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def rate(step: Callable[[int], object], seconds: float, threads: int) -> tuple[float, float]:
    """Pairs of ``step(i)`` run for about ``seconds`` on ``threads`` threads.

    Returns:
        ``(per wall-clock second, per CPU second of this process)``. On a machine shared with
        other jobs the second is the steadier figure: it counts only the time the process had
        a core, i.e. pairs per second per core.
    """
    step(0)  # warm up (caches, lazy imports)
    wall, cpu = time.perf_counter(), time.process_time()
    if threads == 1:
        done = 0
        while time.perf_counter() - wall < seconds:
            step(done)
            done += 1
    else:
        deadline = wall + seconds

        def worker(offset: int) -> int:
            n = 0
            while time.perf_counter() < deadline:
                step(offset + threads * n)
                n += 1
            return n

        with ThreadPoolExecutor(threads) as pool:
            done = sum(pool.map(worker, range(threads)))
    return done / (time.perf_counter() - wall), done / max(time.process_time() - cpu, 1e-9)


def cxrseg_core(image: np.ndarray, mask: np.ndarray, kind: str) -> Callable[[int], object]:
    from cxrseg.augment import geometry as F
    from cxrseg.augment.resample_cv import warp

    height, width = image.shape
    sigmas = F.gaussian_sigmas(height, width, GRID, GRID, MAGNITUDE_GAUSSIAN)[..., None]
    shape = (GRID - 1, GRID - 1, 2)

    def step(i: int) -> object:
        rng = np.random.default_rng(i)
        steps = []
        if kind in ("chained", "random"):
            d = rng.integers(-MAGNITUDE_RANDOM, MAGNITUDE_RANDOM + 1, shape)
            steps.append(F.MeshSpec(GRID, GRID, d))
        if kind in ("chained", "gaussian"):
            steps.append(F.MeshSpec(GRID, GRID, rng.standard_normal(shape) * sigmas))
        return warp(image, [mask], F.chain_map(height, width, steps))

    return step


def cxrseg_pipeline(image: np.ndarray, mask: np.ndarray) -> Callable[[int], object]:
    from cxrseg.augment.pipeline import Pipeline

    p = Pipeline(seed=0)
    p.random_distortion(1, GRID, GRID, MAGNITUDE_RANDOM)
    p.gaussian_distortion(1, GRID, GRID, MAGNITUDE_GAUSSIAN, corner="bell", method="in")
    return lambda i: p(image, [mask], index=i)


def augmentor(image: np.ndarray, mask: np.ndarray, kind: str) -> Callable[[int], object]:
    import Augmentor

    p = Augmentor.DataPipeline([[image, mask]])
    if kind in ("chained", "random"):
        p.random_distortion(1, GRID, GRID, MAGNITUDE_RANDOM)
    if kind in ("chained", "gaussian"):
        p.gaussian_distortion(1, GRID, GRID, MAGNITUDE_GAUSSIAN, corner="bell", method="in")
    return lambda i: p.sample(1)


def albumentations(image: np.ndarray, mask: np.ndarray, kind: str) -> Callable[[int], object]:
    import albumentations as A

    size = image.shape[0]
    if kind == "grid":
        # Similar strength: 5 x 5 cells, vertices moved by up to 8 px of a ~102 px cell.
        transform = A.GridDistortion(num_steps=GRID, distort_limit=MAGNITUDE_RANDOM * GRID / size,
                                     p=1.0)  # fmt: skip
    else:
        transform = A.ElasticTransform(alpha=1.0, sigma=50.0, p=1.0)
    compose = A.Compose([transform], seed=0)
    return lambda i: compose(image=image, mask=mask)


def remap_floor(image: np.ndarray, mask: np.ndarray) -> Callable[[int], object]:
    from cxrseg.augment import geometry as F

    d = np.random.default_rng(0).integers(-MAGNITUDE_RANDOM, MAGNITUDE_RANDOM + 1, (4, 4, 2))
    map_x, map_y = F.mesh_map(*image.shape, GRID, GRID, d)

    def step(i: int) -> object:
        out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        return out, cv2.remap(mask, map_x, map_y, cv2.INTER_NEAREST)

    return step


def run_cpu(size: int, seconds: float, thread_counts: list[int], rounds: int) -> None:
    image, mask = test_pair(size)
    rows: list[tuple[str, Callable[[int], object] | None]] = [
        ("cxrseg core, chained (seed pipeline)", cxrseg_core(image, mask, "chained")),
        ("cxrseg Pipeline, chained (seed pipeline)", cxrseg_pipeline(image, mask)),
        ("cxrseg core, random_distortion", cxrseg_core(image, mask, "random")),
        ("cxrseg core, gaussian_distortion", cxrseg_core(image, mask, "gaussian")),
    ]
    for name, factory in (("Augmentor", augmentor), ("albumentations", albumentations)):
        kinds = ("chained", "random", "gaussian") if name == "Augmentor" else ("grid", "elastic")
        labels = {"grid": "GridDistortion", "elastic": "ElasticTransform"}
        for kind in kinds:
            try:
                step = factory(image, mask, kind)
            except ImportError:
                step = None
            rows.append((f"{name}, {labels.get(kind, kind)}", step))
    rows.append(("floor: cv2.remap image + mask, map given", remap_floor(image, mask)))

    # Methods take turns in short windows, so all see the same load from other processes;
    # each figure is the best window (as timeit reports the best run).
    columns = [f"{t} thread{'s' * (t > 1)}" for t in thread_counts]
    columns.insert(0, f"{thread_counts[0]} thread{'s' * (thread_counts[0] > 1)}, per CPU-s")
    results: dict[str, list[float]] = {label: [] for label, _ in rows}
    cv2.setNumThreads(1)  # parallelism comes from our threads only
    for n, threads in enumerate(thread_counts):
        best_wall = dict.fromkeys(results, 0.0)
        best_cpu = dict.fromkeys(results, 0.0)
        for _ in range(rounds):
            for label, step in rows:
                if step is not None:
                    wall, cpu = rate(step, seconds / rounds, threads)
                    best_wall[label] = max(best_wall[label], wall)
                    best_cpu[label] = max(best_cpu[label], cpu)
        for label, step in rows:
            figures = [best_cpu[label], best_wall[label]] if n == 0 else [best_wall[label]]
            results[label] += figures if step is not None else [float("nan")] * len(figures)

    versions = (
        f"Python {platform.python_version()}, OpenCV {cv2.__version__}, NumPy {np.__version__}"
    )
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, {versions}")
    print(f"image: {size} x {size} uint8 + mask; pairs/s (wall clock, or per CPU second of "
          f"this process), best of {rounds} windows of {seconds / rounds:.2g} s\n")  # fmt: skip
    print("| method | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for label, figures in results.items():
        print(f"| {label} | " + " | ".join(f"{f:,.1f}" for f in figures) + " |")
    ours = results["cxrseg core, chained (seed pipeline)"]
    pipe = results["cxrseg Pipeline, chained (seed pipeline)"]
    theirs = results["Augmentor, chained"]
    floor = results["floor: cv2.remap image + mask, map given"]
    for k in (0, 1):
        print(f"\nratios ({columns[k]}):")
        print(f"  cxrseg core chained / Augmentor chained: {ours[k] / theirs[k]:,.1f}x")
        print(f"  cxrseg Pipeline chained / Augmentor chained: {pipe[k] / theirs[k]:,.1f}x")
        print(f"  cxrseg core chained / remap floor: {ours[k] / floor[k]:.0%}")
        print(f"  cxrseg Pipeline chained / remap floor: {pipe[k] / floor[k]:.0%}")
    if len(thread_counts) > 1:
        t = thread_counts[-1]
        print(f"  cxrseg core chained, {t} threads / 1 thread (wall): {ours[-1] / ours[1]:.2f}x")


def run_torch(size: int, batch: int, device_name: str, seconds: float) -> None:
    import torch

    from cxrseg.augment import geometry as F
    from cxrseg.augment.resample_torch import mesh_grid_batch, warp_batch

    device = torch.device(device_name)
    image, mask = test_pair(size)
    images = torch.from_numpy(image)[None, None].repeat(batch, 1, 1, 1).to(device)
    masks = torch.from_numpy(mask)[None, None].repeat(batch, 1, 1, 1).to(device)
    sigmas = torch.as_tensor(F.gaussian_sigmas(size, size, GRID, GRID, MAGNITUDE_GAUSSIAN),
                             dtype=torch.float32, device=device)[..., None]  # fmt: skip
    generator = torch.Generator(device=device).manual_seed(0)
    shape = (batch, GRID - 1, GRID - 1, 2)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def step() -> None:
        d = torch.randint(-MAGNITUDE_RANDOM, MAGNITUDE_RANDOM + 1, shape, generator=generator,
                          device=device).float()  # fmt: skip
        g = torch.randn(shape, generator=generator, device=device) * sigmas
        second = mesh_grid_batch(size, size, GRID, GRID, g, device)
        grid = mesh_grid_batch(size, size, GRID, GRID, d, device, base=second)
        warp_batch(images, masks, grid)

    with torch.no_grad():
        step()
        sync()
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            step()
            done += batch
        sync()
        elapsed = time.perf_counter() - start
    label = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {label}, torch {torch.__version__}, batch {batch}, {size} x {size}")
    print("| method | pairs/s |\n|---|---:|")
    print(f"| cxrseg torch backend, chained (seed pipeline) | {done / elapsed:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="numpy", help="numpy (default), cpu or cuda[:i]")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=2.0, help="time per figure")
    parser.add_argument("--rounds", type=int, default=4, help="windows per figure (best kept)")
    parser.add_argument("--threads", default="1,2", help="thread counts for the NumPy backend")
    parser.add_argument("--batch", type=int, default=256, help="batch size for torch devices")
    args = parser.parse_args()
    if args.device == "numpy":
        run_cpu(args.size, args.seconds, [int(t) for t in args.threads.split(",")], args.rounds)
    else:
        run_torch(args.size, args.batch, args.device, args.seconds)


if __name__ == "__main__":
    main()
