"""The final report: dataset, training runs, test errors, elastic constants, deformation MD.

Every number comes from the artifact files of the pipeline; an artifact that is missing is named
in the report instead of stopping it. The report is ``summary.md`` (Markdown) with PNG figures
beside it, and the same content as ``report.html``.

Layout: :mod:`.artifacts` reads the files, one module per section in :mod:`.sections` gathers
its data (and draws its figure), :mod:`.document` renders the blocks with the Jinja2 templates in
``templates/`` (``md.j2``, ``html.j2`` per block kind; ``sections/<name>.j2`` per templated
section), :mod:`.write` puts the sections in order.
"""

from dft2mlip.report.artifacts import RunArtifacts
from dft2mlip.report.document import render_html, render_markdown, render_section
from dft2mlip.report.figures import REPORT_FIGURES
from dft2mlip.report.sections.dataset import dataset_section
from dft2mlip.report.sections.elastic import ELASTIC_QUANTITIES
from dft2mlip.report.sections.test_errors import TEST_METRICS
from dft2mlip.report.sections.training import WEIGHT_COLUMNS
from dft2mlip.report.sections.trust import TRUST_FACTOR, trust_section, trust_table
from dft2mlip.report.settings import describe_run, report_settings
from dft2mlip.report.write import write_report

# the names the single-module report had (other modules and tests import them)
_render_markdown = render_markdown
_render_html = render_html
_dataset_section = dataset_section
_trust_section = trust_section

__all__ = [
    "ELASTIC_QUANTITIES",
    "REPORT_FIGURES",
    "TEST_METRICS",
    "TRUST_FACTOR",
    "WEIGHT_COLUMNS",
    "RunArtifacts",
    "describe_run",
    "render_html",
    "render_markdown",
    "render_section",
    "report_settings",
    "trust_table",
    "write_report",
]
