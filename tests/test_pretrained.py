"""The lung model shipped in the package: found, described, run, fine-tuned; bad names refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import cxrseg.catalogue as catalogue
import cxrseg.pretrained as pretrained
from cxrseg.cli import app
from cxrseg.errors import InputError
from cxrseg.io import read_mask, write_image
from cxrseg.phantom import make_phantom

runner = CliRunner()


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def phantom_lungs(seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    phantom = make_phantom(seed, size)
    return phantom.image, (phantom.masks["left_lung"] > 0) | (phantom.masks["right_lung"] > 0)


def test_the_lung_model_ships_as_safetensors_with_its_card_and_figures() -> None:
    folder = pretrained.model_path("lungs")
    assert folder.is_relative_to(Path(pretrained.__file__).parent)
    for name in ("model.safetensors", "model.json", "results.json", "MODEL_CARD.md", "LICENSE.md"):
        assert (folder / name).is_file(), name
    assert not list(folder.glob("*.pt")) and not list(folder.glob("*.pth"))
    info = pretrained.describe("lungs")
    assert info["structures"] == ["lungs"]
    assert info["weights_mb"] < 10  # "a few MB"
    assert 0.5e6 < info["parameters"] < 5e6
    assert {row["test"] for row in info["results"]} == {"montgomery", "shenzhen", "all"}


def test_the_lung_model_carries_the_ranges_of_its_quality_flags() -> None:
    """scripts/train_lung_model.py stores them; a model installed without them fails here."""
    meta = json.loads((pretrained.model_path("lungs") / "model.json").read_text("utf-8"))
    quality = meta["quality"]
    assert quality["n_cases"] == meta["dataset"]["train"]
    assert set(quality["structures"]) == {"lungs"}
    assert quality["appearance"] is not None


def test_the_weights_licence_statement_names_the_licence_and_the_weights() -> None:
    statement = Path(pretrained.describe("lungs")["license_file"]).read_text(encoding="utf-8")
    assert pretrained.PRETRAINED["lungs"].license in statement
    assert "model.safetensors" in statement and "LICENSES/CC-BY-NC-SA-4.0.txt" in statement


def test_the_card_quotes_the_figures_of_results_json() -> None:
    info = pretrained.describe("lungs")
    card = Path(info["card"]).read_text(encoding="utf-8")
    for row in info["results"]:
        assert f"{row['dice_mean']:.4f}" in card, row["test"]  # the card's 4 decimals
    for words in ("CC BY-NC-SA 4.0", "not for diagnosis", "scripts/train_lung_model.py"):
        assert words.lower() in card.lower(), words


def test_the_lung_model_finds_the_lungs_of_a_synthetic_radiograph() -> None:
    # Trained on real films only; a phantom is an image it has never seen the like of.
    predictor = pretrained.load("lungs", device="cpu")
    assert predictor.labels == ("lungs",)
    for seed in (0, 1):
        image, lungs = phantom_lungs(seed, 320)
        mask = predictor.predict(image).masks["lungs"]
        assert mask.shape == image.shape
        assert dice(mask, lungs) > 0.8


def test_an_unknown_name_lists_the_shipped_models() -> None:
    with pytest.raises(InputError, match="no shipped model is called 'heart'.*lungs"):
        pretrained.model_path("heart")


def test_missing_weights_say_how_to_get_them_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lungs").mkdir()
    (tmp_path / "lungs" / "model.json").write_text("{}", encoding="utf-8")
    monkeypatch.setattr(catalogue, "_HERE", tmp_path)
    with pytest.raises(InputError, match="missing model.safetensors.*reinstall"):
        pretrained.model_path("lungs")


def test_an_existing_path_wins_over_a_shipped_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert pretrained.resolve("lungs") == pretrained.model_path("lungs")
    (tmp_path / "lungs").mkdir()
    assert pretrained.resolve("lungs") == Path("lungs")
    assert pretrained.resolve("runs/x") == Path("runs/x")


def test_cli_predict_with_the_shipped_model(tmp_path: Path) -> None:
    image, lungs = phantom_lungs(2, 300)
    write_image(tmp_path / "in" / "film.png", image)
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["predict", "--model", "lungs", str(tmp_path / "in"), "--out", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    mask = read_mask(out / "masks" / "lungs" / "film.png") > 0
    assert mask.shape == (300, 300)
    assert dice(mask, lungs) > 0.8
    assert json.loads((out / "predictions.json").read_text(encoding="utf-8"))


def test_cli_predict_takes_a_shipped_name_as_model(tmp_path: Path) -> None:
    image, _ = phantom_lungs(3, 128)
    write_image(tmp_path / "film.png", image)
    result = runner.invoke(
        app, ["predict", "lungs", str(tmp_path / "film.png"), "--out", str(tmp_path / "o"), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "masks" / "lungs" / "film.png").is_file()


def test_cli_predict_without_model_or_inputs_says_what_to_give(tmp_path: Path) -> None:
    result = runner.invoke(app, ["predict", "one.png", "--out", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 2
    assert "give a model and at least one input" in result.output
    assert "--model lungs" in result.output
    assert not (tmp_path / "o").exists()


def test_cli_predict_with_an_unknown_model_name(tmp_path: Path) -> None:
    result = runner.invoke(app, ["predict", "-m", "ribs", "x.png", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "no shipped model is called 'ribs'" in result.output


def test_cli_models_lists_and_shows_the_card() -> None:
    listing = runner.invoke(app, ["models"])
    assert listing.exit_code == 0, listing.output
    assert "lungs" in listing.output and "CC BY-NC-SA 4.0" in listing.output
    card = runner.invoke(app, ["models", "lungs"])
    assert card.exit_code == 0, card.output
    assert "Intended use" in card.output


def test_fine_tuning_starts_from_the_shipped_weights(tmp_path: Path) -> None:
    import torch

    from cxrseg.io import write_mask
    from cxrseg.training import TrainConfig, train
    from cxrseg.training.checkpoint import load_checkpoint

    for index in range(6):  # plain 0/255 lung masks: the structure is called "foreground"
        image, lungs = phantom_lungs(10 + index, 64)
        write_image(tmp_path / "data" / "images" / f"c{index}.png", image)
        write_mask(tmp_path / "data" / "masks" / f"c{index}.png", lungs.astype(np.uint8) * 255)
    config = TrainConfig(
        size=64, epochs=1, batch_size=2, lr=1e-9, augmentation={}, device="cpu", workers=0
    )
    result = train(tmp_path / "data", tmp_path / "run", config, init="lungs")
    tuned, _ = load_checkpoint(tmp_path / "run" / "last")
    shipped, _ = load_checkpoint(pretrained.model_path("lungs"))
    first = "stem.0.weight"
    weights = dict(tuned.named_parameters())
    assert first in weights, sorted(weights)[:5]
    # one step at lr 1e-9 leaves the weights where the shipped model has them
    torch.testing.assert_close(weights[first], dict(shipped.named_parameters())[first])
    assert result.epoch == 1
