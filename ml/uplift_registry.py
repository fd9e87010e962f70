"""The uplift model's registry under ``models/uplift/`` and its I/O: training on the campaign's
matured decisions (marts.fct_uplift_training), the out-of-time judgement and promotion gate, the
report page, and the daily predictions into ``ml.uplift_predictions``.

One folder per version, written aside and renamed into place (as the churn and mileage registries
do): ``model.json`` (the learner, its features and how its boosters add up), ``effect_<i>.json``
(XGBoost boosters, native JSON), ``params.yaml``, ``training.json``, ``metrics.json`` (strict JSON:
null, never NaN), ``report.html`` with the Qini plots, ``status.json``;
``models/uplift/champion.json`` names the champion version. Scoring loads boosters with xgboost
alone: causalml is imported for training only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ml.model import CHAMPION_FILE, point_champion, write_json, write_status
from ml.uplift import (
    COHORT,
    LEARNERS,
    OUTCOME,
    RANKINGS,
    UpliftDataError,
    UpliftDecision,
    UpliftModel,
    UpliftParams,
    UpliftSplit,
    fit,
    is_treated,
    judge,
    ranking_scores,
    split_out_of_time,
    uplift_features,
)

log = logging.getLogger(__name__)

TRAINING_TABLE = "marts.fct_uplift_training"


def uplift_dir(models_dir: Path) -> Path:
    return models_dir / "uplift"


@dataclass(frozen=True)
class TrainingResult:
    """What a training run did: the version trained (None when the data did not allow one), whether
    it became the champion, and why."""

    version: str | None
    promoted: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------- loading


def load(models_dir: Path, version: str) -> UpliftModel:
    """A version folder's model, with xgboost only."""
    import xgboost as xgb

    folder = uplift_dir(models_dir) / version
    meta = json.loads((folder / "model.json").read_text())
    terms = []
    for term in meta["terms"]:
        booster = xgb.Booster()
        booster.load_model(folder / term["file"])
        terms.append((float(term["weight"]), booster))
    return UpliftModel(
        learner=meta["learner"],
        features=list(meta["features"]),
        terms=terms,
        treatment_share=float(meta["treatment_share"]),
        version=version,
        term_names=[term["name"] for term in meta["terms"]],
    )


def champion(models_dir: Path) -> str | None:
    """The uplift champion's version, or None before the first promotion."""
    pointer = uplift_dir(models_dir) / CHAMPION_FILE
    if not pointer.exists():
        return None
    return json.loads(pointer.read_text())["version"]


def load_champion(models_dir: Path) -> UpliftModel | None:
    current = champion(models_dir)
    return load(models_dir, current) if current else None


# ---------------------------------------------------------------------------------- training


def load_training_rows(warehouse_path: Path) -> pd.DataFrame:
    """Every row of marts.fct_uplift_training (decisions with a complete retention window), sorted."""
    import duckdb

    from boomerang.warehouse.db import connect

    with connect(warehouse_path, read_only=True) as con:
        try:
            return con.execute(
                f"select * from {TRAINING_TABLE} order by {COHORT}, customer_id, decision_id"
            ).df()
        except duckdb.CatalogException:
            raise UpliftDataError(
                f"{TRAINING_TABLE} is missing: build the training set first (`boomerang train` does, or "
                "`boomerang dbt build --select +fct_uplift_training`)."
            ) from None


def train(
    warehouse_path: Path,
    models_dir: Path,
    as_of: date,
    params: UpliftParams | None = None,
    treatment_share: float | None = None,
) -> TrainingResult:
    """Train the uplift model on the warehouse's matured decisions, judge it on the latest cohorts and
    promote it past the gate. Not enough data is not an error: nothing is written, and the result
    says how much more is needed (the policy keeps ranking by churn risk)."""
    return train_on(load_training_rows(warehouse_path), models_dir, as_of, params, treatment_share)


