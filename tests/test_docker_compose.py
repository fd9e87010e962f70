"""docker-compose.yml is for users (no Docker engine here): check what can be checked without one."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from boomerang.config import PROJECT_ROOT

AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def _mounts(service: dict) -> dict[str, str]:
    mounts = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = source
    return mounts


def test_it_runs_airflow_3_with_postgres_and_local_executor(compose):
    services = compose["services"]
    assert {"postgres", "airflow-init", *AIRFLOW_SERVICES} <= set(services)
    assert services["airflow-init"]["command"] == ["airflow", "db", "migrate"]
    for name, command in AIRFLOW_SERVICES.items():
        service = services[name]
        assert service["command"] == ["airflow", command]
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert "@postgres:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["airflow-apiserver"]["ports"] == ["8080:8080"]


def test_project_folders_are_mounted_where_the_settings_point(compose):
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        env, mounts = service["environment"], _mounts(service)
        assert mounts[env["AIRFLOW__CORE__DAGS_FOLDER"]] == "./dags"
        assert mounts[env["BOOMERANG_DBT_PROJECT_DIR"]] == "./dbt_project"
        assert mounts["/opt/boomerang/boomerang"] == "./boomerang"
        assert mounts["/opt/boomerang/ml"] == "./ml"  # the churn model code the tasks import
        assert mounts[env["BOOMERANG_MODELS_DIR"]] == "./models"
        assert mounts[env["BOOMERANG_LANDING_DIR"]] == "./state/landing"  # where a local run looks too
        assert mounts[env["BOOMERANG_OUTBOX_DIR"]] == "./state/outbox"  # what the loyalty system reads
        warehouse_dir = str(Path(env["BOOMERANG_WAREHOUSE"]).parent)
        assert mounts[warehouse_dir] == "warehouse", "the warehouse lives on a named volume"
        assert env["BOOMERANG_DBT_TARGET_DIR"].startswith(warehouse_dir)
    for source in {m for s in AIRFLOW_SERVICES for m in _mounts(compose["services"][s]).values()}:
        if source.startswith("./") and not source.startswith("./state/"):
            assert (PROJECT_ROOT / source).is_dir(), source
    assert {"warehouse", "world", "postgres-db"} <= set(compose["volumes"])


def test_the_image_installs_the_locked_dependencies():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen" in dockerfile and "--extra postgres" in dockerfile
    assert "COPY pyproject.toml uv.lock" in dockerfile
    for package in ("boomerang", "ml", "dags", "dbt_project"):
        assert f"COPY {package} ./{package}" in dockerfile
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    assert any(dep.startswith("psycopg2") for dep in project["project"]["optional-dependencies"]["postgres"])
    lock = (PROJECT_ROOT / "uv.lock").read_text()
    assert 'name = "psycopg2-binary"' in lock and 'name = "apache-airflow"' in lock
