"""The mileage model's registry under ``models/mileage/`` and its I/O: training on the warehouse's
snapshots, the out-of-time report, the promotion gate, and the daily predictions into
``ml.mileage_predictions``.

One folder per version, written aside and renamed into place (as the churn registry does):
``clv.json`` (BG/NBD + Gamma-Gamma), ``model.json`` (XGBoost, native JSON), ``features.json``,
``params.yaml``, ``training.json``, ``metrics.json`` (strict JSON: null, never NaN), ``report.html``,
``status.json``; ``models/mileage/champion.json`` names the champion version and which of its two
candidates predicts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import shutil
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ml.clv import SUMMARY_COLUMNS, CustomerBaseModel
from ml.mileage import (
    CANDIDATE_NAMES,
    CANDIDATES,
    LABEL,
    GateDecision,
    MileageDataError,
    MileageModel,
    MileageParams,
    MileageSplit,
    fit_candidates,
    gate,
    mileage_metrics,
    run_rate_miles,
    split_out_of_time,
)
from ml.model import CHAMPION_FILE, point_champion, write_status

log = logging.getLogger(__name__)


def mileage_dir(models_dir: Path) -> Path:
    return models_dir / "mileage"


# ---------------------------------------------------------------------------------- loading


def load(models_dir: Path, version: str, candidate: str) -> MileageModel:
    """One candidate of a version folder."""
    import xgboost as xgb

    folder = mileage_dir(models_dir) / version
    training = json.loads((folder / "training.json").read_text())
    booster, features = None, []
    if candidate == "xgboost":
        booster = xgb.Booster()
        booster.load_model(folder / "model.json")  # keeps best_iteration from early stopping
        features = json.loads((folder / "features.json").read_text())
    return MileageModel(
        candidate=candidate,
        window_days=int(training["window_days"]),
        customer_base=CustomerBaseModel.load(folder / "clv.json"),
        earn_rate=float(training["earn_rate"]),
        earn_rule=training["earn_rule"],
        booster=booster,
        features=features,
        version=version,
    )


def champion(models_dir: Path) -> tuple[str, str] | None:
    """(version, candidate) of the mileage champion, or None before the first promotion."""
    pointer = mileage_dir(models_dir) / CHAMPION_FILE
    if not pointer.exists():
        return None
    data = json.loads(pointer.read_text())
    return data["version"], data["candidate"]


def load_champion(models_dir: Path) -> MileageModel | None:
    current = champion(models_dir)
    return load(models_dir, *current) if current else None


# ---------------------------------------------------------------------------------- training


def load_snapshots(warehouse_path: Path) -> pd.DataFrame:
    """Every row of marts.fct_training_snapshots (all customers at every training date), sorted."""
    import duckdb

    from boomerang.warehouse.db import connect

    with connect(warehouse_path, read_only=True) as con:
        try:
            return con.execute(
                "select * from marts.fct_training_snapshots order by as_of_date, customer_id"
            ).df()
        except duckdb.BinderException:
            raise MileageDataError(
                "marts.fct_training_snapshots has no mileage labels (miles_in_window): it was built by an "
                "older version. Rebuild the training set (`boomerang train` builds it)."
            ) from None
        except duckdb.CatalogException:
            raise MileageDataError(
                "marts.fct_training_snapshots is missing: build the training set first "
                "(`boomerang train` does, or `boomerang dbt build --select +fct_training_snapshots`)."
            ) from None


def train(
    warehouse_path: Path,
    models_dir: Path,
    as_of: date,
    window_days: int,
    params: MileageParams | None = None,
) -> tuple[str, GateDecision]:
    """Train both candidates, judge them out of time, write the version folder and run the gate;
    returns the version and the gate's decision (the champion pointer moves only if it promoted)."""
    params = params or MileageParams.load()
    snapshots = load_snapshots(warehouse_path)
    _check_window(snapshots, window_days)
    split = split_out_of_time(snapshots)
    models = fit_candidates(split, window_days, params)
    version = _version(as_of, params, models, split)
    final = mileage_dir(models_dir) / version
    if final.exists():
        log.info("Mileage model %s is already trained (%s); judging it again", version, final)
    else:
        _write(final, version, as_of, params, models, split)
    models = {name: load(models_dir, version, name) for name in CANDIDATES}
    summary = _evaluate(final, models, split, params)
    decision = _promote(models_dir, version, models, split, summary, params)
    return version, decision


