"""The self-contained page: escaping, data URIs, no external resources."""

from __future__ import annotations

import base64
import re

from medssl.report.html import Section, data_uri, figure, paragraph, render_page, table

PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def test_data_uri_round_trips() -> None:
    uri = data_uri(PNG_1PX)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == PNG_1PX


def test_text_is_escaped() -> None:
    html = table(["<b>"], [["a & <script>"]]) + paragraph('"quoted" <i>')
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp;" in html
    assert "&quot;quoted&quot; &lt;i&gt;" in html
    assert 'alt="x&quot;y"' in figure(PNG_1PX, "c", 'x"y')


def test_page_is_self_contained() -> None:
    page = render_page(
        "T <1>",
        "sub",
        [Section("s1", "One", figure(PNG_1PX, "cap", "alt")), Section("s2", "Two", "")],
    )
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    assert "<title>T &lt;1&gt;</title>" in page
    assert '<a href="#s1">One</a>' in page and '<section id="s2">' in page
    sources = re.findall(r'(?:src|href)="([^"#][^"]*)"', page)
    assert sources and all(s.startswith("data:") for s in sources)
    assert 'setAttribute("data-broken"' in page


def test_headline_rows_are_marked() -> None:
    html = table(["a"], [[1], [2]], bold=[False, True])
    assert html.count('class="headline"') == 1


def test_metrics_table_has_a_cell_for_every_column() -> None:
    """Each row fills every header column, the p-value against pixels included."""
    from medssl.report.build import metrics_section

    record = {"arm": "ssl", "mode": "full", "n_labels": 8, "seed": 0, "auroc": 0.9}
    record.update(p_vs_scratch=0.0123, p_vs_pixels=0.0456, headline=True)
    body = metrics_section([record]).body
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", body)
    row = re.search(r"<tbody><tr[^>]*>(.*?)</tr>", body)
    assert header and row
    assert row.group(1).count("<td>") == header.group(1).count("<th>")
    assert "<td>0.0456</td>" in row.group(1)
