"""Render config/README.md from the config schema (every key, its meaning and its default).

Usage: python tools/config_docs.py > config/README.md   (a test checks it is up to date)
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HEADER = """# Configuration

`config/config.yaml` holds the science of a run; machine settings (threads, memory, executor)
live in `profiles/`. Every key below is validated before any job starts
(`workflow/schemas/config.schema.yaml`); an unknown key, a wrong type or a missing
pseudopotential is reported with the key's name.
Run `.venv/bin/snakemake --configfile your.yaml -n` to check a config without running anything.

Units are in the key names: `_A` Å, `_Ry` Rydberg, `_per_A` Å⁻¹, `_K` kelvin, `_fs` femtoseconds,
`_per_ps` 1/ps. This page is generated from the schema by `tools/config_docs.py`.

| key | type | default | meaning |
|---|---|---|---|
"""


def _type(node: dict) -> str:
    t = node.get("type", "object")
    t = "/".join(t) if isinstance(t, list) else t
    if "enum" in node:
        t += ": " + " \\| ".join(str(v) for v in node["enum"])
    return t


def _default(node: dict) -> str:
    if "default" not in node:
        return "required" if node.get("_required") else ""
    value = node["default"]
    if isinstance(value, dict) and len(str(value)) > 60:
        return "see below"
    return f"`{yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}`"


def rows(node: dict, prefix: str = "") -> list[str]:
    out = []
    required = set(node.get("required", []))
    for name, sub in node.get("properties", {}).items():
        key = f"{prefix}{name}"
        sub = {**sub, "_required": name in required}
        desc = " ".join(str(sub.get("description", "")).split())
        out.append(f"| `{key}` | {_type(sub)} | {_default(sub)} | {desc} |")
        out.extend(rows(sub, key + "."))
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict) and "properties" in extra:
            out.extend(rows(extra, key + ".<name>."))
    return out


def render(schema_path: Path = ROOT / "workflow" / "schemas" / "config.schema.yaml") -> str:
    schema = yaml.safe_load(schema_path.read_text())
    return HEADER + "\n".join(rows(schema)) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
