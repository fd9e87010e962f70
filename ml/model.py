"""Fit, calibrate and apply the churn model: XGBoost (hist) + an isotonic calibrator, no pickles."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ml.features import LABEL

PARAMS_FILE = Path(__file__).with_name("params.yaml")


@dataclass(frozen=True)
class Params:
    xgboost: dict[str, Any]
    num_boost_round: int
    early_stopping_rounds: int
    balance_classes: bool
    monotone_increasing: list[str]
    calibration: str
    leakage_auc: float
    promotion: dict[str, Any] = field(default_factory=dict)
    risk_bands: dict[str, Any] = field(default_factory=dict)
    customer_base: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = PARAMS_FILE, **overrides: Any) -> Params:
        """Read the params file; ``overrides`` replace values (``xgboost={...}`` merges into it)."""
        raw = yaml.safe_load(path.read_text())
        xgb_params = dict(raw["xgboost"])
        xgb_params.update(overrides.pop("xgboost", {}))
        values = {
            "xgboost": xgb_params,
            "num_boost_round": raw["num_boost_round"],
            "early_stopping_rounds": raw["early_stopping_rounds"],
            "balance_classes": raw["balance_classes"],
            "monotone_increasing": list(raw.get("monotone_increasing", [])),
            "calibration": raw["calibration"],
            "leakage_auc": raw["leakage_auc"],
            "promotion": dict(raw["promotion"]),
            "risk_bands": dict(raw["risk_bands"]),
            "customer_base": dict(raw.get("customer_base", {})),
        }
        values.update(overrides)
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {
            "xgboost": self.xgboost,
            "num_boost_round": self.num_boost_round,
            "early_stopping_rounds": self.early_stopping_rounds,
            "balance_classes": self.balance_classes,
            "monotone_increasing": self.monotone_increasing,
            "calibration": self.calibration,
            "leakage_auc": self.leakage_auc,
            "customer_base": self.customer_base,
            "promotion": self.promotion,
            "risk_bands": self.risk_bands,
        }


def matrix(frame: pd.DataFrame, features: list[str], dtype: type = np.float32) -> np.ndarray:
    """The feature matrix in ``features`` order, as float32 (what XGBoost computes in); missing values
    stay NaN (XGBoost handles them). Numeric columns go straight into the matrix; a column of another
    type (Decimals, say) is converted to numbers on the way."""
    columns = frame[features]
    if not all(pd.api.types.is_numeric_dtype(dtype) for dtype in columns.dtypes):
        columns = columns.apply(pd.to_numeric, errors="coerce")
    with np.errstate(over="ignore"):
        out = columns.to_numpy(dtype=dtype, na_value=np.nan)
    infinite = np.isinf(out).any(axis=0)
    if infinite.any():  # beyond float32's range, or infinite already: XGBoost refuses both
        names = [feature for feature, bad in zip(features, infinite, strict=True) if bad]
        counts = ", ".join(
            f"{name} ({int(np.isinf(out[:, features.index(name)]).sum())} rows)" for name in names
        )
        raise ValueError(
            f"Feature values that are infinite or beyond {np.dtype(dtype).name}'s range "
            f"(±{float(np.finfo(dtype).max):.3g}), which XGBoost computes in: {counts}. "
            "Find where the feature is computed (dbt_project/models or ml/clv.py) and fix the value there."
        )
    return out


def fit(train: pd.DataFrame, valid: pd.DataFrame, features: list[str], params: Params):
    """Train on ``train`` with early stopping on the later ``valid`` slice; returns an xgboost Booster."""
    import xgboost as xgb

    y_train = train[LABEL].to_numpy()
    booster_params = dict(params.xgboost)
    if params.balance_classes:
        positives = max(int(y_train.sum()), 1)
        booster_params["scale_pos_weight"] = (len(y_train) - positives) / positives
    booster_params["monotone_constraints"] = (
        "(" + ",".join("1" if feature in params.monotone_increasing else "0" for feature in features) + ")"
    )
    dtrain = xgb.DMatrix(matrix(train, features), label=y_train, feature_names=features)
    dvalid = xgb.DMatrix(matrix(valid, features), label=valid[LABEL].to_numpy(), feature_names=features)
    return xgb.train(
        booster_params,
        dtrain,
        num_boost_round=params.num_boost_round,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=params.early_stopping_rounds,
        verbose_eval=False,
    )


def raw_scores(booster, frame: pd.DataFrame | np.ndarray, features: list[str]) -> np.ndarray:
    """XGBoost's score of each row (its objective's output) from the trees up to the best iteration.

    ``frame`` may already be the :func:`matrix` of ``features``: scoring builds it once for the
    scores and the reasons. Predicts in place from the array (no DMatrix copy)."""
    x = frame if isinstance(frame, np.ndarray) else matrix(frame, features)
    if not len(x):
        return np.zeros(0, dtype=np.float32)
    return booster.inplace_predict(x, iteration_range=(0, booster.best_iteration + 1), missing=np.nan)


def contributions(booster, frame: pd.DataFrame | np.ndarray, features: list[str]) -> np.ndarray:
    """XGBoost's own per-feature contributions (log-odds), one row per customer; ``frame`` may already
    be the :func:`matrix` of ``features``."""
    import xgboost as xgb

    x = frame if isinstance(frame, np.ndarray) else matrix(frame, features)
    dmatrix = xgb.DMatrix(x, feature_names=features, missing=np.nan, nthread=-1)
    # Saabas approximation: the same per-tree attribution idea as TreeSHAP, linear in tree depth,
    # so scoring the whole customer base stays fast; reasons only need the ranking.
    values = booster.predict(
        dmatrix, pred_contribs=True, approx_contribs=True, iteration_range=(0, booster.best_iteration + 1)
    )
    return values[:, :-1]  # the last column is the bias


@dataclass(frozen=True)
class Calibrator:
    """Isotonic map from raw scores to probabilities, stored as JSON points (never a pickle)."""

    x: list[float]
    y: list[float]

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray) -> Calibrator:
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, labels)
        return cls(x=[float(v) for v in iso.X_thresholds_], y=[float(v) for v in iso.y_thresholds_])

    # An isotonic step fitted on a finite slice can reach exactly 0 or 1; nobody is certain to stay
    # or to leave, and the policy multiplies by these numbers, so they are kept off the ends.
    floor: float = 0.005
    ceiling: float = 0.995

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.clip(np.interp(scores, self.x, self.y), self.floor, self.ceiling)

    def save(self, path: Path) -> None:
        write_json(path, {"method": "isotonic", "x": self.x, "y": self.y}, indent=None)

    @classmethod
    def load(cls, path: Path) -> Calibrator:
        data = json.loads(path.read_text())
        return cls(x=data["x"], y=data["y"])


def risk_band(
    probabilities: np.ndarray, bands: dict[str, Any], order: np.ndarray | None = None
) -> np.ndarray:
    """'high', 'medium' or 'low' for each score, as ``bands`` (params.yaml ``risk_bands``) says.

    ``method: quantile``: the top ``quantile.high`` share of the day's scores is 'high', the next
    ``quantile.medium`` share 'medium', the rest 'low'. Ranked by ``probabilities``, ties broken by
    ``order`` (the raw score: calibrated probabilities are steps, and thousands may share one);
    scores equal in both are never split: they take the band their middle position falls in, so
    a large tie moves the shares by no more than half its size. ``method: thresholds``:
    probability lower bounds.
    """
    method = bands.get("method", "thresholds")
    result = np.full(probabilities.shape, "low", dtype=object)
    if not len(probabilities):
        return result
    if method == "thresholds":
        thresholds = bands["thresholds"]
        result[probabilities >= thresholds["medium"]] = "medium"
        result[probabilities >= thresholds["high"]] = "high"
        return result
    if method != "quantile":
        raise ValueError(f"risk_bands.method {method!r} in ml/params.yaml: use 'quantile' or 'thresholds'")
    shares = bands["quantile"]
    if min(shares["high"], shares["medium"]) < 0 or shares["high"] + shares["medium"] > 1:
        raise ValueError(
            f"risk_bands.quantile in ml/params.yaml: high ({shares['high']}) and medium ({shares['medium']}) "
            "are shares of the day's customers, each at least 0 and together at most 1"
        )
    p = np.asarray(probabilities, dtype=float)
    tie_break = np.zeros(len(p)) if order is None else np.asarray(order, dtype=float)
    # each score's position from the top (0 = the highest); equal (probability, raw score) pairs
    # share the middle of their positions
    ranked = np.lexsort((-tie_break, -p))
    p_sorted, t_sorted = p[ranked], tie_break[ranked]
    starts = np.flatnonzero(np.r_[True, (p_sorted[1:] != p_sorted[:-1]) | (t_sorted[1:] != t_sorted[:-1])])
    ends = np.r_[starts[1:], len(p)]
    middle = np.repeat((starts + ends - 1) / 2, ends - starts)
    position = np.empty(len(p))
    position[ranked] = middle
    n = len(p)
    result[position < round((shares["high"] + shares["medium"]) * n)] = "medium"
    result[position < round(shares["high"] * n)] = "high"
    return result


def clean_json(value: Any) -> Any:
    """``value`` with every NaN or infinity as None (null) and numpy numbers as Python's: what
    strict JSON can hold."""
    if isinstance(value, dict):
        return {str(key): clean_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, value: Any, *, indent: int | None = 2) -> None:
    """Write ``value`` as strict JSON (NaN as null; never a bare NaN or Infinity), one trailing newline."""
    path.write_text(json.dumps(clean_json(value), indent=indent, allow_nan=False) + "\n")


# Every model family (models/churn, models/mileage, models/uplift) names its champion the same way.
CHAMPION_FILE = "champion.json"


def write_status(folder: Path, status: str, reason: str) -> None:
    """A trained version's ``status.json``: ``champion`` or ``rejected``, why, and when."""
    write_json(
        folder / "status.json",
        {"status": status, "reason": reason, "at": datetime.now(UTC).isoformat(timespec="seconds")},
        indent=None,
    )


def point_champion(family_dir: Path, version: str, previous: str | None, **extra: Any) -> None:
    """Make ``version`` its family's champion: ``champion.json`` (the version, ``extra``, when, the
    previous champion) written beside and renamed in, so a reader never sees half a pointer."""
    pointer = family_dir / CHAMPION_FILE
    tmp = pointer.with_suffix(".tmp")
    write_json(
        tmp,
        {
            "version": version,
            **extra,
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "previous": previous,
        },
    )
    tmp.replace(pointer)
