"""Provenance manifest of a run: what ran, with which code, settings and inputs, and what it made.

``results/provenance.json`` (rule ``provenance``) records the dft2mlip version and git commit, the
versions of the packages that shape the numbers, the DFT code version and pseudopotential/POTCAR
hashes as the labels report them, a hash of the config, and a SHA-256 of every output file listed.
Two runs of the same config and code can be compared file by file with :func:`compare_outputs`.

The manifest holds no timestamps or host names, so two identical runs give identical manifests
(apart from the git state when the working tree changed in between).
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

#: distributions whose versions can change the numbers a run produces
PACKAGES = (
    "dft2mlip",
    "torch",
    "mace-torch",
    "e3nn",
    "numpy",
    "scipy",
    "ase",
    "pymatgen",
    "custodian",
    "pandas",
    "pyarrow",
    "snakemake",
    "snakemake-executor-plugin-slurm",
)
FORMAT_VERSION = 1


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def config_sha256(config: Mapping) -> str:
    """SHA-256 of the config as canonical JSON (sorted keys): equal configs, equal hashes."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_state(directory: str | Path) -> dict[str, str | bool | None]:
    """Commit and dirty flag of the git checkout holding ``directory``.

    Returns
    -------
    dict
        ``{"commit": sha or None, "dirty": bool or None}``; both ``None`` outside a git checkout
        (e.g. an installed package) or without ``git``.
    """

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=directory, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": bool(status.strip()) if status is not None else None}


def dft_summary(label_provenances: Iterable[Mapping]) -> dict:
    """DFT code versions, pseudopotentials/POTCARs and settings hashes, as the labels report them.

    Parameters
    ----------
    label_provenances
        ``provenance`` dicts of the labels (``dft2mlip.data.read_label(...).provenance``), each with
        ``code_version`` and ``pseudopotentials`` (QE: element -> file, md5) or ``potcars`` and
        ``potcar_sha256`` (VASP).

    Returns
    -------
    dict
        ``code_versions`` (sorted unique), ``pseudopotentials`` (element -> sorted unique entries;
        more than one entry per element means the labels disagree) and ``potcars``.
    """
    versions: set[str] = set()
    pseudos: dict[str, set[str]] = {}
    potcars: dict[str, set[str]] = {}
    for prov in label_provenances:
        if prov.get("code_version"):
            versions.add(str(prov["code_version"]))
        for element, entry in (prov.get("pseudopotentials") or {}).items():
            key = json.dumps({"file": entry.get("file"), "md5": entry.get("md5")}, sort_keys=True)
            pseudos.setdefault(element, set()).add(key)
        for symbol, sha in (prov.get("potcar_sha256") or {}).items():
            potcars.setdefault(symbol, set()).add(str(sha))
    return {
        "code_versions": sorted(versions),
        "pseudopotentials": {
            el: [json.loads(k) for k in sorted(keys)] for el, keys in sorted(pseudos.items())
        },
        "potcar_sha256": {el: sorted(v) for el, v in sorted(potcars.items())},
    }


def build_manifest(
    config: Mapping,
    outputs: Iterable[str | Path],
    label_provenances: Iterable[Mapping] = (),
    settings_hashes: Iterable[str] = (),
    repo_dir: str | Path | None = None,
    relative_to: str | Path | None = None,
) -> dict:
    """The provenance manifest of a run.

    Parameters
    ----------
    config
        The workflow config as the run saw it (defaults filled in).
    outputs
        Files to hash (SHA-256); recorded under their path relative to ``relative_to``.
    label_provenances
        Provenance dicts of the DFT labels (see :func:`dft_summary`).
    settings_hashes
        DFT settings hashes of the labels (one expected per dataset).
    repo_dir
        Directory inside the dft2mlip checkout (for the git commit); default: this package's.
    relative_to
        Base directory of the recorded output paths; default: the current directory.

    Returns
    -------
    dict
        JSON-serialisable; keys ``format``, ``dft2mlip``, ``python``, ``packages``, ``dft``,
        ``config_sha256``, ``config``, ``outputs``.
    """
    repo_dir = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parent
    base = Path(relative_to) if relative_to is not None else Path.cwd()
    hashes = {}
    for path in outputs:
        path = Path(path)
        try:
            key = str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            key = str(path)
        hashes[key] = file_sha256(path)
    versions = package_versions()
    dft = dft_summary(label_provenances)
    dft["engine"] = (config.get("dft") or {}).get("engine")
    dft["settings_hashes"] = sorted(set(settings_hashes))
    return {
        "format": FORMAT_VERSION,
        "dft2mlip": {"version": versions.get("dft2mlip"), **git_state(repo_dir)},
        "python": platform.python_version(),
        "packages": versions,
        "dft": dft,
        "config_sha256": config_sha256(config),
        "config": json.loads(json.dumps(config, default=str)),
        "outputs": dict(sorted(hashes.items())),
    }


def write_manifest(manifest: Mapping, path: str | Path) -> None:
    """Write the manifest as indented JSON with sorted keys."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.write("\n")


def compare_outputs(a: Mapping, b: Mapping) -> dict[str, list[str]]:
    """Output files that differ between two manifests.

    Returns
    -------
    dict
        ``different`` (in both, other hash), ``only_a``, ``only_b`` (sorted paths).
    """
    out_a, out_b = a["outputs"], b["outputs"]
    return {
        "different": sorted(k for k in out_a.keys() & out_b.keys() if out_a[k] != out_b[k]),
        "only_a": sorted(out_a.keys() - out_b.keys()),
        "only_b": sorted(out_b.keys() - out_a.keys()),
    }
