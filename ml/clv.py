"""The classic customer-base models, wrapped: BG/NBD for how many purchase days a customer has ahead
(and whether they are still "alive"), Gamma-Gamma for what they spend on one. Fitted with
``lifetimes`` (maximum likelihood) on the RFM summary dbt computes point in time
(``macros/customer_features.sql``: repeat purchase days, recency and age in days, spend per repeat
day), stored as four plus three numbers in JSON, never a pickle.

They are the baseline the churn model must beat (P(no purchase in the horizon)), candidate features
for it, and one of the two candidates of the mileage model (:mod:`ml.mileage`).

A customer who never bought has no summary (its columns are null): BG/NBD starts a customer's clock at
their first purchase, so they are scored as a customer whose clock starts now (frequency, recency and
age 0), which gives the population's prior: P(alive) 1 and the expected purchases of a new customer.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ("repeat_purchase_days", "clv_recency_days", "clv_age_days", "repeat_spend_per_day")
BGNBD_FEATURES = ("bgnbd_p_alive", "bgnbd_p_no_purchase", "bgnbd_expected_purchases")


class CustomerBaseError(ValueError):
    """The summary cannot be fitted (no repeat buyers, missing columns); the message says what to do."""


@dataclass(frozen=True)
class Summary:
    """The BG/NBD inputs of a frame, in days, with never-bought rows at zero."""

    frequency: np.ndarray  # repeat purchase days
    recency: np.ndarray  # first to last purchase day
    age: np.ndarray  # first purchase day to the as-of date (BG/NBD's T)
    monetary: np.ndarray  # mean spend per repeat day; NaN without one

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Summary:
        missing = [column for column in SUMMARY_COLUMNS if column not in frame.columns]
        if missing:
            raise CustomerBaseError(
                f"The customer-base models need the RFM summary columns {', '.join(missing)} "
                "(marts.fct_customer_features / fct_training_snapshots, macros/customer_features.sql): "
                "rebuild the marts with `boomerang dbt build`."
            )

        def column(name: str) -> np.ndarray:
            return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)

        frequency = np.nan_to_num(column("repeat_purchase_days"), nan=0.0)
        recency = np.nan_to_num(column("clv_recency_days"), nan=0.0)
        age = np.nan_to_num(column("clv_age_days"), nan=0.0)
        # a customer's age is never below their recency; the same day gives 0 for both
        age = np.maximum(age, recency)
        monetary = column("repeat_spend_per_day")
        monetary = np.where((frequency > 0) & (monetary > 0), monetary, np.nan)
        return cls(frequency=frequency, recency=recency, age=age, monetary=monetary)


@dataclass(frozen=True)
class CustomerBaseModel:
    """BG/NBD (purchase days) and Gamma-Gamma (spend per purchase day) parameters, in days and currency."""

    bgnbd: dict[str, float]  # r, alpha, a, b (lifetimes BetaGeoFitter params)
    gamma_gamma: dict[str, float] | None  # p, q, v (GammaGammaFitter), None if it could not be fitted
    # the mean spend per purchase day of the fitting rows: the spend of a purchase when Gamma-Gamma
    # could not be fitted, so a prediction is never empty
    mean_spend_per_day: float | None = None

    def _bgf(self):
        from lifetimes import BetaGeoFitter

        fitter = BetaGeoFitter()
        fitter.params_ = pd.Series(self.bgnbd)[["r", "alpha", "a", "b"]]
        return fitter

    def p_alive(self, frame: pd.DataFrame) -> np.ndarray:
        """P(the customer has not dropped out) at the as-of date."""
        s = Summary.of(frame)
        return np.clip(self._bgf().conditional_probability_alive(s.frequency, s.recency, s.age), 0.0, 1.0)

    def expected_purchases(self, frame: pd.DataFrame, days: int) -> np.ndarray:
        """Expected purchase days in the ``days`` days from the as-of date.

        BG/NBD's formula goes through a hypergeometric function that overflows for some histories when
        the fitted dropout parameters (a, b) are near zero: a result that is not a number, or not
        between 0 and ``days`` (at most one purchase day a day), is left missing (NaN, which XGBoost
        treats as missing), counted and logged, never replaced by a made-up value. Rounding errors
        just outside the range are clipped into it.
        """
        s = Summary.of(frame)
        with np.errstate(all="ignore"):
            expected = np.asarray(
                self._bgf().conditional_expected_number_of_purchases_up_to_time(
                    days, s.frequency, s.recency, s.age
                ),
                dtype=float,
            )
        tolerance = 1e-9 * max(days, 1)
        broken = ~np.isfinite(expected) | (expected < -tolerance) | (expected > days + tolerance)
        if broken.any():
            log.warning(
                "BG/NBD's expected purchase days in %d days could not be computed for %d of %d rows "
                "(the formula overflows at the fitted a = %.3g, b = %.3g); they are left missing",
                days,
                int(broken.sum()),
                len(expected),
                self.bgnbd["a"],
                self.bgnbd["b"],
            )
        return np.where(broken, np.nan, np.clip(expected, 0.0, float(days)))

    def p_no_purchase(self, frame: pd.DataFrame, days: int) -> np.ndarray:
        """P(no purchase in the ``days`` days from the as-of date).

        Dropped out (1 - P(alive)), or alive and no purchase: given alive, the customer's purchase rate
        is Gamma(r + x, alpha + T) a posteriori (dropping out happens only just after a purchase), so
        P(none in t | alive) = ((alpha + T) / (alpha + T + t)) ** (r + x).
        """
        s = Summary.of(frame)
        alive = self.p_alive(frame)
        r, alpha = self.bgnbd["r"], self.bgnbd["alpha"]
        quiet_if_alive = ((alpha + s.age) / (alpha + s.age + days)) ** (r + s.frequency)
        return np.clip(1.0 - alive + alive * quiet_if_alive, 0.0, 1.0)

    def expected_spend_per_purchase(self, frame: pd.DataFrame) -> np.ndarray:
        """Expected spend on one purchase day: Gamma-Gamma's weighted mean of the customer's own mean
        and the population's (the population's for a customer without a repeat day)."""
        s = Summary.of(frame)
        if self.gamma_gamma is None:
            return np.full(len(s.frequency), self.mean_spend_per_day or 0.0)
        p, q, v = self.gamma_gamma["p"], self.gamma_gamma["q"], self.gamma_gamma["v"]
        population = p * v / (q - 1)
        x = s.frequency
        own = np.where(np.isnan(s.monetary), 0.0, s.monetary)
        weight = np.where(np.isnan(s.monetary), 0.0, p * x / (p * x + q - 1))
        return (1 - weight) * population + weight * own

    def save(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {
                    "model": "BG/NBD + Gamma-Gamma (lifetimes), time in days, spend in currency",
                    "bgnbd": self.bgnbd,
                    "gamma_gamma": self.gamma_gamma,
                    "mean_spend_per_day": self.mean_spend_per_day,
                },
                indent=2,
                sort_keys=True,
            )
            + "\n"
        )

    @classmethod
    def load(cls, path: Path) -> CustomerBaseModel:
        data = json.loads(path.read_text())
        return cls(
            bgnbd={name: float(value) for name, value in data["bgnbd"].items()},
            gamma_gamma=(
                {name: float(value) for name, value in data["gamma_gamma"].items()}
                if data.get("gamma_gamma")
                else None
            ),
            mean_spend_per_day=data.get("mean_spend_per_day"),
        )


def fit_customer_base(frame: pd.DataFrame, penalizer: float = 0.001) -> CustomerBaseModel:
    """Fit BG/NBD on every row that bought before its as-of date, Gamma-Gamma on those with a repeat day.

    Rows of several as-of dates may be stacked (the same customer counts once per date). Rows are
    sorted first, so the same rows in any order give the same parameters. Gamma-Gamma is fitted on
    spend divided by its mean (its penalizer then means the same whatever the currency) and the
    scale put back into v; if it does not converge to a finite mean (q <= 1) it is left out and the
    mean spend per day is used instead.
    """
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    s = Summary.of(frame)
    bought = pd.to_numeric(frame["clv_age_days"], errors="coerce").notna().to_numpy()
    if not bought.any():
        raise CustomerBaseError(
            "No customer in the fitting rows has bought yet: BG/NBD needs purchase histories."
        )
    data = pd.DataFrame({"frequency": s.frequency, "recency": s.recency, "T": s.age, "monetary": s.monetary})[
        bought
    ]
    # Fit on distinct histories with their counts: the same likelihood, far fewer rows, and no
    # dependence on the row order.
    patterns = (
        data[["frequency", "recency", "T"]]
        .value_counts()
        .rename("weight")
        .reset_index()
        .sort_values(["frequency", "recency", "T"])
    )
    if (patterns["frequency"] > 0).sum() == 0:
        raise CustomerBaseError(
            "No customer in the fitting rows has bought on two different days: BG/NBD cannot learn "
            "a repeat-purchase rate. Load more history."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgf = BetaGeoFitter(penalizer_coef=penalizer).fit(
            patterns["frequency"], patterns["recency"], patterns["T"], weights=patterns["weight"]
        )
    bgnbd = {name: float(bgf.params_[name]) for name in ("r", "alpha", "a", "b")}

    repeat = data[data["monetary"].notna()].sort_values(["frequency", "monetary"])
    mean_spend = float(repeat["monetary"].mean()) if len(repeat) else None
    gamma_gamma = None
    if len(repeat) >= 10 and mean_spend:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ggf = GammaGammaFitter(penalizer_coef=penalizer).fit(
                    repeat["frequency"].astype(int), repeat["monetary"] / mean_spend
                )
            p, q, v = (float(ggf.params_[name]) for name in ("p", "q", "v"))
            if q > 1 and all(math.isfinite(value) for value in (p, q, v)):
                gamma_gamma = {"p": p, "q": q, "v": v * mean_spend}
        except Exception:  # lifetimes raises ConvergenceError and plain ValueErrors alike
            gamma_gamma = None
    for name, value in bgnbd.items():
        if not math.isfinite(value) or value <= 0:
            raise CustomerBaseError(f"BG/NBD did not converge: {name} = {value}. Load more history.")
    return CustomerBaseModel(bgnbd=bgnbd, gamma_gamma=gamma_gamma, mean_spend_per_day=mean_spend)


def bgnbd_features(model: CustomerBaseModel, frame: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """BG/NBD's view of each row as features: P(alive), P(no purchase in ``horizon_days``) and the
    expected purchase days in it; same index as ``frame``."""
    return pd.DataFrame(
        {
            "bgnbd_p_alive": model.p_alive(frame),
            "bgnbd_p_no_purchase": model.p_no_purchase(frame, horizon_days),
            "bgnbd_expected_purchases": model.expected_purchases(frame, horizon_days),
        },
        index=frame.index,
    )
