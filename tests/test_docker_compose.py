"""docker-compose.yml keeps every file the pipeline writes, runs as the user, and takes secrets from .env.

There is no Docker engine where these tests run, so ``docker compose config`` cannot resolve the file:
the tests parse it with PyYAML (which resolves the anchors and ``<<`` merges), interpolate
``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` themselves as compose does, check the init
script with ``bash -n`` and the Airflow command lines with the installed Airflow's own CLI parser.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from boomerang.config import PROJECT_ROOT, Settings

AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
# The job each long-running component records (and `airflow jobs check --job-type` looks for).
JOB_TYPES = {
    "airflow-scheduler": "SchedulerJob",
    "airflow-dag-processor": "DagProcessorJob",
    "airflow-triggerer": "TriggererJob",
}
# What a user's .env holds (see .env.example).
DOT_ENV = {
    "AIRFLOW_UID": "1234",
    "POSTGRES_PASSWORD": "pw-from-dot-env",
    "AIRFLOW_JWT_SECRET": "jwt-from-dot-env",
}
# Paths a user opens on the host, so they must be bind mounts under ./state, not volumes.
ON_THE_HOST = {
    "landing_dir": "./state/landing",  # where a local run looks too
    "quarantine_dir": "./state/quarantine",  # rejected landing files and their reports
    "reports_dir": "./state/reports",  # the quality and campaign reports
    "serving_path": "./state/serving",  # the snapshot BI tools open
    "outbox_dir": "./state/outbox",  # what the loyalty system reads
    # the ledger's journal and the backups: off the warehouse's volume, so losing it loses neither
    "journal_dir": "./state/journal",
    "backup_dir": "./state/backups",
    "airflow_home": "./state/airflow",  # Airflow's task logs
}
# The code Boomerang reads (mounted from the checkout); every other path setting is written by a run.
CODE = {"dbt_project_dir"}

COMPOSE_TEXT = (PROJECT_ROOT / "docker-compose.yml").read_text()


# ---------------------------------------------------------------------- compose's interpolation


class MissingVariable(Exception):
    pass


_REFERENCE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_]\w*)"
)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """``value`` with compose's variable references resolved from ``env``, recursively."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def resolve(match: re.Match) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["name"] or match["bare"], match["op"] or "", match["arg"] or ""
        current = env.get(name)
        unset = not current if op.startswith(":") else current is None
        if op.endswith("-") and unset:
            return arg
        if op.endswith("?") and unset:
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        return current or ""

    return _REFERENCE.sub(resolve, value)


def load(env: dict[str, str]) -> dict:
    return interpolate(yaml.safe_load(COMPOSE_TEXT), env)


@pytest.fixture(scope="module")
def compose() -> dict:
    return load(DOT_ENV)


def mounts(service: dict) -> dict[str, str]:
    """Mount target -> source (``./host/folder`` or a named volume)."""
    pairs = (volume.split(":")[:2] for volume in service["volumes"])
    return {target: source for source, target in pairs}


def mount_of(path: PurePosixPath, service: dict) -> tuple[str, str] | None:
    """The (target, source) of the mount ``path`` lies on, the deepest one; None if on none."""
    found = [
        (target, source)
        for target, source in mounts(service).items()
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents
    ]
    return max(found, key=lambda pair: len(pair[0])) if found else None


def _fields(settings: Settings) -> dict[str, Any]:
    if dataclasses.is_dataclass(settings):
        return {field.name: getattr(settings, field.name) for field in dataclasses.fields(settings)}
    return dict(settings)  # type: ignore[call-overload]  # a pydantic model iterates as (name, value)


def path_settings() -> dict[str, str]:
    """Every path field of :class:`Settings` with the ``BOOMERANG_*`` variable that sets it, found
    by setting each variable in turn: a new path setting is checked here without a list to update."""
    defaults = Settings.from_env({})
    paths = {name for name, value in _fields(defaults).items() if isinstance(value, Path)}
    found: dict[str, str] = {}
    for variable in defaults.to_env():
        probe = Path(f"/probe/{variable.lower()}.duckdb")
        try:
            probed = Settings.from_env({variable: str(probe)})
        except ValueError:
            continue  # not a path setting
        found.update({name: variable for name in paths if _fields(probed)[name] == probe})
    assert paths == set(found), f"Settings fields with no BOOMERANG_* variable: {paths - set(found)}"
    return found


# ---------------------------------------------------------------------- the services


def test_it_runs_airflow_3_with_postgres_and_local_executor(compose):
    services = compose["services"]
    assert {"postgres", "airflow-init", *AIRFLOW_SERVICES} <= set(services)
    for name, command in AIRFLOW_SERVICES.items():
        service = services[name]
        assert service["command"] == ["airflow", command]
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
            "postgresql+psycopg2://airflow:pw-from-dot-env@postgres:5432/airflow"
        )
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "jwt-from-dot-env"  # one secret for every component
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pw-from-dot-env"
    assert services["airflow-apiserver"]["ports"] == ["8080:8080"]


