"""Render an HTML file in headless Chromium (Debian's ``chromium`` package) for tests.

The report's inline script marks ``<body>`` with ``data-images`` and ``data-broken`` after
the load event; ``--dump-dom`` prints the DOM after loading, so both counts can be read
from it. A screenshot tells whether anything was drawn.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@dataclass(frozen=True)
class Rendered:
    """What Chromium made of a page."""

    n_images: int
    n_broken: int
    non_blank: bool
    screenshot: Path


def find_chromium() -> str | None:
    """Path of a Chromium binary, or ``None``."""
    for name in _NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _flags(profile: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
    ]


def render(page: Path, tmp: Path, size: tuple[int, int] = (1200, 2400)) -> Rendered:
    """Screenshot and DOM of ``page``.

    Args:
        page: HTML file.
        tmp: scratch folder (profile and screenshot).
        size: window width and height.

    Returns:
        Image counts from the page's own load check, and whether the screenshot is blank.
    """
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("chromium not installed")
    shot = tmp / "screenshot.png"
    base = [binary, *_flags(tmp / "profile")]
    subprocess.run(
        [*base, f"--window-size={size[0]},{size[1]}", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    dom = subprocess.run(
        [*base, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    images = re.search(r'data-images="(\d+)"', dom)
    broken = re.search(r'data-broken="(\d+)"', dom)
    if images is None or broken is None:
        raise AssertionError("the page's load check did not run (no data-images on <body>)")
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    non_blank = bool(pixels.std() > 10 and (pixels < 200).mean() > 0.01)
    return Rendered(int(images.group(1)), int(broken.group(1)), non_blank, shot)
