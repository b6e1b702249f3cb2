"""Fixtures shared by the test modules: one torch thread, a phantom dataset on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

#: The phantom dataset of the ``phantoms`` fixture unless a module sets ``PHANTOMS``.
DEFAULT_PHANTOMS = {"n": 6, "size": 32, "seed": 0}


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run torch on one thread: tiny models are faster so, and immune to busy CPUs."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def phantoms(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phantom dataset (five structures, standard layout) written once per test module.

    A module picks its size with ``PHANTOMS = {"n": 3, "size": 64, "seed": 0}``; keys left out
    take :data:`DEFAULT_PHANTOMS`.
    """
    from cxrseg.phantom import write_phantom_dataset

    spec = {**DEFAULT_PHANTOMS, **getattr(request.module, "PHANTOMS", {})}
    root = tmp_path_factory.mktemp("phantoms") / "data"
    write_phantom_dataset(root, spec["n"], size=spec["size"], seed=spec["seed"])
    return root
