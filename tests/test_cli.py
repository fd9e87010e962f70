"""The command line: useful output, and errors a person can act on instead of stack traces."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _boomerang(settings, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "boomerang.cli", *args],
        env={**os.environ, **settings.to_env(), **env},
        capture_output=True,
        text=True,
    )


def test_summary_says_what_was_loaded_and_how_to_open_it(tiny_loaded):
    settings = tiny_loaded  # read only
    result = _boomerang(settings, "summary")
    assert result.returncode == 0, result.stderr
    assert "raw.transactions" in result.stdout
    assert str(settings.warehouse_path) in result.stdout
    assert "read-only" in result.stdout


def test_sql_runs_a_read_only_query(tiny_loaded):
    settings = tiny_loaded  # read only: the refused `drop table` proves it
    result = _boomerang(settings, "sql", "select count(*) as customers from raw.customers")
    assert result.returncode == 0, result.stderr
    assert "customers" in result.stdout
    denied = _boomerang(settings, "sql", "drop table raw.customers")
    assert denied.returncode == 1 and "read-only" in denied.stderr.lower()


def test_a_missing_warehouse_is_a_message_not_a_traceback(settings):
    result = _boomerang(settings, "summary")
    assert result.returncode == 1
    assert "No warehouse at" in result.stderr and "make demo" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_setting_names_the_variable(settings):
    result = _boomerang(settings, "settings", BOOMERANG_WORLD_SEED="forty-two")
    assert result.returncode == 1
    assert "BOOMERANG_WORLD_SEED" in result.stderr and "Traceback" not in result.stderr


def test_run_without_airflow_builds_the_marts(tiny_world, settings):
    from datetime import timedelta

    from conftest import TINY_DAYS, TINY_START

    settings = settings.with_(landing_dir=tiny_world.landing_dir, world_enabled=False)
    result = _boomerang(settings, "run", "--as-of", str(TINY_START + timedelta(days=TINY_DAYS)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "marts.dim_customers" in result.stdout
    # no champion yet: customer_360's preview has no churn risk, shown as "-", not pandas' NaN
    assert "riskiest customers" in result.stdout
    assert "NaN" not in result.stdout and "Empty DataFrame" not in result.stdout


def test_load_and_validate_need_the_run_date(settings):
    """Without an as-of date nothing could wait for a later run: the loader refuses to guess."""
    for command in ("load", "validate"):
        result = _boomerang(settings, command)
        assert result.returncode == 2 and "--as-of" in result.stderr, command


AS_OF = "2025-06-01"


def _bare_env(**env: str) -> dict[str, str]:
    """The process environment without any BOOMERANG_* variable, plus ``env``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("BOOMERANG_")}, **env}


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "boomerang.cli", *args], env=env, capture_output=True, text=True
    )


# ------------------------------------------------------------------ help


def test_top_level_help_is_plain_text_with_examples():
    result = _run(_bare_env(), "--help")
    assert result.returncode == 0
    assert "``" not in result.stdout
    assert "examples:" in result.stdout
    assert 'boomerang sql --format csv "select * from marts.customer_360" > customers.csv' in result.stdout
    assert "boomerang run --as-of 2026-01-01" in result.stdout


def test_every_command_has_a_description_and_as_of_its_help():
    from boomerang.cli import _parser

    [commands] = [action for action in _parser()._actions if action.dest == "command"]
    assert len(commands.choices) >= 11
    for name in commands.choices:
        result = _run(_bare_env(), name, "--help")
        assert result.returncode == 0, name
        after_usage = result.stdout.split("\n\n")[1]
        assert not after_usage.startswith(("positional arguments", "options")), name
        assert len(after_usage) > 30, (name, after_usage)
        if "--as-of" in result.stdout:
            assert "the run's date" in result.stdout, name


def test_run_help_names_every_daily_step_in_order():
    from boomerang.pipeline import DAILY_STEPS

    result = _run(_bare_env(), "run", "--help")
    assert result.returncode == 0
    named = " ".join(result.stdout.split())  # the list is wrapped
    steps = [step.name for step in DAILY_STEPS]
    assert ", ".join(steps) + ":" in named
    assert "after a failure only load_landing and quality_verdict still run" in named


def test_dbt_help_shows_select_exclude_and_vars():
    result = _run(_bare_env(), "dbt", "--help")
    assert "--select" in result.stdout and "--exclude" in result.stdout and "--vars" in result.stdout
    assert "yours win" in result.stdout


