"""What a person expects of any command line: help that fits 80 columns, --threads, defaults
shown, progress that reaches a pipe, and train options for the split fractions."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cxrseg.cli import app
from cxrseg.cli._threads import THREAD_VARIABLES, use_threads
from cxrseg.cli.train import _TrainProgress
from cxrseg.training import TrainConfig
from training_builders import phantom_folder, tiny_config

runner = CliRunner(env={"COLUMNS": "80"})
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
THREADED = ("train", "predict", "augment", "evaluate")


def _help(command: str) -> str:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    return result.stdout


def _params(command: str) -> list:
    return typer.main.get_command(app).commands[command].params  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_fits_80_columns_without_cutting_a_name(command: str) -> None:
    text = _help(command)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    for param in _params(command):
        if param.param_type_name == "option":
            for name in param.opts + param.secondary_opts:
                assert re.search(rf"{re.escape(name)}(\s|,|$)", text, re.M), name


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_flags_as_flags_and_real_metavars(command: str) -> None:
    text = _help(command)
    assert not re.search(r"<(bool|path|int|str|float|text)>", text), text
    usage = text.splitlines()[0]
    arguments = usage.split("[OPTIONS]", 1)[1]
    assert "{" not in arguments and arguments == arguments.upper(), usage  # DATA, not {data}
    for param in _params(command):
        if getattr(param, "is_flag", False):
            line = next(line for line in text.splitlines() if param.opts[0] in line)
            after = line.split(param.opts[-1], 1)[1]
            assert not re.match(r" (<\w+>|[A-Z]{2,}\b)", after), line  # no value after it


@pytest.mark.parametrize("command", ["demo", "inspect", "predict"])
def test_help_rewraps_docstring_paragraphs_to_the_width(command: str) -> None:
    """A source line break inside a paragraph would leave a short line before a word that fits."""
    text = _help(command)
    description = text.split("\n\n", 1)[1].split("\nArguments:", 1)[0].split("\nOptions:")[0]
    for paragraph in description.split("\n\n"):
        lines = paragraph.splitlines()
        for line, following in zip(lines, lines[1:], strict=False):
            assert len(line) + 1 + len(following.split()[0]) > 80, (line, following)


@pytest.mark.parametrize("command", THREADED)
def test_threads_option_on_every_heavy_command(command: str) -> None:
    assert "--threads N" in _help(command)


def test_train_help_shows_the_config_defaults() -> None:
    defaults = TrainConfig()
    text = " ".join(_help("train").split())
    fields = ("epochs", "lr", "loss", "val_fraction", "test_fraction", "device", "seed")
    for field in fields:
        option = "--" + field.replace("_", "-")
        shown = re.search(rf"{option} \S+ .*?\[default: ([^\]]+)\]", text)
        assert shown is not None, option
        assert shown[1].split(";")[0] == str(getattr(defaults, field)), option
    for option in ("--size", "--batch-size", "--workers"):  # data-dependent: said in words
        assert re.search(rf"{option} \S+ [^\[]*\[default: [a-z]", text), option


@pytest.fixture
def restore_threads(monkeypatch: pytest.MonkeyPatch):
    import cv2
    import torch

    for name in THREAD_VARIABLES:  # monkeypatch puts the old values back afterwards
        monkeypatch.setenv(name, os.environ.get(name, "1"))
    before = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(before[0])
    cv2.setNumThreads(before[1])


@pytest.mark.usefixtures("restore_threads")
@pytest.mark.parametrize("threads", [1, 2])
def test_use_threads_sets_every_pool(threads: int) -> None:
    import cv2
    import torch

    use_threads(threads)
    assert torch.get_num_threads() == threads
    assert cv2.getNumThreads() == threads
    assert all(os.environ[name] == str(threads) for name in THREAD_VARIABLES)


@pytest.mark.usefixtures("restore_threads")
def test_train_takes_split_fractions_and_threads(tmp_path: Path) -> None:
    import torch

    data = phantom_folder(tmp_path / "data", n=6)
    config = tmp_path / "train.yaml"
    tiny_config().to_yaml(config)
    out = tmp_path / "run"
    args = ["train", str(data), "--out", str(out), "-c", str(config), "--epochs", "1",
            "--val-fraction", "0.34", "--test-fraction", "0", "--threads", "1", "-q"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = TrainConfig.from_yaml(out / "config.yaml")
    assert (saved.val_fraction, saved.test_fraction) == (0.34, 0.0)
    assert "4 train / 2 val / 0 test cases" in result.stdout, result.output
    assert torch.get_num_threads() == 1
    epoch_line = re.search(r"^epoch 1/1: train loss \d", result.stdout, re.M)
    assert epoch_line, result.output  # on stdout, not stderr


def test_train_bar_shows_the_current_epoch_mean_loss_and_the_last_validation() -> None:
    progress = _TrainProgress(enabled=False)
    progress.epochs = 3
    for epoch, step, loss in ((1, 1, 0.9), (1, 2, 0.7)):
        progress({"event": "step", "epoch": epoch, "step": step, "steps": 2, "loss": loss})
    progress({"event": "epoch", "epoch": 1, "epochs": 3, "train_loss": 0.8, "val_loss": 0.5,
              "val_dice_mean": 0.61, "best": True, "epoch_s": 1.0})  # fmt: skip
    for step, loss in ((1, 0.3), (2, 0.2)):
        event = {"event": "step", "epoch": 2, "step": step, "steps": 2, "loss": loss}
        progress(event)
    text = progress.describe(event)
    assert text.startswith("epoch 2/3 step 2/2 loss 0.2500")  # this epoch's steps only
    assert "val Dice 0.6100 (epoch 1)" in text


def test_demo_folder_is_git_ignored_in_this_repository() -> None:
    from cxrseg.demo import DEFAULT_OUT

    gitignore = Path(__file__).resolve().parents[1] / ".gitignore"
    assert f"/{DEFAULT_OUT.as_posix()}/" in gitignore.read_text(encoding="utf-8").splitlines()


def test_a_piped_command_prints_plain_progress_lines(tmp_path: Path) -> None:
    """Through a pipe (no terminal), a stage's progress arrives as plain lines on stderr."""
    import subprocess
    import sys

    out = tmp_path / "ph"
    done = subprocess.run(
        [sys.executable, "-m", "cxrseg", "phantom", "--out", str(out), "-n", "4", "--size", "64"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("phantoms: ")]
    assert lines[-1] == "phantoms: 4/4", done.stderr
    assert len(lines) <= 11