def _check_window(snapshots: pd.DataFrame, window_days: int) -> None:
    if "window_days" not in snapshots.columns:
        raise MileageDataError(
            "marts.fct_training_snapshots has no mileage labels: rebuild the training set (`boomerang train`)."
        )
    built = set(snapshots["window_days"].dropna().astype(int))
    if built and built != {window_days}:
        raise MileageDataError(
            f"The training set's mileage labels count a {sorted(built)}-day window, but the grant's expiry "
            f"(BOOMERANG_GRANT_EXPIRY_DAYS) is {window_days} days: rebuild the training set with the "
            "current settings (`boomerang train` does)."
        )


def _version(as_of: date, params: MileageParams, models: dict[str, MileageModel], split: MileageSplit) -> str:
    """Date + hash of what was learned: parameters, features, window, dates and the data itself."""
    # the stored columns the candidates learn from (the classic model's outputs are computed from them)
    columns = [
        column
        for column in (*models["xgboost"].features, *SUMMARY_COLUMNS, LABEL, "spend_in_window")
        if column in split.train.columns
    ]
    fingerprint = [
        int(pd.util.hash_pandas_object(part[["customer_id", *columns]], index=False).sum() % (1 << 63))
        for part in (split.train, split.valid, split.test)
    ] + [
        int(
            pd.util.hash_pandas_object(
                split.cross_section[["customer_id", *SUMMARY_COLUMNS]], index=False
            ).sum()
            % (1 << 63)
        )
    ]
    digest = hashlib.sha256(
        json.dumps(
            [
                params.as_dict(),
                models["xgboost"].features,
                columns,
                models["classic"].window_days,
                split.window(),
                fingerprint,
            ],
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()[:8]
    return f"{as_of:%Y%m%d}-{digest}"


def _write(
    final: Path,
    version: str,
    as_of: date,
    params: MileageParams,
    models: dict[str, MileageModel],
    split: MileageSplit,
) -> None:
    """The version folder, written aside and renamed into place: always complete."""
    folder = final.with_name(f".{version}.partial")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    classic, boosted = models["classic"], models["xgboost"]
    classic.customer_base.save(folder / "clv.json")
    boosted.booster.save_model(folder / "model.json")
    (folder / "features.json").write_text(json.dumps(boosted.features, indent=2) + "\n")
    (folder / "params.yaml").write_text(yaml.safe_dump(params.as_dict(), sort_keys=False))
    (folder / "training.json").write_text(
        _json(
            {
                "version": version,
                "trained_for_as_of": as_of.isoformat(),
                "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "window_days": classic.window_days,
                "label": f"{LABEL}: miles earned in the {classic.window_days} days from the as-of date",
                "earn_rule": classic.earn_rule,
                "earn_rate": classic.earn_rate,
                "customer_base": {
                    "bgnbd": classic.customer_base.bgnbd,
                    "gamma_gamma": classic.customer_base.gamma_gamma,
                },
                "xgboost_best_iteration": int(boosted.booster.best_iteration),
                "data": split.window(),
            }
        )
    )
    write_status(folder, "candidate", "trained, not yet judged")
    folder.rename(final)
    log.info(
        "Trained mileage model %s: BG/NBD %s, XGBoost %d trees on %d features",
        version,
        {name: round(value, 3) for name, value in classic.customer_base.bgnbd.items()},
        boosted.booster.best_iteration + 1,
        len(boosted.features),
    )


def _evaluate(
    folder: Path, models: dict[str, MileageModel], split: MileageSplit, params: MileageParams
) -> dict[str, Any]:
    """Both candidates, the classic one with each earn rule and the naive run rate, on the test rows."""
    test = split.test
    actual = test[LABEL].to_numpy(float)
    window = models["classic"].window_days
    predictions = {name: model.predict(test)["predicted_miles"].to_numpy() for name, model in models.items()}
    other_rule = "own" if models["classic"].earn_rule == "global" else "global"
    variant = replace(models["classic"], earn_rule=other_rule)
    benchmarks = {
        f"classic_{other_rule}_rate": variant.predict(test)["predicted_miles"].to_numpy(),
        "run_rate": run_rate_miles(test, window),
        # what MAE would choose: the median customer earns nothing in a short window
        "zero": np.zeros(len(test)),
    }
    summary = {
        "version": folder.name,
        "window_days": window,
        "test_as_of_dates": split.window()["test_as_of_dates"],
        "earn_rule": models["classic"].earn_rule,
        "gate_metric": params.gate_metric,
        "candidates": {name: mileage_metrics(actual, p) for name, p in predictions.items()},
        "benchmarks": {name: mileage_metrics(actual, p) for name, p in benchmarks.items()},
    }
    (folder / "metrics.json").write_text(_json(summary))
    return summary


def _promote(
    models_dir: Path,
    version: str,
    models: dict[str, MileageModel],
    split: MileageSplit,
    summary: dict[str, Any],
    params: MileageParams,
) -> GateDecision:
    folder = mileage_dir(models_dir) / version
    test = split.test
    actual = test[LABEL].to_numpy(float)
    predictions = {name: model.predict(test)["predicted_miles"].to_numpy() for name, model in models.items()}
    current = champion(models_dir)
    if current and current[0] == version:
        # the same data and parameters again: the same model, already promoted
        decision = gate(actual, predictions, params)
        decision = GateDecision(
            current[1], True, [decision.reasons[0], "already the champion"], decision.comparisons
        )
    else:
        against = None
        if current:
            incumbent = load(models_dir, *current)
            window = models["classic"].window_days
            against = (
                f"{current[0]} ({current[1]})",
                incumbent.predict(test, window)["predicted_miles"].to_numpy(),
            )
        decision = gate(actual, predictions, params, against)
    summary["promotion"] = {
        "candidate": decision.candidate,
        "promoted": decision.promoted,
        "champion_before": None if current is None else {"version": current[0], "candidate": current[1]},
        "reasons": decision.reasons,
        "comparisons": decision.comparisons,
    }
    (folder / "metrics.json").write_text(_json(summary))
    images = _plots(folder / "plots", actual, predictions, decision.candidate)
    (folder / "report.html").write_text(_report(version, summary, images))
    if not decision.promoted:
        write_status(folder, "rejected", decision.reason)
        log.warning("Mileage model %s not promoted: %s", version, decision.reason)
        return decision
    if current is None or current[0] != version:
        point_champion(
            mileage_dir(models_dir),
            version,
            None if current is None else current[0],
            candidate=decision.candidate,
            reason=decision.reason,
        )
    write_status(folder, "champion", decision.reason)
    log.info("Mileage champion: %s (%s): %s", version, decision.candidate, decision.reason)
    return decision


# ---------------------------------------------------------------------------------- scoring


def predict_mileage(warehouse_path: Path, models_dir: Path, as_of: date, window_days: int) -> int:
    """Predict every active customer's miles over ``window_days`` at ``as_of`` with the mileage
    champion into ml.mileage_predictions; idempotent per (as-of date, version). Returns the rows
    written: 0, with a warning, when there is no mileage champion yet (the policy then grants the
    flat amount)."""
    from boomerang.warehouse.db import connect
    from ml.data import active_features, replace_predictions

    model = load_champion(models_dir)
    if model is None:
        log.warning(
            "No mileage champion in %s yet: no mileage predicted, the policy grants the flat amount. "
            "Run the training (`boomerang train`) first.",
            mileage_dir(models_dir),
        )
        return 0
    with connect(warehouse_path) as con:
        features = active_features(con, as_of)
        predicted = model.predict(features, window_days)
        rows = pd.DataFrame(
            {
                "customer_id": features["customer_id"].to_numpy(),
                "as_of_date": as_of,
                "model_version": model.version,
                "window_days": window_days,
                **{column: predicted[column].to_numpy() for column in predicted.columns},
                "scored_at": datetime.now(UTC).replace(tzinfo=None),
            }
        )
        replace_predictions(con, "ml.mileage_predictions", as_of, model.version, rows)
    log.info(
        "Predicted the %d-day mileage of %d active customers at %s with %s (%s): %.0f miles in all",
        window_days,
        len(rows),
        as_of,
        model.version,
        model.candidate,
        rows["predicted_miles"].sum(),
    )
    return len(rows)


# ---------------------------------------------------------------------------------- files


def _json(value: Any) -> str:
    """Strict JSON (NaN and infinities written as null), indented, one trailing newline."""
    return json.dumps(_finite(value), indent=2, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclass(frozen=True)
class _Figure:
    name: str
    path: Path


def _plots(
    folder: Path, actual: np.ndarray, predictions: dict[str, np.ndarray], chosen: str
) -> list[_Figure]:
    """Predicted against actual per decile, the totals' calibration, and the chosen candidate's
    scatter and residuals: PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    figures: list[_Figure] = []

    def save(name: str, figure) -> None:
        figure.tight_layout()
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        figures.append(_Figure(name, path))

    metrics = {name: mileage_metrics(actual, p) for name, p in predictions.items()}
    figure, axis = plt.subplots(figsize=(6, 4.5))
    width = 0.8 / (len(predictions) + 1)
    deciles = np.arange(1, 11)
    first = next(iter(metrics.values()))["deciles"]
    axis.bar(
        deciles - width, [d["actual"] / d["customers"] for d in first], width, label="actual", color="0.6"
    )
    for offset, (name, values) in enumerate(metrics.items()):
        axis.bar(
            deciles + offset * width,
            [d["predicted"] / d["customers"] for d in values["deciles"]],
            width,
            label=CANDIDATE_NAMES[name],
        )
    axis.set(
        title="Mean miles per customer by decile of prediction",
        xlabel="decile of the prediction (10 = highest)",
        ylabel="miles in the window",
        xticks=deciles,
    )
    axis.legend()
    save("deciles", figure)

    figure, axis = plt.subplots(figsize=(6, 4.5))
    for name, values in metrics.items():
        axis.plot(
            [d["decile"] for d in values["deciles"]],
            [d["ratio"] if d["ratio"] is not None else np.nan for d in values["deciles"]],
            "o-",
            label=f"{CANDIDATE_NAMES[name]} (overall {values['total_ratio'] or float('nan'):.2f})",
        )
    axis.axhline(1.0, color="k", linestyle=":", linewidth=0.8)
    axis.set(
        title="Calibration of totals: predicted / actual miles",
        xlabel="decile of the prediction (10 = highest)",
        ylabel="predicted / actual",
        xticks=deciles,
    )
    axis.legend()
    save("calibration_of_totals", figure)

    predicted = predictions[chosen]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.5))
    left.scatter(predicted, actual, s=6, alpha=0.35)
    top = float(max(predicted.max(initial=0), actual.max(initial=0))) or 1.0
    left.plot([0, top], [0, top], "k:", linewidth=0.8)
    left.set(
        title=f"{CANDIDATE_NAMES[chosen]}: each customer", xlabel="predicted miles", ylabel="actual miles"
    )
    right.scatter(predicted, actual - predicted, s=6, alpha=0.35)
    right.axhline(0, color="k", linestyle=":", linewidth=0.8)
    right.set(title="Residuals", xlabel="predicted miles", ylabel="actual - predicted")
    save("scatter_and_residuals", figure)
    return figures


def _report(version: str, summary: dict[str, Any], figures: list[_Figure]) -> str:
    """One self-contained page: both candidates and the benchmarks, the gate's intervals, plots."""
    from boomerang.reports.pages import Table, render_page

    def cell(value: Any, fmt: str) -> str:
        return "\u2014" if value is None else format(value, fmt)

    rows = []
    for group in ("candidates", "benchmarks"):
        for name, values in summary[group].items():
            rows.append(
                [
                    CANDIDATE_NAMES.get(name, name.replace("_", " ")),
                    cell(values["mae"], ".2f"),
                    cell(values["rmse"], ".2f"),
                    cell(values["poisson_deviance"], ".3f"),
                    cell(values["total_ratio"], ".3f"),
                    cell(values["spearman"], ".3f"),
                    f"{values['customers']:,}",
                ]
            )
    metrics = Table(
        columns=["model", "MAE", "RMSE", "Poisson deviance", "predicted / actual", "Spearman", "customers"],
        rows=rows,
    )
    comparisons = Table(
        columns=["comparison", "metric", "this", "the other", "improvement", "interval low", "interval high"],
        rows=[
            [
                f"{c['a']} vs {c['b']}",
                c["metric"].removeprefix("negative ")
                + (" (the gate's)" if metric == summary["gate_metric"] else ""),
                f"{-c['a_value']:.3f}",
                f"{-c['b_value']:.3f}",
                f"{c['difference']:+.3f}",
                f"{c['low']:+.3f}",
                f"{c['high']:+.3f}",
            ]
            for by_metric in summary["promotion"]["comparisons"].values()
            for metric, c in by_metric.items()
        ],
        text=(0, 1),
    )
    promotion = summary["promotion"]
    return render_page(
        "mileage_report.html",
        title=f"Mileage model {version}",
        window_days=summary["window_days"],
        test_dates=", ".join(summary["test_as_of_dates"]),
        metrics=metrics,
        comparisons=comparisons,
        candidate=CANDIDATE_NAMES[promotion["candidate"]],
        promoted=promotion["promoted"],
        reasons=promotion["reasons"],
        images=[
            (figure.name, f"data:image/png;base64,{base64.b64encode(figure.path.read_bytes()).decode()}")
            for figure in figures
        ],
    )
