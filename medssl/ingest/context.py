"""What every worker gets (:class:`Context`), and the keys derived from it.

The context is picklable and travels to the worker processes: it holds the secret, which
keys every identifier and cache entry but never reaches an output. The settings
fingerprint (:func:`settings_fp`) covers what changes written images: the output options,
the de-identification profile, library versions and the source code of ingestion (every
module of this package), of the readers in :mod:`medssl.io` and of
:mod:`medssl.burned_in`; a cache entry made under another fingerprint is never reused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from medssl.ingest.cache import code_fingerprint, settings_fingerprint
from medssl.ingest.options import IngestOptions
from medssl.io import pseudonym


@dataclass(frozen=True)
class Context:
    """What a worker needs, picklable (the secret travels to workers, never to outputs).

    Attributes:
        secret: pseudonymization key.
        out_dir: the partial output folder the workers write into.
        options: all settings.
        settings_fp: :func:`settings_fp` of ``options``.
        reid: whether records carry raw identifiers for the re-identification table.
    """

    secret: bytes
    out_dir: Path
    options: IngestOptions
    settings_fp: str
    reid: bool = False


def unit_key(unit: Sequence[Mapping[str, Any]], ctx: Context) -> str:
    """Cache key of a unit: keyed hash of its files' content, format, sidecar and settings.

    Args:
        unit: pass-1 records of one image source (``format``, ``source_sha256`` and
            optionally ``side_digest``).
        ctx: run context.

    Returns:
        The key (a keyed hash).
    """
    parts = [ctx.settings_fp]
    parts += [f"{r['format']}:{r['source_sha256']}:{r.get('side_digest', '')}" for r in unit]
    return pseudonym.Pseudonymizer(ctx.secret).key("cache", "|".join(parts))


def file_key(rec: Mapping[str, Any], ctx: Context) -> str:
    """Cache key of one file (content, format and settings): marks it part of a cached unit.

    Args:
        rec: a pass-1 record (``format``, ``source_sha256``).
        ctx: run context.

    Returns:
        The key (a keyed hash).
    """
    parts = f"{ctx.settings_fp}|{rec['format']}:{rec['source_sha256']}"
    return pseudonym.Pseudonymizer(ctx.secret).key("cachefil", parts)


def settings_fp(options: IngestOptions) -> str:
    """Fingerprint of everything besides the source files that changes written images.

    Args:
        options: all settings (only :meth:`IngestOptions.output_settings` count).

    Returns:
        64 hex characters.
    """
    import nibabel
    import numpy as np
    import pydicom

    import medssl.burned_in
    import medssl.ingest
    from medssl.io import dicom, identity, nifti, raster, sidecar

    packages = [medssl.ingest, dicom, nifti, raster, pseudonym, sidecar, identity, medssl.burned_in]
    modules = [f for m in packages for f in _source_files(m)]
    return settings_fingerprint(
        {
            "options": options.output_settings(),
            "profile": pseudonym.PROFILE_VERSION,
            "code": code_fingerprint(modules),
            "versions": [pydicom.__version__, nibabel.__version__, np.__version__],
        }
    )


def _source_files(module: ModuleType) -> list[Path]:
    """A module's file, or every ``.py`` file of a package (for the cache fingerprint)."""
    path = Path(str(module.__file__))
    return sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
