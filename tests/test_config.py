from datetime import date
from pathlib import Path

import pytest

from boomerang.config import PROJECT_ROOT, Settings


def test_defaults_work_from_a_fresh_clone():
    settings = Settings.from_env({})
    assert settings.warehouse_path == PROJECT_ROOT / "state" / "warehouse" / "boomerang.duckdb"
    assert settings.landing_dir == PROJECT_ROOT / "state" / "landing"
    assert settings.models_dir == PROJECT_ROOT / "models"
    assert settings.world_customers == 20_000
    assert settings.world_enabled


def test_environment_overrides_each_setting(tmp_path: Path):
    settings = Settings.from_env(
        {
            "BOOMERANG_WAREHOUSE": str(tmp_path / "w.duckdb"),
            "BOOMERANG_LANDING_DIR": str(tmp_path / "in"),
            "BOOMERANG_WORLD_CUSTOMERS": "123",
            "BOOMERANG_WORLD_SEED": "7",
            "BOOMERANG_WORLD_START": "2024-06-01",
            "BOOMERANG_WORLD": "off",
        }
    )
    assert settings.warehouse_path == tmp_path / "w.duckdb"
    assert settings.landing_dir == tmp_path / "in"
    assert (settings.world_customers, settings.world_seed) == (123, 7)
    assert settings.world_start == date(2024, 6, 1)
    assert not settings.world_enabled


def test_home_moves_every_local_path(tmp_path: Path):
    settings = Settings.from_env({"BOOMERANG_HOME": str(tmp_path)})
    for path in (settings.warehouse_path, settings.landing_dir, settings.world_dir, settings.airflow_home):
        assert tmp_path in path.parents


def test_settings_round_trip_through_the_environment(tmp_path: Path):
    settings = Settings.from_env({"BOOMERANG_HOME": str(tmp_path), "BOOMERANG_WORLD_SEED": "9"})
    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("BOOMERANG_WORLD_CUSTOMERS", "lots", "whole number"),
        ("BOOMERANG_WORLD_START", "01/02/2025", "YYYY-MM-DD"),
        ("BOOMERANG_WORLD_FORMAT", "xlsx", "parquet, csv"),
    ],
)
def test_bad_values_say_which_variable_and_what_to_do(name: str, value: str, hint: str):
    with pytest.raises(ValueError) as error:
        Settings.from_env({name: value})
    assert name in str(error.value) and hint in str(error.value)


def test_building_settings_creates_nothing(tmp_path: Path):
    Settings.from_env({"BOOMERANG_HOME": str(tmp_path / "home")})
    assert not (tmp_path / "home").exists()


def test_runtime_state_lives_in_one_git_ignored_folder():
    """Every path a run writes is under state/ (git-ignored), apart from the trained models, which live
    in models/ at the top as the project's layout says; with BOOMERANG_HOME, models go under it too."""
    import subprocess

    from boomerang.config import DEFAULT_HOME, PROJECT_ROOT

    settings = Settings.from_env({})
    written = {
        "warehouse": settings.warehouse_path,
        "serving": settings.serving_path,
        "landing": settings.landing_dir,
        "quarantine": settings.quarantine_dir,
        "reports": settings.reports_dir,
        "world": settings.world_dir,
        "outbox": settings.outbox_dir,
        "dbt target": settings.dbt_target_dir,
        "airflow home": settings.airflow_home,
    }
    assert {name: path for name, path in written.items() if not path.is_relative_to(DEFAULT_HOME)} == {}
    assert settings.models_dir == PROJECT_ROOT / "models"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(DEFAULT_HOME / "warehouse" / "boomerang.duckdb")], cwd=PROJECT_ROOT
    )
    assert ignored.returncode == 0, "state/ must be git-ignored"
    elsewhere = Settings.from_env({"BOOMERANG_HOME": "/tmp/somewhere"})
    assert elsewhere.models_dir == Path("/tmp/somewhere/models")


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("BOOMERANG_GRANT_MIN_CHURN_PROBABILITY", "2", "in [0, 1]"),
        ("BOOMERANG_GRANT_MIN_CHURN_PROBABILITY", "-0.1", "in [0, 1]"),
        ("BOOMERANG_MARGIN_RATE", "-1", "in [0, 1]"),
        ("BOOMERANG_EXPECTED_SAVE_RATE", "1.5", "in [0, 1]"),
        ("BOOMERANG_EXPECTED_REDEEM_RATE", "-0.5", "in [0, 1]"),
        ("BOOMERANG_HOLDOUT_SHARE", "1", "in [0, 1)"),
        ("BOOMERANG_VALUE_PER_MILE", "0", "above 0"),
        ("BOOMERANG_CHURN_HORIZON_DAYS", "0", "at least 1"),
        ("BOOMERANG_CHURN_LOOKBACK_DAYS", "-3", "at least 1"),
        ("BOOMERANG_EARN_EXPIRY_DAYS", "0", "at least 1"),
        ("BOOMERANG_RETENTION_WINDOW_DAYS", "0", "at least 1"),
        ("BOOMERANG_WORLD_DAYS", "0", "at least 1"),
        ("BOOMERANG_WORLD_CUSTOMERS", "-5", "at least 1"),
        ("BOOMERANG_WORLD_SEED", "-1", "at least 0"),
        ("BOOMERANG_GRANT_POINTS", "0", "at least 1"),
        ("BOOMERANG_GRANT_MAX_POINTS", "0", "at least 1"),
        ("BOOMERANG_GRANT_TENURE_BONUS_POINTS", "-100", "at least 0"),
        ("BOOMERANG_GRANT_MAX_TENURE_BONUS_POINTS", "-1", "at least 0"),
        ("BOOMERANG_GRANT_EXPIRY_DAYS", "0", "at least 1"),
        ("BOOMERANG_GRANT_BUDGET_POINTS", "-1", "at least 0"),
        ("BOOMERANG_CONTACT_CAP", "0", "at least 1"),
        ("BOOMERANG_CONTACT_WINDOW_DAYS", "0", "at least 1"),
        ("BOOMERANG_MAKE_GOOD_AFTER_DAYS", "-1", "at least 0"),
    ],
)
def test_out_of_range_values_name_the_variable_the_value_and_the_range(name: str, value: str, allowed: str):
    with pytest.raises(ValueError) as error:
        Settings.from_env({name: value})
    message = str(error.value)
    assert f"{name}={value.removesuffix('.0')}" in message and allowed in message, message
    assert "default" in message  # what to do: change it, or unset it for the default


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("BOOMERANG_DUCKDB_MEMORY_LIMIT", "5", "memory size"),
        ("BOOMERANG_DUCKDB_MEMORY_LIMIT", "lots", "memory size"),
        ("BOOMERANG_DUCKDB_MEMORY_LIMIT", "0GB", "above 0"),
        ("BOOMERANG_DUCKDB_MEMORY_LIMIT", "150%", "memory size"),
        ("BOOMERANG_CAMPAIGN", "summer '26", "letters, digits"),
    ],
)
def test_malformed_text_settings_are_refused(name: str, value: str, hint: str):
    with pytest.raises(ValueError) as error:
        Settings.from_env({name: value})
    assert name in str(error.value) and hint in str(error.value)


