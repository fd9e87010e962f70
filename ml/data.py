"""The training set: snapshots from the warehouse, split out of time, checked for leaks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ml.features import FEATURES, LABEL


class TrainingDataError(ValueError):
    """The warehouse does not hold what training needs; the message says what to do."""


class LeakageError(ValueError):
    """A feature separates the label too well to be honest: it was computed from the future."""


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    valid: pd.DataFrame  # later than train: early stopping and calibration
    test: pd.DataFrame  # the latest date: out-of-time evaluation only

    def window(self) -> dict[str, object]:
        def dates(frame: pd.DataFrame) -> list[str]:
            return sorted({d.isoformat() for d in pd.to_datetime(frame["as_of_date"]).dt.date})

        return {
            "train_as_of_dates": dates(self.train),
            "valid_as_of_dates": dates(self.valid),
            "test_as_of_dates": dates(self.test),
            "rows": {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)},
            "churn_rate": {
                "train": float(self.train[LABEL].mean()),
                "valid": float(self.valid[LABEL].mean()),
                "test": float(self.test[LABEL].mean()),
            },
        }


def load_snapshots(warehouse_path: Path) -> pd.DataFrame:
    """Labelled rows of marts.fct_training_snapshots: active customers whose horizon is observed."""
    import duckdb

    if not warehouse_path.exists():
        raise TrainingDataError(f"No warehouse at {warehouse_path}: run the daily pipeline first.")
    from boomerang.warehouse.db import connect

    with connect(warehouse_path, read_only=True) as con:
        try:
            frame = con.execute(
                "select * from marts.fct_training_snapshots where is_active and is_label_observed"
            ).df()
        except duckdb.CatalogException:
            raise TrainingDataError(
                "marts.fct_training_snapshots is missing: run `dbt build` (the daily DAG) before training."
            ) from None
    frame[LABEL] = frame[LABEL].astype(int)
    return frame


def split_out_of_time(frame: pd.DataFrame) -> Split:
    """Test on the latest as-of date, validate on the one before, train on the earlier ones.

    Never a random split of the same dates: the model is judged on a period it has not seen.
    """
    dates = sorted(pd.to_datetime(frame["as_of_date"]).dt.date.unique())
    if len(dates) < 3:
        raise TrainingDataError(
            f"Training needs at least 3 as-of dates with an observed churn horizon, found {len(dates)} "
            f"({', '.join(map(str, dates)) or 'none'}). Load more history or lower the dbt vars "
            "snapshot_interval_days / churn_horizon_days."
        )
    as_of = pd.to_datetime(frame["as_of_date"]).dt.date
    test_date, valid_date = dates[-1], dates[-2]
    split = Split(
        train=frame[as_of < valid_date].reset_index(drop=True),
        valid=frame[as_of == valid_date].reset_index(drop=True),
        test=frame[as_of == test_date].reset_index(drop=True),
    )
    for name in ("train", "valid", "test"):
        part = getattr(split, name)
        if part[LABEL].nunique() < 2:
            raise TrainingDataError(
                f"The {name} slice has only one class of churn label; it cannot be learned."
            )
    return split


def usable_features(train: pd.DataFrame) -> list[str]:
    """The features with data: a missing optional source leaves its columns empty or constant."""
    usable = []
    for feature in FEATURES:
        if feature not in train.columns:
            continue
        column = pd.to_numeric(train[feature], errors="coerce")
        if column.notna().any() and column.nunique(dropna=True) > 1:
            usable.append(feature)
    return usable


def check_no_leakage(valid: pd.DataFrame, features: list[str], threshold: float) -> None:
    """Refuse features that alone separate churners almost perfectly: they know the future."""
    from sklearn.metrics import roc_auc_score

    y = valid[LABEL].to_numpy()
    for feature in features:
        x = pd.to_numeric(valid[feature], errors="coerce").to_numpy(dtype=float)
        x = np.where(np.isnan(x), np.nanmedian(x) if not np.all(np.isnan(x)) else 0.0, x)
        auc = roc_auc_score(y, x)
        if max(auc, 1 - auc) >= threshold:
            raise LeakageError(
                f"Feature {feature!r} alone reaches ROC-AUC {max(auc, 1 - auc):.3f} on the validation slice: "
                "it is almost certainly computed from the label window (a leak). Check that it uses only "
                "events strictly before the as-of date."
            )


def as_of_dates(frame: pd.DataFrame) -> set[date]:
    return set(pd.to_datetime(frame["as_of_date"]).dt.date)
