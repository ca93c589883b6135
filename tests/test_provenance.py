"""The provenance manifest library (fast; the manifest of a real run is checked in
test_reproducibility.py)."""

import hashlib
import json

from dft2mlip.provenance import (
    build_manifest,
    compare_outputs,
    config_sha256,
    dft_summary,
    file_sha256,
    git_state,
    write_manifest,
)


def test_file_hash_is_sha256_of_the_bytes(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"x" * 3_000_001)  # spans several read blocks
    assert file_sha256(path) == hashlib.sha256(b"x" * 3_000_001).hexdigest()


def test_config_hash_ignores_key_order_but_not_values():
    a = {"dft": {"qe": {"ecutwfc_Ry": 30.0, "kspacing_per_A": 0.35}}, "seed": 1}
    b = {"seed": 1, "dft": {"qe": {"kspacing_per_A": 0.35, "ecutwfc_Ry": 30.0}}}
    c = {"seed": 1, "dft": {"qe": {"kspacing_per_A": 0.35, "ecutwfc_Ry": 30.5}}}
    assert config_sha256(a) == config_sha256(b)
    assert config_sha256(a) != config_sha256(c)


def test_dft_summary_exposes_labels_that_disagree_on_a_pseudopotential():
    si = {"file": "Si.UPF", "md5": "aaa"}
    labels = [
        {"code_version": "6.7MaX", "pseudopotentials": {"Si": si}},
        {"code_version": "6.7MaX", "pseudopotentials": {"Si": si}},
        {"code_version": "7.2", "pseudopotentials": {"Si": {"file": "Si.UPF", "md5": "bbb"}}},
        {"code_version": "6.4.2", "potcars": ["PAW_PBE Si"], "potcar_sha256": {"Si": "ccc"}},
    ]
    summary = dft_summary(labels)
    assert summary["code_versions"] == ["6.4.2", "6.7MaX", "7.2"]
    assert [e["md5"] for e in summary["pseudopotentials"]["Si"]] == ["aaa", "bbb"]
    assert summary["potcar_sha256"] == {"Si": ["ccc"]}


def test_manifest_round_trip_and_comparison(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "x.txt").write_text("1")
    (out / "y.txt").write_text("2")
    config = {"dft": {"engine": "qe"}, "seed": 3}
    a = build_manifest(config, [out / "x.txt", out / "y.txt"], relative_to=tmp_path)
    assert set(a["outputs"]) == {"results/x.txt", "results/y.txt"}
    assert a["config_sha256"] == config_sha256(config) and a["dft"]["engine"] == "qe"
    assert a["packages"]["dft2mlip"] == a["dft2mlip"]["version"]
    write_manifest(a, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == json.loads(json.dumps(a))

    (out / "y.txt").write_text("changed")
    (out / "z.txt").write_text("new")
    b = build_manifest(config, [out / "y.txt", out / "z.txt"], relative_to=tmp_path)
    assert compare_outputs(a, b) == {
        "different": ["results/y.txt"],
        "only_a": ["results/x.txt"],
        "only_b": ["results/z.txt"],
    }


def test_git_state_outside_a_checkout_is_unknown(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