# ------------------------------------------------------------------ settings


def test_settings_lists_every_setting_with_its_value_and_source(tmp_path):
    import shlex

    from boomerang.config import Settings

    env = _bare_env(BOOMERANG_HOME=str(tmp_path), BOOMERANG_WORLD_SEED="7", BOOMERANG_WORLD_SEEDS="8")
    result = _run(env, "settings")
    assert result.returncode == 0, result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        [assignment] = shlex.split(line, comments=True)  # a shell can source it
        name, value = assignment.split("=", 1)
        rows[name] = (value, line.rsplit("# ", 1)[1])
    expected = Settings.from_env({"BOOMERANG_HOME": str(tmp_path), "BOOMERANG_WORLD_SEED": "7"}).to_env()
    assert set(rows) == {"BOOMERANG_HOME", *expected}
    assert rows["BOOMERANG_WORLD_SEED"] == ("7", "environment")
    assert rows["BOOMERANG_HOME"] == (str(tmp_path), "environment")
    assert rows["BOOMERANG_DUCKDB_MEMORY_LIMIT"] == ("5GB", "default")
    assert rows["BOOMERANG_GRANT_MIN_CHURN_PROBABILITY"] == ("0.25", "default")
    assert "BOOMERANG_WORLD_SEEDS" in result.stderr and "did you mean BOOMERANG_WORLD_SEED?" in result.stderr


def test_an_out_of_range_setting_stops_every_command(tmp_path):
    result = _run(_bare_env(BOOMERANG_HOME=str(tmp_path), BOOMERANG_MARGIN_RATE="-1"), "settings")
    assert result.returncode == 1
    assert "BOOMERANG_MARGIN_RATE=-1" in result.stderr and "[0, 1]" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------ success on nothing


@pytest.mark.parametrize(
    "args",
    [
        ["check-ledger", "--as-of", AS_OF],
        ["score", "--as-of", AS_OF],
        ["summary"],
        ["sql", "select 1"],
        ["dbt", "build", "--as-of", AS_OF],
        ["train", "--as-of", AS_OF],
    ],
    ids=lambda args: args[0],
)
def test_commands_refuse_a_missing_warehouse_and_create_nothing(tmp_path, args):
    home = tmp_path / "home"
    home.mkdir()
    result = _run(_bare_env(BOOMERANG_HOME=str(home)), *args)
    assert result.returncode == 1, result.stdout
    warehouse = home / "warehouse" / "boomerang.duckdb"
    assert f"No warehouse at {warehouse} (BOOMERANG_WAREHOUSE)" in result.stderr
    assert "make demo" in result.stderr and "boomerang run --as-of" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(home.rglob("*")) == []
    assert "hold" not in result.stdout and "scored" not in result.stdout.lower()


@pytest.mark.parametrize("command", ["load", "validate", "run"])
def test_with_the_world_off_a_misspelled_landing_folder_fails(tmp_path, command):
    home = tmp_path / "home"
    (tmp_path / "landing").mkdir()
    typo = tmp_path / "landnig"
    env = _bare_env(BOOMERANG_HOME=str(home), BOOMERANG_WORLD="off", BOOMERANG_LANDING_DIR=str(typo))
    result = _run(env, command, "--as-of", AS_OF)
    assert result.returncode == 1
    assert f"The landing folder {typo} (BOOMERANG_LANDING_DIR) does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (home / "warehouse" / "boomerang.duckdb").exists()