@pytest.mark.parametrize(
    "env",
    [
        {"BOOMERANG_GRANT_MIN_CHURN_PROBABILITY": "0"},
        {"BOOMERANG_GRANT_MIN_CHURN_PROBABILITY": "1"},
        {"BOOMERANG_HOLDOUT_SHARE": "0"},
        {"BOOMERANG_GRANT_BUDGET_POINTS": "0"},
        {"BOOMERANG_MAKE_GOOD_AFTER_DAYS": "0"},
        {"BOOMERANG_WORLD_SEED": "0"},
        {"BOOMERANG_CHURN_HORIZON_DAYS": "1"},
        {"BOOMERANG_DUCKDB_MEMORY_LIMIT": "512MiB"},
        {"BOOMERANG_DUCKDB_MEMORY_LIMIT": "1.5 GB"},
        {"BOOMERANG_DUCKDB_MEMORY_LIMIT": "50%"},
    ],
)
def test_the_edges_of_each_range_are_accepted(env: dict[str, str]):
    Settings.from_env(env)


def test_every_numeric_setting_has_a_range():
    """A new number without a range would be the next `CHURN_HORIZON_DAYS=0` accepted in silence."""
    from dataclasses import fields

    from boomerang.config import Policy

    for cls, instance in ((Settings, Settings.from_env({})), (Policy, Policy())):
        numeric = {
            field.name
            for field in fields(cls)
            if isinstance(getattr(instance, field.name), int | float)
            and not isinstance(getattr(instance, field.name), bool)
        }
        assert numeric - set(cls.RANGES) == set(), cls.__name__


def test_ranges_hold_for_copies_too():
    with pytest.raises(ValueError, match="BOOMERANG_CHURN_HORIZON_DAYS=0"):
        Settings.from_env({}).with_(churn_horizon_days=0)


