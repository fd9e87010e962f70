"""Judge a churn model on the out-of-time test set: metrics, three baselines, paired intervals of the
differences, plots, one HTML page."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ml.features import LABEL, RFM_FEATURES
from ml.model import matrix

if TYPE_CHECKING:
    from boomerang.reports.pages import Table


def metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier, expected calibration error, lift and capture in the top decile."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    order = np.argsort(-p, kind="stable")
    top = order[: max(1, len(p) // 10)]
    base_rate = float(y.mean())
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, np.clip(p, 0, 1)))
        if p.min() >= 0 and p.max() <= 1
        else float("nan"),
        "ece": expected_calibration_error(y, p) if p.min() >= 0 and p.max() <= 1 else float("nan"),
        "lift_top_decile": float(y[top].mean() / base_rate) if base_rate else float("nan"),
        "capture_top_decile": float(y[top].sum() / max(y.sum(), 1)),
        "churn_rate": base_rate,
        "rows": int(len(y)),
    }


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC from ranks (Mann-Whitney, ties averaged): the same number as sklearn's, several times
    faster, which the bootstrap's thousand resamples need. ValueError when ``y`` has one class."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        raise ValueError("ROC-AUC is undefined with one class")
    ranks = rankdata(score)
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


@dataclass(frozen=True)
class PairedDifference:
    """``metric(a) - metric(b)`` on the same rows, with a paired bootstrap interval."""

    a: str
    b: str
    metric: str
    a_value: float
    b_value: float
    difference: float
    low: float  # the interval's bounds, at ``level``
    high: float
    level: float
    resamples: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.metric} {self.a} {self.a_value:.3f} vs {self.b} {self.b_value:.3f}: "
            f"{self.difference:+.3f} [{self.low:+.3f}, {self.high:+.3f}] ({self.level:.0%} paired bootstrap)"
        )


def paired_bootstrap(
    y: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], float],
    *,
    names: tuple[str, str] = ("a", "b"),
    metric_name: str = "metric",
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """How much better ``a`` scores than ``b`` by ``metric`` (higher is better; pass a negated
    error for errors), resampling the same rows for both: the interval of the difference is
    what a promotion gate may trust, not two separate intervals. Percentile interval; resamples
    where the metric is undefined (one class only) are dropped. Seeded: the same inputs give the
    same interval."""
    y, a, b = np.asarray(y), np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(y) == len(a) == len(b):
        raise ValueError(
            f"paired_bootstrap needs the same rows: {len(y)} labels, {len(a)} and {len(b)} scores"
        )
    rng = np.random.default_rng(seed)
    differences = []
    if metric is roc_auc:
        # the same resamples, as counts of each row: O(n) a resample instead of a sort (a million
        # test rows take seconds, not an hour)
        auc_a, auc_b = _ResampledAuc(y, a), _ResampledAuc(y, b)
        for _ in range(resamples):
            counts = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y))
            try:
                differences.append(auc_a(counts) - auc_b(counts))
            except ValueError:  # a resample with one class
                continue
    for _ in range(resamples if metric is not roc_auc else 0):
        rows = rng.integers(0, len(y), len(y))
        try:
            differences.append(metric(y[rows], a[rows]) - metric(y[rows], b[rows]))
        except ValueError:  # e.g. ROC-AUC of a resample with one class
            continue
    if not differences:
        raise ValueError(f"paired_bootstrap: {metric_name} is undefined on every resample of {len(y)} rows")
    tail = (1 - level) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    a_value, b_value = float(metric(y, a)), float(metric(y, b))
    return PairedDifference(
        a=names[0],
        b=names[1],
        metric=metric_name,
        a_value=a_value,
        b_value=b_value,
        difference=a_value - b_value,
        low=float(low),
        high=float(high),
        level=level,
        resamples=len(differences),
    )


class _ResampledAuc:
    """ROC-AUC of a bootstrap resample given as row counts, for one score: the Mann-Whitney
    statistic with each row weighted by how often it was drawn (ties count half), which is what
    :func:`roc_auc` gives on the resampled rows themselves."""

    def __init__(self, y: np.ndarray, score: np.ndarray) -> None:
        self.positive = np.asarray(y).astype(bool)
        # rows grouped by equal score, groups in increasing score
        _, self.group = np.unique(score, return_inverse=True)
        self.group = self.group.reshape(-1)
        self.groups = int(self.group.max()) + 1 if len(self.group) else 0

    def __call__(self, counts: np.ndarray) -> float:
        positives = np.where(self.positive, counts, 0)
        negatives = counts - positives
        total_positive, total_negative = positives.sum(), negatives.sum()
        if total_positive == 0 or total_negative == 0:
            raise ValueError("ROC-AUC is undefined with one class")
        negative_per_group = np.bincount(self.group, weights=negatives, minlength=self.groups)
        below = np.cumsum(negative_per_group) - negative_per_group  # negatives with a lower score
        positive_per_group = np.bincount(self.group, weights=positives, minlength=self.groups)
        wins = positive_per_group @ (below + 0.5 * negative_per_group)
        return float(wins / (total_positive * total_negative))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - predicted probability| over 10 equal-width bins, weighted by their size."""
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            error += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(error)


