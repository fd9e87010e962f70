"""Score every active customer with the champion into ``ml.churn_scores``, with the top three reasons
in words and, beside each, its feature's name: a stable code to group reasons by."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from boomerang.warehouse.db import connect
from ml.data import active_features, replace_predictions
from ml.features import describe
from ml.model import Params, contributions, matrix, raw_scores, risk_band
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
    scores, x = probabilities(model, features, params)
    return scores.assign(**reasons(model, features, x))


def probabilities(
    model: TrainedModel, features: pd.DataFrame, params: Params
) -> tuple[pd.DataFrame, np.ndarray]:
    """The day's scores without their reasons (customer, date, probability, risk band, model version),
    and the feature matrix they came from, for :func:`reasons`. ``features`` went through
    ``model.prepare``. One pass of XGBoost over a float32 array, predicting in place."""
    x = matrix(features, model.features)
    raw = raw_scores(model.booster, x, model.features)
    probability = model.calibrator(raw).astype(float)
    scores = pd.DataFrame(
        {
            "customer_id": features["customer_id"].to_numpy(),
            "as_of_date": pd.to_datetime(features["as_of_date"]).dt.date.to_numpy(),
            "churn_probability": probability,
            "risk_band": risk_band(probability, params.risk_bands, order=raw),
            "model_version": model.version,
        }
    )
    return scores, x


def reasons(model: TrainedModel, features: pd.DataFrame, x: np.ndarray) -> dict[str, np.ndarray]:
    """The top three reasons of each row, in words and as codes, from XGBoost's approximate
    per-feature contributions over the feature matrix ``x`` (the second, slower pass); the words show
    each value as the warehouse holds it (``features``), each distinct value worded once."""
    contrib = contributions(model.booster, x, model.features)
    order = np.argsort(-contrib, axis=1)[:, :3]
    top = np.take_along_axis(contrib, order, axis=1)
    values = matrix(features, model.features, dtype=np.float64)
    columns: dict[str, np.ndarray] = {}
    for rank in range(3):
        columns[f"reason_{rank + 1}"] = _reasons(model.features, order[:, rank], top[:, rank], values)
    for rank in range(3):
        columns[f"reason_{rank + 1}_code"] = _codes(model.features, order[:, rank], top[:, rank])
    return columns


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


@dataclass
class ScoringReport:
    """What :func:`score_customers` did, and how long each phase took (seconds): ``read`` (the day's
    features out of the warehouse), ``probability`` (the customer-base features, XGBoost's scores,
    calibration, risk bands), ``reasons`` (per-feature contributions, put into words) and ``write``
    (one bulk insert replacing the day's rows). Loading the model and the imports are not in them."""

    customers: int
    model_version: str | None
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "customers": self.customers,
            "model_version": self.model_version,
            "seconds": {phase: round(value, 4) for phase, value in self.seconds.items()},
        }


@contextmanager
def _timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    seconds[phase] = time.perf_counter() - start


def score_customers(
    warehouse_path: Path,
    models_dir: Path,
    as_of: date,
    params: Params | None = None,
) -> ScoringReport:
    """Score active customers at ``as_of`` with the champion; idempotent per as-of date and version.

    Who is active is dbt's rule (``fct_customer_features.is_active``, from the setting
    churn_lookback_days). Every customer gets a probability, a risk band and up to three reasons.
    Returns what was scored (0 customers when there is no champion yet) and each phase's time.
    """
    params = params or Params.load()
    model = load_champion(models_dir)
    if model is None:
        log.warning("No champion model in %s yet: nothing scored. Run boomerang_train first.", models_dir)
        return ScoringReport(customers=0, model_version=None)
    seconds: dict[str, float] = {}
    with connect(warehouse_path) as con:
        with _timed(seconds, "read"):
            features = active_features(con, as_of, ordered=False, columns=model.input_columns)
        with _timed(seconds, "probability"):
            features = model.prepare(features)
            scores, x = probabilities(model, features, params)
        with _timed(seconds, "reasons"):
            scores = scores.assign(**reasons(model, features, x))
        with _timed(seconds, "write"):
            scores["scored_at"] = datetime.now(UTC).replace(tzinfo=None)
            replace_predictions(con, "ml.churn_scores", as_of, model.version, scores[list(SCORE_COLUMNS)])
    report = ScoringReport(customers=len(scores), model_version=model.version, seconds=seconds)
    bands = scores["risk_band"].value_counts().to_dict()
    log.info(
        "Scored %d active customers at %s with %s: %s (%s)",
        len(scores),
        as_of,
        model.version,
        bands,
        ", ".join(f"{phase} {value:.2f}s" for phase, value in seconds.items()),
    )
    return report