def train_on(
    rows: pd.DataFrame,
    models_dir: Path,
    as_of: date,
    params: UpliftParams | None = None,
    treatment_share: float | None = None,
) -> TrainingResult:
    """:func:`train` on the training rows themselves (``treatment_share``: the known share of the
    treated arm, 1 - the holdout share; None takes the training rows' own)."""
    params = params or UpliftParams.load()
    try:
        split = split_out_of_time(rows, params)
    except UpliftDataError as refusal:
        log.warning("Uplift model not trained: %s", refusal)
        return TrainingResult(None, False, str(refusal))
    share = float(is_treated(split.train).mean()) if treatment_share is None else float(treatment_share)
    features = uplift_features(split.train)
    if not features:
        reason = "No feature with data in the training cohorts: nothing to learn whom a grant moves from."
        log.warning("Uplift model not trained: %s", reason)
        return TrainingResult(None, False, reason)
    version = _version(as_of, params, features, share, split)
    final = uplift_dir(models_dir) / version
    if final.exists():
        log.info("Uplift model %s is already trained (%s); judging it again", version, final)
    else:
        model, _learner = fit(split.train, features, params, share)
        _write(final, version, as_of, params, model, split)
    model = load(models_dir, version)
    decision = _promote(models_dir, version, model, split, params)
    return TrainingResult(version, decision.promoted, decision.reason)


def _version(as_of: date, params: UpliftParams, features: list[str], share: float, split: UpliftSplit) -> str:
    """Date + hash of what was learned: parameters, features, the share, the cohorts and the data."""
    columns = ["decision_id", "arm", OUTCOME, *features]
    fingerprint = [
        int(pd.util.hash_pandas_object(part[columns], index=False).sum() % (1 << 63))
        for part in (split.train, split.test)
    ]
    digest = hashlib.sha256(
        json.dumps(
            [params.as_dict(), features, share, split.window(), fingerprint], sort_keys=True, default=str
        ).encode()
    ).hexdigest()[:8]
    return f"{as_of:%Y%m%d}-{digest}"


def _write(
    final: Path, version: str, as_of: date, params: UpliftParams, model: UpliftModel, split: UpliftSplit
) -> None:
    """The version folder, written aside and renamed into place: always complete."""
    folder = final.with_name(f".{version}.partial")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    terms = []
    for index, ((weight, booster), name) in enumerate(zip(model.terms, model.term_names, strict=True)):
        file = f"effect_{index}.json"
        booster.save_model(folder / file)
        terms.append({"name": name, "weight": weight, "file": file})
    write_json(
        folder / "model.json",
        {
            "learner": model.learner,
            "learner_name": LEARNERS[model.learner],
            "predicts": f"{OUTCOME}: P(retained | granted) - P(retained | held out), the change a grant makes",
            "features": model.features,
            "treatment_share": model.treatment_share,
            "terms": terms,
        },
    )
    (folder / "params.yaml").write_text(yaml.safe_dump(params.as_dict(), sort_keys=False))
    write_json(
        folder / "training.json",
        {
            "version": version,
            "trained_for_as_of": as_of.isoformat(),
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "learner": LEARNERS[model.learner],
            "treatment_share": model.treatment_share,
            "data": split.window(),
        },
    )
    write_status(folder, "candidate", "trained, not yet judged")
    folder.rename(final)
    log.info(
        "Trained uplift model %s (%s) on %d decisions of %d cohorts, %d features",
        version,
        LEARNERS[model.learner],
        len(split.train),
        split.train[COHORT].nunique(),
        len(model.features),
    )