def test_every_field_has_a_variable_and_goes_through_the_environment():
    """`boomerang settings` and other processes see every setting, the DuckDB memory limit included."""
    from dataclasses import fields

    settings = Settings.from_env({"BOOMERANG_DUCKDB_MEMORY_LIMIT": "2GB"})
    assert {field.name for field in fields(Settings)} - {"policy"} == set(Settings.ENV)
    env = settings.to_env()
    assert env["BOOMERANG_DUCKDB_MEMORY_LIMIT"] == "2GB"
    assert settings.dbt_env()["BOOMERANG_DUCKDB_MEMORY_LIMIT"] == "2GB"  # what dbt's profile reads
    assert Settings.from_env(env) == settings


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Forget the names this process has warned about already."""
    from boomerang import config

    monkeypatch.setattr(config, "_warned", set())


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("BOOMERANG_LANDNG_DIR", "BOOMERANG_LANDING_DIR"),
        ("BOOMERANG_WAREHOUS", "BOOMERANG_WAREHOUSE"),
        ("BOOMERANG_GRANT_MIN_PROBABILITY", "BOOMERANG_GRANT_MIN_CHURN_PROBABILITY"),
        ("BOOMERANG_WORLD_SEEDS", "BOOMERANG_WORLD_SEED"),
        ("BOOMERANG_MEMORY_LIMIT", "BOOMERANG_DUCKDB_MEMORY_LIMIT"),
    ],
)
def test_a_misspelled_variable_is_warned_about_once_with_the_closest_name(
    typo: str, meant: str, caplog: pytest.LogCaptureFixture, fresh_warnings
):
    with caplog.at_level("WARNING", logger="boomerang.config"):
        Settings.from_env({typo: "x"})
        Settings.from_env({typo: "x"})
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert typo in warnings[0] and f"did you mean {meant}?" in warnings[0]


def test_variables_read_outside_settings_are_not_typos(caplog: pytest.LogCaptureFixture, fresh_warnings):
    env = {
        "BOOMERANG_HOME": "/tmp/boomerang-home",
        "BOOMERANG_AS_OF": "2026-01-01",
        "BOOMERANG_BENCH_DIR": "/tmp/bench",
        "BOOMERANG_FAILPOINT": "ledger.before_commit",
        "BOOMERANG_DUCKDB_MEMORY_LIMIT": "2GB",
        "OTHER_TOOL_SETTING": "1",
    }
    with caplog.at_level("WARNING", logger="boomerang.config"):
        Settings.from_env(env)
    assert [record.getMessage() for record in caplog.records] == []


def test_every_boomerang_variable_the_project_reads_is_known():
    """The typo warning must not fire on a variable some other part reads: every BOOMERANG_* name in
    the code, the dbt project and the deployment files is a setting or listed in OTHER_VARIABLES."""
    import re

    from boomerang.config import known_variables

    places = [
        *PROJECT_ROOT.glob("boomerang/**/*.py"),
        *PROJECT_ROOT.glob("ml/**/*.py"),
        *PROJECT_ROOT.glob("dags/**/*.py"),
        *PROJECT_ROOT.glob("devtools/**/*.py"),
        *PROJECT_ROOT.glob("dbt_project/**/*.sql"),
        *PROJECT_ROOT.glob("dbt_project/*.yml"),
        *PROJECT_ROOT.glob("docker-compose*.yml"),
        *PROJECT_ROOT.glob("Dockerfile"),
        *PROJECT_ROOT.glob("Makefile"),
        *PROJECT_ROOT.glob(".env*"),
    ]
    used = {
        (match, path.relative_to(PROJECT_ROOT).as_posix())
        for path in places
        if path.is_file()
        for match in re.findall(r"\bBOOMERANG_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="replace"))
    }
    known = known_variables()
    assert sorted((name, where) for name, where in used if name not in known) == []


def test_settings_say_where_each_value_comes_from(tmp_path: Path):
    from boomerang.config import describe

    rows = describe({"BOOMERANG_HOME": str(tmp_path), "BOOMERANG_WORLD_SEED": "7"})
    sources = {name: source for name, _value, source in rows}
    values = {name: value for name, value, _source in rows}
    assert rows[0][0] == "BOOMERANG_HOME"
    assert sources["BOOMERANG_HOME"] == sources["BOOMERANG_WORLD_SEED"] == "environment"
    assert sources["BOOMERANG_WAREHOUSE"] == sources["BOOMERANG_DUCKDB_MEMORY_LIMIT"] == "default"
    assert values["BOOMERANG_WORLD_SEED"] == "7" and values["BOOMERANG_DUCKDB_MEMORY_LIMIT"] == "5GB"
    assert set(values) == {"BOOMERANG_HOME", *Settings.from_env({}).to_env()}


def test_the_journal_and_backups_live_under_home_and_can_move(tmp_path: Path):
    settings = Settings.from_env({"BOOMERANG_HOME": str(tmp_path)})
    assert (settings.journal_dir, settings.backup_dir, settings.backup_keep) == (
        tmp_path / "journal",
        tmp_path / "backups",
        3,
    )
    moved = Settings.from_env(
        {
            "BOOMERANG_JOURNAL_DIR": str(tmp_path / "j"),
            "BOOMERANG_BACKUP_DIR": str(tmp_path / "b"),
            "BOOMERANG_BACKUP_KEEP": "0",  # no backups; the journal is still written
        }
    )
    assert (moved.journal_dir, moved.backup_dir, moved.backup_keep) == (tmp_path / "j", tmp_path / "b", 0)
    with pytest.raises(ValueError, match=r"BOOMERANG_BACKUP_KEEP=-1 is out of range: it must be at least 0"):
        Settings.from_env({"BOOMERANG_BACKUP_KEEP": "-1"})
