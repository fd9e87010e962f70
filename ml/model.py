"""Fit, calibrate and apply the churn model: XGBoost (hist) + an isotonic calibrator, no pickles."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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
    champion_tolerance_auc: float
    risk_bands: dict[str, float] = field(default_factory=dict)

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
            "champion_tolerance_auc": raw["promotion"]["champion_tolerance_auc"],
            "risk_bands": dict(raw["risk_bands"]),
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
            "promotion": {"champion_tolerance_auc": self.champion_tolerance_auc},
            "risk_bands": self.risk_bands,
        }


def matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The feature matrix in ``features`` order; missing values stay NaN (XGBoost handles them)."""
    return frame[features].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)


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


def raw_scores(booster, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    import xgboost as xgb

    dmatrix = xgb.DMatrix(matrix(frame, features), feature_names=features)
    return booster.predict(dmatrix, iteration_range=(0, booster.best_iteration + 1))


def contributions(booster, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    """XGBoost's own per-feature contributions (SHAP values, log-odds), one row per customer."""
    import xgboost as xgb

    dmatrix = xgb.DMatrix(matrix(frame, features), feature_names=features)
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
        path.write_text(json.dumps({"method": "isotonic", "x": self.x, "y": self.y}) + "\n")

    @classmethod
    def load(cls, path: Path) -> Calibrator:
        data = json.loads(path.read_text())
        return cls(x=data["x"], y=data["y"])


def risk_band(probabilities: np.ndarray, bands: dict[str, float]) -> np.ndarray:
    """'high', 'medium' or 'low' from the probability thresholds in params.yaml."""
    ordered = sorted(bands.items(), key=lambda item: item[1], reverse=True)
    result = np.full(probabilities.shape, ordered[-1][0], dtype=object)
    for name, threshold in reversed(ordered):
        result[probabilities >= threshold] = name
    return result
