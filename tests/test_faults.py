"""Fault injection: nothing finished is lost, nothing broken is trained on.

The DFT faults run real pw.x through the real workflow in a temporary directory. A wrapper,
configured as ``dft.qe.executable``, injects one fault per structure on its first call:

- ``strain-000``: pw.x is SIGKILLed mid-SCF; custodian restarts it unchanged, the label is ok;
- ``hydro-001``: pw.x and the whole DFT job are SIGKILLed mid-SCF (a lost node); the workflow run
  fails, and the rerun redoes only that label while every finished label stays byte-identical;
- ``hydro-000``: every run's output is truncated (a corrupted file system); the label is failed
  with the reason, excluded from the dataset and listed in the report.

Atomic writes, NaN/Inf in labels and malicious checkpoints are tested without pw.x.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import ase.io
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from ase.build import bulk

from dft2mlip.data import Label, build_dataset, read_label, write_label
from dft2mlip.io import atomic_write, save_figure

sys.path.insert(0, str(Path(__file__).parent))
from tiny_run import TINY, make_workdir, planned_jobs, snakemake  # noqa: E402

PW = shutil.which("pw.x")
KILL_PW, KILL_JOB, TRUNCATE = "strain-000", "hydro-001", "hydro-000"

WRAPPER = r"""#!/bin/bash
# fault-injecting stand-in for pw.x (tests/test_faults.py)
sid=$(basename "$PWD")
marker="{markers}/$sid"
kill_when_scf_runs() {{  # $1: also kill the DFT job (the parent of this process)
  for _ in $(seq 1500); do  # at most 30 s: never leave this loop behind
    if grep -q "iteration #" pw.out 2>/dev/null; then break; fi; sleep 0.02
  done
  kill -9 $$
  if [ "$1" = job ]; then kill -9 $PPID; fi
}}
if [ "$sid" = "{kill_pw}" ] && [ ! -e "$marker" ]; then
  touch "$marker"; kill_when_scf_runs & exec {pw} "$@"
fi
if [ "$sid" = "{kill_job}" ] && [ ! -e "$marker" ]; then
  touch "$marker"; kill_when_scf_runs job & exec {pw} "$@"
fi
if [ "$sid" = "{truncate}" ]; then
  {pw} "$@"; status=$?
  exec 1>&-  # pw.out (our stdout) is cut to its first half: JOB DONE is gone
  size=$(stat -c %s pw.out); truncate -s $((size / 2)) pw.out; exit $status
fi
exec {pw} "$@"
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fault_workdir(tmp_path: Path) -> Path:
    markers = tmp_path / "markers"
    markers.mkdir()
    wrapper = tmp_path / "pw_faulty.sh"
    wrapper.write_text(
        WRAPPER.format(
            markers=markers, pw=PW, kill_pw=KILL_PW, kill_job=KILL_JOB, truncate=TRUNCATE
        )
    )
    wrapper.chmod(0o755)
    cfg = yaml.safe_load(open(TINY))
    cfg["structures"] = {
        "hydrostatic": {"strains": [-0.02, 0.02]},
        "strained": {"count": 2, "max_strain": 0.02},
        "rattled": {"count": 0},
        "supercell": {"count": 0},
    }
    cfg["dft"]["qe"]["executable"] = str(wrapper)
    cfg["dft"]["max_errors"] = 2  # custodian: one restart, then give up
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return make_workdir(tmp_path / "w", tmp_path / "cfg.yaml")


