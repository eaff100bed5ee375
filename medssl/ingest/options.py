"""Ingestion settings: :class:`IngestOptions`, built from the typed ``ingest`` params.

:func:`ingest_options` turns the ``ingest`` and ``data`` models
(:class:`medssl.params.IngestParams`, :class:`medssl.params.DataParams`), which type every
key, into options whose constructor checks the rules that span keys and names the
offending one. The stage and ``medssl ingest`` both build those models, so the settings
are read one way only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medssl.burned_in import POLICIES
from medssl.ingest.codes import DROP_ACTIONS, QC_FLAGS
from medssl.io.sidecar import SidecarSpec
from medssl.params import DataParams, IngestParams, SidecarParams, section


@dataclass(frozen=True)
class IngestOptions:
    """Ingestion settings (the ``ingest`` section of ``params.yaml``).

    Attributes:
        workers: worker processes (local) or LocalCluster workers (dask).
        engine: ``"local"`` or ``"dask"``.
        dask_address: scheduler address for ``engine="dask"``; None starts a LocalCluster.
        drop_flags: QC flags whose images are not ingested.
        drop_action: ``"skip"`` (skip list, rule ``qc_<flag>``) or ``"quarantine"``.
        quarantine_burned_in: quarantine BurnedInAnnotation=YES (else flag and keep).
        burned_in_text: what to do with identity-like text in the pixels of 2D images
            (``quarantine``, ``redact``, ``flag`` or ``off``; see :mod:`medssl.burned_in`).
        canonical: reorient 3D volumes to the closest RAS+ axes (no resampling).
        spacing_2d, spacing_3d: target spacing (mm) of 2D images / 3D volumes.
        size_2d, size_3d: target array size instead of a spacing.
        compress: write ``.nii.gz`` (else ``.nii``).
        max_voxels: refuse (``resource_limit``) units that declare more voxels.
        cache_dir: re-ingestion cache folder (None: no cache).
        sidecar: sidecar CSV for non-DICOM files (patient, study, view).
        reid_table: write the re-identification table there (outside the repository).
        parquet: also write ``manifest.parquet`` and ``quarantine.parquet``.
        progress: progress bars on stderr.
        timeout_s: seconds a worker may spend on one file or series before it is stopped
            and the item quarantined (``timeout``); local engine with workers >= 2 only.
    """

    workers: int = 1
    engine: str = "local"
    dask_address: str | None = None
    drop_flags: tuple[str, ...] = ("localizer",)
    drop_action: str = "skip"
    quarantine_burned_in: bool = True
    burned_in_text: str = "quarantine"
    canonical: bool = True
    spacing_2d: tuple[float, ...] | None = None
    spacing_3d: tuple[float, ...] | None = None
    size_2d: tuple[int, ...] | None = None
    size_3d: tuple[int, ...] | None = None
    compress: bool = True
    max_voxels: int = 1_000_000_000
    cache_dir: Path | None = None
    sidecar: SidecarSpec | None = None
    reid_table: Path | None = None
    parquet: bool = False
    progress: bool = True
    timeout_s: float | None = 600.0

    def __post_init__(self) -> None:
        """Check values, naming the offending option."""
        if self.workers < 1:
            raise ValueError(f"ingest.workers must be >= 1, got {self.workers}")
        if self.burned_in_text not in POLICIES:
            raise ValueError(f"ingest.burned_in_text must be one of {list(POLICIES)}")
        if self.drop_action not in DROP_ACTIONS:
            raise ValueError(f"ingest.drop_action must be one of {list(DROP_ACTIONS)}")
        unknown = sorted(set(self.drop_flags) - set(QC_FLAGS))
        if unknown:
            raise ValueError(f"ingest.drop_flags: unknown flag(s) {unknown}; see QC_FLAGS")
        for dims, spacing, size in (
            (2, self.spacing_2d, self.size_2d),
            (3, self.spacing_3d, self.size_3d),
        ):
            if spacing is not None and size is not None:
                raise ValueError(f"ingest.resample: give spacing_{dims}d or size_{dims}d, not both")
            target = spacing if spacing is not None else size
            if target is not None and (len(target) != dims or min(target) <= 0):
                raise ValueError(f"ingest.resample: {dims}D target needs {dims} values > 0")
        if self.max_voxels < 1:
            raise ValueError("ingest.max_voxels must be >= 1")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError("ingest.timeout_s must be > 0 (or null: no limit)")

    def output_settings(self) -> dict[str, Any]:
        """The options that change written images or rows (for the cache fingerprint)."""
        keep = (
            "drop_flags",
            "drop_action",
            "quarantine_burned_in",
            "burned_in_text",
            "canonical",
            "compress",
        )
        out: dict[str, Any] = {k: getattr(self, k) for k in keep}
        out.update(max_voxels=self.max_voxels)
        for k in ("spacing_2d", "spacing_3d", "size_2d", "size_3d"):
            out[k] = getattr(self, k)
        return out


def ingest_options(ingest: IngestParams, data: DataParams | None = None) -> IngestOptions:
    """:class:`IngestOptions` from the ``ingest`` section (and ``data.sidecar``).

    Args:
        ingest: the typed ``ingest`` section.
        data: the typed ``data`` section (its sidecar), or None for no sidecar.

    Returns:
        The checked options.

    Raises:
        ValueError: inconsistent values, naming the key (see :class:`IngestOptions`).
    """
    r = ingest.resample
    return IngestOptions(
        workers=ingest.workers,
        engine=ingest.engine,
        dask_address=ingest.dask_address,
        drop_flags=tuple(ingest.drop_flags),
        drop_action=ingest.drop_action,
        quarantine_burned_in=ingest.quarantine_burned_in,
        burned_in_text=ingest.burned_in_text,
        canonical=ingest.canonical,
        spacing_2d=None if r.spacing_2d is None else tuple(r.spacing_2d),
        spacing_3d=None if r.spacing_3d is None else tuple(r.spacing_3d),
        size_2d=None if r.size_2d is None else tuple(r.size_2d),
        size_3d=None if r.size_3d is None else tuple(r.size_3d),
        compress=ingest.compress,
        max_voxels=ingest.max_voxels,
        cache_dir=Path(ingest.cache_dir) if ingest.cache_dir else None,
        sidecar=sidecar_spec(data.sidecar if data is not None else None),
        reid_table=Path(ingest.reid_table) if ingest.reid_table else None,
        parquet=ingest.parquet,
        timeout_s=ingest.timeout_s,
    )


def sidecar_spec(sidecar: SidecarParams | None) -> SidecarSpec | None:
    """``data.sidecar`` as the reader's spec (None: no sidecar)."""
    if sidecar is None:
        return None
    return SidecarSpec(sidecar.path, match=sidecar.match, columns=dict(sidecar.columns))


def options_from_params(params: Mapping[str, Any]) -> IngestOptions:
    """:func:`ingest_options` from a parsed params mapping (its ``ingest`` and ``data``).

    Raises:
        medssl.params.ParamsError: naming a missing, unknown or mistyped key.
        ValueError: inconsistent values (see :class:`IngestOptions`).
    """
    return ingest_options(
        section(params, "ingest", IngestParams), section(params, "data", DataParams)
    )