def test_every_path_setting_is_on_a_mount(compose):
    variables = path_settings()
    known = set(Settings.from_env({}).to_env()) | {"BOOMERANG_HOME"}
    for name in ("airflow-init", *AIRFLOW_SERVICES):
        service = compose["services"][name]
        env = service["environment"]
        assert not {key for key in env if key.startswith("BOOMERANG_")} - known, "a misspelled setting"
        # Each set explicitly: a default would point into the checkout's path on this machine.
        assert not {v for v in variables.values() if v not in env}, f"{name} leaves path settings unset"
        settings = Settings.from_env(env)
        for field, variable in variables.items():
            path = PurePosixPath(_fields(settings)[field])
            mount = mount_of(path, service)
            assert mount, f"{name}: {variable}={path} is on no mount; what is written there is lost on `down`"
            target, source = mount
            if field in ON_THE_HOST:
                assert source == ON_THE_HOST[field], f"{variable} should be reachable on the host"
            if field in CODE:
                assert source == f"./{path.name}", f"{variable} should be the checkout's folder"
        assert mounts(service)[str(settings.warehouse_path.parent)] == "warehouse", "a named volume"
        assert settings.dbt_target_dir.parent == settings.warehouse_path.parent
        assert mounts(service)[str(settings.world_dir)] == "world"
        assert mounts(service)[env["AIRFLOW__CORE__DAGS_FOLDER"]] == "./dags"
        assert mounts(service)["/opt/boomerang/boomerang"] == "./boomerang"
        assert mounts(service)["/opt/boomerang/ml"] == "./ml"  # the churn model code the tasks import
        assert mounts(service)[str(settings.models_dir)] == "./models"


def test_host_folders_are_the_checkouts_code_or_under_state(compose):
    named = set(compose["volumes"])
    assert {"warehouse", "world", "postgres-db"} <= named
    for name in ("airflow-init", *AIRFLOW_SERVICES):
        for source in mounts(compose["services"][name]).values():
            if source.startswith("./state/"):
                continue  # runtime state: git-ignored, created by airflow-init
            if source.startswith("./"):
                assert (PROJECT_ROOT / source).is_dir(), source
            else:
                assert source in named, f"{source} is not a declared volume"


