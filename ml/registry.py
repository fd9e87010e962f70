"""The model registry under ``models/churn/``: one folder per trained version, a champion pointer,
and the promotion gate. Everything is plain files: native XGBoost JSON, JSON, YAML, PNG, HTML."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ml.clv import SUMMARY_COLUMNS
from ml.data import (
    Split,
    add_customer_base_features,
    check_no_leakage,
    horizon_days,
    load_snapshots,
    split_out_of_time,
    usable_features,
)
from ml.features import CUSTOMER_BASE_FEATURES, LABEL
from ml.model import (
    CHAMPION_FILE,
    Calibrator,
    Params,
    fit,
    point_champion,
    raw_scores,
    write_json,
    write_status,
)

log = logging.getLogger(__name__)

CUSTOMER_BASE_FILE = "clv.json"
# The report's plots, in the order the page shows them (ml.evaluate.plots writes them).
PLOTS = ("roc", "precision_recall", "calibration", "gains", "importance")
# Libraries whose version changes the model's bytes: part of the version name.
_LIBRARIES = ("xgboost", "scikit-learn", "lifetimes", "numpy", "pandas")


@dataclass(frozen=True)
class TrainedModel:
    """A version folder, loaded: what scoring and the promotion gate need."""

    version: str
    folder: Path
    booster: object
    calibrator: Calibrator
    features: list[str]
    # the customer-base model (ml/clv.py) fitted with it, and the churn horizon it was trained for:
    # they turn a customer's purchase history into the model's BG/NBD features
    customer_base: object | None = None
    horizon_days: int | None = None

    @property
    def uses_customer_base(self) -> bool:
        return self.customer_base is not None and bool(set(CUSTOMER_BASE_FEATURES) & set(self.features))

    @property
    def input_columns(self) -> list[str]:
        """The feature mart's columns the model reads: its features but the ones it computes itself,
        and the purchase-history summary those are computed from."""
        own = [name for name in self.features if name not in CUSTOMER_BASE_FEATURES]
        extra = [name for name in SUMMARY_COLUMNS if name not in own] if self.uses_customer_base else []
        return own + extra

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the features the model computes itself (the customer-base model's)."""
        if not self.uses_customer_base:
            return frame
        return add_customer_base_features(frame, self.customer_base, self.horizon_days)

    def raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Uncalibrated scores (XGBoost's): the ranking the probabilities come from."""
        return raw_scores(self.booster, self.prepare(frame), self.features)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.calibrator(self.raw(frame))


def churn_dir(models_dir: Path) -> Path:
    return models_dir / "churn"


def load(models_dir: Path, version: str) -> TrainedModel:
    import xgboost as xgb

    folder = churn_dir(models_dir) / version
    booster = xgb.Booster()
    booster.load_model(folder / "model.json")  # keeps best_iteration from early stopping
    customer_base = None
    if (folder / CUSTOMER_BASE_FILE).exists():
        from ml.clv import CustomerBaseModel

        customer_base = CustomerBaseModel.load(folder / CUSTOMER_BASE_FILE)
    training = json.loads((folder / "training.json").read_text())
    return TrainedModel(
        version=version,
        folder=folder,
        booster=booster,
        calibrator=Calibrator.load(folder / "calibrator.json"),
        features=json.loads((folder / "features.json").read_text()),
        customer_base=customer_base,
        horizon_days=training.get("horizon_days"),
    )


def champion_version(models_dir: Path) -> str | None:
    pointer = churn_dir(models_dir) / CHAMPION_FILE
    return json.loads(pointer.read_text())["version"] if pointer.exists() else None


def load_champion(models_dir: Path) -> TrainedModel | None:
    version = champion_version(models_dir)
    return load(models_dir, version) if version else None


def train(warehouse_path: Path, models_dir: Path, as_of: date, params: Params | None = None) -> str:
    """Train a candidate on the warehouse's training snapshots; write its folder; return its version.

    Same data and parameters give the same files, byte for byte, and the same version: the rows come
    in a fixed order (load_snapshots), XGBoost is seeded and runs the same threads, and the version
    names the parameters, features, dates, data and library versions.
    """
    params = params or Params.load()
    frame = load_snapshots(warehouse_path)
    split = split_out_of_time(frame)
    horizon = horizon_days(frame)
    # The customer-base model learns from the training slice's purchase histories (no labels, no
    # later dates); its view of each customer becomes candidate features.
    customer_base = _fit_customer_base(split.train, params)
    split = Split(
        *(
            add_customer_base_features(part, customer_base, horizon)
            for part in (split.train, split.valid, split.test)
        )
    )
    check_no_leakage(split.valid, usable_features(split.train), params.leakage_auc)
    features, booster, feature_sets = _fit_candidates(split, params)
    calibrator = Calibrator.fit(raw_scores(booster, split.valid, features), split.valid[LABEL].to_numpy())

    window = split.window()
    # The version names what was learned: parameters, features, dates, the training data itself
    # (in its order), the customer-base model and the libraries that turn them into a model.
    data_fingerprint = [
        hashlib.sha256(
            pd.util.hash_pandas_object(part[[*features, LABEL]], index=False).to_numpy().tobytes()
        ).hexdigest()
        for part in (split.train, split.valid)
    ]
    digest = hashlib.sha256(
        json.dumps(
            [
                params.as_dict(),
                features,
                window,
                horizon,
                data_fingerprint,
                customer_base and [customer_base.bgnbd, customer_base.gamma_gamma],
                _library_versions(),
            ],
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()[:8]
    version = f"{as_of:%Y%m%d}-{digest}"
    final = churn_dir(models_dir) / version
    if final.exists():
        # Same parameters, features, dates and data: this exact model exists (perhaps as champion).
        log.info("Version %s is already trained (%s); keeping it", version, final)
        return version
    # Written aside and renamed into place: a version folder is always complete.
    folder = final.with_name(f".{version}.partial")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    booster.save_model(folder / "model.json")
    calibrator.save(folder / "calibrator.json")
    if customer_base is not None:
        customer_base.save(folder / CUSTOMER_BASE_FILE)
    write_json(folder / "features.json", features)
    (folder / "params.yaml").write_text(yaml.safe_dump(params.as_dict(), sort_keys=False))
    write_json(
        folder / "training.json",
        {
            "version": version,
            "trained_for_as_of": as_of.isoformat(),
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "best_iteration": int(booster.best_iteration),
            "horizon_days": horizon,
            "data": window,
            "feature_sets": feature_sets,
            "customer_base": (
                "BG/NBD fitted on the training slice's purchase histories (clv.json)"
                if customer_base is not None
                else "not fitted (see the log): no BG/NBD features or baseline"
            ),
            "libraries": _library_versions(),
            "features_left_out": "features without data in the training slice (missing optional sources)",
        },
    )
    write_status(folder, "candidate", "trained, not yet evaluated")
    folder.rename(final)
    log.info(
        "Trained %s: %d features, %d trees, rows %s",
        version,
        len(features),
        booster.best_iteration + 1,
        window["rows"],
    )
    return version


def _fit_candidates(split: Split, params: Params) -> tuple[list[str], object, dict]:
    """The BG/NBD features are candidates: fit with and without them, keep the set with the better
    ROC-AUC on the validation slice (without them on a tie: fewer moving parts). The test slice is
    never looked at. Returns the features, the booster and what was compared (for training.json)."""
    from ml.evaluate import roc_auc

    features = usable_features(split.train)
    candidates = {"with_customer_base_features": features}
    without = [feature for feature in features if feature not in CUSTOMER_BASE_FEATURES]
    if without != features:
        candidates["without_customer_base_features"] = without
    y_valid = split.valid[LABEL].to_numpy()
    fitted, valid_auc = {}, {}
    for name, candidate in candidates.items():
        fitted[name] = fit(split.train, split.valid, candidate, params)
        valid_auc[name] = roc_auc(y_valid, raw_scores(fitted[name], split.valid, candidate))
    chosen = max(reversed(list(candidates)), key=lambda name: valid_auc[name])
    if len(candidates) > 1:
        log.info(
            "Feature sets on the validation slice: %s; keeping %s",
            ", ".join(f"{name} ROC-AUC {auc:.4f}" for name, auc in valid_auc.items()),
            chosen,
        )
    return candidates[chosen], fitted[chosen], {"valid_roc_auc": valid_auc, "chosen": chosen}


def _fit_customer_base(train: pd.DataFrame, params: Params):
    """BG/NBD on the training slice's purchase histories, or None (logged) when they cannot be fitted
    (no repeat buyers yet, or the marts lack the summary columns): the model then trains without it."""
    from ml.clv import CustomerBaseError, fit_customer_base

    try:
        return fit_customer_base(train, **params.customer_base)
    except CustomerBaseError as error:
        log.warning("No customer-base model (BG/NBD) for this version: %s", error)
        return None


def _library_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in _LIBRARIES}


def evaluate(warehouse_path: Path, models_dir: Path, version: str, params: Params | None = None) -> dict:
    """Metrics, baselines, paired intervals against each baseline and the current champion, plots,
    HTML report and model card for ``version`` on its out-of-time test set."""
    from ml.evaluate import baseline_scores, metrics, plots

    params = params or Params.load()
    model = load(models_dir, version)
    split = _same_split(warehouse_path, model)
    y = split.test[LABEL].to_numpy()
    baselines = baseline_scores(split.train, split.test, model.customer_base, model.horizon_days)
    challenger = model.predict(split.test)
    scores = {"model": challenger, **baselines}
    results = {name: metrics(y, p) for name, p in scores.items()}
    importance = model.booster.get_score(importance_type="total_gain")
    plots(model.folder / "plots", y, scores, importance)
    current = champion_version(models_dir)
    champion = _champion_scores(models_dir, current, version, split)
    summary = {
        "version": version,
        "test_as_of_dates": json.loads((model.folder / "training.json").read_text())["data"][
            "test_as_of_dates"
        ],
        "model": results["model"],
        "baselines": {name: results[name] for name in baselines},
        # the promotion gate's comparisons, on these same test rows (ml/params.yaml promotion)
        "intervals": _intervals(y, version, challenger, baselines, champion, params),
    }
    write_json(model.folder / "metrics.json", summary)
    _write_report(model, summary)
    log.info(
        "Evaluated %s on %s: ROC-AUC %.3f (%s); report %s",
        version,
        summary["test_as_of_dates"],
        results["model"]["roc_auc"],
        ", ".join(f"{name} {results[name]['roc_auc']:.3f}" for name in baselines),
        model.folder / "report.html",
    )
    return summary


def promote(
    warehouse_path: Path, models_dir: Path, version: str, params: Params | None = None
) -> tuple[bool, str]:
    """The promotion gate: champion only if, on this version's out-of-time test rows, the lower
    bound of the paired bootstrap interval of its ROC-AUC gain is above the margin against every
    baseline (``promotion.min_auc_gain_over_baselines``) and against the current champion
    (``promotion.min_auc_gain_over_champion``: slightly negative, non-inferiority). Every interval
    and the reasons go to metrics.json's ``promotion`` and the report."""
    params = params or Params.load()
    folder = churn_dir(models_dir) / version
    summary = json.loads((folder / "metrics.json").read_text())
    if "intervals" not in summary:  # evaluated before the gate compared intervals: evaluate it again
        summary = evaluate(warehouse_path, models_dir, version, params)
    current = champion_version(models_dir)
    intervals = summary["intervals"]
    compared = next((item["name"] for item in intervals if item["against"] == "champion"), None)
    if (current if current != version else None) != compared:
        # the champion changed since evaluate: compare with the one there is now
        model = load(models_dir, version)
        split = _same_split(warehouse_path, model)
        baselines = [item for item in intervals if item["against"] == "baseline"]
        champion = _champion_scores(models_dir, current, version, split)
        intervals = baselines + _intervals(
            split.test[LABEL].to_numpy(), version, model.predict(split.test), {}, champion, params
        )
    intervals = [_judge(item, params) for item in intervals]  # with this run's margins
    reasons = [item["reason"] for item in intervals if not item["passed"]]
    promotion = settings_of(params)
    summary["intervals"] = intervals
    summary["promotion"] = {
        "promoted": not reasons,
        "reasons": reasons,
        "champion": current if current != version else None,
        **promotion,
        "intervals": intervals,
    }
    write_json(folder / "metrics.json", summary)
    _write_report(load(models_dir, version), summary)
    if reasons:
        write_status(folder, "rejected", "; ".join(reasons))
        log.warning("Rejected %s as champion: %s", version, "; ".join(reasons))
        return False, "; ".join(reasons)
    if current == version:  # trained again on the same data: it is the champion already
        write_status(folder, "champion", "already the champion; passed the gate again")
        log.info("%s is already the champion and passed the gate again", version)
        return True, "promoted"
    point_champion(churn_dir(models_dir), version, current)
    write_status(folder, "champion", f"promoted over {current}" if current else "first champion")
    log.info("Promoted %s to champion (previous: %s)", version, current)
    return True, "promoted"


def settings_of(params: Params) -> dict[str, object]:
    """The gate's settings (ml/params.yaml ``promotion``) as recorded with its verdict."""
    promotion = params.promotion
    return {
        "metric": "roc_auc",
        "min_auc_gain_over_baselines": float(promotion["min_auc_gain_over_baselines"]),
        "min_auc_gain_over_champion": float(promotion["min_auc_gain_over_champion"]),
        "level": float(promotion.get("level", 0.95)),
        "resamples": int(promotion.get("resamples", 1000)),
        "seed": int(promotion.get("seed", 0)),
    }


def gate(
    y: np.ndarray,
    challenger: np.ndarray,
    baselines: dict[str, np.ndarray],
    champion: tuple[str, np.ndarray] | None,
    params: Params,
    name: str = "challenger",
) -> tuple[bool, list[dict]]:
    """The promotion gate on scores alone: (promoted, every comparison with its interval, margin,
    verdict and reason). See :func:`promote`."""
    intervals = _intervals(y, name, challenger, baselines, champion, params)
    return all(item["passed"] for item in intervals), intervals


def _intervals(
    y: np.ndarray,
    name: str,
    challenger: np.ndarray,
    baselines: dict[str, np.ndarray],
    champion: tuple[str, np.ndarray] | None,
    params: Params,
) -> list[dict]:
    """Paired bootstrap intervals of the challenger's ROC-AUC gain over each baseline and the
    champion, each judged against its margin (:func:`_judge`)."""
    from ml.evaluate import paired_bootstrap, roc_auc

    settings = settings_of(params)
    others = [("baseline", other, scores) for other, scores in baselines.items()]
    if champion is not None:
        others.append(("champion", *champion))
    intervals = []
    for against, other, scores in others:
        difference = paired_bootstrap(
            y,
            challenger,
            scores,
            roc_auc,
            names=(name, other),
            metric_name="ROC-AUC",
            resamples=settings["resamples"],
            level=settings["level"],
            seed=settings["seed"],
        )
        intervals.append(_judge({"against": against, "name": other, **difference.as_dict()}, params))
    return intervals


def _judge(interval: dict, params: Params) -> dict:
    """``interval`` with its margin, whether its lower bound is above it, and, if not, the reason in
    words, quoting the interval."""
    from ml.evaluate import PairedDifference

    settings = settings_of(params)
    baseline = interval["against"] == "baseline"
    margin = settings["min_auc_gain_over_baselines" if baseline else "min_auc_gain_over_champion"]
    fields = {name: interval[name] for name in PairedDifference.__dataclass_fields__}
    passed = interval["low"] > margin
    if baseline:
        reason = f"does not beat the {interval['name']} baseline beyond noise"
    else:
        reason = f"may be worse than champion {interval['name']} on the same test rows"
    reason += f": {PairedDifference(**fields)}; its lower bound must be above {margin:+.3f}"
    return {**interval, "margin": margin, "passed": bool(passed), "reason": None if passed else reason}


def _champion_scores(
    models_dir: Path, current: str | None, version: str, split: Split
) -> tuple[str, np.ndarray] | None:
    """The current champion's probabilities on ``split``'s test rows, or None without another champion."""
    if current is None or current == version:
        return None
    return current, load(models_dir, current).predict(split.test)


def _write_report(model: TrainedModel, summary: dict) -> None:
    """The model card and the one-page report, with the gate's intervals and, once promote ran, its verdict."""
    from ml.evaluate import gate_table, report_html

    card = _model_card(model, summary)
    (model.folder / "model_card.md").write_text(card)
    promotion = summary.get("promotion")
    if promotion is None:
        verdict = "Not judged yet: the `promote` step decides."
    elif promotion["promoted"]:
        verdict = "**Promoted**: every lower bound is above its margin."
    else:
        verdict = "**Rejected**: " + "; ".join(promotion["reasons"])
    gate_text = (
        "The challenger's ROC-AUC against each baseline and the champion, on the same out-of-time test "
        "rows: the difference with its paired bootstrap interval. It is promoted only when every lower "
        f"bound is above its margin (ml/params.yaml `promotion`). {verdict}"
    )
    rows = {"model": summary["model"], **summary["baselines"]}
    (model.folder / "report.html").write_text(
        report_html(
            f"Churn model {model.version}",
            {"Model card": card.split("\n", 2)[2]},
            rows,
            {
                name: model.folder / "plots" / f"{name}.png"
                for name in PLOTS
                if (model.folder / "plots" / f"{name}.png").exists()
            },
            tables={"Promotion gate": (gate_text, gate_table(summary.get("intervals", [])))},
        )
    )


def _same_split(warehouse_path: Path, model: TrainedModel) -> Split:
    """Rebuild the split the model was trained on, and refuse if the warehouse has moved on."""
    split = split_out_of_time(load_snapshots(warehouse_path))
    trained = json.loads((model.folder / "training.json").read_text())["data"]
    if split.window()["test_as_of_dates"] != trained["test_as_of_dates"]:
        raise ValueError(
            f"The warehouse's test date {split.window()['test_as_of_dates']} is not the one {model.version} was "
            f"trained for ({trained['test_as_of_dates']}): train a new version instead."
        )
    return split


def _model_card(model: TrainedModel, summary: dict) -> str:
    training = json.loads((model.folder / "training.json").read_text())
    data = training["data"]
    m, base = summary["model"], summary["baselines"]
    horizon = f", {training['horizon_days']}" if training.get("horizon_days") else ""
    sets = training.get("feature_sets", {}).get("valid_roc_auc", {})
    candidates = (
        "BG/NBD's P(alive), P(no purchase in the horizon) and expected purchase days were candidate "
        f"features: validation ROC-AUC {sets['with_customer_base_features']:.4f} with them, "
        f"{sets['without_customer_base_features']:.4f} without; the model "
        f"{'uses them' if training['feature_sets']['chosen'] == 'with_customer_base_features' else 'leaves them out'}."
        if len(sets) == 2
        else ""
    )
    baselines = "\n".join(
        f"- {BASELINES.get(name, name)}: ROC-AUC {values['roc_auc']:.3f}, PR-AUC {values['pr_auc']:.3f}"
        for name, values in base.items()
    )
    promotion = summary.get("promotion")
    if promotion is None:
        verdict = "Not judged yet (the promote step)."
    elif promotion["promoted"]:
        verdict = "Promoted: every lower bound above its margin."
    else:
        verdict = "Rejected: " + "; ".join(promotion["reasons"])
    gate = "\n".join(
        f"- against {item['against']} {item['name']}: {item['difference']:+.3f} "
        f"[{item['low']:+.3f}, {item['high']:+.3f}], lower bound must be above {item['margin']:+.3f}: "
        f"{'passed' if item['passed'] else 'failed'}"
        for item in summary.get("intervals", [])
    )
    return f"""# Churn model {model.version}

## What it predicts

The probability that a customer who bought in the last lookback window (setting
`churn_lookback_days`) makes **no purchase in the next horizon** (`churn_horizon_days`{horizon}) days after
the as-of date. Probabilities are calibrated (isotonic, on the validation slice), so the
rewards policy can spend money on them.

## Data

marts.fct_training_snapshots. Train on {", ".join(data["train_as_of_dates"])};
early stopping and calibration on {", ".join(data["valid_as_of_dates"])}; tested out of time on
{", ".join(data["test_as_of_dates"])}. Rows: {_per_slice(data["rows"], "{:,}")}.
Churn rate: {_per_slice(data["churn_rate"], "{:.1%}")}.

## Features

{len(model.features)} features: {", ".join(model.features)}.
{candidates}

## Test metrics

ROC-AUC / PR-AUC / Brier / ECE / lift@10% / capture@10% on the out-of-time test set:

- model: {m["roc_auc"]:.3f} / {m["pr_auc"]:.3f} / {m["brier"]:.3f} / {m["ece"]:.3f} / {m["lift_top_decile"]:.2f} / {m["capture_top_decile"]:.2f}
{baselines}

## Promotion gate

ROC-AUC gain over each baseline and the champion on the same test rows, with its paired bootstrap
interval (ml/params.yaml `promotion`):

{gate or "- no comparison recorded"}

{verdict}

## Known limits

Trained on the snapshots the warehouse holds (a short history gives few dates);
churn here means "no purchase in the horizon", so slow-rhythm customers can look churned; the
scores say who is likely to leave, not who a grant would keep (uplift is measured by the holdout).
"""


# The baselines in words (ml.evaluate.baseline_scores).
BASELINES = {
    "recency_only": "days since last purchase alone",
    "logistic_rfm": "logistic regression on recency/frequency/monetary",
    "bgnbd_p_no_purchase": "BG/NBD's probability of no purchase in the horizon (fitted on the training slice)",
}


def _per_slice(values: dict, fmt: str) -> str:
    return ", ".join(f"{name} {fmt.format(value)}" for name, value in values.items())
