"""A report page renders in headless Chromium: not blank, every image loads.

Skipped where Chromium is missing; CI installs Debian's ``chromium`` (see .ci/run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medssl.report import build, figures
from medssl.report.html import Section, render_page
from tests.report.chromium import find_chromium, render

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="chromium not installed")


def _page() -> str:
    rng = np.random.default_rng(0)
    manifest = pd.DataFrame(
        {"modality": ["CR", "DX", "CT"], "spatial_dims": [2, 2, 3], "patient_key": ["a", "b", "c"]}
    )
    quarantine = pd.DataFrame({"reason": ["not_dicom", "empty_file"]})
    splits = pd.DataFrame(
        {
            "image_id": ["1", "2", "3"],
            "patient_key": ["a", "b", "c"],
            "split": ["train", "val", "test"],
        }
    )
    labels = pd.DataFrame({"image_id": ["1", "2", "3"], "label": [0, 1, 1]})
    samples = {"normal": [rng.random((24, 24))], "abnormal": [rng.random((24, 24, 3))]}
    y = np.array([0, 1, 0, 1, 1, 0, 1, 0])
    curves = {"ssl full": figures.curves_of(y, rng.random(8))}
    sections = [
        build.data_section(manifest, quarantine, splits, labels),
        build.samples_section(samples),
        build.curves_section(curves, "synthetic"),
    ]
    return build.build_report("test report", "synthetic", sections)


def test_report_page_renders(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text(_page())
    result = render(page, tmp_path)
    assert result.n_images == 3 and result.n_broken == 0
    assert result.non_blank


def test_broken_image_is_detected(tmp_path: Path) -> None:
    body = '<img src="data:image/png;base64,bm90IGEgcG5n" alt="broken">'
    page = tmp_path / "broken.html"
    page.write_text(render_page("broken", "x", [Section("s", "S", body)]))
    result = render(page, tmp_path)
    assert result.n_images == 1 and result.n_broken == 1