def baseline_scores(
    train: pd.DataFrame, test: pd.DataFrame, customer_base=None, horizon_days: int | None = None
) -> dict[str, np.ndarray]:
    """Honest baselines on the same test set: recency alone, logistic regression on RFM and, given the
    customer-base model fitted on the training slice (ml/clv.py), BG/NBD's probability of no purchase
    in the churn horizon: what marketers already use, before any machine learning."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def rfm(frame: pd.DataFrame, fill: pd.Series) -> np.ndarray:
        values = pd.DataFrame(matrix(frame, RFM_FEATURES), columns=RFM_FEATURES)
        return values.fillna(fill).to_numpy()

    fill = pd.DataFrame(matrix(train, RFM_FEATURES), columns=RFM_FEATURES).max() + 1
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    logistic.fit(rfm(train, fill), train[LABEL].to_numpy())
    recency = pd.to_numeric(test["days_since_last_purchase"], errors="coerce")
    scores = {
        # longer since the last purchase = more likely gone; never bought = the longest
        "recency_only": recency.fillna(recency.max() + 1).to_numpy(dtype=float),
        "logistic_rfm": logistic.predict_proba(rfm(test, fill))[:, 1],
    }
    if customer_base is not None:
        if horizon_days is None:
            raise ValueError("The BG/NBD baseline needs the churn horizon (horizon_days)")
        scores["bgnbd_p_no_purchase"] = customer_base.p_no_purchase(test, horizon_days)
    return scores


def gate_table(intervals: list[dict]) -> Table:
    """The promotion gate's comparisons as a table: each paired interval, its margin and verdict."""
    from boomerang.reports.pages import Table

    rows = [
        [
            f"{item['against']}: {item['name']}",
            f"{item['a_value']:.3f}",
            f"{item['b_value']:.3f}",
            f"{item['difference']:+.3f}",
            f"[{item['low']:+.3f}, {item['high']:+.3f}]",
            f"{item['margin']:+.3f}",
            "passed" if item["passed"] else "FAILED",
        ]
        for item in intervals
    ]
    level = f"{intervals[0]['level']:.0%}" if intervals else "95%"
    return Table(
        columns=[
            "compared with",
            "challenger ROC-AUC",
            "other ROC-AUC",
            "difference",
            f"{level} paired interval",
            "lower bound must exceed",
            "verdict",
        ],
        rows=rows,
        text=(0, 6),
    )


