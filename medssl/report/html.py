"""A self-contained HTML page: inline CSS, images as base64 ``data:`` URIs, no network.

Every text that comes from data goes through :func:`html.escape`. A small inline script
marks the ``<body>`` with ``data-images`` (count) and ``data-broken`` (images that failed
to decode) once the page has loaded, and shows a warning when any is broken; the render
test reads these attributes from headless Chromium.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 1.5em; color: #1b1b1b; background: #fff; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #d0d7de;
     padding-bottom: 0.2em; margin-top: 1.8em; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.6em 1em; }
.bad { background: #ffebee; border-left: 4px solid #c62828; padding: 0.6em 1em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f5f7; } tr.headline td { font-weight: 600; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
code { background: #f3f5f7; padding: 0 0.2em; }
nav a { margin-right: 1em; }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; });
  document.body.setAttribute("data-images", String(imgs.length));
  document.body.setAttribute("data-broken", String(broken.length));
  if (broken.length) {
    var p = document.createElement("p");
    p.className = "bad";
    p.textContent = broken.length + " image(s) of this report failed to load.";
    document.body.insertBefore(p, document.body.firstChild);
  }
});
"""


@dataclass(frozen=True)
class Section:
    """One titled part of the page.

    Attributes:
        anchor: id for the table of contents (letters, digits, dashes).
        title: heading text (escaped).
        body: trusted HTML built with the helpers of this module.
    """

    anchor: str
    title: str
    body: str


def esc(text: object) -> str:
    """HTML-escape any value's string form."""
    return html.escape(str(text), quote=True)


def data_uri(png: bytes) -> str:
    """A PNG as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure(png: bytes, caption: str, alt: str) -> str:
    """``<figure>`` with an embedded PNG and an escaped caption."""
    return (
        f'<figure><img src="{data_uri(png)}" alt="{esc(alt)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def table(
    header: Sequence[str], rows: Sequence[Sequence[object]], bold: Sequence[bool] = ()
) -> str:
    """An HTML table; ``bold[i]`` marks row ``i`` as a headline row."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = ' class="headline"' if i < len(bold) and bold[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def paragraph(text: str, kind: str = "") -> str:
    """An escaped paragraph, optionally of class ``note`` or ``bad``."""
    cls = f' class="{esc(kind)}"' if kind else ""
    return f"<p{cls}>{esc(text)}</p>"


def render_page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole page.

    Args:
        title: page title.
        subtitle: one line under the title.
        sections: in display order.

    Returns:
        HTML text ending in a newline.
    """
    nav = " ".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style><script>{_SCRIPT}</script>",
        "</head><body>",
        f"<h1>{esc(title)}</h1><p>{esc(subtitle)}</p><nav>{nav}</nav>",
    ]
    for s in sections:
        parts.append(f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>{s.body}</section>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
