"""The split stage's work: a label set joined to the reserve-based splits, every budget checked.

Pool patients give training labels; reserved patients are tested (and, under the oracle
protocol, validate). Every budget and seed is drawn once here, so a budget the labels
cannot fill stops the pipeline before anything is trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from medssl.data.labels import join_labels
from medssl.data.manifest import MANIFEST_NAME, read_manifest, unusable_sources
from medssl.data.reserve import read_reserve
from medssl.data.splits import (
    SPLITS,
    SplitError,
    check_both_classes,
    check_budgets,
    make_splits,
    patient_overlap,
)
from medssl.io.pseudonym import Pseudonymizer, secret_from_env
from medssl.params import LabelsParams, SplitParams, tracked_path

#: Columns of the label table before a label set is joined.
LABEL_COLUMNS = ("image_id", "label", "split_pin", "patient_pin", "row")


@dataclass(frozen=True)
class LabelledSplits:
    """What the split stage writes and reports.

    Attributes:
        splits: ``image_id, patient_key, split`` of every ingested image.
        labels: ``image_id, label`` (and the label CSV's pins and rows); empty without a
            label set.
        labelled: whether a label set was given (``labels.path`` not null).
        protocol: ``split.validation``.
        budgets: ``(budget, abnormal, normal, validation labels)`` per budget.
    """

    splits: pd.DataFrame
    labels: pd.DataFrame
    labelled: bool
    protocol: str
    budgets: list[tuple[int | float | str, int, int, int]] = field(default_factory=list)

    def summary(self) -> list[str]:
        """One line per split (patients, images, labels) and per budget."""
        joined = self.splits.merge(self.labels, on="image_id", how="left")
        lines = []
        for s in [s for s in SPLITS if s in set(self.splits["split"])]:
            part = joined[joined["split"] == s]
            n_labelled = int(part["label"].notna().sum())
            n_abnormal = int((part["label"] == 1).sum())
            lines.append(
                f"{s}: {part['patient_key'].nunique()} patients, {len(part)} images, "
                f"{n_labelled} labelled ({n_abnormal} abnormal)"
            )
        for budget, n_pos, n_neg, n_val in self.budgets:
            where = (
                f"{n_val} of them for validation"
                if self.protocol == "budget"
                else "oracle validation"
            )
            lines.append(
                f"budget {budget}: {n_pos} abnormal + {n_neg} normal training labels ({where})"
            )
        return lines


def split_labels(
    ingested: Path,
    reserve: Path,
    lists: Path,
    labels: LabelsParams,
    split: SplitParams,
    *,
    spatial_dims: int,
    budgets: Sequence[int | float | str],
    seeds: Sequence[int],
    demo: bool,
) -> LabelledSplits:
    """Join the label set to the reserve's sides and check every budget and seed.

    Args:
        ingested: the ingest stage's folder.
        reserve: ``reserve.csv`` of the reserve stage.
        lists: the tracked folder the label set (``labels.path``) must lie in.
        labels: the typed ``labels`` section.
        split: the typed ``split`` section.
        spatial_dims: ``model.spatial_dims`` (budgets count images the model can read).
        budgets: ``finetune.budgets``.
        seeds: ``finetune.seeds``.
        demo: ``data.demo_mode``.

    Returns:
        The splits, labels and budget counts.

    Raises:
        medssl.data.labels.LabelError: a bad label CSV (file and rows named).
        SplitError: pins across the reserve, a class missing, a budget that cannot be drawn.
        medssl.data.reserve.ReserveError: a missing or malformed reserve table.
        medssl.params.ParamsError: ``labels.path`` outside ``lists``.
        medssl.io.pseudonym.DeidError: no secret outside demo mode.
    """
    manifest = read_manifest(ingested / MANIFEST_NAME)
    sides = read_reserve(reserve)
    pseudo = Pseudonymizer(secret_from_env(demo=demo))
    label_path = tracked_path(labels.path, "labels.path", lists)
    table = pd.DataFrame(columns=list(LABEL_COLUMNS))
    if label_path is not None:
        table = join_labels(
            label_path,
            manifest,
            unusable_sources(ingested),
            pseudo,
            key=labels.key,
            label_column=labels.column,
            positive=labels.positive,
            negative=labels.negative,
        )
    splits = make_splits(
        sides,
        table,
        protocol=split.validation,
        oracle_val_fraction=split.oracle_val_fraction,
        seed=split.seed,
        pseudo=pseudo,
    )
    overlap = patient_overlap(splits)
    if overlap:  # make_splits rules it out; the check stays because leakage is silent
        raise SplitError(f"splits: {overlap} patient(s) in more than one split")
    if label_path is None:
        return LabelledSplits(splits, table, labelled=False, protocol=split.validation)
    check_both_classes(splits, table)
    usable = manifest.loc[manifest["spatial_dims"] == spatial_dims, ["image_id"]]
    train = usable.merge(splits[splits["split"] == "train"], on="image_id")
    val_fraction = split.budget_val_fraction if split.validation == "budget" else 0.0
    cross_fit = split.cross_fit and split.validation == "budget"
    counts = check_budgets(
        train.merge(table, on="image_id"), budgets, seeds, val_fraction, cross_fit
    )
    return LabelledSplits(splits, table, labelled=True, protocol=split.validation, budgets=counts)