def test_an_empty_landing_folder_says_no_new_data(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    env = _bare_env(
        BOOMERANG_HOME=str(tmp_path / "home"), BOOMERANG_WORLD="off", BOOMERANG_LANDING_DIR=str(landing)
    )
    result = _run(env, "load", "--as-of", AS_OF)
    assert result.returncode == 0, result.stderr
    assert "No new data" in result.stdout
    assert (
        f"WARNING boomerang.ingest.loader: no new landing files in {landing}: nothing loaded for {AS_OF}"
        in (result.stderr)
    )


def test_load_and_validate_print_a_summary_not_a_dict(settings):
    from conftest import write_file

    write_file(
        settings.landing_dir,
        "customers/2025-01-02.csv",
        "customer_id,signup_date,region,birth_year,marketing_consent,email,phone,updated_at\n"
        "C1,2025-01-01,north,1980,true,a@example.com,,2025-01-01T09:00:00Z\n",
    )
    validated = _boomerang(settings, "validate", "--as-of", AS_OF)
    assert validated.returncode == 0, validated.stderr
    assert "{" not in validated.stdout
    assert "passed     customers/2025-01-02.csv  1 rows" in validated.stdout
    loaded = _boomerang(settings, "load", "--as-of", AS_OF)
    assert loaded.returncode == 0, loaded.stderr
    assert "{" not in loaded.stdout
    assert f"Load for {AS_OF}" in loaded.stdout and "loaded 1 file(s) (1 rows)" in loaded.stdout
    assert "loaded     customers/2025-01-02.csv  1 rows" in loaded.stdout
    assert "Quality report:" in loaded.stdout


# ------------------------------------------------------------------ sql output


WIDE = "select " + ", ".join(
    f"customer_id || '-{i:02d}' as a_rather_long_column_name_{i:02d}" for i in range(40)
)


def test_sql_csv_and_json_return_every_column_and_row(tiny_loaded):
    import csv
    import io
    import json

    from conftest import query

    settings = tiny_loaded  # read only
    customers = query(settings, "select count(*) from raw.customers")[0][0]
    assert customers > 50  # more than a table shows by default
    wide = f"{WIDE}, signup_date, birth_year, null as nothing from raw.customers order by 1"

    as_csv = _boomerang(settings, "sql", "--format", "csv", wide)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert len(rows[0]) == 43 and rows[0][-1] == "nothing" and len(rows) == customers + 1
    assert rows[1][0].endswith("-00") and rows[1][-1] == ""

    as_json = _boomerang(settings, "sql", "--format", "json", wide)
    assert as_json.returncode == 0, as_json.stderr
    records = json.loads(as_json.stdout)
    assert len(records) == customers and len(records[0]) == 43
    assert records[0]["nothing"] is None and len(records[0]["signup_date"]) == 10

    limited = _boomerang(settings, "sql", "--format", "csv", "--max-rows", "3", wide)
    assert len(limited.stdout.splitlines()) == 4


def test_sql_table_shows_every_column_and_says_when_rows_are_left_out(tiny_loaded):
    result = _boomerang(tiny_loaded, "sql", f"{WIDE} from raw.customers")
    assert result.returncode == 0, result.stderr
    assert all(f"a_rather_long_column_name_{i:02d}" in result.stdout for i in range(40))
    assert "(50 row(s) shown; there are more" in result.stdout
    empty = _boomerang(tiny_loaded, "sql", "select * from raw.customers where false")
    assert "(no rows)" in empty.stdout and "Empty DataFrame" not in empty.stdout


# ------------------------------------------------------------------ dbt passthrough


def test_dbt_passes_select_exclude_and_vars_over_the_settings(settings, monkeypatch, caplog):
    import json

    import duckdb

    from boomerang import cli
    from boomerang.warehouse import dbt

    settings.warehouse_path.parent.mkdir(parents=True)
    duckdb.connect(str(settings.warehouse_path)).close()
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    calls = []
    monkeypatch.setattr(
        dbt, "run_dbt", lambda settings, command, as_of, extra: calls.append((command, extra))
    )
    argv = ["dbt", "build", "--as-of", AS_OF, "--select", "staging", "customer_360+"]
    argv += ["--exclude", "tag:training", "--vars", "{retention_window_days: 28, my_var: on}"]
    with caplog.at_level("WARNING"):
        assert cli.main(argv) == 0
    [(command, extra)] = calls
    assert command == "build"
    assert extra[:6] == ["--select", "staging", "customer_360+", "--exclude", "tag:training", "--vars"]
    passed = json.loads(extra[6])
    assert passed == {**settings.dbt_vars(), "retention_window_days": 28, "my_var": True}
    assert "retention_window_days=28" in caplog.text and "(setting: 14)" in caplog.text


def test_dbt_vars_must_be_a_mapping(settings):
    result = _boomerang(settings, "dbt", "build", "--as-of", AS_OF, "--vars", "[1, 2]")
    assert result.returncode == 2 and "is not a mapping" in result.stderr


# ------------------------------------------------------------------ progress


def test_simulate_shows_progress_and_writes_the_same_files_as_one_go(tiny_world, settings):
    """Month by month (for the progress lines), the files are those of one advance to the same date."""
    import hashlib

    result = _boomerang(settings, "simulate")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if "simulate: " in line]
    assert len(lines) >= 3, result.stderr
    assert "elapsed" in lines[0] and "left" in lines[0] and "/75 days" in lines[0]
    assert lines[-1].split("simulate: ")[1].startswith("75/75 days (100%)") and ", done" in lines[-1]

    def files(landing):
        return {
            path.relative_to(landing).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in landing.rglob("*")
            if path.is_file()
        }

    assert files(settings.landing_dir) == files(tiny_world.landing_dir)


