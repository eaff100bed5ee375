"""Model card: counts from the tables, metrics with CIs, checklists, no identifiers."""

from __future__ import annotations

import pandas as pd

from medssl.export.card import (
    CLAIM_ITEMS,
    TRIPOD_AI_ITEMS,
    CardInfo,
    data_description,
    fmt_ci,
    metrics_rows,
    model_card,
)


def _tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    manifest = pd.DataFrame(
        {
            "image_id": ["i1", "i2", "i3", "i4", "i5"],
            "patient_key": ["pA", "pA", "pB", "pC", "pD"],
            "modality": ["CR", "CR", "DX", "CT", "DX"],
            "spatial_dims": [2, 2, 2, 3, 2],
        }
    )
    splits = manifest[["image_id", "patient_key"]].assign(
        split=["train", "train", "val", "test", "test"]
    )
    labels = pd.DataFrame({"image_id": ["i1", "i2", "i3", "i5"], "label": ["1", "0", "1", "0"]})
    return manifest, splits, labels


def test_data_description_counts() -> None:
    d = data_description(*_tables())
    assert d["images"] == 5 and d["patients"] == 4
    assert d["modalities"] == {"CR (2D)": 2, "CT (3D)": 1, "DX (2D)": 2}
    assert d["per_split"] == {
        "test": {"patients": 2, "images": 2, "labelled": 1, "abnormal": 0},
        "train": {"patients": 1, "images": 2, "labelled": 2, "abnormal": 1},
        "val": {"patients": 1, "images": 1, "labelled": 1, "abnormal": 1},
    }


def test_fmt_ci() -> None:
    assert fmt_ci({"auroc": 0.8123, "auroc_ci_low": 0.7, "auroc_ci_high": 0.9}, "auroc") == (
        "0.812 (0.700-0.900)"
    )
    assert fmt_ci({"ece": 0.05}, "ece") == "0.050"
    assert fmt_ci({"auroc": None}, "auroc") == "n/a"
    assert fmt_ci({}, "auroc") == "n/a"


def test_model_card_sections_and_no_identifiers() -> None:
    manifest, splits, labels = _tables()
    record = {"arm": "ssl", "mode": "full", "n_labels": 8, "seed": 0, "auroc": 0.8,
              "auroc_ci_low": 0.6, "auroc_ci_high": 0.9, "auprc": 0.7, "ece": 0.1}  # fmt: skip
    info = CardInfo(
        name="m", version="1.0.0", intended_use="Research only.",
        model={"encoder": "resnet18", "spatial_dims": 2, "image_size": 64, "method": "simclr",
               "arm": "ssl", "mode": "full", "n_labels": 8, "seed": 0},
        data=data_description(manifest, splits, labels), metrics=record,
        comparators=[{**record, "arm": "scratch", "auroc": 0.6}], threshold=0.31,
        deid_profile="medssl-deid/1", demo=True, limitations=("Site-specific.",),
    )  # fmt: skip
    card = model_card(info)
    for heading in ("## Intended use", "## Model", "## Data", "## Performance",
                    "## Limitations", "## Use", "## Reporting checklists"):  # fmt: skip
        assert heading in card
    assert "| ssl | full | 8 | 0 | 0.800 (0.600-0.900) | 0.700 | n/a | 0.100 |" in card
    assert "| scratch | full |" in card and "threshold 0.31" in card
    assert "synthetic demo data" in card and "- Site-specific." in card
    assert card.count("\n| ") >= len(TRIPOD_AI_ITEMS) + len(CLAIM_ITEMS)
    for key in ("pA", "pB", "i1", "i5"):
        assert f" {key} " not in card and f"{key}|" not in card


def test_metrics_rows_header() -> None:
    rows = metrics_rows([])
    assert rows[0].startswith("| arm | mode | labels | seed | AUROC")
    assert len(rows) == 2
