"""Engines: local process pools that survive dying workers, and Dask on a LocalCluster."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from medssl.ingest import IngestOptions, ingest
from medssl.ingest.engines import LocalEngine, WorkerCrash, make_engine
from medssl.io.pseudonym import DEMO_SECRET
from tests.ingest_corpus import ct_slice, radiograph, save


def _square_or_die(x: int) -> int:
    if x == 3:
        os._exit(7)  # a decoder that segfaults, or the OOM killer
    return x * x


@pytest.mark.parametrize("n", [12, 100])  # one item per task; batches of 6 items
def test_local_engine_survives_a_dying_worker(n: int) -> None:
    engine = LocalEngine(2, progress=False)
    try:
        results = dict(engine.imap(_square_or_die, list(range(n)), "t"))
    finally:
        engine.close()
    assert sorted(results) == list(range(n))
    assert isinstance(results[3], WorkerCrash)
    assert {i: r for i, r in results.items() if i != 3} == {i: i * i for i in range(n) if i != 3}


def _fail_on_five(x: int) -> int:
    if x == 5:
        raise ValueError("bad item")
    return x


def _hang_on_two(x: int) -> int:
    if x == 2:
        time.sleep(600)  # a decoder stuck in a loop
    return x


@pytest.mark.parametrize("n", [6, 80])  # alone; inside a batch of 5
def test_a_hung_item_is_stopped_and_reported(n: int) -> None:
    engine = LocalEngine(2, progress=False, timeout_s=1.0)
    start = time.perf_counter()
    try:
        results = dict(engine.imap(_hang_on_two, list(range(n)), "t"))
    finally:
        engine.close()
    assert time.perf_counter() - start < 60
    assert isinstance(results[2], WorkerCrash) and results[2].reason == "timeout"
    assert {i: r for i, r in results.items() if i != 2} == {i: i for i in range(n) if i != 2}


def test_an_exception_costs_only_its_own_item_in_a_batch() -> None:
    engine = LocalEngine(2, progress=False)
    try:
        results = dict(engine.imap(_fail_on_five, list(range(64)), "t"))
    finally:
        engine.close()
    assert isinstance(results[5], WorkerCrash) and "ValueError" in results[5].message
    assert {i: r for i, r in results.items() if i != 5} == {i: i for i in range(64) if i != 5}


def _pid(_: int) -> int:
    return os.getpid()


def test_local_engine_keeps_its_workers_until_a_crash_or_close() -> None:
    engine = LocalEngine(2, progress=False)
    try:
        first = set(dict(engine.imap(_pid, list(range(8)), "t")).values())
        second = set(dict(engine.imap(_pid, list(range(8)), "t")).values())
        assert len(first | second) <= 2  # the second pass ran on the same processes
        crashed = dict(engine.imap(_square_or_die, list(range(6)), "t"))
        assert isinstance(crashed[3], WorkerCrash) and crashed[3].reason == "worker_crashed"
        after = dict(engine.imap(_square_or_die, [0, 1, 2, 4, 5], "t"))
        assert after == {0: 0, 1: 1, 2: 4, 3: 16, 4: 25}  # the dead worker was replaced
    finally:
        engine.close()


def test_inline_engine_keeps_order() -> None:
    got = list(LocalEngine(1, progress=False).imap(abs, [-2, 5, -7], "t"))
    assert got == [(0, 2), (1, 5), (2, 7)]


def test_unknown_engine_is_an_error() -> None:
    with pytest.raises(ValueError, match="ingest.engine"):
        make_engine("spark", 2)


@pytest.fixture(scope="module")
def small_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("engines") / "export"
    for n in range(4):
        save(radiograph(n), root / "xr" / f"{n}.dcm")
    for k in range(5):
        save(ct_slice(7, k), root / "ct" / f"{k}.dcm")
    (root / "bad.dcm").write_bytes(b"not dicom at all" * 10)
    return root


@pytest.mark.slow
def test_dask_engine_gives_the_same_outputs_as_local(small_export: Path, tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    local = ingest(
        [small_export],
        tmp_path / "local",
        secret=DEMO_SECRET,
        options=IngestOptions(workers=2, progress=False),
    )
    dask = ingest(
        [small_export],
        tmp_path / "dask",
        secret=DEMO_SECRET,
        options=IngestOptions(workers=1, engine="dask", progress=False),
    )
    assert dask == local
    for name in ("manifest.csv", "quarantine.csv", "skipped.csv"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    manifest = pd.read_csv(tmp_path / "dask" / "manifest.csv")
    assert sorted(manifest["n_files"]) == [1, 1, 1, 1, 5]
