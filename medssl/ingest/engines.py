"""Execution engines for ingestion: local processes or a Dask distributed cluster.

Both engines run one picklable function over many items and yield ``(index, result)``
pairs as they complete, keeping at most a small window of items in flight so that
memory stays bounded whatever the number of items.

* :class:`LocalEngine` (``ingest.engine: local``): inline for one worker, else a pebble
  :class:`~pebble.ProcessPool` kept for the engine's life. A worker that dies (a decoder
  that segfaults, the kernel's OOM killer) or runs past ``timeout_s`` (a hung decoder)
  costs only its task; the items of a lost batch run again one at a time, and an item
  that kills its worker or times out again is reported as :class:`WorkerCrash` instead of
  stopping the run.
* :class:`DaskEngine` (``ingest.engine: dask``): the same function on
  ``dask.distributed`` workers, on a cluster given by address or on a
  :class:`~dask.distributed.LocalCluster` started for the run. Every worker must see the
  source and output paths (shared file system). An item whose worker keeps dying
  (Dask's ``KilledWorker``) is reported as :class:`WorkerCrash`.
"""

from __future__ import annotations

import ctypes
import logging
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pebble import ProcessExpired, ProcessPool
from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")

ENGINES = ("local", "dask")
#: Items in flight per worker (bounded memory, workers never idle).
WINDOW_PER_WORKER = 4
#: Most items sent to a worker as one task (see :func:`chunk_size`).
MAX_CHUNK = 16
#: glibc malloc: allocations up to this size come from the heap (see :func:`tune_malloc`).
MALLOC_MMAP_THRESHOLD = 64 * 2**20


@dataclass(frozen=True)
class WorkerCrash:
    """The worker running an item died, raised or was stopped (the result is lost).

    Attributes:
        message: what happened, without any path or identifier.
        reason: quarantine reason code: ``worker_crashed`` or ``timeout``.
    """

    message: str
    reason: str = "worker_crashed"


class Engine(Protocol):
    """Maps a function over items, yielding ``(index, result or WorkerCrash)``."""

    workers: int

    def imap(
        self, fn: Callable[[T], R], items: Sequence[T], desc: str
    ) -> Iterator[tuple[int, R | WorkerCrash]]:
        """Yield every item's result exactly once, in completion order."""
        ...

    def close(self) -> None:
        """Release processes or cluster connections."""
        ...


_QUIET_LOGGERS = ("pydicom", "nibabel", "PIL", "monai")