# ------------------------------------------------------------------ train


# A training grid that fits the tiny world's 75 days: 14-day windows, six dates a week apart.
TINY_GRID = {
    "BOOMERANG_CHURN_LOOKBACK_DAYS": "14",
    "BOOMERANG_CHURN_HORIZON_DAYS": "14",
    "BOOMERANG_SNAPSHOT_INTERVAL_DAYS": "7",
    "BOOMERANG_TRAINING_SNAPSHOTS": "6",
}


def test_the_training_grid_is_a_setting_that_reaches_dbt(tmp_path):
    import yaml

    from boomerang.config import PROJECT_ROOT, Settings

    result = _run(_bare_env(BOOMERANG_HOME=str(tmp_path), BOOMERANG_SNAPSHOT_INTERVAL_DAYS="7"), "settings")
    assert "BOOMERANG_SNAPSHOT_INTERVAL_DAYS=7  " in result.stdout
    assert "BOOMERANG_TRAINING_SNAPSHOTS=12  " in result.stdout
    settings = Settings.from_env(
        {"BOOMERANG_SNAPSHOT_INTERVAL_DAYS": "7", "BOOMERANG_TRAINING_SNAPSHOTS": "5"}
    )
    assert (
        settings.dbt_vars()["snapshot_interval_days"] == 7 and settings.dbt_vars()["training_snapshots"] == 5
    )
    project_vars = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "dbt_project.yml").read_text())["vars"]
    assert not {"snapshot_interval_days", "training_snapshots"} & set(project_vars)  # one definition
    refused = _run(_bare_env(BOOMERANG_HOME=str(tmp_path), BOOMERANG_TRAINING_SNAPSHOTS="2"), "settings")
    assert refused.returncode == 1 and "BOOMERANG_TRAINING_SNAPSHOTS=2" in refused.stderr
    assert "[3, 1000]" in refused.stderr


@pytest.mark.slow
def test_train_works_on_a_warehouse_where_only_raw_files_were_loaded(tiny_loaded, tmp_path):
    """No dbt build has run: train builds what the training set needs (and tests only that), trains,
    judges; run again, it does not build the same training set twice and trains the same version."""
    from conftest import TINY_AS_OF, copy_warehouse

    settings = copy_warehouse(tiny_loaded, tmp_path / "home")
    result = _boomerang(settings, "train", "--as-of", TINY_AS_OF.isoformat(), **TINY_GRID)
    assert result.returncode == 0, result.stderr[-3000:]
    verdict = result.stdout.splitlines()[0]
    assert verdict.endswith(("promoted to champion", "the champion stays")) or "rejected" in verdict, verdict
    assert "ROC-AUC gain, paired bootstrap interval" in result.stdout or "rejected" in verdict
    assert (
        "over baseline bgnbd_p_no_purchase" in result.stdout
        or "bgnbd_p_no_purchase baseline" in result.stdout
    )
    assert "--indirect-selection cautious" in result.stderr

    again = _boomerang(settings, "train", "--as-of", TINY_AS_OF.isoformat(), **TINY_GRID)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "not building it again" in again.stderr
    assert again.stdout.splitlines()[0].split(":")[0] == verdict.split(":")[0]  # the same version


def test_score_writes_the_churn_scores_and_the_predicted_mileage(ml_world, ml_champion, tmp_path):
    """boomerang score does what the daily run's two scoring steps do: churn scores and the miles
    each active customer is predicted to earn over the grant's window (what the policy grants)."""
    from conftest import ML_AS_OF, copy_warehouse, query_file

    settings = copy_warehouse(ml_world, tmp_path / "home").with_(models_dir=ml_world.models_dir)
    result = _boomerang(settings, "score", "--as-of", ML_AS_OF.isoformat())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "into ml.churn_scores" in result.stdout and "into ml.mileage_predictions" in result.stdout
    [(scored, predicted, windows)] = query_file(
        settings.warehouse_path,
        "select (select count(*) from ml.churn_scores), count(*), list(distinct window_days) "
        "from ml.mileage_predictions",
    )
    assert scored == predicted > 0 and windows == [settings.policy.expiry_days]