@pytest.mark.slow
@pytest.mark.workflow
@pytest.mark.skipif(PW is None, reason="needs pw.x (tools/ensure_pw.sh)")
def test_dft_faults_lose_nothing_and_train_on_nothing_broken(tmp_path):
    work = fault_workdir(tmp_path)
    target = "results/dataset/labels.parquet"
    labels = work / "results" / "dft" / "train"

    first = snakemake(work, "--keep-going", target, check=False)
    assert first.returncode != 0, "the killed DFT job must fail the first run"
    assert not (labels / KILL_JOB / "label.extxyz").exists()
    assert not (labels / KILL_JOB / "pw.out").exists(), "no partial output taken as complete"
    finished = sorted(p for p in labels.glob("*/*") if p.is_file())
    assert {p.parent.name for p in finished if p.name == "label.extxyz"} == {
        "hydro-000",
        "strain-000",
        "strain-001",
    }
    # every file of a finished label, and the killed label's input (dft_input is not redone)
    kept = [p for p in finished if p.parent.name != KILL_JOB]
    kept += [labels / KILL_JOB / n for n in ("pw.in", "settings.json", "structure.extxyz")]
    before = {p: (sha256(p), p.stat().st_mtime_ns) for p in kept}

    plan = planned_jobs(snakemake(work, "-n", target).stdout)
    assert plan == {"dft_run": 1, "dataset": 1}, plan
    snakemake(work, target)
    for path, (digest, mtime) in before.items():
        assert sha256(path) == digest and path.stat().st_mtime_ns == mtime, f"{path} changed"
    assert read_label(labels / KILL_JOB / "label.extxyz").status == "ok"

    # pw.x SIGKILLed mid-SCF inside a job: custodian's restart recovered the label
    run_info = json.loads((labels / KILL_PW / "run.json").read_text())
    assert [c["errors"] for c in run_info["corrections"]] == [["killed_or_crashed"]]
    assert read_label(labels / KILL_PW / "label.extxyz").status == "ok"

    # truncated output: failed with the reason, not in any split, listed in the report
    broken = read_label(labels / TRUNCATE / "label.extxyz")
    assert broken.status == "failed" and "ends before 'JOB DONE'" in broken.message
    table = pd.read_parquet(work / target).set_index("structure_id")
    assert table.loc[TRUNCATE, "split"] == "excluded"
    assert set(table.index[table["split"] != "excluded"]) == {KILL_JOB, KILL_PW, "strain-001"}
    for split in ("train", "val", "test"):
        frames = ase.io.read(work / "results" / "dataset" / f"{split}.extxyz", index=":")
        assert TRUNCATE not in [a.info.get("structure_id") for a in frames]
    from dft2mlip.report.document import render_markdown as _render_markdown
    from dft2mlip.report.sections.dataset import dataset_section as _dataset_section

    blocks: list = []
    (tmp_path / "report").mkdir()
    _dataset_section(table.reset_index(), tmp_path / "report", blocks, [])
    text = _render_markdown(blocks)
    assert "Excluded labels (1)" in text and TRUNCATE in text and "JOB DONE" in text

    assert "Nothing to be done" in "".join(
        (lambda p: p.stdout + p.stderr)(snakemake(work, "-n", target))
    )


# ---- NaN / Inf


def ok_label(sid: str, energy: float = -10.0) -> Label:
    atoms = bulk("Si", "diamond", a=5.431)
    atoms.info["REF_energy"] = energy
    atoms.info["REF_stress"] = np.zeros(6)
    atoms.arrays["REF_forces"] = np.zeros((2, 3))
    return Label(sid, "strained", "ok", "", atoms, settings_hash="abc")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_ok_label_with_nan_or_inf_stops_naming_the_structure(bad):
    with pytest.raises(ValueError, match=r"label strain-007 is ok but REF_energy holds NaN or Inf"):
        ok_label("strain-007", energy=bad)


def test_imported_frame_with_nan_is_failed_and_excluded_from_the_dataset(tmp_path):
    from dft2mlip.data import write_labels
    from dft2mlip.dft.importing import import_source

    frames = []
    for k, energy in enumerate((-10.0, np.nan, -10.2, -10.3)):
        atoms = bulk("Si", "diamond", a=5.40 + 0.01 * k)
        atoms.info.update(REF_energy=energy, REF_stress=np.zeros(6))
        atoms.arrays["REF_forces"] = np.zeros((2, 3))
        frames.append(atoms)
    ase.io.write(tmp_path / "old.extxyz", frames, format="extxyz")
    labels = import_source(
        {"name": "old", "path": str(tmp_path / "old.extxyz"), "format": "extxyz"}
    )
    assert [lab.status for lab in labels] == ["ok", "failed", "ok", "ok"]
    assert "non-finite" in labels[1].message
    write_labels(labels, tmp_path / "import.extxyz")
    table = build_dataset(
        [],
        {"train": 0.34, "val": 0.33, "test": 0.33},
        0,
        tmp_path / "ds",
        [tmp_path / "import.extxyz"],
    ).set_index("structure_id")
    assert table.loc[labels[1].structure_id, "split"] == "excluded"
    assert (table["split"] != "excluded").sum() == 3


def test_parsed_pw_output_with_nan_forces_is_failed_not_trained_on(tmp_path):
    from dft2mlip.dft.qe import parse_pw_output

    source = Path(__file__).parent / "data" / "qe"
    outputs = sorted(p for p in source.rglob("*.pwo") if "JOB DONE" in p.read_text())
    assert outputs, "needs a finished pw.x output in tests/data/qe"
    good = outputs[0]
    text = good.read_text()
    start = text.index("Forces acting on atoms")
    line_start = text.index("force =", start)
    line_end = text.index("\n", line_start)
    fields = text[line_start:line_end].split()
    fields[-1] = "NaN"
    text = text[:line_start] + " ".join(fields) + text[line_end:]
    bad = tmp_path / good.name
    bad.write_text(text)
    structure = ase.io.read(good, format="espresso-out", index=0)
    structure.calc = None
    assert parse_pw_output(good, structure, "abc").status == "ok"  # the control
    label = parse_pw_output(bad, structure, "abc")
    assert label.status == "failed", label.message
    assert "NaN or Inf" in label.message


# ---- atomic writes