def quiet_worker() -> None:
    """Silence library warnings and logs in a worker: their text may quote header values.

    pydicom, nibabel and PIL warn with the offending value (a UID, a name); ingestion
    reports problems through reason codes instead (DICOM PS3.15 Annex E applies to logs).
    """
    warnings.simplefilter("ignore")
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def tune_malloc() -> bool:
    """Keep freed image-sized buffers in the heap instead of returning them to the kernel.

    Decoding allocates and frees buffers of a few MB per file. With glibc's defaults each
    is mmap'ed, page-faulted in 4 KiB pages and unmapped again. Raising ``M_MMAP_THRESHOLD`` and
    ``M_TRIM_THRESHOLD`` (``mallopt(3)``) lets the process reuse that memory: a worker
    keeps up to ``2 * MALLOC_MMAP_THRESHOLD`` of freed memory. A no-op (False) where the C
    library has no ``mallopt`` (macOS, musl).

    Returns:
        Whether both settings were applied.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    mmap_ok = mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD)
    trim_ok = mallopt(m_trim_threshold, 2 * MALLOC_MMAP_THRESHOLD)
    return bool(mmap_ok and trim_ok)


def init_worker() -> None:
    """Set up an ingestion worker process: :func:`quiet_worker` and :func:`tune_malloc`."""
    quiet_worker()
    tune_malloc()


@contextmanager
def quiet() -> Iterator[None]:
    """:func:`quiet_worker` for the calling process, restoring filters and levels after."""
    levels = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    try:
        with warnings.catch_warnings():
            quiet_worker()
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _bar(total: int, desc: str, progress: bool) -> tqdm[Any]:
    return tqdm(total=total, desc=desc, unit="item", disable=None if progress else True)


class LocalEngine:
    """Inline (``workers == 1``) or a pebble process pool on this machine."""

    def __init__(
        self, workers: int, *, progress: bool = True, timeout_s: float | None = None
    ) -> None:
        """Configure.

        Args:
            workers: processes (>= 1); 1 runs inline, in this process.
            progress: show a progress bar on stderr (counts only).
            timeout_s: stop an item's worker after this many seconds (a hung decoder)
                and report the item as a :class:`WorkerCrash` with reason ``timeout``;
                None waits for ever. Needs ``workers >= 2`` (an inline item cannot be
                stopped).

        Raises:
            ValueError: ``workers < 1`` or ``timeout_s <= 0``.
        """
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.workers = workers
        self.progress = progress
        self.timeout_s = timeout_s
        self._pool: Any = None
        if workers == 1:
            tune_malloc()  # items run in this process

    def imap(
        self, fn: Callable[[T], R], items: Sequence[T], desc: str
    ) -> Iterator[tuple[int, R | WorkerCrash]]:
        """See :class:`Engine`; order of completion, every index once.

        Items go to the workers in batches (:func:`chunk_size`). A batch whose worker
        dies or runs out of time is split and its items run again one per task, so that
        a crash or a timeout is charged to the item that caused it. The worker processes
        are started on the first call and kept for the next ones (ingestion's two passes
        share warm workers) until :meth:`close`; pebble replaces a worker that died or
        was stopped.
        """
        bar = _bar(len(items), desc, self.progress)
        try:
            if self.workers == 1 or len(items) < 2:
                for i, item in enumerate(items):
                    with quiet():
                        value = fn(item)
                    yield i, value
                    bar.update()
                return
            size = chunk_size(len(items), self.workers)
            chunks = [list(range(i, min(i + size, len(items)))) for i in range(0, len(items), size)]
            retry: list[int] = []
            for c, results in self._run(fn, [[items[i] for i in chunk] for chunk in chunks]):
                if isinstance(results, WorkerCrash) and len(chunks[c]) > 1:
                    retry.extend(chunks[c])
                    continue
                if isinstance(results, WorkerCrash):
                    results = [results]
                for i, result in zip(chunks[c], results, strict=True):
                    yield i, result
                    bar.update()
            for c, results in self._run(fn, [[items[i]] for i in retry]):
                only = results if isinstance(results, WorkerCrash) else results[0]
                yield retry[c], only
                bar.update()
        except BaseException:
            self._stop()  # the consumer stopped or failed: do not leave items running
            raise
        finally:
            bar.close()

    def _run(
        self, fn: Callable[[T], R], batches: Sequence[Sequence[T]]
    ) -> Iterator[tuple[int, list[R | WorkerCrash] | WorkerCrash]]:
        """Batches through the pool, a window at a time; a lost batch is a WorkerCrash."""
        pool = self._get_pool()
        todo = deque(range(len(batches)))
        running: dict[Any, int] = {}
        window = self.workers * WINDOW_PER_WORKER
        while todo or running:
            while todo and len(running) < window:
                c = todo.popleft()
                timeout = None if self.timeout_s is None else self.timeout_s * len(batches[c])
                running[pool.schedule(_run_batch, args=(fn, batches[c]), timeout=timeout)] = c
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                c = running.pop(fut)
                yield c, _outcome(fut)

    def _get_pool(self) -> Any:
        if self._pool is None:
            self._pool = ProcessPool(max_workers=self.workers, initializer=init_worker)
        return self._pool

    def _stop(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join()
            self._pool = None

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None


def _outcome(fut: Any) -> Any:
    """A finished pebble future's batch results, or the WorkerCrash that lost them."""
    try:
        return fut.result()
    except FutureTimeout as exc:
        seconds = exc.args[1] if len(exc.args) > 1 else "?"
        return WorkerCrash(f"stopped after {seconds} s (hung decoder?)", reason="timeout")
    except ProcessExpired as exc:
        return WorkerCrash(f"worker process died (exit code {exc.exitcode})")
    except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be pickled
        return WorkerCrash(f"worker raised {type(exc).__name__}")


