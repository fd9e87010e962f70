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
