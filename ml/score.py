"""Score every active customer with the champion into ``ml.churn_scores``, with the top three reasons
in words and, beside each, its feature's name: a stable code to group reasons by."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from boomerang.warehouse.db import connect
from ml.data import active_features, replace_predictions
from ml.features import describe
from ml.model import Params, contributions, raw_scores, risk_band
from ml.registry import TrainedModel, load_champion

log = logging.getLogger(__name__)

# What ml.churn_scores holds of a score (boomerang/warehouse/schema.py).
SCORE_COLUMNS = (
    "customer_id",
    "as_of_date",
    "churn_probability",
    "risk_band",
    "model_version",
    "reason_1",
    "reason_2",
    "reason_3",
    "reason_1_code",
    "reason_2_code",
    "reason_3_code",
    "scored_at",
)


def score_frame(model: TrainedModel, features: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Probabilities, risk bands and the top three reasons for each row of ``features``: in words
    (``reason_1``..``reason_3``) and as the feature's name (``reason_1_code``..``reason_3_code``).

    ``features`` are the day's rows (all of them: risk bands are shares of the day's scores, see
    ml/params.yaml ``risk_bands``); the model adds the features it computes itself (BG/NBD's, from
    the customer-base model stored with it)."""
    features = model.prepare(features)
    raw = raw_scores(model.booster, features, model.features)
    probability = model.calibrator(raw)
    contrib = contributions(model.booster, features, model.features)
    order = np.argsort(-contrib, axis=1)[:, :3]
    top = np.take_along_axis(contrib, order, axis=1)
    values = features[model.features].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    reason_columns = [_reasons(model.features, order[:, rank], top[:, rank], values) for rank in range(3)]
    code_columns = [_codes(model.features, order[:, rank], top[:, rank]) for rank in range(3)]
    return pd.DataFrame(
        {
            "customer_id": features["customer_id"].to_numpy(),
            "as_of_date": pd.to_datetime(features["as_of_date"]).dt.date.to_numpy(),
            "churn_probability": probability.astype(float),
            "risk_band": risk_band(probability, params.risk_bands, order=raw),
            "model_version": model.version,
            "reason_1": reason_columns[0],
            "reason_2": reason_columns[1],
            "reason_3": reason_columns[2],
            "reason_1_code": code_columns[0],
            "reason_2_code": code_columns[1],
            "reason_3_code": code_columns[2],
        }
    )


def _codes(names: list[str], feature: np.ndarray, contribution: np.ndarray) -> np.ndarray:
    """One reason column as codes: the feature's name, or None where :func:`_reasons` says nothing."""
    codes = np.asarray(names, dtype=object)[feature]
    return np.where(contribution > 0, codes, None)


def _reasons(
    names: list[str], feature: np.ndarray, contribution: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """One reason column in words: for each row, its ``feature``-th feature and value, said as
    :func:`ml.features.describe` says it, or None where that feature does not raise the risk.

    Vectorised: each distinct (feature, value) is put into words once, however many customers
    share it (a million customers have a few thousand distinct values per feature).
    """
    out = np.full(len(feature), None, dtype=object)
    raises = contribution > 0  # only what raises the risk counts as a reason
    for column in np.unique(feature[raises]):
        rows = np.flatnonzero(raises & (feature == column))
        distinct, inverse = np.unique(values[rows, column], return_inverse=True)
        words = np.array(
            [describe(names[column], None if np.isnan(value) else value) for value in distinct], dtype=object
        )
        out[rows] = words[inverse.reshape(-1)]
    return out


def score_customers(
    warehouse_path: Path,
    models_dir: Path,
    as_of: date,
    params: Params | None = None,
) -> int:
    """Score active customers at ``as_of`` with the champion; idempotent per as-of date and version.

    Who is active is dbt's rule (``fct_customer_features.is_active``, from the setting
    churn_lookback_days). Returns the number of customers scored (0 when there is no champion yet).
    """
    params = params or Params.load()
    model = load_champion(models_dir)
    if model is None:
        log.warning("No champion model in %s yet: nothing scored. Run boomerang_train first.", models_dir)
        return 0
    with connect(warehouse_path) as con:
        scores = score_frame(model, active_features(con, as_of), params)
        scores["scored_at"] = datetime.now(UTC).replace(tzinfo=None)
        replace_predictions(con, "ml.churn_scores", as_of, model.version, scores[list(SCORE_COLUMNS)])
    bands = scores["risk_band"].value_counts().to_dict()
    log.info("Scored %d active customers at %s with %s: %s", len(scores), as_of, model.version, bands)
    return len(scores)
