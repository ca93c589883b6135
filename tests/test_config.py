"""The config schema and the semantic checks reject bad input before any work, naming the key."""

import copy
import sys
from pathlib import Path

import pytest
import yaml

from dft2mlip.config import ConfigError, check_config, load_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "config" / "config.yaml"


@pytest.fixture()
def config() -> dict:
    with open(DEFAULT) as fh:
        return yaml.safe_load(fh)


def test_default_config_is_valid_and_complete():
    cfg = load_config(DEFAULT)
    # defaults are filled in for keys the file leaves out
    assert cfg["training"]["runs"]["adaptive"]["loss_weighted"] is False
    assert cfg["dft"]["qe"]["pseudopotentials"]["Si"].endswith(".UPF")


def test_minimal_config_gets_documented_defaults(config):
    # the schema's 30 Ry is below what the default Si file suggests: saying so is the user's call
    minimal = {"material": config["material"], "dft": {"engine": "qe"}}
    validate_config(minimal)
    with pytest.raises(ConfigError, match=r"dft\.qe\.allow_low_cutoff: true"):
        check_config(minimal)
    minimal["dft"]["qe"]["allow_low_cutoff"] = True
    assert minimal["training"]["epochs"] == 60
    # a config without runs gets the study's five runs, three seeds each (config/README.md)
    assert set(minimal["training"]["runs"]) == {
        "adaptive",
        "fixed-normalised",
        "tuned-fixed",
        "mace-like",
        "no-stress",
    }
    assert minimal["training"]["seeds"] == 3
    check_config(minimal)


def test_every_schema_key_has_description_and_default():
    schema = yaml.safe_load(open(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    missing = []

    def walk(node, path):
        for name, sub in node.get("properties", {}).items():
            key = f"{path}.{name}".lstrip(".")
            if "description" not in sub:
                missing.append(f"{key}: description")
            if "default" not in sub and name not in node.get("required", []):
                if not (path.startswith("training.runs") or key.startswith("training.runs")):
                    missing.append(f"{key}: default")
            walk(sub, key)

    walk(schema, "")
    assert not missing, missing


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda c: c["training"].update(epochs="ten"), "training.epochs"),
        (lambda c: c["dft"]["qe"].update(ecutwfc=30), "dft.qe"),
        (lambda c: c.update(materials={}), "<top level>"),
        (lambda c: c["validation"]["md"].update(timestep_fs=8.0), "validation.md.timestep_fs"),
        (
            lambda c: c["training"]["runs"]["mace-like"].update(scheme="magic"),
            "training.runs.mace-like.scheme",
        ),
    ],
)
def test_schema_rejects_bad_values_naming_the_key(config, mutate, key):
    bad = copy.deepcopy(config)
    mutate(bad)
    with pytest.raises(ConfigError) as err:
        validate_config(bad)
    assert f"'{key}'" in str(err.value)


def test_unknown_key_lists_the_allowed_ones(config):
    config["dft"]["qe"]["ecutwfc"] = 30
    with pytest.raises(ConfigError, match="ecutwfc_Ry"):
        validate_config(config)


def test_missing_pseudopotential_names_element_and_key(config):
    config["material"]["elements"] = ["Si", "Ge"]
    validate_config(config)
    with pytest.raises(ConfigError, match=r"dft\.qe\.pseudopotentials\.Ge"):
        check_config(config)


def test_pseudopotential_file_absent_names_directory(config, tmp_path):
    config["dft"]["qe"]["pseudo_dir"] = str(tmp_path)
    validate_config(config)
    with pytest.raises(ConfigError, match=str(tmp_path)):
        check_config(config)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (
            lambda c: c["dataset"].update(fractions={"train": 0.8, "val": 0.1, "test": 0.2}),
            "dataset.fractions",
        ),
        (
            lambda c: c["training"]["runs"]["mace-like"].update(
                weights={"energy": 0, "forces": 0, "stress": 0}
            ),
            "training.runs.mace-like.weights",
        ),
        (
            lambda c: c["training"]["runs"]["mace-like"].update(
                weights={"energy": -1.0, "forces": 1.0, "stress": 1.0}
            ),
            "training.runs.mace-like.weights.energy",
        ),
        (
            lambda c: c["training"]["runs"].update(
                dft={"scheme": "fixed", "weights": {"energy": 1}}
            ),
            "training.runs.dft",
        ),
        (
            lambda c: c["training"]["runs"].update(
                {"MACE-like": c["training"]["runs"]["mace-like"]}
            ),
            "training.runs.",
        ),
        (
            lambda c: c["training"]["runs"]["adaptive"].update(beta=0.0),
            "training.runs.adaptive.beta",
        ),
        (
            lambda c: c["structures"].update(
                strained={"count": 0},
                rattled={"count": 0},
                supercell={"count": 0},
                hydrostatic={"strains": [0.01]},
            ),
            "structures",
        ),
    ],
)
def test_semantic_checks_name_the_key(config, mutate, match):
    validate_config(config)
    mutate(config)
    with pytest.raises(ConfigError, match=match.replace(".", r"\.")):
        check_config(config)


def test_config_readme_is_generated_from_the_schema():
    sys.path.insert(0, str(ROOT / "tools"))
    from config_docs import render

    assert (ROOT / "config" / "README.md").read_text() == render(), (
        "config/README.md is stale: run `.venv/bin/python tools/config_docs.py > config/README.md`"
    )
