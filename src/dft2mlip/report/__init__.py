"""The final report: dataset, training runs, test errors, elastic constants, deformation MD.

Entry points: :func:`.write.write_report`, :class:`.artifacts.RunArtifacts`,
:func:`.settings.report_settings` / :func:`.settings.describe_run`,
:func:`.sections.trust.trust_table`.
The package re-exports nothing (a re-export would make every section import the package that
imports it: an import cycle).

Every number comes from the artifact files of the pipeline; an artifact that is missing is named
in the report instead of stopping it. The report is ``summary.md`` (Markdown) with PNG figures
beside it, and the same content as ``report.html``.

Layout: :mod:`.artifacts` reads the files (a missing or broken one is listed, not fatal); one
module per section in :mod:`.sections` gathers its data into a dataclass and draws its figure;
``templates/sections/<name>.j2`` words it once for both formats through the layout macros
``templates/md.j2`` and ``templates/html.j2`` (``m.h``, ``m.p``, ``m.table``, ``m.img``,
``m.ul``); :mod:`.document` renders the list of blocks; :mod:`.write` puts the sections in order.

A new section, file by file:

1. ``sections/<name>.py``: a dataclass of the section's data, a ``gather_<name>`` that fills it
   from the artifacts (numbers formatted with :mod:`.format`), a ``<name>_figure`` that writes
   its PNG into the report folder, and ``<name>_section(..., blocks, figures)`` that appends
   ``("section", "<name>", data)`` and the figure's file name.
2. ``templates/sections/<name>.j2``: its heading, prose and tables from the dataclass's fields
   and properties (a paragraph over several lines goes through ``| para``).
3. ``write.py``: read its artifact in :func:`.write.read_runs` (or ``write_report``) and call the
   section in ``_section_blocks`` where it belongs; a figure a workflow declares goes into
   :data:`.figures.REPORT_FIGURES` (a placeholder is written when there is no data).
4. A test that renders the section from a hand-made data object with
   :func:`.document.render_section`.
"""
