"""The uplift model: how much a grant changes each customer's chance of being retained, learned from
the campaign's own randomised experiment (every decision is treated or held out by a hash).

Training rows are past decisions whose retention window is complete (marts.fct_uplift_training):
the features as of the decision, the arm, and whether the customer bought in the window. A causalml
meta-learner (X-learner by default; T and DR selectable in ml/uplift.yaml) with XGBoost base learners
estimates the effect; its fitted effect models are kept as XGBoost boosters, so the daily scoring
(:meth:`UpliftModel.predict`) needs xgboost only, never causalml (whose import takes seconds).

It is judged out of time on the latest cohorts against the ranking the policy uses without it (the
churn risk recorded on each decision) and a random one: Qini, AUUC and the uplift among the top 10,
20 and 30 %, with paired bootstrap intervals (:mod:`ml.evaluate`); the promotion gate trusts only
the interval's lower bound. This module holds the logic as functions of frames and arrays;
:mod:`ml.uplift_registry` reads the warehouse and writes the registry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ml.data import iso_dates, usable_features
from ml.evaluate import PairedDifference, paired_uplift_bootstrap, uplift_metrics
from ml.features import CUSTOMER_BASE_FEATURES, FEATURES
from ml.model import matrix

PARAMS_FILE = Path(__file__).with_name("uplift.yaml")
LEARNERS = {"x": "X-learner", "t": "T-learner", "dr": "DR-learner"}
OUTCOME = "is_retained"  # bought within the retention window of the decision
PROFIT = "profit"  # margin on the window's spend - the cost of the miles redeemed (reported, not gated)
COHORT = "decision_date"
RISK = "churn_probability"  # what today's policy ranks by, recorded on each decision
# The churn model's features that are columns of the marts (not the ones it computes itself).
CANDIDATE_FEATURES = tuple(name for name in FEATURES if name not in CUSTOMER_BASE_FEATURES)
RANKINGS = {"model": "uplift model", "risk": "churn risk", "random": "random"}


class UpliftDataError(ValueError):
    """The training rows cannot train or judge the uplift model; the message says what to do."""


@dataclass(frozen=True)
class UpliftParams:
    """ml/uplift.yaml, read."""

    learner: str
    xgboost: dict[str, Any]
    test_cohorts: int
    test_share: float
    min_cohorts: int
    min_treated: int
    min_control: int
    min_test_control: int
    margin_over_risk: float
    margin_over_random: float
    min_gain_over_champion: float
    top_shares: tuple[float, ...]
    bootstrap_resamples: int
    level: float
    seed: int

    @classmethod
    def load(cls, path: Path = PARAMS_FILE, **overrides: Any) -> UpliftParams:
        """Read the params file; ``overrides`` replace values (``xgboost={...}`` merges into it)."""
        raw = yaml.safe_load(path.read_text())
        xgb_params = dict(raw["xgboost"])
        xgb_params.update(overrides.pop("xgboost", {}))
        data, promotion = raw["data"], raw["promotion"]
        values: dict[str, Any] = {
            "learner": raw["learner"],
            "xgboost": xgb_params,
            "test_cohorts": int(raw["test_cohorts"]),
            "test_share": float(raw.get("test_share", 0.0)),
            "min_cohorts": int(data["min_cohorts"]),
            "min_treated": int(data["min_treated"]),
            "min_control": int(data["min_control"]),
            "min_test_control": int(data["min_test_control"]),
            "margin_over_risk": float(promotion["margin_over_risk"]),
            "margin_over_random": float(promotion["margin_over_random"]),
            "min_gain_over_champion": float(promotion["min_gain_over_champion"]),
            "top_shares": tuple(float(share) for share in promotion["top_shares"]),
            "bootstrap_resamples": int(promotion["bootstrap_resamples"]),
            "level": float(promotion["level"]),
            "seed": int(promotion["seed"]),
        }
        values.update(overrides)
        if values["learner"] not in LEARNERS:
            raise ValueError(f"{path}: learner is {values['learner']!r}; use one of {', '.join(LEARNERS)}")
        if not 0 <= values["test_share"] < 1:
            raise ValueError(
                f"{path}: test_share is {values['test_share']}; use a share of the decisions in [0, 1)"
            )
        if values["test_cohorts"] < 1 or values["min_cohorts"] <= values["test_cohorts"]:
            raise ValueError(
                f"{path}: test_cohorts must be at least 1 and below data.min_cohorts "
                f"(found {values['test_cohorts']} and {values['min_cohorts']}): some cohorts must train"
            )
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class UpliftModel:
    """A fitted meta-learner as what its prediction is: a weighted sum of XGBoost boosters' outputs
    (X-learner: p x effect model on the control arm + (1 - p) x effect model on the treated arm;
    T-learner: P(retained | treated) - P(retained | control); DR-learner: the mean of its three
    cross-fitted effect models)."""

    learner: str  # x | t | dr
    features: list[str]
    terms: list[tuple[float, Any]]  # (weight, xgboost.Booster)
    treatment_share: float  # the propensity the X-learner blends with
    version: str = ""
    term_names: list[str] = field(default_factory=list)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The predicted change in P(retained) if granted, per row of ``frame`` (may be negative)."""
        import xgboost as xgb

        dmatrix = xgb.DMatrix(matrix(frame, self.features), feature_names=self.features)
        total = np.zeros(len(frame))
        for weight, booster in self.terms:
            total = total + weight * booster.predict(dmatrix)
        return total.astype(float)


