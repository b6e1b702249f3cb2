"""Tests of cxrseg.training.checkpoint: round trips, refusals, and no unpickling ever."""

from __future__ import annotations

import json
import math
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrseg import __version__
from cxrseg.errors import InputError
from cxrseg.models import create_model
from cxrseg.training.checkpoint import (
    load_checkpoint,
    load_resume_state,
    save_checkpoint,
    save_resume_state,
)

LABELS = ["left_lung", "right_lung"]


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("unet", in_channels=1, num_classes=3, depth=3, base_channels=4)


def metadata(**overrides: object) -> dict[str, object]:
    meta: dict[str, object] = {
        "labels": LABELS,
        "mode": "softmax",
        "input_size": [32, 32],
        "normalization": {"kind": "zscore"},
        "epoch": 7,
        "metrics": {"val_dice": 0.91},
        "config": {"lr": 1e-3},
    }
    meta.update(overrides)
    return meta


class TouchOnUnpickle:
    """Unpickling this creates ``marker``: the payload a malicious checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_round_trip_restores_weights_config_and_metadata(tmp_path: Path) -> None:
    model = tiny_model().eval()
    x = torch.rand(2, 1, 20, 28)
    json_path = save_checkpoint(tmp_path / "run", model, metadata())
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["model.json", "model.safetensors"]
    for path in (tmp_path / "run", json_path, json_path.with_suffix(".safetensors")):
        loaded, meta = load_checkpoint(path)
        assert not loaded.training
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x))
        assert meta["labels"] == LABELS and meta["mode"] == "softmax"
        assert meta["input_size"] == [32, 32] and meta["metrics"] == {"val_dice": 0.91}
        assert meta["cxrseg_version"] == __version__ and meta["format_version"] == 1
        assert meta["model"] == {"name": "unet", "kwargs": model.config}  # type: ignore[operator]


def test_wrapped_model_is_saved_without_the_wrapper_prefix(tmp_path: Path) -> None:
    model = tiny_model().eval()
    save_checkpoint(tmp_path, torch.nn.DataParallel(model), metadata())
    loaded, _ = load_checkpoint(tmp_path)
    assert loaded.state_dict().keys() == model.state_dict().keys()


def test_labels_that_do_not_fit_the_outputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs num_classes=2, the model has 3"):
        save_checkpoint(tmp_path, tiny_model(), metadata(mode="sigmoid"))
    with pytest.raises(ValueError, match="metadata\\['labels'\\] must be a list"):
        save_checkpoint(tmp_path, tiny_model(), metadata(labels=None))
    assert list(tmp_path.iterdir()) == []


def test_unserialisable_metadata_fails_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="cannot store a object"):
        save_checkpoint(tmp_path / "run", tiny_model(), metadata(config={"x": object()}))
    assert not (tmp_path / "run").exists()


def rewrite_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "changes",
    [{"format_version": 2}, {"cxrseg_version": f"{int(__version__.split('.')[0]) + 1}.0.0"}],
)
def test_checkpoint_from_a_newer_cxrseg_asks_for_an_upgrade(tmp_path: Path, changes) -> None:
    json_path = save_checkpoint(tmp_path, tiny_model(), metadata())
    rewrite_json(json_path, **changes)
    with pytest.raises(InputError, match=f"this is cxrseg {__version__}.*upgrade cxrseg"):
        load_checkpoint(tmp_path)


def test_weights_that_do_not_fit_the_model_name_the_file(tmp_path: Path) -> None:
    model = tiny_model()
    json_path = save_checkpoint(tmp_path, model, metadata())
    kwargs = {**model.config, "base_channels": 8}  # type: ignore[operator]
    rewrite_json(json_path, model={"name": "unet", "kwargs": kwargs})
    with pytest.raises(InputError, match="model.safetensors: weights do not fit the model"):
        load_checkpoint(json_path)


def test_weights_from_another_save_are_refused(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "a", tiny_model(), metadata())
    save_checkpoint(tmp_path / "b", tiny_model(), metadata())
    shutil.copy(tmp_path / "b" / "model.safetensors", tmp_path / "a" / "model.safetensors")
    with pytest.raises(InputError, match="belongs to a different save"):
        load_checkpoint(tmp_path / "a")


def test_a_missing_checkpoint_or_foreign_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="model.json: file not found"):
        load_checkpoint(tmp_path)
    with pytest.raises(InputError, match="is not a cxrseg checkpoint"):
        load_checkpoint(tmp_path / "model.pt")


def test_pickle_payloads_in_a_checkpoint_folder_are_never_executed(tmp_path: Path) -> None:
    # The payload is live: unpickling it does create its marker.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(TouchOnUnpickle(probe)))
    assert probe.exists()

    marker = tmp_path / "pwned"
    payload = pickle.dumps(TouchOnUnpickle(marker))
    folder = tmp_path / "ckpt"
    model = tiny_model()
    save_checkpoint(folder, model, metadata())
    save_resume_state(folder, torch.optim.AdamW(model.parameters()), epoch=1)
    for name in ("model.pt", "model.pth", "resume.pkl", "optimizer.pt"):
        (folder / name).write_bytes(payload)
    load_checkpoint(folder)
    load_resume_state(folder, torch.optim.AdamW(model.parameters()))
    # Pickles in place of the safetensors files are refused, not run.
    (folder / "model.safetensors").write_bytes(payload)
    (folder / "resume.safetensors").write_bytes(payload)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        load_checkpoint(folder)
    with pytest.raises(InputError, match="not a readable safetensors file"):
        load_resume_state(folder)
    with pytest.raises(InputError, match="is not a cxrseg checkpoint"):
        load_checkpoint(folder / "model.pt")
    assert not marker.exists()


def warmup_cosine(step: int) -> float:
    return min(1.0, (step + 1) / 2) * 0.5 * (1 + math.cos(math.pi * min(step, 10) / 10))


def train_steps(model, optimizer, scheduler, batches) -> None:
    model.train()
    for x, y in batches:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        scheduler.step()


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(1)
    batches = [
        (torch.rand(2, 1, 8, 8, generator=gen), torch.randint(0, 3, (2, 8, 8), generator=gen))
        for _ in range(5)
    ]
    model = create_model("unet", in_channels=1, num_classes=3, depth=2, base_channels=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine)
    train_steps(model, optimizer, scheduler, batches[:3])
    save_checkpoint(tmp_path, model, metadata(labels=LABELS))
    save_resume_state(tmp_path, optimizer, scheduler, epoch=3, extra={"best": 0.5})
    train_steps(model, optimizer, scheduler, batches[3:])

    resumed, _ = load_checkpoint(tmp_path)
    optimizer2 = torch.optim.AdamW(resumed.parameters(), lr=1.0)
    scheduler2 = torch.optim.lr_scheduler.LambdaLR(optimizer2, warmup_cosine)
    state = load_resume_state(tmp_path, optimizer2, scheduler2)
    assert (state.epoch, state.extra) == (3, {"best": 0.5})
    assert optimizer2.param_groups[0]["betas"] == (0.8, 0.95)
    train_steps(resumed, optimizer2, scheduler2, batches[3:])

    assert scheduler2.get_last_lr() == scheduler.get_last_lr()
    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_rng_states_and_extra_values_round_trip_without_pickle(tmp_path: Path) -> None:
    torch_gen = torch.Generator().manual_seed(3)
    numpy_gen = np.random.default_rng(4)
    python_gen = random.Random(5)
    rng_state = {
        "torch": torch_gen.get_state(),
        "numpy": numpy_gen.bit_generator.state,
        "numpy_legacy": np.random.RandomState(6).get_state(),
        "python": python_gen.getstate(),
    }
    extra = {"history": [(1, 0.25), (2, float("inf"))], "per_class": {1: 0.5, "__x": None}}
    model = tiny_model()
    save_resume_state(
        tmp_path, torch.optim.SGD(model.parameters(), lr=0.1), None, rng_state, 4, extra
    )
    expected = (torch.rand(3, generator=torch_gen), numpy_gen.random(3), python_gen.random())

    state = load_resume_state(tmp_path)
    torch_gen.set_state(state.rng_state["torch"])
    numpy_gen.bit_generator.state = state.rng_state["numpy"]
    python_gen.setstate(state.rng_state["python"])
    legacy = np.random.RandomState()
    legacy.set_state(state.rng_state["numpy_legacy"])
    assert torch.equal(torch.rand(3, generator=torch_gen), expected[0])
    assert np.array_equal(numpy_gen.random(3), expected[1])
    assert python_gen.random() == expected[2]
    assert legacy.random() == np.random.RandomState(6).random()
    assert state.extra == extra and state.epoch == 4


def test_resume_into_a_different_optimizer_is_refused(tmp_path: Path) -> None:
    model = tiny_model()
    save_resume_state(tmp_path, torch.optim.AdamW(model.parameters()), epoch=1)
    with pytest.raises(InputError, match="state of a AdamW optimizer, not of a SGD"):
        load_resume_state(tmp_path, torch.optim.SGD(model.parameters(), lr=0.1))
