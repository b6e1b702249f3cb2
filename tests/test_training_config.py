"""TrainConfig: defaults, YAML round trip, refusal of bad options, the resume identity."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrseg.errors import InputError
from cxrseg.training.config import RUNTIME_FIELDS, TrainConfig, config_diff, default_augmentation


def test_yaml_round_trip_keeps_every_option(tmp_path: Path) -> None:
    config = TrainConfig(size=128, epochs=3, lr=1e-3, model_kwargs={"depth": 4}, loss="ce")
    config.to_yaml(tmp_path / "train.yaml")
    assert TrainConfig.from_yaml(tmp_path / "train.yaml") == config


def test_partial_yaml_keeps_the_defaults_of_missing_options(tmp_path: Path) -> None:
    (tmp_path / "train.yaml").write_text("epochs: 7\noptimizer: sgd\n")
    config = TrainConfig.from_yaml(tmp_path / "train.yaml")
    assert (config.epochs, config.optimizer, config.lr) == (7, "sgd", TrainConfig().lr)


def test_unknown_yaml_option_is_refused_naming_it_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("epochs: 3\nlearning_rate: 0.1\n")
    with pytest.raises(InputError, match=r"train\.yaml.*learning_rate.*valid options.*lr"):
        TrainConfig.from_yaml(path)


def test_bad_value_in_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("size: 100\n")
    with pytest.raises(InputError, match=r"train\.yaml: size=100 .*Fix: use 96"):
        TrainConfig.from_yaml(path)


def test_missing_config_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        TrainConfig.from_yaml(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("optimizer", "adam", "optimizer='adam' is not one of"),
        ("schedule", "step", "schedule='step'"),
        ("device", "gpu", "device='gpu'"),
        ("epochs", 0, "epochs=0 must be a whole number >= 1"),
        ("batch_size", 2.5, "batch_size=2.5"),
        ("lr", 0.0, "lr=0.0 must be > 0"),
        ("lr", float("nan"), "lr=nan must be a finite number"),
        ("val_fraction", 1.2, "val_fraction=1.2"),
        ("mode", "multi", "mode='multi'"),
        ("patience", -1, "patience=-1"),
        ("workers", -2, "workers=-2"),
    ],
)
def test_bad_option_is_refused_naming_the_value(option: str, value: object, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace("[", r"\[")):
        TrainConfig(**{option: value})  # type: ignore[arg-type]


def test_fractions_that_leave_no_training_case_are_refused() -> None:
    with pytest.raises(InputError, match="leaves no case for training"):
        TrainConfig(val_fraction=0.5, test_fraction=0.5)


def test_identity_leaves_out_only_runtime_options() -> None:
    config = TrainConfig()
    assert set(config.to_dict()) - set(config.identity()) == RUNTIME_FIELDS
    assert config.replace(workers=4, device="cpu").fingerprint() == config.fingerprint()
    assert config.replace(lr=0.1).fingerprint() != config.fingerprint()


def test_config_diff_names_each_changed_option() -> None:
    old = TrainConfig().identity()
    new = TrainConfig(lr=0.1, epochs=5).identity()
    default = TrainConfig()
    assert config_diff(old, new) == [f"epochs: {default.epochs} -> 5", f"lr: {default.lr!r} -> 0.1"]


def test_replace_ignores_options_left_as_none() -> None:
    assert TrainConfig(epochs=5).replace(epochs=None, lr=0.5) == TrainConfig(epochs=5, lr=0.5)


def test_default_augmentation_builds_a_pipeline_without_horizontal_flip() -> None:
    from cxrseg.augment.pipeline import Pipeline

    pipeline = Pipeline.from_dict(default_augmentation())
    ops = [op["op"] for op in pipeline.to_dict()["operations"]]
    assert ops[:2] == ["random_distortion", "gaussian_distortion"]
    assert "flip_left_right" not in ops


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ('amp: "no"\n', r"amp='no' must be true or false\..*Fix: write amp: false or true"),
        ("epochs: ten\n", r"epochs='ten' must be a whole number >= 1"),
        ("epochs: 2.5\n", r"epochs=2\.5 must be a whole number"),
        ("lr: fast\n", r"lr='fast' must be a finite number > 0"),
        (
            "model_kwargs: {depht: 3}\n",
            r"unknown option\(s\) model_kwargs\.depht.*valid model_kwargs options.*depth",
        ),
        ("model_kwargs: {num_classes: 3}\n", r"unknown option\(s\) model_kwargs\.num_classes"),
        (
            "model_kwargs: {depth: 40}\n",
            r"model_kwargs\.depth=40 must be a whole number from 2 to 7",
        ),
        ("model_kwargs: {norm: layer}\n", r"model_kwargs\.norm='layer' is not one of"),
        ("model_kwargs: [4]\n", r"model_kwargs=\[4\] must be a mapping"),
        ("class_weights: [1, heavy]\n", r"class_weights\[1\]='heavy' must be a finite number"),
        ("class_weights: [1, -2]\n", r"class_weights\[1\]=-2 must be >= 0"),
        ("model: resnet\n", r"model='resnet' is not one of 'unet' or 'unet_small'"),
        ("size: 100000\n", r"size=100000 must be a whole number from 32 to 2048"),
        ("augmentation: {operations: [{op: warp}]}\n", r"augmentation: operation #0 .*'warp'"),
        ("seed: -1\n", r"seed=-1 must be a whole number >= 0"),
    ],
)
def test_yaml_option_of_wrong_type_or_range_is_one_message(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(yaml_text)
    with pytest.raises(InputError, match=r"train\.yaml: " + message):
        TrainConfig.from_yaml(path)


def test_yaml_exponent_without_a_dot_is_read_as_a_number(tmp_path: Path) -> None:
    (tmp_path / "train.yaml").write_text("lr: 1e-3\n")  # PyYAML reads this as the text "1e-3"
    assert TrainConfig.from_yaml(tmp_path / "train.yaml").lr == 1e-3


def test_unquoted_yaml_no_turns_amp_off(tmp_path: Path) -> None:
    (tmp_path / "train.yaml").write_text("amp: no\n")
    assert TrainConfig.from_yaml(tmp_path / "train.yaml").amp is False


def test_deep_supervision_needs_depth_three() -> None:
    with pytest.raises(InputError, match="deep_supervision needs depth >= 3"):
        TrainConfig(model_kwargs={"depth": 2, "deep_supervision": True})


def test_replace_validates_the_new_values() -> None:
    with pytest.raises(InputError, match="epochs=0"):
        TrainConfig().replace(epochs=0)


def test_class_weights_must_match_the_output_channels() -> None:
    config = TrainConfig(mode="softmax", class_weights=[1.0, 2.0])
    config.check_structures(["lung"])
    with pytest.raises(InputError, match="class_weights has 2 values but the model has 3"):
        config.check_structures(["left", "right"])


def test_every_registered_model_has_an_option_schema() -> None:
    from cxrseg.models import MODELS
    from cxrseg.training.config import MODEL_OPTIONS

    assert set(MODEL_OPTIONS) == set(MODELS)
    assert set(TrainConfig.model_fields["model"].annotation.__args__) == set(MODELS)  # type: ignore[union-attr]


def test_default_model_kwargs_build_the_model() -> None:
    from cxrseg.models import create_model

    config = TrainConfig(model="unet_small", model_kwargs={"depth": 3, "base_channels": 4})
    assert create_model(config.model, num_classes=2, **config.model_kwargs).depth == 3
