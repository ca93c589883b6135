"""The evidence the README quotes is in the repository: every ``bench/results/...`` path that
README.md names is a file (or folder) tracked by git, not one that only exists on the machine
that made it (``results/`` is ignored for run outputs; a stored result must be committed)."""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def expand_braces(path: str) -> list[str]:
    """``a{,_b}.md`` -> ``a.md``, ``a_b.md`` (every ``{x,y}`` group, as a shell expands it)."""
    parts = re.split(r"(\{[^}]*\})", path)
    options = [p[1:-1].split(",") if p.startswith("{") else [p] for p in parts]
    return ["".join(combo) for combo in itertools.product(*options)]


def test_expand_braces():
    assert expand_braces("r/a{,_fine}.md") == ["r/a.md", "r/a_fine.md"]
    assert expand_braces("r/x_{emt,si}.{md,json}") == [
        "r/x_emt.md", "r/x_emt.json", "r/x_si.md", "r/x_si.json"]  # fmt: skip


def tracked_files() -> set[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: cannot tell tracked files from local ones")
    return set(out.split())


def test_every_result_the_readme_cites_is_committed():
    cited = set(re.findall(r"bench/results/[A-Za-z0-9_.,{}/-]*[A-Za-z0-9_}/]", (
        ROOT / "README.md").read_text()))  # fmt: skip
    assert cited, "the README cites no stored result"
    tracked = tracked_files()
    missing = [p for c in sorted(cited) for p in expand_braces(c)
               if not (p in tracked or any(t.startswith(p.rstrip("/") + "/") for t in tracked))]
    assert not missing, f"cited in README.md but not committed (git add -f): {missing}"