def is_treated(frame: pd.DataFrame) -> np.ndarray:
    """True for the granted arm, False for the holdout."""
    return (frame["arm"] == "treatment").to_numpy()


def uplift_features(train: pd.DataFrame) -> list[str]:
    """The churn model's mart features with data in ``train``."""
    return usable_features(train, CANDIDATE_FEATURES)


def fit(
    train: pd.DataFrame, features: list[str], params: UpliftParams, treatment_share: float
) -> tuple[UpliftModel, Any]:
    """Fit ``params.learner`` (causalml, XGBoost base learners) on ``train``; returns the model as
    boosters and the causalml learner itself (to check the two predict the same)."""
    import matplotlib
    from xgboost import XGBClassifier, XGBRegressor

    # causalml's import sets a global plotting style (fivethirtyeight): kept out of every other page
    with matplotlib.rc_context():
        from causalml.inference.meta import BaseDRClassifier, BaseTClassifier, BaseXClassifier

    if not 0 < treatment_share < 1:
        raise UpliftDataError(f"The treatment share must be between 0 and 1, got {treatment_share}")
    x = matrix(train, features)
    treatment = is_treated(train).astype(int)
    y = train[OUTCOME].astype(int).to_numpy()
    classifier = XGBClassifier(objective="binary:logistic", **params.xgboost)
    regressor = XGBRegressor(objective="reg:squarederror", **params.xgboost)
    propensity = np.full(len(train), treatment_share)
    if params.learner == "x":
        learner = BaseXClassifier(outcome_learner=classifier, effect_learner=regressor, control_name=0)
        learner.fit(x, treatment=treatment, y=y, p=propensity)
        named = [
            ("effect_on_control", treatment_share, learner.models_tau_c[1]),
            ("effect_on_treated", 1 - treatment_share, learner.models_tau_t[1]),
        ]
    elif params.learner == "t":
        learner = BaseTClassifier(learner=classifier, control_name=0)
        learner.fit(x, treatment=treatment, y=y)
        named = [("outcome_treated", 1.0, learner.models_t[1]), ("outcome_control", -1.0, learner.model_c)]
    else:
        learner = BaseDRClassifier(learner=classifier, treatment_effect_learner=regressor, control_name=0)
        learner.fit(
            x, treatment=treatment, y=y, p=propensity, seed=int(params.xgboost.get("random_state", 0))
        )
        folds = learner.models_tau[1]
        named = [(f"effect_fold_{i}", 1 / len(folds), model) for i, model in enumerate(folds)]
    terms = []
    for _name, weight, estimator in named:
        booster = estimator.get_booster()
        booster.feature_names = list(features)
        terms.append((float(weight), booster))
    model = UpliftModel(
        learner=params.learner,
        features=list(features),
        terms=terms,
        treatment_share=float(treatment_share),
        term_names=[name for name, _, _ in named],
    )
    return model, learner


def causalml_predict(
    learner: Any, frame: pd.DataFrame, features: list[str], treatment_share: float
) -> np.ndarray:
    """causalml's own prediction for ``frame`` (what :meth:`UpliftModel.predict` must equal)."""
    x = matrix(frame, features)
    if hasattr(learner, "models_tau_c"):  # X-learner: the known propensity, as in training
        return np.ravel(learner.predict(x, p=np.full(len(frame), treatment_share)))
    return np.ravel(learner.predict(x))