def test_interrupted_label_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "dft" / "s1" / "label.extxyz"

    def full_disk(path, *args, **kwargs):
        Path(path).write_text("1\nLattice=")  # part of a frame, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ase.io, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_label(ok_label("s1"), target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == [], "the temporary file is removed too"


def test_figures_are_written_atomically_and_closed(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "plots" / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)

    fig, ax = plt.subplots()

    def full_disk(self, fname, *args, **kwargs):
        Path(fname).write_bytes(b"\x89PNG")  # part of an image, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(fig), "savefig", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_figure(fig, tmp_path / "plots" / "broken.png")
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["curve.png"]
    assert not plt.fignum_exists(fig.number)


def test_interrupted_rewrite_keeps_the_previous_complete_file(tmp_path, monkeypatch):
    target = tmp_path / "label.extxyz"
    write_label(ok_label("s1", -10.0), target)
    before = target.read_bytes()

    def killed(path, *args, **kwargs):
        Path(path).write_text("garbage")
        raise KeyboardInterrupt  # e.g. the job is cancelled mid-write

    monkeypatch.setattr(ase.io, "write", killed)
    with pytest.raises(KeyboardInterrupt):
        write_label(ok_label("s1", -11.0), target)
    assert target.read_bytes() == before
    assert read_label(target).energy == -10.0


def test_interrupted_dataset_write_leaves_no_split_file(tmp_path, monkeypatch):
    paths = []
    for k in range(4):
        write_label(ok_label(f"s{k}", -10.0 - k), tmp_path / f"s{k}.extxyz")
        paths.append(tmp_path / f"s{k}.extxyz")

    def full_disk(path, *args, **kwargs):
        Path(path).write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ase.io, "write", full_disk)
    out = tmp_path / "ds"
    with pytest.raises(OSError):
        build_dataset(paths, {"train": 0.5, "val": 0.25, "test": 0.25}, 0, out)
    assert list(out.iterdir()) == []


def test_interrupted_checkpoint_write_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from dft2mlip.train.trainer import _save_payload

    path = tmp_path / "last.pt"
    _save_payload(path, {"epoch": 3, "w": torch.ones(2)})

    def full_disk(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"PK\x03\x04partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError):
        _save_payload(path, {"epoch": 4, "w": torch.zeros(2)})
    assert torch.load(path, weights_only=True)["epoch"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_atomic_write_gives_ordinary_permissions_and_keeps_existing_ones(tmp_path):
    fresh, existing = tmp_path / "fresh.txt", tmp_path / "existing.txt"
    existing.write_text("old")
    existing.chmod(0o640)
    umask = os.umask(0o022)
    try:
        for path in (fresh, existing):
            with atomic_write(path) as tmp:
                tmp.write_text("new")
    finally:
        os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o644  # as open(path, "w") under umask 022
    assert existing.stat().st_mode & 0o777 == 0o640
    assert existing.read_text() == "new"


def test_atomic_write_into_a_read_only_location_leaves_nothing():
    # sysfs refuses new files even to root: the write fails before anything exists
    target = Path("/sys/dft2mlip-test/label.extxyz")
    with pytest.raises(OSError), atomic_write(target) as tmp:
        tmp.write_text("never")
    assert not target.exists()


# ---- untrusted files


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {_Exploit.marker}",))


def test_malicious_checkpoint_does_not_execute_code(tmp_path):
    from dft2mlip.calculator import load_model
    from dft2mlip.train.trainer import _load_resume_state

    marker = tmp_path / "pwned"
    _Exploit.marker = marker
    for name in ("model.pt", "last.pt"):
        torch.save({"format": "x", "payload": _Exploit()}, tmp_path / name)
        with open(tmp_path / f"raw-{name}", "wb") as fh:
            pickle.dump(_Exploit(), fh)
    for path in (tmp_path / "model.pt", tmp_path / "raw-model.pt"):
        with pytest.raises(Exception):  # noqa: B017 - any refusal, as long as nothing runs
            load_model(path)
    for path in (tmp_path / "last.pt", tmp_path / "raw-last.pt"):
        try:
            state = _load_resume_state(path, "fingerprint", "run")
        except Exception:  # noqa: BLE001
            state = None
        assert state is None
    assert not marker.exists(), "loading an untrusted file executed code"
    # control: the payload does run when unpickled without protection
    pickle.loads(pickle.dumps(_Exploit()))
    assert marker.exists()


def test_every_torch_load_of_our_files_is_weights_only():
    root = Path(__file__).resolve().parents[1]
    calls = []
    for path in [*root.glob("src/**/*.py"), *root.glob("scripts/*.py"), *root.glob("bench/*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line and not line.lstrip().startswith("#"):
                calls.append((path, number, line))
    assert calls, "no torch.load found: the scan is broken"
    unsafe = [f"{p}:{n}: {line.strip()}" for p, n, line in calls if "weights_only=True" not in line]
    assert not unsafe, unsafe
