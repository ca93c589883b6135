"""The import invariant's counts and the settings-hash table, stored for the record.

Runs what tests/test_import.py::test_any_output_gives_a_consistent_ok_label_or_a_one_line_cause
and tests/test_realdata.py::test_settings_hash_changes_with_each_physics_setting_alone check, on
the same variants (tests/import_variants.py), and writes the counts (files x variants, labels by
status, per entry point) and the hash of every one-change run beside its base run's:

    python bench/import_checks.py --out bench/results/import_checks.md
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from import_variants import damaged_variants, settings_variants  # noqa: E402

from dft2mlip.dft.importing import import_settings_hashes, import_source  # noqa: E402
from dft2mlip.dft.qe import parse_pw_output  # noqa: E402
from dft2mlip.dft.vasp import parse_vasp_output  # noqa: E402


def invariant_counts(root: Path) -> tuple[list[str], dict]:
    """Import + parse every damaged variant; count labels by entry point and status."""
    variants = damaged_variants(root)
    counts: dict = collections.defaultdict(collections.Counter)
    files = sorted({(fmt, name) for fmt, name, _, _ in variants})
    reference = {}
    for fmt, name, _, path in variants:
        try:
            labels = import_source({"name": "r", "path": str(path), "format": fmt})
        except Exception as err:  # counted: the invariant says this never happens
            counts["import"][f"exception {type(err).__name__}"] += 1
            continue
        for label in labels:
            counts["import"][label.status] += 1
        structure = reference.setdefault(name, labels[-1].atoms.copy())
        parse = parse_pw_output if fmt == "qe" else parse_vasp_output
        try:
            counts["parser"][parse(path, structure, "h").status] += 1
        except Exception as err:
            counts["parser"][f"exception {type(err).__name__}"] += 1
    lines = [f"{len(files)} outputs x variants = {len(variants)} inputs", ""]
    lines += ["| entry point | " + " | ".join(sorted({s for c in counts.values() for s in c}))
              + " |"]  # fmt: skip
    statuses = sorted({s for c in counts.values() for s in c})
    lines += ["|---" * (len(statuses) + 1) + "|"]
    for entry, counter in counts.items():
        lines.append(f"| {entry} | " + " | ".join(str(counter[s]) for s in statuses) + " |")
    lines += ["", "Outputs: " + ", ".join(f"{fmt}:{name}" for fmt, name in files)]
    return lines, counts


def hash_table(root: Path) -> list[str]:
    """The settings hash of each one-change run and whether it differs from its base run's."""
    variants = settings_variants(root)
    lines = ["| engine | change | physics? | settings hash | differs from base |", "|---" * 5 + "|"]
    for engine in ("qe", "vasp"):
        source = {"name": engine, "path": str(root / engine / "*"), "format": engine}
        hash_of = {Path(f).parent.name: h
                   for h, fs in import_settings_hashes(source).items() for f in fs}  # fmt: skip
        lines.append(f"| {engine} | base run | | {hash_of['base']} | |")
        for e, change, physics, run in variants:
            if e == engine:
                new = hash_of[run.name] != hash_of["base"]
                lines.append(f"| {engine} | {change} | {'yes' if physics else 'no'} | "
                             f"{hash_of[run.name]} | {'yes' if new else 'no'} |")  # fmt: skip
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        invariant, _ = invariant_counts(Path(tmp) / "damaged")
        table = hash_table(Path(tmp) / "settings")
    header = [
        "# Import invariant and settings hashes",
        "",
        f"- command: `python bench/import_checks.py --out {args.out}`",
        f"- date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores (development machine, shared "
        "with other jobs at the time); counts and hashes do not depend on it",
        "",
        "## Invariant: every test-data output whole, cut at 10/50/90/99 %, 20 lines removed, a "
        "number -> NaN / text (labels by status)",
        "",
    ]
    text = "\n".join(header + invariant + ["", "## Settings hash, one change at a time", ""]
                     + table) + "\n"  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