# ---------------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class UpliftSplit:
    """Decisions by cohort: ``train`` (the earlier cohorts) and ``test`` (the latest, judging only)."""

    train: pd.DataFrame
    test: pd.DataFrame

    def window(self) -> dict[str, Any]:
        return {
            "train_cohorts": _cohorts(self.train),
            "test_cohorts": _cohorts(self.test),
            "rows": {name: _arm_counts(part) for name, part in (("train", self.train), ("test", self.test))},
            "retention": {
                name: {
                    arm: float(part.loc[part["arm"] == arm, OUTCOME].astype(float).mean())
                    if (part["arm"] == arm).any()
                    else None
                    for arm in ("treatment", "control")
                }
                for name, part in (("train", self.train), ("test", self.test))
            },
        }


def _cohorts(frame: pd.DataFrame) -> list[str]:
    # the decision date alone: the training rows also carry the features' as_of_date (the same day)
    return iso_dates(pd.DataFrame({"as_of_date": frame[COHORT]})) if len(frame) else []


def _arm_counts(frame: pd.DataFrame) -> dict[str, int]:
    treated = is_treated(frame)
    return {"treatment": int(treated.sum()), "control": int((~treated).sum())}


def shortfalls(rows: pd.DataFrame, params: UpliftParams) -> list[str]:
    """What is missing to train and judge the model on ``rows`` (decisions with a complete retention
    window), each with how much more is needed; empty when there is enough."""
    cohorts = sorted(pd.to_datetime(rows[COHORT]).dt.date.unique()) if len(rows) else []
    counts = _arm_counts(rows) if len(rows) else {"treatment": 0, "control": 0}
    missing = []
    for what, have, need in (
        ("cohorts (decision dates with a complete retention window)", len(cohorts), params.min_cohorts),
        ("treated decisions", counts["treatment"], params.min_treated),
        ("held-out (control) decisions", counts["control"], params.min_control),
    ):
        if have < need:
            missing.append(f"{have:,} {what}, needs {need:,} ({need - have:,} more)")
    if len(cohorts) >= params.min_cohorts:
        held = test_dates(pd.to_datetime(rows[COHORT]).dt.date, params)
        test = rows[pd.to_datetime(rows[COHORT]).dt.date.isin(held)]
        have = _arm_counts(test)["control"]
        if have < params.min_test_control:
            missing.append(
                f"{have:,} held-out decisions in the {len(held)} latest cohorts (the test), needs "
                f"{params.min_test_control:,} ({params.min_test_control - have:,} more)"
            )
    return missing


