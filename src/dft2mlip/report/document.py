"""The report as a list of blocks, rendered to Markdown and HTML by Jinja2 templates.

A block is plain data: ``("h", level, text)``, ``("p", text)``, ``("table", header, rows)``,
``("img", alt, filename)``, ``("ul", items)``, or ``("section", name, data)``: a whole section
worded by ``templates/sections/<name>.j2`` from its data (a mapping). ``templates/md.j2`` and
``templates/html.j2`` lay out each block kind; a section template calls the same macros as ``m``,
so its wording is written once for both formats.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import fields, is_dataclass
from functools import cache
from typing import Any

import jinja2

from dft2mlip.report.format import fixed, fmt, inline_html, md_cell

FORMATS = ("md", "html")


@cache
def environment() -> jinja2.Environment:
    """The report's Jinja2 environment: templates from the package, the number formats as
    filters (``fmt``, ``fixed``), escaping by the HTML macros only."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dft2mlip.report", "templates"),
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(fmt=fmt, fixed=fixed, md_cell=md_cell, inline=inline_html,
                       attr=html.escape, para=paragraph)  # fmt: skip
    return env


def paragraph(text: str) -> str:
    """A paragraph written over several template lines, as one line."""
    return " ".join(line.strip() for line in str(text).strip().splitlines())


def _macros(form: str):
    return environment().get_template(f"{form}.j2").module


def render_section(name: str, data: Any, form: str = "md") -> str:
    """One section's blocks, worded by ``sections/<name>.j2`` from ``data`` (a mapping, or a
    dataclass whose fields and properties the template sees as variables), in ``form`` ("md" or
    "html")."""
    if is_dataclass(data):
        names = [f.name for f in fields(data)]
        names += [k for k, v in vars(type(data)).items() if isinstance(v, property)]
        data = {name: getattr(data, name) for name in names}
    template = environment().get_template(f"sections/{name}.j2")
    return template.render(m=_macros(form), **data)


def render_block(block: Sequence, form: str) -> str:
    """One block in ``form`` ("md" or "html"), with the separator that ends it."""
    kind, *args = block
    if kind == "section":
        return render_section(args[0], args[1], form)
    return str(getattr(_macros(form), kind)(*args)) + "\n"


def render_markdown(blocks: Sequence[Sequence]) -> str:
    """The Markdown of ``blocks`` (a blank line after each)."""
    body = "".join(render_block(b, "md") for b in blocks)
    return body[:-1] if body.endswith("\n\n") else body


def render_html(blocks: Sequence[Sequence], title: str) -> str:
    """A standalone HTML page of ``blocks``."""
    body = "".join(render_block(b, "html") for b in blocks)
    return environment().get_template("report.html.j2").render(title=title, body=body)
