"""A self-contained HTML report of a pipeline run, for clinicians and auditors.

:mod:`medssl.report.build` makes the sections from in-memory tables, :mod:`.figures` the
PNGs, :mod:`.saliency` the Grad-CAM / occlusion maps and :mod:`.html` the page, with
every image embedded as a base64 ``data:`` URI (the page loads nothing from elsewhere).
"""

from medssl.report.build import build_report
from medssl.report.html import Section

__all__ = ["Section", "build_report"]
