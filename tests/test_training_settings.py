"""TrainingSettings: the one place of the training defaults and checks, used by the config check."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from dft2mlip.config import ConfigError, check_config, validate_config
from dft2mlip.train.settings import STUDY_LEVEL_KEYS, TrainingSettings

ROOT = Path(__file__).resolve().parents[1]


def schema_training() -> dict:
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    return schema["properties"]["training"]["properties"]


def test_schema_documents_exactly_the_settings_and_their_defaults():
    props = schema_training()
    shared = {k: v for k, v in props.items() if k not in STUDY_LEVEL_KEYS}
    fields = {f.name: f.default for f in dataclasses.fields(TrainingSettings)}
    assert set(shared) == set(fields)
    for key, default in fields.items():
        assert shared[key]["default"] == default, key
        # ranges and choices live in TrainingSettings only
        assert not {"minimum", "exclusiveMinimum", "exclusiveMaximum", "enum", "pattern"} & set(
            shared[key]
        ), key


def test_from_config_ignores_the_study_keys_and_refuses_unknown_ones():
    settings = TrainingSettings.from_config({"epochs": 3, "runs": {}, "seeds": 2})
    assert settings.epochs == 3 and settings.lr == TrainingSettings().lr
    with pytest.raises(ValueError, match=r"training\.epoch is not a training setting"):
        TrainingSettings.from_config({"epoch": 3})


def test_numbers_are_coerced_and_wrong_types_refused():
    assert TrainingSettings(lr=1, min_lr=0).lr == 1.0
    assert isinstance(TrainingSettings(clip_grad_norm=5).clip_grad_norm, float)
    with pytest.raises(ValueError, match=r"training\.epochs"):
        TrainingSettings(epochs=2.5)
    with pytest.raises(ValueError, match=r"training\.lr"):
        TrainingSettings(lr=True)


BAD = [
    ("epochs", 0),
    ("batch_size", 0),
    ("lr", 0.0),
    ("lr", float("nan")),
    ("dtype", "float16"),
    ("device", "tpu"),
    ("lr_scheduler", "step"),
    ("lr_factor", 1.0),
    ("lr_patience", -1),
    ("min_lr", -1e-3),
    ("ema_decay", 1.0),
    ("ema_decay", -0.1),
    ("early_stopping_patience", -1),
    ("clip_grad_norm", -1.0),
]


@pytest.mark.parametrize(("key", "value"), BAD)
def test_settings_refuse_values_out_of_range(key, value):
    with pytest.raises(ValueError, match=rf"training\.{key} ="):
        TrainingSettings(**{key: value})


@pytest.mark.parametrize(("key", "value"), [b for b in BAD if b[0] != "lr" or b[1] == 0.0])
def test_config_check_refuses_bad_training_values_naming_the_key(key, value):
    """What ``snakemake -n`` runs: schema validation, then the semantic check."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    bad = copy.deepcopy(config)
    bad["training"][key] = value
    validate_config(bad)
    with pytest.raises(ConfigError, match=rf"training\.{key} ="):
        check_config(bad)


def test_cuda_device_is_accepted_without_cuda():
    """The config may name cuda on a submit host without a GPU; the trainer checks at run time."""
    assert TrainingSettings(device="cuda:1").device == "cuda:1"
