"""Each business rule has one home: the copies that used to be "kept equal by hand" stay gone.

The rules' behaviour is tested at their homes (dbt unit tests in the models' YAML, the ledger's
agreement test in tests/rewards/test_dbt_ledger.py, the truth check's in tests/world/test_truth.py);
these tests fail when a second definition creeps back in beside one.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from boomerang.config import PROJECT_ROOT, Settings
from boomerang.rewards import ledger, steps
from boomerang.world import truth

DBT = PROJECT_ROOT / "dbt_project"


def _dbt_sql() -> dict[Path, str]:
    return {
        path: path.read_text()
        for folder in ("models", "macros", "tests")
        for path in sorted((DBT / folder).rglob("*.sql"))
    }


def _dbt_files() -> dict[Path, str]:
    return {
        path: path.read_text()
        for folder in ("models", "macros", "tests")
        for path in sorted((DBT / folder).rglob("*"))
        if path.suffix in (".sql", ".yml")
    }


def _project_vars() -> dict:
    return yaml.safe_load((DBT / "dbt_project.yml").read_text())["vars"]


def test_the_settings_dbt_reads_are_defined_once_in_boomerang_config():
    """The policy knobs and the windows dbt shares with Python: Settings passes them to every dbt
    call; dbt_project.yml must not default them, and every one dbt asks for must be passed."""
    used = {name for text in _dbt_sql().values() for name in re.findall(r"setting\(['\"](\w+)['\"]\)", text)}
    passed = set(Settings.from_env({}).dbt_vars())
    assert (
        {
            "value_per_mile",
            "margin_rate",
            "campaign_id",
            "contact_window_days",
            "earn_expiry_days",
            "churn_lookback_days",
            "churn_horizon_days",
            "retention_window_days",
        }
        <= used
        <= passed
    )
    assert not used & set(_project_vars())
    for name in used:  # read through setting(), which fails clearly when the var is missing
        assert not re.search(rf"var\(['\"]{name}['\"]", "".join(_dbt_sql().values())), name


def test_risk_bands_are_only_ml_params():
    """The campaign marts take the band the model stored with the score; dbt has no thresholds."""
    assert not [name for name in _project_vars() if "risk_band" in name]
    outcomes = (DBT / "models/marts/campaigns/fct_campaign_outcomes.sql").read_text()
    assert "stg_ml__churn_score_versions" in outcomes and "churn_probability >=" not in outcomes


def test_active_customer_and_open_complaint_are_macros_used_everywhere():
    sql = _dbt_sql()
    active = [path.name for path, text in sql.items() if "is_active_customer(" in text]
    assert sorted(active) == ["customer_features.sql", "fct_churn_labels.sql", "is_active_customer.sql"]
    lookback = [path.name for path, text in sql.items() if "churn_lookback_days" in text]
    assert sorted(lookback) == [
        "fct_churn_labels.sql",
        "int_training_as_of_dates.sql",
        "is_active_customer.sql",
    ]
    opened = [path.name for path, text in sql.items() if "is_open_complaint(" in text]
    assert sorted(opened) == ["customer_features.sql", "customer_policy_facts.sql", "is_open_complaint.sql"]
    spelled_out = [
        path.name for path, text in sql.items() if re.search(r"resolved_at( }})?\s+is\s+null", text)
    ]
    assert spelled_out == ["is_open_complaint.sql"]
    python = [
        path
        for folder in ("boomerang", "ml")
        for path in (PROJECT_ROOT / folder).rglob("*.py")
        if re.search(r"days_since_last_purchase\s*<=|resolved_at\s+is\s+null", path.read_text())
    ]
    assert python == []


def test_the_policy_reads_its_facts_from_one_mart():
    """The day's scores joined to marts.customer_policy_facts: no staging view of landing data and no
    ledger table read past the marts."""
    sql = steps.CANDIDATES_SQL
    assert "marts.customer_policy_facts" in sql
    assert not re.search(r"stg_landing|ledger\.|marts\.dim_customers|marts\.fct_customer_features", sql)


def test_lot_positions_are_computed_in_one_model():
    """The marts read int_mileage_lot_positions; only it (and the ledger's independent check, held
    equal by tests/rewards/test_dbt_ledger.py) adds up used and clawed-back points per lot."""
    sql = _dbt_sql()
    positions = [path.name for path, text in sql.items() if "ref('int_mileage_lot_positions')" in text]
    assert sorted(positions) == ["fct_mileage_lot_balances.sql", "fct_pregrant_lots.sql"]
    for name in ("fct_mileage_lot_balances.sql", "fct_pregrant_lots.sql"):
        [text] = [text for path, text in sql.items() if path.name == name]
        assert "allocated_points" not in text and "'clawback'" not in text, name
    assert "unsettled_points" in ledger.LOT_POSITIONS_SQL and "outstanding_points" in ledger.LOT_POSITIONS_SQL


def test_the_truth_check_does_not_recompute_the_measurement():
    source = Path(truth.__file__).read_text()
    assert "marts.fct_campaign_results" in source
    assert not re.search(r"sqrt|1\.96|Z_95|var_samp", source)


def test_one_name_for_the_run_date():
    """as_of_date: the run that produced or recorded a row; decision_date: when a grant or holdout was
    decided, on rows that carry another as_of_date. The retired names stay retired."""
    retired = re.compile(r"\b(run_date|decided_date|granted_on|cohort_date|remaining_points)\b")
    found = [
        f"{path.relative_to(DBT)}: {match}"
        for path, text in _dbt_files().items()
        for match in retired.findall(text)
    ]
    assert found == []
    assert not retired.search(ledger.LOT_POSITIONS_SQL)
    assert not retired.search(Path(truth.__file__).read_text())