def chunk_size(n_items: int, workers: int) -> int:
    """Items per task: about 8 tasks per worker, at most :data:`MAX_CHUNK` items each.

    Batching amortises the per-task cost of the pool (pickling the function and its
    context, one round trip to a worker).
    """
    return max(1, min(MAX_CHUNK, n_items // (8 * workers)))


def _run_batch(fn: Callable[[T], R], batch: Sequence[T]) -> list[R | WorkerCrash]:
    """Run ``fn`` over a batch in a worker; an exception costs its own item only."""
    out: list[R | WorkerCrash] = []
    for item in batch:
        try:
            out.append(fn(item))
        except Exception as exc:  # noqa: BLE001 - reported per item, as for single items
            out.append(WorkerCrash(f"worker raised {type(exc).__name__}"))
    return out


class DaskEngine:
    """Runs items on ``dask.distributed`` workers (optional dependency ``medssl[dask]``)."""

    def __init__(self, workers: int, *, address: str | None = None, progress: bool = True) -> None:
        """Connect to a cluster, or start a local one.

        Args:
            workers: worker processes of the LocalCluster (ignored with ``address``).
            address: scheduler address, e.g. ``tcp://10.0.0.5:8786``; None starts a
                :class:`~dask.distributed.LocalCluster` on this machine.
            progress: show a progress bar on stderr.

        Raises:
            ImportError: naming the extra to install when dask is missing.
        """
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("ingest.engine 'dask' needs `pip install medssl[dask]`") from exc
        self.workers = workers
        self.progress = progress
        self._cluster: Any = None
        if address is None:
            self._cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=50,
            )
            self._client: Any = Client(self._cluster)
        else:
            self._client = Client(address)

    def imap(
        self, fn: Callable[[T], R], items: Sequence[T], desc: str
    ) -> Iterator[tuple[int, R | WorkerCrash]]:
        """See :class:`Engine`; at most a window of items is submitted at a time."""
        from dask.distributed import as_completed

        window = max(1, self.workers) * WINDOW_PER_WORKER
        bar = _bar(len(items), desc, self.progress)
        todo = deque(range(len(items)))
        index: dict[str, int] = {}
        queue = as_completed()
        try:
            while todo and len(index) < window:
                self._submit(fn, items, todo.popleft(), index, queue)
            for fut in queue:
                i = index.pop(fut.key)
                yield i, self._result(fut)
                bar.update()
                if todo:
                    self._submit(fn, items, todo.popleft(), index, queue)
        finally:
            bar.close()

    def _submit(
        self, fn: Callable[[T], R], items: Sequence[T], i: int, index: dict[str, int], queue: Any
    ) -> None:
        fut = self._client.submit(_quiet_call, fn, items[i], pure=False)
        index[fut.key] = i
        queue.add(fut)

    @staticmethod
    def _result(fut: Any) -> Any:
        try:
            return fut.result()
        except Exception as exc:  # noqa: BLE001 - KilledWorker and transport errors
            return WorkerCrash(f"dask task failed: {type(exc).__name__}")
        finally:
            fut.release()

    def close(self) -> None:
        """Close the client and the LocalCluster started for the run."""
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def _quiet_call(fn: Callable[[T], R], item: T) -> R:
    init_worker()
    return fn(item)


def make_engine(
    kind: str,
    workers: int,
    *,
    address: str | None = None,
    progress: bool = True,
    timeout_s: float | None = None,
) -> Engine:
    """Engine named by ``ingest.engine``.

    Args:
        kind: ``"local"`` or ``"dask"``.
        workers: worker processes.
        address: Dask scheduler address (``dask`` only; None starts a LocalCluster).
        progress: progress bars on stderr.
        timeout_s: per-item time limit (``local`` with ``workers >= 2`` only; Dask cannot
            stop a running task).

    Raises:
        ValueError: unknown kind.
    """
    if kind == "local":
        return LocalEngine(workers, progress=progress, timeout_s=timeout_s)
    if kind == "dask":
        return DaskEngine(workers, address=address, progress=progress)
    raise ValueError(f"ingest.engine must be one of {list(ENGINES)}, got {kind!r}")
