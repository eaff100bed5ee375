"""Where images come from: the ``demo``, ``pull``, ``data`` and ``ingest`` sections.

Choices mirror the library's own tuples (``medssl.burned_in.POLICIES``,
``medssl.ingest.codes.DROP_ACTIONS``, ``medssl.io.sidecar.MATCH_MODES``; a test keeps them
equal) so that this package imports nothing heavier than pydantic. Value rules that span
several keys stay with :class:`medssl.ingest.IngestOptions`, built from these models by
:func:`medssl.ingest.ingest_options`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from medssl.params.base import PositiveInt, Section, without_nulls


class DemoParams(Section):
    """``demo``: the seeded synthetic data set (:func:`medssl.demo.write_demo_dataset`)."""

    seed: int
    n_patients: int
    abnormal_fraction: float
    images_per_patient: int
    image_size: int
    n_full_size: int
    label_fraction: float
    n_ct: int


class PullParams(Section):
    """``pull``: fetch from a PACS (credentials only ever from the environment)."""

    enabled: bool
    source: str | None
    aet: str
    study_date: str | None
    modalities: str | None
    limit: int | None
    timeout_s: float

    @field_validator("source")
    @classmethod
    def _needed_when_enabled(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("enabled") and not value:
            raise ValueError("is needed when pull.enabled is true")
        return value


class SidecarParams(Section):
    """``data.sidecar`` as a mapping (a bare path means ``{path: ...}``)."""

    path: str
    match: Literal["path", "name", "stem"] = "path"
    columns: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return without_nulls(data, ("match", "columns"))


class DataParams(Section):
    """``data``: sources to ingest, demo mode, the sidecar of header-less images."""

    sources: list[str]
    demo_mode: bool
    sidecar: SidecarParams | None = None

    @field_validator("sidecar", mode="before")
    @classmethod
    def _bare_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value


class ResampleParams(Section):
    """``ingest.resample``: a target spacing (mm) or size (voxels) per dimensionality."""

    spacing_2d: list[float] | None = None
    spacing_3d: list[float] | None = None
    size_2d: list[int] | None = None
    size_3d: list[int] | None = None


#: ``ingest`` keys whose null means their default (as absent would).
INGEST_NULL_IS_DEFAULT = (
    "engine",
    "drop_flags",
    "drop_action",
    "quarantine_burned_in",
    "burned_in_text",
    "canonical",
    "resample",
    "compress",
    "max_voxels",
    "parquet",
)


class IngestParams(Section):
    """``ingest``: workers, engine, cache, QC drop rules, burned-in text, geometry.

    Only ``workers`` is required. ``timeout_s: null`` means no limit (absent: 600 s);
    ``cache_dir`` and ``reid_table`` null mean off.
    """

    workers: PositiveInt
    engine: Literal["local", "dask"] = "local"
    dask_address: str | None = None
    cache_dir: str | None = None
    drop_flags: list[str] = Field(default_factory=lambda: ["localizer"])
    drop_action: Literal["skip", "quarantine"] = "skip"
    quarantine_burned_in: bool = True
    burned_in_text: Literal["quarantine", "redact", "flag", "off"] = "quarantine"
    canonical: bool = True
    resample: ResampleParams = Field(default_factory=ResampleParams)
    compress: bool = True
    max_voxels: PositiveInt = 1_000_000_000
    parquet: bool = False
    timeout_s: float | None = Field(default=600.0, gt=0)
    reid_table: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        return without_nulls(data, INGEST_NULL_IS_DEFAULT)
