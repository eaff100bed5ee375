"""The label-independent evaluation reserve: keyed hash partition and listed reserves."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medssl.data.reserve import (
    ReserveError,
    hashed_reserve,
    listed_reserve,
    partition,
    pool_images,
)
from medssl.io.pseudonym import Pseudonymizer

PSEUDO = Pseudonymizer(b"0123456789abcdef0123")


def test_hashed_reserve_fraction_seed_and_stability() -> None:
    patients = [f"patient-{i:04d}" for i in range(2000)]
    reserved = hashed_reserve(patients, 0.3, seed=0, pseudo=PSEUDO)
    assert 0.27 < len(reserved) / len(patients) < 0.33
    # adding patients never moves an existing one; another seed or secret draws anew
    more = hashed_reserve([*patients, *(f"new-{i}" for i in range(500))], 0.3, 0, PSEUDO)
    assert more & set(patients) == reserved
    assert hashed_reserve(patients, 0.3, seed=1, pseudo=PSEUDO) != reserved
    other = Pseudonymizer(b"another secret of 20b")
    assert hashed_reserve(patients, 0.3, seed=0, pseudo=other) != reserved
    assert hashed_reserve(patients, 0.0, seed=0, pseudo=PSEUDO) == set()
    with pytest.raises(ReserveError, match="reserve.fraction"):
        hashed_reserve(patients, 1.0, seed=0, pseudo=PSEUDO)


def _manifest() -> pd.DataFrame:
    rows = []
    for i in range(6):
        rows.append(
            {
                "image_id": f"img{i}",
                "patient_key": PSEUDO.key("patient", f"P{i // 2}"),
                "source_key": PSEUDO.key("path", f"x/{i}.dcm"),
                "sop_key": "",
                "series_key": "",
                "study_key": "",
                "spatial_dims": 2 if i < 5 else 3,
            }
        )
    return pd.DataFrame(rows)


def test_listed_reserve_takes_whole_patients(tmp_path: Path) -> None:
    manifest = _manifest()
    listing = tmp_path / "reserve.csv"
    listing.write_text("path\nx/2.dcm\n./x/5.dcm\n")
    reserved = listed_reserve(listing, manifest, set(), PSEUDO, "path")
    assert reserved == {PSEUDO.key("patient", "P1"), PSEUDO.key("patient", "P2")}
    table = partition(manifest, reserved)
    assert table.set_index("image_id")["part"].to_dict() == {
        "img0": "pool", "img1": "pool", "img2": "reserve", "img3": "reserve",
        "img4": "reserve", "img5": "reserve",
    }  # fmt: skip
    pool = pool_images(manifest, table, dims=2)
    assert pool["image_id"].tolist() == ["img0", "img1"]
    listing.write_text("patient_id\nP0\n")
    assert listed_reserve(listing, manifest, set(), PSEUDO, "patient_id") == {
        PSEUDO.key("patient", "P0")
    }


def test_listed_reserve_errors_name_rows_not_values(tmp_path: Path) -> None:
    manifest = _manifest()
    listing = tmp_path / "reserve.csv"
    listing.write_text("path\nx/0.dcm\nSECRET-NAME.dcm\n\n")
    with pytest.raises(ReserveError, match=r"reserve.csv: row 3: 'path' matches no") as err:
        listed_reserve(listing, manifest, set(), PSEUDO, "path")
    assert "SECRET" not in str(err.value)
    quarantined = {PSEUDO.key("path", "SECRET-NAME.dcm")}
    assert len(listed_reserve(listing, manifest, quarantined, PSEUDO, "path")) == 1
    with pytest.raises(ReserveError, match=r"missing column\(s\) \['path'\]"):
        listing.write_text("file\nx/0.dcm\n")
        listed_reserve(listing, manifest, set(), PSEUDO, "path")
    with pytest.raises(ReserveError, match="not found"):
        listed_reserve(tmp_path / "none.csv", manifest, set(), PSEUDO, "path")
