"""Ingestion settings: :class:`IngestOptions` and how they are read from ``params.yaml``.

:func:`options_from_params` reads the ``ingest`` section (and ``data.sidecar``, through
:func:`sidecar_from_params`); keys that are absent or null take the defaults of
:class:`IngestOptions`, whose constructor checks every value and names the offending key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medssl.burned_in import POLICIES
from medssl.ingest.codes import DROP_ACTIONS, QC_FLAGS
from medssl.io.sidecar import SidecarSpec


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


def options_from_params(params: Mapping[str, Any]) -> IngestOptions:
    """Build :class:`IngestOptions` from the ``data`` and ``ingest`` sections of params.

    Only ``ingest.workers`` is required; other keys take the defaults of
    :class:`IngestOptions` when absent or null.

    Args:
        params: the parsed ``params.yaml``.

    Returns:
        The checked options.

    Raises:
        medssl.params.ParamsError: naming a key of the wrong type.
        ValueError: inconsistent values (see :class:`IngestOptions`).
    """
    from medssl.params import get_positive

    d = IngestOptions()
    cache = _optional(params, "ingest.cache_dir", str, None)
    reid = _optional(params, "ingest.reid_table", str, None)
    return IngestOptions(
        workers=get_positive(params, "ingest.workers", int),
        engine=_optional(params, "ingest.engine", str, d.engine),
        dask_address=_optional(params, "ingest.dask_address", str, None),
        drop_flags=tuple(
            str(f) for f in _optional(params, "ingest.drop_flags", list, list(d.drop_flags))
        ),
        drop_action=_optional(params, "ingest.drop_action", str, d.drop_action),
        quarantine_burned_in=_optional(params, "ingest.quarantine_burned_in", bool, True),
        burned_in_text=_optional(params, "ingest.burned_in_text", str, d.burned_in_text),
        canonical=_optional(params, "ingest.canonical", bool, d.canonical),
        spacing_2d=_target(params, "ingest.resample.spacing_2d", float),
        spacing_3d=_target(params, "ingest.resample.spacing_3d", float),
        size_2d=_target(params, "ingest.resample.size_2d", int),
        size_3d=_target(params, "ingest.resample.size_3d", int),
        compress=_optional(params, "ingest.compress", bool, d.compress),
        max_voxels=_optional(params, "ingest.max_voxels", int, d.max_voxels),
        cache_dir=Path(cache) if cache else None,
        sidecar=sidecar_from_params(params),
        reid_table=Path(reid) if reid else None,
        parquet=_optional(params, "ingest.parquet", bool, d.parquet),
        timeout_s=_timeout(params),
    )


def sidecar_from_params(params: Mapping[str, Any]) -> SidecarSpec | None:
    """``data.sidecar`` (null, a path, or ``{path, match, columns}``) as a spec.

    Args:
        params: the parsed ``params.yaml``.

    Returns:
        The sidecar spec, or None when there is no sidecar.
    """
    node = (
        params.get("data", {}).get("sidecar") if isinstance(params.get("data"), Mapping) else None
    )
    if node is None:
        return None
    if isinstance(node, str):
        return SidecarSpec(node)
    from medssl.params import get

    columns = _optional(params, "data.sidecar.columns", dict, {})
    return SidecarSpec(
        get(params, "data.sidecar.path", str),
        match=_optional(params, "data.sidecar.match", str, "path"),
        columns={str(k): str(v) for k, v in columns.items()},
    )


def _optional(
    params: Mapping[str, Any], dotted: str, kind: type | tuple[type, ...], default: Any
) -> Any:
    """The value at ``dotted`` checked against ``kind``, or ``default`` when absent or null."""
    from medssl.params import get

    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    if node is None:
        return default
    return get(params, dotted, kind)


def _target(params: Mapping[str, Any], dotted: str, kind: type) -> tuple[Any, ...] | None:
    """A resampling target (a list of numbers) as a tuple of ``kind``, or None."""
    value = _optional(params, dotted, list, None)
    return None if value is None else tuple(kind(v) for v in value)


def _timeout(params: Mapping[str, Any]) -> float | None:
    """``ingest.timeout_s``: absent means the default, null means no limit."""
    section = params.get("ingest") or {}
    if "timeout_s" in section and section["timeout_s"] is None:
        return None
    value: float | None = _optional(params, "ingest.timeout_s", float, IngestOptions().timeout_s)
    return value