def _promote(
    models_dir: Path, version: str, model: UpliftModel, split: UpliftSplit, params: UpliftParams
) -> UpliftDecision:
    folder = uplift_dir(models_dir) / version
    test = split.test
    predicted = model.predict(test)
    scores = ranking_scores(test, predicted, params.seed)
    current = champion(models_dir)
    against = None
    if current is not None and current != version:
        against = (current, load(models_dir, current).predict(test))
    decision = judge(test, scores, params, against)
    if current == version:
        decision = UpliftDecision(
            True,
            [*decision.reasons, "already the champion"],
            decision.metrics,
            decision.profit_metrics,
            decision.comparisons,
        )
    summary = {
        "version": version,
        "learner": LEARNERS[model.learner],
        "outcome": OUTCOME,
        "test_cohorts": split.window()["test_cohorts"],
        "test_rows": split.window()["rows"]["test"],
        "metrics": decision.metrics,
        "profit_metrics": decision.profit_metrics,
        "promotion": {
            "promoted": decision.promoted,
            "champion_before": current,
            "reasons": decision.reasons,
            "comparisons": decision.comparisons,
        },
    }
    write_json(folder / "metrics.json", summary)
    all_scores = {**scores, **({"champion": against[1]} if against else {})}
    images = _plots(folder / "plots", test, all_scores, predicted)
    (folder / "report.html").write_text(_report(version, summary, images))
    if not decision.promoted:
        write_status(folder, "rejected", decision.reason)
        log.warning("Uplift model %s not promoted: %s", version, decision.reason)
        return decision
    if current != version:
        point_champion(uplift_dir(models_dir), version, current, reason=decision.reason)
    write_status(folder, "champion", decision.reason)
    log.info("Uplift champion: %s: %s", version, decision.reason)
    return decision


# ---------------------------------------------------------------------------------- scoring


