"""Shared fixtures: a small demo export and its ingestion, built once per session."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from medssl.demo import DemoSummary, write_demo_dataset
from medssl.ingest import ingest
from medssl.io.pseudonym import DEMO_SECRET

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module (benchmark scripts are not a package)."""
    path = REPO / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def demo_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoSummary]:
    """A 10-patient demo export (radiographs, CT series, NIfTI, broken files, labels)."""
    root = tmp_path_factory.mktemp("demo") / "export"
    summary = write_demo_dataset(root, seed=3, n_patients=10, image_size=64, n_ct=1)
    return root, summary


@pytest.fixture(scope="session")
def ingested(
    demo_export: tuple[Path, DemoSummary], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, int]]:
    """The demo export ingested with the demo secret."""
    out = tmp_path_factory.mktemp("ingested") / "out"
    summary = ingest([demo_export[0]], out, secret=DEMO_SECRET, workers=1)
    return out, summary


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models: one thread avoids oversubscribing the shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