def plots(
    folder: Path,
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    importance: dict[str, float],
) -> dict[str, Path]:
    """ROC, precision-recall, calibration, cumulative gains, feature importance: PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def save(name: str, figure) -> None:
        figure.tight_layout()
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths[name] = path

    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    for label, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        axis.plot(fpr, tpr, label=label)
    axis.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    axis.set(title="ROC (out-of-time test)", xlabel="false positive rate", ylabel="true positive rate")
    axis.legend(loc="lower right")
    save("roc", figure)

    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    for label, p in scores.items():
        precision, recall, _ = precision_recall_curve(y, p)
        axis.plot(recall, precision, label=label)
    axis.axhline(y.mean(), color="k", linestyle=":", linewidth=0.8)
    axis.set(title="Precision-recall", xlabel="recall", ylabel="precision")
    axis.legend(loc="upper right")
    save("precision_recall", figure)

    model_p = scores["model"]
    edges = np.linspace(0, 1, 11)
    index = np.clip(np.digitize(model_p, edges[1:-1]), 0, 9)
    predicted = [model_p[index == b].mean() for b in range(10) if (index == b).any()]
    observed = [y[index == b].mean() for b in range(10) if (index == b).any()]
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    axis.plot([0, 1], [0, 1], "k:", linewidth=0.8, label="perfect")
    axis.plot(predicted, observed, "o-", label="model")
    axis.set(title="Calibration", xlabel="predicted churn probability", ylabel="observed churn rate")
    axis.legend(loc="upper left")
    save("calibration", figure)

    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    share = np.arange(1, len(y) + 1) / len(y)
    for label, p in scores.items():
        order = np.argsort(-p, kind="stable")
        axis.plot(share, np.cumsum(y[order]) / max(y.sum(), 1), label=label)
    axis.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    axis.set(
        title="Cumulative gains",
        xlabel="share of customers contacted (highest risk first)",
        ylabel="share of churners reached",
    )
    axis.legend(loc="lower right")
    save("gains", figure)

    top = sorted(importance.items(), key=lambda item: item[1], reverse=True)[:15]
    figure, axis = plt.subplots(figsize=(6.5, 4.8))
    axis.barh([name for name, _ in reversed(top)], [value for _, value in reversed(top)])
    axis.set(title="Feature importance (total gain)", xlabel="gain")
    save("importance", figure)
    return paths


def report_html(
    title: str,
    sections: dict[str, str],
    metric_rows: dict[str, dict[str, float]],
    images: dict[str, Path],
    *,
    tables: dict[str, tuple[str, Table]] | None = None,
) -> str:
    """One self-contained page (images inlined), readable offline; ``sections`` are Markdown (the
    model card), each under its own heading, their headings nested below it. ``tables``: sections
    before them, each a heading, a line of Markdown and a table (the promotion gate's intervals)."""
    from boomerang.reports.pages import Table, markdown, render_page

    names = ["roc_auc", "pr_auc", "brier", "ece", "lift_top_decile", "capture_top_decile"]
    metrics_table = Table(
        columns=["model", *names],
        rows=[
            [model, *(_cell(values.get(name, float("nan"))) for name in names)]
            for model, values in metric_rows.items()
        ],
    )
    return render_page(
        "model_report.html",
        title=title,
        metrics=metrics_table,
        sections=[
            *((name, markdown(text) + _table_html(table)) for name, (text, table) in (tables or {}).items()),
            *((name, markdown(text, heading_offset=1)) for name, text in sections.items()),
        ],
        images=[
            (name, f"data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}")
            for name, path in images.items()
        ],
    )


def _table_html(table: Table):
    """``table`` drawn by the pages' ``table`` macro, as safe markup."""
    from markupsafe import Markup

    from boomerang.reports.pages import environment

    template = environment().from_string('{% from "_macros.html" import table %}{{ table(data) }}')
    return Markup(template.render(data=table))


def _cell(value: float | None) -> str:
    """A metric for the table; a baseline that is not a probability has no Brier or ECE."""
    return "\u2014" if value is None or value != value else f"{value:.3f}"


# ---------------------------------------------------------------------------------- uplift rankings
#
# A ranking (a score per decision, highest first) judged on a randomised experiment: ``y`` the
# outcome (retained 0/1, or profit), ``treated`` the arm (True: granted, False: held out). Equal
# scores form one group: the curves step from group end to group end, straight in between, so a
# constant score is exactly the random ranking (it ranks nobody above anybody).


@dataclass(frozen=True)
class _Cumulative:
    """Counts and outcome sums of each arm over the top ``k`` rows, at 0 and at each tie group's end."""

    k: np.ndarray
    n_treated: np.ndarray
    n_control: np.ndarray
    y_treated: np.ndarray
    y_control: np.ndarray

    @property
    def share(self) -> np.ndarray:
        return self.k / self.k[-1]


def _cumulative(y: np.ndarray, treated: np.ndarray, score: np.ndarray) -> _Cumulative:
    y, treated, score = np.asarray(y, float), np.asarray(treated).astype(bool), np.asarray(score, float)
    if not len(y) == len(treated) == len(score):
        raise ValueError(
            f"uplift metrics need the same rows: {len(y)} outcomes, {len(treated)} arms, {len(score)} scores"
        )
    if len(y) == 0:
        raise ValueError("uplift metrics need at least one row")
    order = np.argsort(-score, kind="stable")
    t, outcome = treated[order], y[order]
    ends = np.r_[np.flatnonzero(np.diff(score[order])), len(y) - 1]  # the last row of each tie group

    def at_ends(values: np.ndarray) -> np.ndarray:
        return np.r_[0.0, np.cumsum(values)[ends]]

    return _Cumulative(
        k=np.r_[0, ends + 1].astype(float),
        n_treated=at_ends(t),
        n_control=at_ends(~t),
        y_treated=at_ends(np.where(t, outcome, 0.0)),
        y_control=at_ends(np.where(t, 0.0, outcome)),
    )


def qini_curve(y: np.ndarray, treated: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Qini curve: (share of decisions targeted, highest scores first; incremental outcome among
    the treated of that top share, per treated decision overall). At share 1 it is the average effect
    (treated mean - control mean). Qini(k) = Y_t(k) - Y_c(k) * N_t(k) / N_c(k), divided by N_t."""
    c = _cumulative(y, treated, score)
    total_treated = c.n_treated[-1]
    if total_treated == 0 or c.n_control[-1] == 0:
        raise ValueError("the Qini curve needs both treated and control rows")
    scaled_control = np.divide(
        c.y_control * c.n_treated, c.n_control, out=np.zeros_like(c.y_control), where=c.n_control > 0
    )
    return c.share, (c.y_treated - scaled_control) / total_treated


def qini_coefficient(y: np.ndarray, treated: np.ndarray, score: np.ndarray) -> float:
    """The area between the Qini curve and the random ranking's straight line from (0, 0) to
    (1, average effect): 0 for random (or a constant score), higher when the ranking puts the
    customers a grant moves first. Same units as the curve."""
    share, gain = qini_curve(y, treated, score)
    return float(np.trapezoid(gain, share) - gain[-1] / 2)


def uplift_curve(y: np.ndarray, treated: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The uplift (cumulative gain) curve: (share targeted; (treated mean - control mean) of the top
    share x that share), the incremental outcome per decision if the top share were granted; 0 while
    the top share lacks one of the arms."""
    c = _cumulative(y, treated, score)
    both = (c.n_treated > 0) & (c.n_control > 0)
    treated_mean = np.divide(c.y_treated, c.n_treated, out=np.zeros_like(c.y_treated), where=both)
    control_mean = np.divide(c.y_control, c.n_control, out=np.zeros_like(c.y_control), where=both)
    return c.share, (treated_mean - control_mean) * c.share


def auuc(y: np.ndarray, treated: np.ndarray, score: np.ndarray) -> float:
    """Area under the uplift curve (share targeted from 0 to 1); a random ranking's is about half the
    average effect."""
    share, gain = uplift_curve(y, treated, score)
    return float(np.trapezoid(gain, share))


def uplift_at_k(y: np.ndarray, treated: np.ndarray, score: np.ndarray, share: float) -> float:
    """Treated mean - control mean of the outcome among the top ``share`` of decisions by score (the
    first ceil(share x n) rows, highest first, ties in row order). ValueError when that top lacks an arm."""
    y, treated, score = np.asarray(y, float), np.asarray(treated).astype(bool), np.asarray(score, float)
    top = np.argsort(-score, kind="stable")[: max(1, int(np.ceil(share * len(y))))]
    t = treated[top]
    if t.all() or not t.any():
        raise ValueError(f"the top {share:.0%} holds only one arm")
    return float(y[top][t].mean() - y[top][~t].mean())


def uplift_metrics(
    y: np.ndarray, treated: np.ndarray, score: np.ndarray, shares: Sequence[float] = (0.1, 0.2, 0.3)
) -> dict[str, float | None]:
    """Qini coefficient, AUUC and the uplift at each top share (None where a top lacks an arm)."""
    # sorted once, highest score first: each metric's own stable sort is then a linear pass
    order = np.argsort(-np.asarray(score, float), kind="stable")
    y, treated, score = (
        np.asarray(y, float)[order],
        np.asarray(treated)[order],
        np.asarray(score, float)[order],
    )
    values: dict[str, float | None] = {
        "qini": qini_coefficient(y, treated, score),
        "auuc": auuc(y, treated, score),
    }
    for share in shares:
        try:
            values[f"uplift_at_{round(share * 100)}"] = uplift_at_k(y, treated, score, share)
        except ValueError:
            values[f"uplift_at_{round(share * 100)}"] = None
    return values


def paired_uplift_bootstrap(
    y: np.ndarray,
    treated: np.ndarray,
    scores: dict[str, np.ndarray],
    pairs: Sequence[tuple[str, str]],
    *,
    shares: Sequence[float] = (0.1, 0.2, 0.3),
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, PairedDifference]]:
    """Every uplift metric's difference ``a - b`` for each pair of rankings in ``pairs``, with a
    paired bootstrap interval: each resample draws the same decisions for every ranking (and so keeps
    each decision's arm and outcome), and each ranking is sorted once a resample. Returns
    ``{"a_vs_b": {metric: PairedDifference}}``; resamples where a metric is undefined (a top share
    with one arm) are dropped for that metric. Seeded: the same inputs give the same intervals."""
    y, treated = np.asarray(y, float), np.asarray(treated).astype(bool)
    names = sorted({name for pair in pairs for name in pair})
    full = {name: uplift_metrics(y, treated, scores[name], shares) for name in names}
    metric_names = list(next(iter(full.values())))
    rng = np.random.default_rng(seed)
    draws: dict[tuple[str, str, str], list[float]] = {
        (a, b, metric): [] for a, b in pairs for metric in metric_names
    }
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        if treated[rows].all() or not treated[rows].any():
            continue
        values = {name: uplift_metrics(y[rows], treated[rows], scores[name][rows], shares) for name in names}
        for a, b in pairs:
            for metric in metric_names:
                if values[a][metric] is not None and values[b][metric] is not None:
                    draws[(a, b, metric)].append(values[a][metric] - values[b][metric])
    tail = (1 - level) / 2
    result: dict[str, dict[str, PairedDifference]] = {}
    for a, b in pairs:
        by_metric = {}
        for metric in metric_names:
            differences = draws[(a, b, metric)]
            a_value, b_value = full[a][metric], full[b][metric]
            if not differences or a_value is None or b_value is None:
                continue
            low, high = np.quantile(differences, [tail, 1 - tail])
            by_metric[metric] = PairedDifference(
                a=a,
                b=b,
                metric=metric,
                a_value=float(a_value),
                b_value=float(b_value),
                difference=float(a_value - b_value),
                low=float(low),
                high=float(high),
                level=level,
                resamples=len(differences),
            )
        result[f"{a}_vs_{b}"] = by_metric
    return result