def test_dates(dates: pd.Series, params: UpliftParams) -> list:
    """The decision dates held out for judging: the latest ``test_cohorts``, and earlier ones until they
    hold ``test_share`` of the decisions (later cohorts are small: the cooldown keeps those decided
    recently out), always leaving the earlier half of the cohorts to train on."""
    sizes = dates.value_counts().sort_index(ascending=False)  # latest first
    held: list = []
    for day in sizes.index:
        enough = len(held) >= params.test_cohorts and sizes[held].sum() >= params.test_share * len(dates)
        if enough or len(held) >= max(params.test_cohorts, len(sizes) // 2):
            break
        held.append(day)
    return sorted(held)


def split_out_of_time(rows: pd.DataFrame, params: UpliftParams) -> UpliftSplit:
    """The latest cohorts held out for judging (:func:`test_dates`), the earlier ones for training;
    UpliftDataError (saying how much more is needed) when there is not enough."""
    missing = shortfalls(rows, params)
    if missing:
        raise UpliftDataError(
            "Not enough of the campaign's experiment to learn whom a grant moves: "
            + "; ".join(missing)
            + ". Each daily run adds a cohort, which matures after the retention window "
            "(BOOMERANG_RETENTION_WINDOW_DAYS); until then the policy ranks by churn risk and keeps exploring "
            "(thresholds: ml/uplift.yaml, data)."
        )
    dates = pd.to_datetime(rows[COHORT]).dt.date
    held = test_dates(dates, params)

    def part(mask: pd.Series) -> pd.DataFrame:
        return rows[mask].sort_values([COHORT, "customer_id", "decision_id"]).reset_index(drop=True)

    split = UpliftSplit(train=part(~dates.isin(held)), test=part(dates.isin(held)))
    for name in ("train", "test"):
        if getattr(split, name)[OUTCOME].astype(int).nunique() < 2:
            raise UpliftDataError(
                f"Every {name} decision has the same outcome (retained or not): there is nothing to learn "
                "or judge; wait for more cohorts."
            )
    return split


# ---------------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class UpliftDecision:
    """What the gate decided and why, with the metrics and every paired interval it used."""

    promoted: bool
    reasons: list[str]
    metrics: dict[str, dict[str, float | None]]  # ranking -> metric -> value (retention)
    profit_metrics: dict[str, dict[str, float | None]]  # the same rankings judged on profit
    comparisons: dict[str, dict[str, dict[str, Any]]]  # "model_vs_risk" -> metric -> PairedDifference

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def random_scores(n: int, seed: int) -> np.ndarray:
    """The random ranking: a seeded permutation (the same rows give the same ranking)."""
    return np.random.default_rng(seed).permutation(n).astype(float)


def ranking_scores(test: pd.DataFrame, predicted: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The rankings compared on the test rows: the model's, the churn risk recorded on each decision
    (a missing one ranks last) and random."""
    risk = pd.to_numeric(test[RISK], errors="coerce").fillna(-1.0).to_numpy(float)
    return {"model": np.asarray(predicted, float), "risk": risk, "random": random_scores(len(test), seed)}


def judge(
    test: pd.DataFrame,
    scores: dict[str, np.ndarray],
    params: UpliftParams,
    champion: tuple[str, np.ndarray] | None = None,
) -> UpliftDecision:
    """The promotion gate on the held-out cohorts.

    Promoted only when the lower bound of the paired interval of Qini(model) - Qini(risk) is above
    ``margin_over_risk`` and that of Qini(model) - Qini(random) above ``margin_over_random``, and,
    given the current champion (its version and its predictions on these rows), when the lower bound
    of Qini(model) - Qini(champion) is above ``min_gain_over_champion``.
    """
    y, treated = test[OUTCOME].astype(float).to_numpy(), is_treated(test)
    scores = dict(scores)
    pairs = [("model", "risk"), ("model", "random"), ("risk", "random")]
    if champion is not None:
        scores["champion"] = np.asarray(champion[1], float)
        pairs.append(("model", "champion"))
    boot = paired_uplift_bootstrap(
        y,
        treated,
        scores,
        pairs,
        shares=params.top_shares,
        resamples=params.bootstrap_resamples,
        level=params.level,
        seed=params.seed,
    )
    profit = (
        pd.to_numeric(test[PROFIT], errors="coerce").fillna(0.0).to_numpy(float) if PROFIT in test else None
    )
    metrics = {name: uplift_metrics(y, treated, s, params.top_shares) for name, s in scores.items()}
    profit_metrics = (
        {name: uplift_metrics(profit, treated, s, params.top_shares) for name, s in scores.items()}
        if profit is not None
        else {}
    )
    reasons: list[str] = []
    checks = [
        ("model_vs_risk", params.margin_over_risk, "the churn-risk ranking"),
        ("model_vs_random", params.margin_over_random, "a random ranking"),
    ]
    if champion is not None:
        checks.append(("model_vs_champion", params.min_gain_over_champion, f"the champion {champion[0]}"))
    passed = True
    for key, margin, against in checks:
        difference = boot[key].get("qini")
        if difference is None:
            passed = False
            reasons.append(f"Qini against {against} is undefined on the test cohorts")
            continue
        ok = difference.low > margin
        passed = passed and ok
        reasons.append(f"{'beats' if ok else 'does not beat'} {against}: {_said(difference, margin)}")
    if champion is None and passed:
        reasons.append("no uplift champion yet: it becomes the first")
    return UpliftDecision(
        promoted=passed,
        reasons=reasons,
        metrics=metrics,
        profit_metrics=profit_metrics,
        comparisons={key: {m: d.as_dict() for m, d in by_metric.items()} for key, by_metric in boot.items()},
    )


def _said(difference: PairedDifference, margin: float) -> str:
    return (
        f"Qini {difference.a_value:.4f} vs {difference.b_value:.4f}, difference {difference.difference:+.4f} "
        f"[{difference.low:+.4f}, {difference.high:+.4f}] ({difference.level:.0%} paired bootstrap), "
        f"the lower bound must exceed {margin:+.4f}"
    )
