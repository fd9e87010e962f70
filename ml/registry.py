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

from ml.data import Split, check_no_leakage, load_snapshots, split_out_of_time, usable_features
from ml.features import LABEL
from ml.model import Calibrator, Params, fit, raw_scores

log = logging.getLogger(__name__)

CHAMPION_FILE = "champion.json"


@dataclass(frozen=True)
class TrainedModel:
    """A version folder, loaded: what scoring and the promotion gate need."""

    version: str
    folder: Path
    booster: object
    calibrator: Calibrator
    features: list[str]

    def predict(self, frame) -> np.ndarray:
        return self.calibrator(raw_scores(self.booster, frame, self.features))


def churn_dir(models_dir: Path) -> Path:
    return models_dir / "churn"


def load(models_dir: Path, version: str) -> TrainedModel:
    import xgboost as xgb

    folder = churn_dir(models_dir) / version
    booster = xgb.Booster()
    booster.load_model(folder / "model.json")  # keeps best_iteration from early stopping
    return TrainedModel(
        version=version,
        folder=folder,
        booster=booster,
        calibrator=Calibrator.load(folder / "calibrator.json"),
        features=json.loads((folder / "features.json").read_text()),
    )


def champion_version(models_dir: Path) -> str | None:
    pointer = churn_dir(models_dir) / CHAMPION_FILE
    return json.loads(pointer.read_text())["version"] if pointer.exists() else None


def load_champion(models_dir: Path) -> TrainedModel | None:
    version = champion_version(models_dir)
    return load(models_dir, version) if version else None