def predict_frame(model: UpliftModel, features: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """The rows of ml.uplift_predictions for ``features`` (one row per customer)."""
    return pd.DataFrame(
        {
            "as_of_date": as_of,
            "customer_id": features["customer_id"].to_numpy(),
            "predicted_uplift": model.predict(features),
            "model_version": model.version,
            "scored_at": datetime.now(UTC).replace(tzinfo=None),
        }
    )


def predict_uplift(warehouse_path: Path, models_dir: Path, as_of: date) -> int:
    """Predict every active customer's uplift at ``as_of`` (the customers the churn model scores)
    with the uplift champion into ml.uplift_predictions; idempotent per (as-of date, version).
    Returns the rows written: 0, with a warning saying why, when there is no uplift champion yet
    (the policy then ranks by churn risk)."""
    from boomerang.warehouse.db import connect
    from ml.data import active_features, replace_predictions

    model = load_champion(models_dir)
    if model is None:
        log.warning(
            "No uplift champion in %s yet: no uplift predicted, the policy ranks by churn risk. The weekly "
            "training (`boomerang train`) trains one once enough cohorts have a complete retention window.",
            uplift_dir(models_dir),
        )
        return 0
    with connect(warehouse_path) as con:
        rows = predict_frame(model, active_features(con, as_of), as_of)
        replace_predictions(con, "ml.uplift_predictions", as_of, model.version, rows)
    log.info(
        "Predicted the uplift of %d active customers at %s with %s: mean %+.4f, %d negative",
        len(rows),
        as_of,
        model.version,
        rows["predicted_uplift"].mean() if len(rows) else 0.0,
        int((rows["predicted_uplift"] < 0).sum()),
    )
    return len(rows)


# ---------------------------------------------------------------------------------- the report


def _plots(
    folder: Path, test: pd.DataFrame, scores: dict[str, np.ndarray], predicted: np.ndarray
) -> list[tuple[str, Path]]:
    """The Qini and uplift curves of every ranking, and the observed uplift by decile of the
    prediction against the predicted one: PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    y, treated = test[OUTCOME].astype(float).to_numpy(), is_treated(test)
    figures: list[tuple[str, Path]] = []

    def save(name: str, figure) -> None:
        figure.tight_layout()
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        figures.append((name, path))

    # causalml's import sets a plotting style of its own: these pages look like the other models'
    with plt.style.context("default"):
        _draw(y, treated, scores, predicted, plt, save)
    return figures


def _draw(
    y: np.ndarray, treated: np.ndarray, scores: dict[str, np.ndarray], predicted: np.ndarray, plt, save
) -> None:
    from ml.evaluate import qini_curve, uplift_curve

    for name, curve, ylabel in (
        ("qini_curves", qini_curve, "incremental retained / treated decisions"),
        ("uplift_curves", uplift_curve, "incremental retained / decisions"),
    ):
        figure, axis = plt.subplots(figsize=(6, 4.5))
        for ranking, score in scores.items():
            share, gain = curve(y, treated, score)
            axis.plot(share, gain, label=RANKINGS.get(ranking, ranking))
        axis.plot([0, 1], [0, gain[-1]], "k:", linewidth=0.8, label="random (expected)")
        axis.set(
            title=f"{name.split('_')[0].capitalize()} curves on the held-out cohorts",
            xlabel="share of decisions targeted (highest score first)",
            ylabel=ylabel,
        )
        axis.legend()
        save(name, figure)

    order = np.argsort(-predicted, kind="stable")
    decile = np.empty(len(order), dtype=int)
    decile[order] = np.arange(len(order)) * 10 // max(len(order), 1)
    observed, expected = [], []
    for d in range(10):
        rows = decile == d
        t, c = rows & treated, rows & ~treated
        observed.append(y[t].mean() - y[c].mean() if t.any() and c.any() else np.nan)
        expected.append(predicted[rows].mean() if rows.any() else np.nan)
    figure, axis = plt.subplots(figsize=(6, 4.5))
    deciles = np.arange(1, 11)
    axis.bar(deciles - 0.2, observed, 0.4, label="observed (treated - control retention)")
    axis.bar(deciles + 0.2, expected, 0.4, label="predicted uplift (mean)")
    axis.axhline(0, color="k", linewidth=0.8)
    axis.set(
        title="Uplift by decile of the prediction",
        xlabel="decile of the predicted uplift (1 = highest)",
        ylabel="change in retention",
        xticks=deciles,
    )
    axis.legend()
    save("uplift_by_decile", figure)


def _report(version: str, summary: dict[str, Any], figures: list[tuple[str, Path]]) -> str:
    """One self-contained page: every ranking's metrics, the gate's intervals and verdict, the plots."""
    from boomerang.reports.pages import Table, render_page

    def cell(value: Any, fmt: str = "+.4f") -> str:
        return "\u2014" if value is None else format(value, fmt)

    names = ["qini", "auuc", *(key for key in summary["metrics"]["model"] if key.startswith("uplift_at_"))]
    labels = {
        "qini": "Qini",
        "auuc": "AUUC",
        **{n: f"uplift top {n.removeprefix('uplift_at_')} %" for n in names},
    }
    metrics = Table(
        columns=["ranking", *(labels[n] for n in names), "Qini on profit"],
        rows=[
            [
                RANKINGS.get(ranking, f"champion {summary['promotion']['champion_before']}"),
                *(cell(values[n]) for n in names),
                cell(summary["profit_metrics"].get(ranking, {}).get("qini"), "+.2f"),
            ]
            for ranking, values in summary["metrics"].items()
        ],
    )
    comparisons = Table(
        columns=["comparison", "metric", "this", "the other", "difference", "interval low", "interval high"],
        rows=[
            [
                f"{RANKINGS.get(c['a'], c['a'])} vs {RANKINGS.get(c['b'], c['b'])}",
                labels.get(metric, metric) + (" (the gate's)" if metric == "qini" else ""),
                cell(c["a_value"]),
                cell(c["b_value"]),
                cell(c["difference"]),
                cell(c["low"]),
                cell(c["high"]),
            ]
            for by_metric in summary["promotion"]["comparisons"].values()
            for metric, c in by_metric.items()
        ],
        text=(0, 1),
    )
    rows = summary["test_rows"]
    return render_page(
        "uplift_report.html",
        title=f"Uplift model {version}",
        learner=summary["learner"],
        test_cohorts=", ".join(summary["test_cohorts"]),
        treated=f"{rows['treatment']:,}",
        control=f"{rows['control']:,}",
        metrics=metrics,
        comparisons=comparisons,
        promoted=summary["promotion"]["promoted"],
        reasons=summary["promotion"]["reasons"],
        images=[
            (name, f"data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}")
            for name, path in figures
        ],
    )