def test_airflow_logs_and_home_are_kept(compose):
    for name in ("airflow-init", *AIRFLOW_SERVICES):
        service = compose["services"][name]
        env = service["environment"]
        home = PurePosixPath(env["AIRFLOW_HOME"])
        assert env["BOOMERANG_AIRFLOW_HOME"] == str(home)
        logs = PurePosixPath(env.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER", home / "logs"))
        assert mount_of(logs, service) == (str(home), "./state/airflow"), "task logs outlive the containers"


def test_airflow_runs_as_the_user_from_dot_env_not_root(compose):
    for name in AIRFLOW_SERVICES:
        assert compose["services"][name]["user"] == "1234:0"
    # without AIRFLOW_UID: the official default, never root; airflow-init warns
    unset = load({key: value for key, value in DOT_ENV.items() if key != "AIRFLOW_UID"})
    for name in AIRFLOW_SERVICES:
        assert unset["services"][name]["user"] == "50000:0"
    assert 'if [ -z "" ]; then' in unset["services"]["airflow-init"]["command"][1]
    assert "AIRFLOW_UID is not set" in unset["services"]["airflow-init"]["command"][1]
    assert 'if [ -z "1234" ]; then' in compose["services"]["airflow-init"]["command"][1]


def test_the_init_service_migrates_and_owns_every_folder_before_the_rest_start(compose, tmp_path):
    init = compose["services"]["airflow-init"]
    assert init["user"] == "0:0" and init["entrypoint"] == "/bin/bash" and init["restart"] == "no"
    flags, script = init["command"]
    assert flags == "-euc"
    (tmp_path / "init.sh").write_text(script)
    syntax = subprocess.run(["bash", "-n", str(tmp_path / "init.sh")], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    assert "airflow db migrate" in script and 'uid="1234"' in script
    assert 'chown -R "$uid:0" "$folder"' in script
    assert '"$AIRFLOW_HOME/logs"' in script  # Airflow's task logs; its home is BOOMERANG_AIRFLOW_HOME
    for field, variable in path_settings().items():
        if field in CODE:
            continue
        if field == "landing_dir":  # the user's files keep their owner; only the folders change
            assert f'find "${variable}" -type d -exec chown "$uid:0"' in script
        else:
            assert f'"${variable}"' in script or f'"$(dirname "${variable}")"' in script, variable
    for name in AIRFLOW_SERVICES:
        depends_on = compose["services"][name]["depends_on"]
        assert depends_on["airflow-init"]["condition"] == "service_completed_successfully"
        assert depends_on["postgres"]["condition"] == "service_healthy"
    assert init["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_healthchecks_use_commands_this_airflow_accepts(compose):
    services = compose["services"]
    for name, job_type in JOB_TYPES.items():
        check = services[name]["healthcheck"]
        assert check["test"] == ["CMD", "airflow", "jobs", "check", "--job-type", job_type, "--local"]
        assert {"interval", "timeout", "retries", "start_period"} <= set(check)
    assert "/api/v2/version" in " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    command_lines = [services[name]["healthcheck"]["test"][2:] for name in JOB_TYPES]
    command_lines += [services[name]["command"][1:] for name in AIRFLOW_SERVICES] + [["db", "migrate"]]
    code = (
        "import json, sys\n"
        "from airflow.cli.cli_parser import get_parser\n"
        "for args in json.loads(sys.argv[1]):\n"
        "    get_parser().parse_args(args)\n"
    )
    parsed = subprocess.run(
        [sys.executable, "-c", code, json.dumps(command_lines)], capture_output=True, text=True, timeout=300
    )
    assert parsed.returncode == 0, parsed.stdout[-2000:] + parsed.stderr[-2000:]


# ---------------------------------------------------------------------- secrets


def test_no_secret_is_written_in_the_compose_file():
    raw = yaml.safe_load(COMPOSE_TEXT)
    secret_like = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|SQL_ALCHEMY_CONN")
    required = re.compile(r"\$\{(?P<name>[A-Z_]+):\?[^}]+\}")
    checked = 0
    for service in raw["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if not secret_like.search(key):
                continue
            checked += 1
            if key.endswith("SQL_ALCHEMY_CONN"):
                password = re.fullmatch(
                    r"postgresql\+psycopg2://airflow:(?P<pw>.+)@postgres:5432/airflow", value
                )
                assert password and required.fullmatch(password["pw"]), f"{key}: the password is written in"
            else:
                assert required.fullmatch(str(value)), f"{key}={value!r} is a literal; take it from .env"
    assert checked >= 3
    for literal in ("change-me", "airflow:airflow@"):
        assert literal not in COMPOSE_TEXT


def test_a_missing_secret_stops_compose_with_a_message_naming_it():
    for name in ("POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET"):
        for env in ({k: v for k, v in DOT_ENV.items() if k != name}, {**DOT_ENV, name: ""}):
            with pytest.raises(
                MissingVariable, match=rf"{name} is missing a value: copy \.env\.example to \.env"
            ):
                load(env)


def test_the_env_example_lists_every_variable_and_ships_no_secret():
    example = (PROJECT_ROOT / ".env.example").read_text()
    assigned = dict(re.findall(r"^([A-Z_]+)=(.*)$", example, flags=re.MULTILINE))
    required = set(re.findall(r"\$\{([A-Z_]+):\?", COMPOSE_TEXT))
    assert required == {"POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET"}
    assert required | {"AIRFLOW_UID"} <= set(assigned)
    assert all(assigned[name] == "" for name in required), "the template holds no secret"
    optional = set(re.findall(r"\$\{([A-Z_]+):-", COMPOSE_TEXT)) - {"AIRFLOW_UID"}
    for name in optional:
        assert re.search(rf"^# {name}=", example, flags=re.MULTILINE), (
            f"{name} is not described in .env.example"
        )
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=PROJECT_ROOT)
    assert ignored.returncode == 0, ".env must be git-ignored"
    template = subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=PROJECT_ROOT)
    assert template.returncode == 1, ".env.example is committed"


# ---------------------------------------------------------------------- the image


def test_the_image_installs_the_locked_dependencies_and_runs_as_any_uid(compose):
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen" in dockerfile and "--extra postgres" in dockerfile
    assert "COPY pyproject.toml uv.lock" in dockerfile
    for package in ("boomerang", "ml", "dags", "dbt_project"):
        assert f"COPY {package} ./{package}" in dockerfile
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    assert any(dep.startswith("psycopg2") for dep in project["project"]["optional-dependencies"]["postgres"])
    lock = (PROJECT_ROOT / "uv.lock").read_text()
    assert 'name = "psycopg2-binary"' in lock and 'name = "apache-airflow"' in lock
    # group 0 writable home and Airflow home; a name and a home for a uid /etc/passwd does not know
    assert "chmod -R g+rwX /home/boomerang /opt/airflow" in dockerfile
    assert "USER=boomerang" in dockerfile and "HOME=/home/boomerang" in dockerfile
    assert (
        f"AIRFLOW_HOME={compose['services']['airflow-scheduler']['environment']['AIRFLOW_HOME']}"
        in dockerfile
    )
    assert dockerfile.rstrip().splitlines()[-1] == "USER 50000:0"