def train(warehouse_path: Path, models_dir: Path, as_of: date, params: Params | None = None) -> str:
    """Train a candidate on the warehouse's training snapshots; write its folder; return its version."""
    params = params or Params.load()
    split = split_out_of_time(load_snapshots(warehouse_path))
    features = usable_features(split.train)
    check_no_leakage(split.valid, features, params.leakage_auc)
    booster = fit(split.train, split.valid, features, params)
    calibrator = Calibrator.fit(raw_scores(booster, split.valid, features), split.valid[LABEL].to_numpy())

    window = split.window()
    # The version names what was learned: parameters, features, dates and the training data itself.
    data_fingerprint = [
        int(pd.util.hash_pandas_object(part[[*features, LABEL]], index=False).sum() % (1 << 63))
        for part in (split.train, split.valid)
    ]
    digest = hashlib.sha256(
        json.dumps(
            [params.as_dict(), features, window, data_fingerprint], sort_keys=True, default=str
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
    (folder / "features.json").write_text(json.dumps(features, indent=2) + "\n")
    (folder / "params.yaml").write_text(yaml.safe_dump(params.as_dict(), sort_keys=False))
    (folder / "training.json").write_text(
        json.dumps(
            {
                "version": version,
                "trained_for_as_of": as_of.isoformat(),
                "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "best_iteration": int(booster.best_iteration),
                "data": window,
                "features_left_out": "features without data in the training slice (missing optional sources)",
            },
            indent=2,
        )
        + "\n"
    )
    _status(folder, "candidate", "trained, not yet evaluated")
    folder.rename(final)
    log.info(
        "Trained %s: %d features, %d trees, rows %s",
        version,
        len(features),
        booster.best_iteration + 1,
        window["rows"],
    )
    return version


def evaluate(warehouse_path: Path, models_dir: Path, version: str) -> dict:
    """Metrics, baselines, plots, HTML report and model card for ``version`` on its out-of-time test set."""
    from ml.evaluate import baseline_scores, metrics, plots, report_html

    model = load(models_dir, version)
    split = _same_split(warehouse_path, model)
    y = split.test[LABEL].to_numpy()
    scores = {"model": model.predict(split.test), **baseline_scores(split.train, split.test)}
    results = {name: metrics(y, p) for name, p in scores.items()}
    importance = model.booster.get_score(importance_type="total_gain")
    images = plots(model.folder / "plots", y, scores, importance)
    summary = {
        "version": version,
        "test_as_of_dates": json.loads((model.folder / "training.json").read_text())["data"][
            "test_as_of_dates"
        ],
        "model": results["model"],
        "baselines": {"recency_only": results["recency_only"], "logistic_rfm": results["logistic_rfm"]},
    }
    (model.folder / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    card = _model_card(model, summary)
    (model.folder / "model_card.md").write_text(card)
    (model.folder / "report.html").write_text(
        report_html(
            f"Churn model {version}",
            {"Model card": card.split("\n", 2)[2]},
            results,
            {name: path for name, path in images.items()},
        )
    )
    log.info(
        "Evaluated %s on %s: ROC-AUC %.3f (recency %.3f, RFM logistic %.3f); report %s",
        version,
        summary["test_as_of_dates"],
        results["model"]["roc_auc"],
        results["recency_only"]["roc_auc"],
        results["logistic_rfm"]["roc_auc"],
        model.folder / "report.html",
    )
    return summary


def promote(
    warehouse_path: Path, models_dir: Path, version: str, params: Params | None = None
) -> tuple[bool, str]:
    """The promotion gate. Champion only if it beats both baselines and is not worse than the
    current champion by more than the tolerance, both judged on this version's test set."""
    params = params or Params.load()
    folder = churn_dir(models_dir) / version
    summary = json.loads((folder / "metrics.json").read_text())
    auc = summary["model"]["roc_auc"]
    reasons = [
        f"ROC-AUC {auc:.3f} does not beat the {name} baseline ({values['roc_auc']:.3f})"
        for name, values in summary["baselines"].items()
        if auc <= values["roc_auc"]
    ]
    current = champion_version(models_dir)
    comparison = {}
    if current and current != version:
        champion = load(models_dir, current)
        split = _same_split(warehouse_path, load(models_dir, version))
        from ml.evaluate import metrics

        champion_auc = metrics(split.test[LABEL].to_numpy(), champion.predict(split.test))["roc_auc"]
        comparison = {"champion": current, "champion_roc_auc_on_same_test": champion_auc}
        if auc < champion_auc - params.champion_tolerance_auc:
            reasons.append(
                f"ROC-AUC {auc:.3f} is worse than champion {current} ({champion_auc:.3f}) on the same test set "
                f"by more than the tolerance {params.champion_tolerance_auc}"
            )
    summary["promotion"] = {**comparison, "promoted": not reasons, "reasons": reasons}
    (folder / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    if reasons:
        _status(folder, "rejected", "; ".join(reasons))
        log.warning("Rejected %s as champion: %s", version, "; ".join(reasons))
        return False, "; ".join(reasons)
    pointer = churn_dir(models_dir) / CHAMPION_FILE
    tmp = pointer.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {
                "version": version,
                "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "previous": current,
            },
            indent=2,
        )
        + "\n"
    )
    tmp.replace(pointer)
    _status(folder, "champion", f"promoted over {current}" if current else "first champion")
    log.info("Promoted %s to champion (previous: %s)", version, current)
    return True, "promoted"


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


def _status(folder: Path, status: str, reason: str) -> None:
    (folder / "status.json").write_text(
        json.dumps(
            {
                "status": status,
                "reason": reason,
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        + "\n"
    )


def _model_card(model: TrainedModel, summary: dict) -> str:
    training = json.loads((model.folder / "training.json").read_text())
    data = training["data"]
    m, base = summary["model"], summary["baselines"]
    return f"""# Churn model {model.version}

## What it predicts

The probability that a customer who bought in the last lookback window (dbt var
`churn_lookback_days`) makes **no purchase in the next horizon** (`churn_horizon_days`) days after
the as-of date. Probabilities are calibrated (isotonic, on the validation slice), so the
rewards policy can spend money on them.

## Data

marts.fct_training_snapshots. Train on {", ".join(data["train_as_of_dates"])};
early stopping and calibration on {", ".join(data["valid_as_of_dates"])}; tested out of time on
{", ".join(data["test_as_of_dates"])}. Rows: {_per_slice(data["rows"], "{:,}")}.
Churn rate: {_per_slice(data["churn_rate"], "{:.1%}")}.

## Features

{len(model.features)} features: {", ".join(model.features)}.

## Test metrics

ROC-AUC / PR-AUC / Brier / ECE / lift@10% / capture@10% on the out-of-time test set:

- model: {m["roc_auc"]:.3f} / {m["pr_auc"]:.3f} / {m["brier"]:.3f} / {m["ece"]:.3f} / {m["lift_top_decile"]:.2f} / {m["capture_top_decile"]:.2f}
- days since last purchase alone: ROC-AUC {base["recency_only"]["roc_auc"]:.3f}, PR-AUC {base["recency_only"]["pr_auc"]:.3f}
- logistic regression on recency/frequency/monetary: ROC-AUC {base["logistic_rfm"]["roc_auc"]:.3f}, PR-AUC {base["logistic_rfm"]["pr_auc"]:.3f}

## Known limits

Trained on the snapshots the warehouse holds (a short history gives few dates);
churn here means "no purchase in the horizon", so slow-rhythm customers can look churned; the
scores say who is likely to leave, not who a grant would keep (uplift is measured by the holdout).
"""


def _per_slice(values: dict, fmt: str) -> str:
    return ", ".join(f"{name} {fmt.format(value)}" for name, value in values.items())
