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
