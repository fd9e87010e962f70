"""The model report page: the model card's Markdown shown as a document, not as raw text."""

from __future__ import annotations

import json
from types import SimpleNamespace

from ml.evaluate import report_html
from ml.registry import _model_card

METRICS = {"roc_auc": 0.81, "pr_auc": 0.62, "brier": 0.15, "ece": 0.02, "lift_top_decile": 2.1}


def test_the_model_card_is_rendered_in_the_report(tmp_path):
    data = {
        "train_as_of_dates": ["2025-01-01", "2025-02-01"],
        "valid_as_of_dates": ["2025-03-01"],
        "test_as_of_dates": ["2025-04-01"],
        "rows": {"train": 2000, "valid": 900, "test": 950},
        "churn_rate": {"train": 0.3, "valid": 0.31, "test": 0.29},
    }
    (tmp_path / "training.json").write_text(json.dumps({"data": data}))
    model = SimpleNamespace(
        version="20250401-abcd1234", folder=tmp_path, features=["days_since_last_purchase", "<b>odd</b>"]
    )
    summary = {
        "model": {**METRICS, "capture_top_decile": 0.3},
        "baselines": {"recency_only": METRICS, "logistic_rfm": METRICS},
    }
    card = _model_card(model, summary)  # type: ignore[arg-type]
    assert "\n## Known limits\n" in card

    # as ml.registry.evaluate calls it: the card's title is the page's, its sections nest under "Model card"
    page = report_html(
        f"Churn model {model.version}", {"Model card": card.split("\n", 2)[2]}, {"model": METRICS}, {}
    )
    assert "<h2>Model card</h2>" in page
    for heading in ("What it predicts", "Data", "Features", "Test metrics", "Known limits"):
        assert f"<h3>{heading}</h3>" in page, heading
    assert "#" not in page.split("<body>")[1]  # no raw Markdown heading left
    assert "<strong>no purchase in the next horizon</strong>" in page and "<li>model: 0.810" in page
    assert "<code>churn_lookback_days</code>" in page
    assert "&lt;b&gt;odd&lt;/b&gt;" in page  # a feature name is text, never markup


# ---------------------------------------------------------------------------------- uplift metrics


def test_qini_auuc_and_uplift_at_k_of_a_hand_computed_tiny_case():
    """Four decisions ranked 0.9 > 0.8 > 0.7 > 0.6: treated retained, control not, treated not,
    control retained. Qini(k) = Y_t(k) - Y_c(k) N_t(k) / N_c(k), over N_t = 2: 1/2, 1/2, 1/2, 0 ->
    area 0.375 above the random line (which ends at the average effect, 0). Uplift curve
    (mean_t - mean_c) x k / n: 0 (no control yet), 1/2, 3/8, 0 -> area 0.21875."""
    import numpy as np

    from ml.evaluate import auuc, paired_uplift_bootstrap, qini_coefficient, qini_curve, uplift_at_k

    y, treated, score = [1, 0, 0, 1], [1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6]
    share, gain = qini_curve(y, treated, score)
    assert share.tolist() == [0, 0.25, 0.5, 0.75, 1] and gain.tolist() == [0, 0.5, 0.5, 0.5, 0]
    assert qini_coefficient(y, treated, score) == 0.375
    assert auuc(y, treated, score) == 0.21875
    assert uplift_at_k(y, treated, score, 0.5) == 1.0
    # reversed: Qini(k) = 0, -1, -1/2, 0 over N_t = 2 -> area -0.1875 (the curve is not symmetric);
    # a constant score is exactly random (equal scores are one step)
    assert qini_coefficient(y, treated, [0.1, 0.2, 0.3, 0.4]) == -0.1875
    assert qini_coefficient(y, treated, [1, 1, 1, 1]) == 0.0
    boot = paired_uplift_bootstrap(
        np.array(y * 50, float),
        np.array(treated * 50, bool),
        {"a": np.tile(score, 50), "b": np.zeros(200)},
        [("a", "b")],
        resamples=100,
    )["a_vs_b"]["qini"]
    assert boot.difference == 0.375 and boot.low > 0.2 and boot.high < 0.55
