"""The mileage model: how many miles each active customer's purchases are expected to earn over the
pre-grant window (and 30 and 60 days, for reporting), the amount the policy pre-grants.

Two candidates, trained on the same snapshots and judged out of time on the same test rows:

- ``classic``: BG/NBD's expected purchase days x Gamma-Gamma's expected spend per purchase day
  (:mod:`ml.clv`, fitted on the cross-section of the latest training date) x the earn rule (miles
  per unit of spend, ``earn_rule`` in ml/mileage.yaml). It is also the baseline.
- ``xgboost``: an XGBoost regressor (Tweedie) on the point-in-time features, the RFM summary and the
  classic model's outputs, predicting the window's miles directly.

This module holds the logic (fit, predict, metrics, the promotion gate) as functions of frames and
arrays; :mod:`ml.mileage_registry` reads the warehouse and writes the registry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ml.clv import BGNBD_FEATURES, SUMMARY_COLUMNS, CustomerBaseModel, bgnbd_features, fit_customer_base
from ml.data import iso_dates, usable_features
from ml.evaluate import PairedDifference, paired_bootstrap
from ml.features import FEATURES
from ml.model import matrix

PARAMS_FILE = Path(__file__).with_name("mileage.yaml")
CANDIDATES = ("classic", "xgboost")
CANDIDATE_NAMES = {"classic": "BG/NBD x Gamma-Gamma", "xgboost": "XGBoost (Tweedie)"}
LABEL = "miles_in_window"
REPORTING_DAYS = (30, 60)  # predicted_miles_30d, predicted_miles_60d
# The XGBoost candidate's inputs: the churn model's features, the RFM summary, the observed earn rule
# and recent spend, and what the classic model makes of the customer (computed, not stored).
CLASSIC_FEATURES = (*BGNBD_FEATURES, "clv_spend_per_purchase", "clv_predicted_miles")
XGBOOST_FEATURES = (
    *FEATURES,
    "purchase_days_lifetime",
    *SUMMARY_COLUMNS,
    "miles_per_spend_365d",
    "miles_earned_365d",
    "spend_30d",
    *CLASSIC_FEATURES,
)


class MileageDataError(ValueError):
    """The training rows cannot train or judge the mileage model; the message says what to do."""


@dataclass(frozen=True)
class MileageParams:
    """ml/mileage.yaml, read."""

    penalizer: float
    earn_rule: str  # global | own
    xgboost: dict[str, Any]
    num_boost_round: int
    early_stopping_rounds: int
    gate_metric: str  # poisson_deviance | rmse | mae
    margin_share: float
    bootstrap_resamples: int
    level: float

    @classmethod
    def load(cls, path: Path = PARAMS_FILE, **overrides: Any) -> MileageParams:
        """Read the params file; ``overrides`` replace values (``xgboost={...}`` merges into it)."""
        raw = yaml.safe_load(path.read_text())
        xgb_params = dict(raw["xgboost"])
        xgb_params.update(overrides.pop("xgboost", {}))
        values = {
            "penalizer": float(raw["customer_base"]["penalizer"]),
            "earn_rule": raw["earn_rule"],
            "xgboost": xgb_params,
            "num_boost_round": int(raw["num_boost_round"]),
            "early_stopping_rounds": int(raw["early_stopping_rounds"]),
            "gate_metric": raw["promotion"]["metric"],
            "margin_share": float(raw["promotion"]["margin_share"]),
            "bootstrap_resamples": int(raw["promotion"]["bootstrap_resamples"]),
            "level": float(raw["promotion"]["level"]),
        }
        values.update(overrides)
        if values["earn_rule"] not in ("global", "own"):
            raise ValueError(f"{path}: earn_rule is {values['earn_rule']!r}; use global or own")
        if values["gate_metric"] not in GATE_METRICS:
            raise ValueError(
                f"{path}: promotion.metric is {values['gate_metric']!r}; use one of {', '.join(GATE_METRICS)}"
            )
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class MileageModel:
    """One trained candidate: what :meth:`predict` needs, whichever it is."""

    candidate: str  # classic | xgboost
    window_days: int  # the window it was trained and judged on
    customer_base: CustomerBaseModel
    earn_rate: float  # miles per unit of spend, fitted on the training rows
    earn_rule: str  # global | own
    booster: Any = None  # xgboost only
    features: list[str] = field(default_factory=list)  # xgboost only
    version: str = ""

    def earn_rates(self, frame: pd.DataFrame) -> np.ndarray:
        """Miles per unit of spend for each row: the global rate, or the customer's own where known."""
        rates = np.full(len(frame), self.earn_rate)
        if self.earn_rule == "own" and "miles_per_spend_365d" in frame.columns:
            own = pd.to_numeric(frame["miles_per_spend_365d"], errors="coerce").to_numpy(dtype=float)
            rates = np.where(np.isfinite(own) & (own > 0), own, rates)
        return rates

    def classic_miles(self, frame: pd.DataFrame, days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The classic chain over ``days``: (purchases, spend, miles)."""
        purchases = self.customer_base.expected_purchases(frame, days)
        spend = purchases * self.customer_base.expected_spend_per_purchase(frame)
        return purchases, spend, spend * self.earn_rates(frame)

    def predict(self, frame: pd.DataFrame, days: int | None = None) -> pd.DataFrame:
        """Expected purchases, spend and miles over ``days`` (the trained window by default), and
        the miles over 30 and 60 days; same index as ``frame``.

        The XGBoost candidate predicts the trained window's miles; another horizon takes BG/NBD's
        shape over time (the customer's expected purchases over it / over the window), and spend is
        its miles / the earn rate.
        """
        days = days or self.window_days
        out = pd.DataFrame(index=frame.index)
        horizons = (days, *REPORTING_DAYS)
        if self.candidate == "classic":
            for horizon in horizons:
                purchases, spend, miles = self.classic_miles(frame, horizon)
                out[f"miles_{horizon}"] = miles
                if horizon == days:
                    out["predicted_purchases"], out["predicted_spend"] = purchases, spend
        else:
            window_miles = self.xgboost_miles(frame)
            base = self.customer_base.expected_purchases(frame, self.window_days)
            for horizon in horizons:
                purchases = self.customer_base.expected_purchases(frame, horizon)
                share = np.where(
                    base > 0, purchases / np.where(base > 0, base, 1), horizon / self.window_days
                )
                miles = window_miles * share
                out[f"miles_{horizon}"] = miles
                if horizon == days:
                    out["predicted_purchases"] = purchases
                    rates = self.earn_rates(frame)
                    out["predicted_spend"] = np.where(rates > 0, miles / np.where(rates > 0, rates, 1), 0.0)
        result = pd.DataFrame(
            {
                "predicted_purchases": out["predicted_purchases"],
                "predicted_spend": out["predicted_spend"],
                "predicted_miles": out[f"miles_{days}"],
                "predicted_miles_30d": out["miles_30"],
                "predicted_miles_60d": out["miles_60"],
            },
            index=frame.index,
        )
        return result.clip(lower=0.0).astype(float)

    def with_classic_features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the classic model's view of each row, as the XGBoost candidate's inputs."""
        extra = bgnbd_features(self.customer_base, frame, self.window_days)
        extra["clv_spend_per_purchase"] = self.customer_base.expected_spend_per_purchase(frame)
        extra["clv_predicted_miles"] = self.classic_miles(frame, self.window_days)[2]
        return pd.concat([frame.drop(columns=list(extra.columns), errors="ignore"), extra], axis=1)

    def xgboost_miles(self, frame: pd.DataFrame) -> np.ndarray:
        import xgboost as xgb

        booster = self.booster
        dmatrix = xgb.DMatrix(
            matrix(self.with_classic_features(frame), self.features), feature_names=self.features
        )
        return booster.predict(dmatrix, iteration_range=(0, booster.best_iteration + 1)).astype(float)


# ---------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class MileageSplit:
    """Training rows by date: ``train`` (earlier dates), ``valid`` (the latest before the test: early
    stopping and the customer-base fit), ``test`` (the latest observed date: judging only)."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    cross_section: pd.DataFrame  # every customer at the valid date: what BG/NBD is fitted on

    def window(self) -> dict[str, Any]:
        return {
            "train_as_of_dates": iso_dates(self.train),
            "valid_as_of_dates": iso_dates(self.valid),
            "test_as_of_dates": iso_dates(self.test),
            "customer_base_fitted_on": iso_dates(self.cross_section),
            "rows": {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)},
            "mean_miles": {
                name: float(pd.to_numeric(part[LABEL]).mean())
                for name, part in (("train", self.train), ("valid", self.valid), ("test", self.test))
            },
        }


def split_out_of_time(snapshots: pd.DataFrame) -> MileageSplit:
    """Active rows whose window is observed, by date: test on the latest, validate on the one before,
    train on the earlier ones. ``snapshots`` holds every customer at every training date (BG/NBD
    needs the ones who stopped buying too)."""
    rows = snapshots[snapshots["is_active"].astype(bool) & snapshots["is_observed_in_window"].fillna(False)]
    dates = sorted(pd.to_datetime(rows["as_of_date"]).dt.date.unique())
    if len(dates) < 3:
        raise MileageDataError(
            f"The mileage model needs at least 3 training as-of dates whose pre-grant window is observed, "
            f"found {len(dates)} ({', '.join(map(str, dates)) or 'none'}). Load more history, or lower "
            "BOOMERANG_SNAPSHOT_INTERVAL_DAYS, then rebuild the training set (`boomerang train`)."
        )
    as_of = pd.to_datetime(rows["as_of_date"]).dt.date
    test_date, valid_date = dates[-1], dates[-2]
    every = pd.to_datetime(snapshots["as_of_date"]).dt.date

    def part(mask) -> pd.DataFrame:
        return rows[mask].sort_values(["as_of_date", "customer_id"]).reset_index(drop=True)

    return MileageSplit(
        train=part(as_of < valid_date),
        valid=part(as_of == valid_date),
        test=part(as_of == test_date),
        cross_section=snapshots[every == valid_date].sort_values("customer_id").reset_index(drop=True),
    )


def fit_candidates(split: MileageSplit, window_days: int, params: MileageParams) -> dict[str, MileageModel]:
    """Both candidates, fitted on the training dates only (the test date is never seen)."""
    import xgboost as xgb

    customer_base = fit_customer_base(split.cross_section, penalizer=params.penalizer)
    seen = pd.concat([split.train, split.valid])
    spend = pd.to_numeric(seen["spend_in_window"]).sum()
    if spend <= 0:
        raise MileageDataError(
            "No spend in any training window: the earn rule (miles per unit of spend) cannot be fitted."
        )
    earn_rate = float(pd.to_numeric(seen[LABEL]).sum() / spend)
    classic = MileageModel(
        candidate="classic",
        window_days=window_days,
        customer_base=customer_base,
        earn_rate=earn_rate,
        earn_rule=params.earn_rule,
    )
    train = classic.with_classic_features(split.train)
    valid = classic.with_classic_features(split.valid)
    features = usable_features(train, XGBOOST_FEATURES)
    dtrain = xgb.DMatrix(matrix(train, features), label=train[LABEL].to_numpy(float), feature_names=features)
    dvalid = xgb.DMatrix(matrix(valid, features), label=valid[LABEL].to_numpy(float), feature_names=features)
    booster = xgb.train(
        params.xgboost,
        dtrain,
        num_boost_round=params.num_boost_round,
        evals=[(dvalid, "valid")],
        early_stopping_rounds=params.early_stopping_rounds,
        verbose_eval=False,
    )
    boosted = MileageModel(
        candidate="xgboost",
        window_days=window_days,
        customer_base=customer_base,
        earn_rate=earn_rate,
        earn_rule=params.earn_rule,
        booster=booster,
        features=features,
    )
    return {"classic": classic, "xgboost": boosted}


def run_rate_miles(frame: pd.DataFrame, days: int) -> np.ndarray:
    """The naive benchmark: the miles of the last 365 days (or of the tenure, if shorter), pro rata."""
    earned = pd.to_numeric(frame["miles_earned_365d"], errors="coerce").fillna(0).to_numpy(float)
    tenure = pd.to_numeric(frame["tenure_days"], errors="coerce").fillna(365).to_numpy(float)
    return earned / np.clip(tenure, 1, 365) * days


# ---------------------------------------------------------------------------------- judging


def mileage_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Per-customer error (MAE, RMSE, Poisson deviance), totals (predicted / actual, overall and per decile of the
    prediction: decile 10 = the highest predictions) and rank agreement (Spearman)."""
    from scipy.stats import spearmanr

    actual, predicted = np.asarray(actual, float), np.asarray(predicted, float)
    order = np.argsort(predicted, kind="stable")
    decile = np.empty(len(order), dtype=int)
    decile[order] = np.arange(len(order)) * 10 // max(len(order), 1)
    deciles = []
    for d in range(10):
        rows = decile == d
        if rows.any():
            deciles.append(
                {
                    "decile": d + 1,
                    "customers": int(rows.sum()),
                    "predicted": float(predicted[rows].sum()),
                    "actual": float(actual[rows].sum()),
                    "ratio": _ratio(predicted[rows].sum(), actual[rows].sum()),
                }
            )
    rho = spearmanr(predicted, actual).statistic if np.ptp(predicted) > 0 and np.ptp(actual) > 0 else None
    return {
        "mae": float(np.abs(predicted - actual).mean()),
        "rmse": float(np.sqrt(((predicted - actual) ** 2).mean())),
        "poisson_deviance": poisson_deviance(actual, predicted),
        "total_predicted": float(predicted.sum()),
        "total_actual": float(actual.sum()),
        "total_ratio": _ratio(predicted.sum(), actual.sum()),
        "spearman": None if rho is None or not np.isfinite(rho) else float(rho),
        "customers": int(len(actual)),
        "deciles": deciles,
    }


def _ratio(predicted: float, actual: float) -> float | None:
    return float(predicted / actual) if actual else None


def poisson_deviance(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean Poisson deviance: a proper score for an expected value with many zeros (it is lowest
    for the true mean); a prediction of 0 where miles were earned is held to a tiny floor."""
    actual = np.asarray(actual, float)
    predicted = np.maximum(np.asarray(predicted, float), 1e-6)
    earned = actual > 0
    log_ratio = np.zeros_like(actual)
    log_ratio[earned] = np.log(actual[earned] / predicted[earned])
    return float(np.mean(2 * (actual * log_ratio - (actual - predicted))))


# The metrics the gate can judge on (mileage.yaml's gate_metric), lower is better, with their words.
GATE_METRICS: dict[str, tuple[Any, str]] = {
    "poisson_deviance": (poisson_deviance, "Poisson deviance"),
    "rmse": (lambda actual, predicted: float(np.sqrt(((predicted - actual) ** 2).mean())), "RMSE"),
    "mae": (lambda actual, predicted: float(np.abs(predicted - actual).mean()), "MAE"),
}


@dataclass(frozen=True)
class GateDecision:
    """What the promotion gate decided, and why, with every paired interval it used."""

    candidate: str  # the version's better candidate: classic, unless XGBoost beat it
    promoted: bool  # the candidate becomes the mileage champion
    reasons: list[str]
    # per comparison ("xgboost_vs_classic", "candidate_vs_champion"), per metric: the paired
    # bootstrap of the error's improvement (PairedDifference.as_dict(), values negated errors)
    comparisons: dict[str, dict[str, dict[str, Any]]]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def gate(
    actual: np.ndarray,
    predictions: dict[str, np.ndarray],
    params: MileageParams,
    champion: tuple[str, np.ndarray] | None = None,
) -> GateDecision:
    """The promotion gate, on the same test rows for everyone, judged on ``params.gate_metric``.

    XGBoost is this version's candidate only when the lower bound of its paired improvement over the
    classic model is above ``margin_share`` of the classic's error; otherwise the classic model is
    (it is a candidate too). The candidate becomes champion when there is none, or when the lower
    bound of its improvement over the current champion (``champion``: its name and its predictions on
    these rows) is above the same share of the champion's error. Every metric's interval is
    recorded; only the gate metric decides.
    """
    comparisons: dict[str, dict[str, dict[str, Any]]] = {}
    reasons: list[str] = []
    versus_classic = _compare(
        actual, predictions["xgboost"], predictions["classic"], ("xgboost", "classic"), params
    )
    comparisons["xgboost_vs_classic"] = {name: d.as_dict() for name, d in versus_classic.items()}
    beats, said = _judge(versus_classic[params.gate_metric], params)
    if beats:
        candidate = "xgboost"
        reasons.append(f"XGBoost beats BG/NBD x Gamma-Gamma: {said}")
    else:
        candidate = "classic"
        reasons.append(f"XGBoost does not beat BG/NBD x Gamma-Gamma, which is the candidate instead: {said}")
    if champion is None:
        reasons.append("no mileage champion yet: the candidate becomes the first")
        return GateDecision(candidate, True, reasons, comparisons)
    name, champion_predictions = champion
    versus_champion = _compare(
        actual, predictions[candidate], champion_predictions, (candidate, f"champion {name}"), params
    )
    comparisons["candidate_vs_champion"] = {metric: d.as_dict() for metric, d in versus_champion.items()}
    promoted, said = _judge(versus_champion[params.gate_metric], params)
    reasons.append(f"the candidate {'beats' if promoted else 'does not beat'} the champion {name}: {said}")
    return GateDecision(candidate, promoted, reasons, comparisons)


def _compare(
    actual: np.ndarray, a: np.ndarray, b: np.ndarray, names: tuple[str, str], params: MileageParams
) -> dict[str, PairedDifference]:
    """``a``'s improvement over ``b`` by every gate metric, each with its paired bootstrap interval."""
    return {
        name: paired_bootstrap(
            actual,
            a,
            b,
            lambda y, p, error=error: -error(y, p),
            names=names,
            metric_name=f"negative {label}",
            resamples=params.bootstrap_resamples,
            level=params.level,
        )
        for name, (error, label) in GATE_METRICS.items()
    }


def _judge(difference: PairedDifference, params: MileageParams) -> tuple[bool, str]:
    """Whether the interval's low end clears the margin, and the comparison in words."""
    label = difference.metric.removeprefix("negative ")
    margin = params.margin_share * -difference.b_value
    return difference.low > margin, (
        f"{label} {-difference.a_value:.3f} vs {-difference.b_value:.3f}, improvement "
        f"{difference.difference:+.3f} [{difference.low:+.3f}, {difference.high:+.3f}] "
        f"({difference.level:.0%} paired bootstrap), margin {margin:.3f}"
    )
