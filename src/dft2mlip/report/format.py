"""How the report writes numbers and inline text (shared by every section and both formats)."""

from __future__ import annotations

import html
import math
import re

import numpy as np


def as_float(x: object) -> float:
    """``float(x)``, NaN when it is not a number."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def fmt(x: object, sig: int = 3) -> str:
    """A number with ``sig`` significant figures in fixed notation ("—" for None/NaN)."""
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    if isinstance(x, bool | np.bool_):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return str(int(x))
    v = as_float(x)
    if not math.isfinite(v):
        return "—"
    if v == 0:
        return "0"
    decimals = sig - 1 - math.floor(math.log10(abs(v)))
    if decimals > 6:
        return f"{v:.{sig}g}"
    return f"{v:.{max(decimals, 0)}f}"


def fixed(x: object, decimals: int = 1) -> str:
    """A number with ``decimals`` decimals ("—" for None/NaN)."""
    v = as_float(x)
    return f"{v:.{decimals}f}" if math.isfinite(v) else "—"


def md_cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def inline_html(text: object) -> str:
    """Escaped HTML of a line of report text, with its `code` and **bold** marks."""
    text = html.escape(str(text), quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def safe_name(name: str) -> str:
    """A file-name-safe version of a run name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
