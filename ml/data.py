"""The training set: snapshots from the warehouse, split out of time, checked for leaks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
        return {
            "train_as_of_dates": iso_dates(self.train),
            "valid_as_of_dates": iso_dates(self.valid),
            "test_as_of_dates": iso_dates(self.test),
            "rows": {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)},
            "churn_rate": {
                "train": float(self.train[LABEL].mean()),
                "valid": float(self.valid[LABEL].mean()),
                "test": float(self.test[LABEL].mean()),
            },
        }


def load_snapshots(warehouse_path: Path) -> pd.DataFrame:
    """Labelled rows of marts.fct_training_snapshots: active customers whose horizon is observed,
    in a fixed order (as-of date, customer), with the churn horizon they were labelled with
    (``horizon_days``, from marts.fct_churn_labels).

    The order matters: a table's row order depends on how dbt's joins ran, and XGBoost's row
    subsampling picks rows by position, so the same data in another order gives another model.
    """
    import duckdb

    if not warehouse_path.exists():
        raise TrainingDataError(f"No warehouse at {warehouse_path}: run the daily pipeline first.")
    from boomerang.warehouse.db import connect

    with connect(warehouse_path, read_only=True) as con:
        try:
            frame = con.execute(
                "select * from marts.fct_training_snapshots where is_active and is_label_observed "
                "order by as_of_date, customer_id"
            ).df()
            horizons = con.execute(
                "select distinct horizon_days from marts.fct_churn_labels where horizon_days is not null"
            ).fetchall()
        except duckdb.CatalogException:
            raise TrainingDataError(
                "marts.fct_training_snapshots is missing: build the training set first "
                "(`boomerang train` does, or `boomerang dbt build --select +fct_training_snapshots`)."
            ) from None
    if len(horizons) != 1:
        raise TrainingDataError(
            f"marts.fct_churn_labels holds churn horizons {sorted(h for (h,) in horizons)} instead of one: "
            "rebuild the training set (`boomerang train`)."
        )
    frame[LABEL] = frame[LABEL].astype(int)
    frame["horizon_days"] = int(horizons[0][0])
    return frame


def horizon_days(frame: pd.DataFrame) -> int:
    """The churn horizon ``frame``'s labels were built with (load_snapshots' ``horizon_days``)."""
    return int(frame["horizon_days"].iloc[0])


def add_customer_base_features(frame: pd.DataFrame, model, horizon: int) -> pd.DataFrame:
    """``frame`` with the customer-base model's features (:data:`ml.features.CUSTOMER_BASE_FEATURES`:
    P(alive), P(no purchase in ``horizon`` days), expected purchase days in them), computed from its
    purchase-history columns only (ml/clv.py); ``model`` None leaves ``frame`` as it is."""
    if model is None:
        return frame
    from ml.clv import bgnbd_features

    extra = bgnbd_features(model, frame, horizon)
    return frame.drop(columns=[c for c in extra.columns if c in frame.columns]).join(extra)


def split_out_of_time(frame: pd.DataFrame) -> Split:
    """Test on the latest as-of date, validate on the one before, train on the earlier ones.

    Never a random split of the same dates: the model is judged on a period it has not seen.
    """
    dates = sorted(pd.to_datetime(frame["as_of_date"]).dt.date.unique())
    if len(dates) < 3:
        raise TrainingDataError(
            f"Training needs at least 3 as-of dates with an observed churn horizon, found {len(dates)} "
            f"({', '.join(map(str, dates)) or 'none'}). Load more history, or lower the settings "
            "BOOMERANG_SNAPSHOT_INTERVAL_DAYS, BOOMERANG_CHURN_HORIZON_DAYS or BOOMERANG_CHURN_LOOKBACK_DAYS "
            "(or raise BOOMERANG_TRAINING_SNAPSHOTS)."
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


def usable_features(train: pd.DataFrame, candidates: Iterable[str] = FEATURES) -> list[str]:
    """The ``candidates`` (the churn model's features by default) with data in ``train``, in order,
    each once: a missing optional source leaves its columns empty or constant."""
    usable = []
    for feature in dict.fromkeys(candidates):
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


def iso_dates(frame: pd.DataFrame) -> list[str]:
    """The as-of dates of ``frame``'s rows, sorted, as ISO strings (what training.json records)."""
    return sorted(d.isoformat() for d in as_of_dates(frame))


def as_of_dates(frame: pd.DataFrame) -> set[date]:
    return set(pd.to_datetime(frame["as_of_date"]).dt.date)


def active_features(
    con, as_of: date, *, ordered: bool = True, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The point-in-time features of every customer active at ``as_of`` (dbt's rule,
    ``marts.fct_customer_features.is_active``): what each model scores.

    In customer order unless ``ordered`` is False; every column, or the keys and ``columns`` only,
    as DOUBLE. Scoring asks for both (its results depend neither on the order nor on the columns it
    does not use): at a million customers that reads in under a second instead of about three.
    """
    order = " order by customer_id" if ordered else ""
    selected = "*"
    if columns is not None:
        numbers = ", ".join(f'cast("{name}" as double) as "{name}"' for name in columns)
        selected = "customer_id, as_of_date" + (f", {numbers}" if numbers else "")
    return con.execute(
        f"select {selected} from marts.fct_customer_features where as_of_date = ? and is_active{order}",
        [as_of],
    ).df()


def replace_predictions(con, table: str, as_of: date, version: str, rows: pd.DataFrame) -> None:
    """Write ``rows`` into ``table`` (by column name) in one transaction, replacing that table's rows of
    (``as_of``, ``version``): a re-run of a day writes the same rows once."""
    from boomerang.warehouse.schema import ensure_schemas

    ensure_schemas(con)
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {table} where as_of_date = ? and model_version = ?", [as_of, version])
        con.register("new_predictions", rows)
        con.execute(f"insert into {table} by name select * from new_predictions")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.unregister("new_predictions")
