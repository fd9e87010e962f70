"""Settings for every part of Boomerang, read once from the environment.

All paths and knobs live here, each with a default that works from a fresh
clone. Building a :class:`Settings` reads the environment and nothing else: no
folder is created and no file is opened on import or construction.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

ENV_PREFIX = "BOOMERANG_"


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    value = env.get(ENV_PREFIX + name)
    return Path(value).expanduser().resolve() if value else default


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(ENV_PREFIX + name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"{ENV_PREFIX}{name}={value!r} is not a whole number; unset it or give e.g. {default}"
        ) from None


def _date(env: Mapping[str, str], name: str, default: date) -> date:
    value = env.get(ENV_PREFIX + name)
    if not value:
        return default
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{ENV_PREFIX}{name}={value!r} is not a date; use YYYY-MM-DD, e.g. {default.isoformat()}"
        ) from None


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(ENV_PREFIX + name) or default
    if value not in allowed:
        raise ValueError(f"{ENV_PREFIX}{name}={value!r} must be one of {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class Settings:
    """Where things are and how big the simulated world is.

    Every field maps to an environment variable ``BOOMERANG_<FIELD>`` (upper
    case); see :meth:`from_env` and the README's settings table.
    """

    warehouse_path: Path
    landing_dir: Path
    quarantine_dir: Path
    reports_dir: Path
    world_dir: Path
    models_dir: Path
    dbt_project_dir: Path
    dbt_target_dir: Path
    airflow_home: Path
    # The simulated world (the embedded default data).
    world_enabled: bool
    world_customers: int
    world_seed: int
    world_start: date
    world_file_format: str
    world_days: int  # days of history the demo simulates before its Airflow runs
    # The quality gate: no date or timestamp in a landing file may be earlier.
    timestamp_floor: date
    # Warehouse logic.
    earn_expiry_days: int
    churn_lookback_days: int
    churn_horizon_days: int
    # The churn model: XGBoost's device (cpu, or cuda on a GPU machine); the rest is ml/params.yaml.
    xgb_device: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default: ``os.environ``) with defaults."""
        env = os.environ if env is None else env
        root = _path(env, "HOME", PROJECT_ROOT)
        return cls(
            warehouse_path=_path(env, "WAREHOUSE", root / "warehouse" / "boomerang.duckdb"),
            landing_dir=_path(env, "LANDING_DIR", root / "landing"),
            quarantine_dir=_path(env, "QUARANTINE_DIR", root / "quarantine"),
            reports_dir=_path(env, "REPORTS_DIR", root / "reports"),
            world_dir=_path(env, "WORLD_DIR", root / "world"),
            models_dir=_path(env, "MODELS_DIR", root / "models"),
            dbt_project_dir=_path(env, "DBT_PROJECT_DIR", PROJECT_ROOT / "dbt_project"),
            dbt_target_dir=_path(env, "DBT_TARGET_DIR", root / "warehouse" / "dbt_target"),
            airflow_home=_path(env, "AIRFLOW_HOME", root / ".airflow"),
            world_enabled=_choice(env, "WORLD", "on", ("on", "off")) == "on",
            world_customers=_int(env, "WORLD_CUSTOMERS", 20_000),
            world_seed=_int(env, "WORLD_SEED", 42),
            world_start=_date(env, "WORLD_START", date(2025, 1, 1)),
            world_file_format=_choice(env, "WORLD_FORMAT", "parquet", ("parquet", "csv")),
            world_days=_int(env, "WORLD_DAYS", 365),
            timestamp_floor=_date(env, "TIMESTAMP_FLOOR", date(1990, 1, 1)),
            earn_expiry_days=_int(env, "EARN_EXPIRY_DAYS", 365),
            churn_lookback_days=_int(env, "CHURN_LOOKBACK_DAYS", 90),
            churn_horizon_days=_int(env, "CHURN_HORIZON_DAYS", 60),
            xgb_device=_choice(env, "XGB_DEVICE", "cpu", ("cpu", "cuda")),
        )

    def to_env(self) -> dict[str, str]:
        """The ``BOOMERANG_*`` variables that rebuild these settings in another process."""
        names = {
            "warehouse_path": "WAREHOUSE",
            "landing_dir": "LANDING_DIR",
            "quarantine_dir": "QUARANTINE_DIR",
            "reports_dir": "REPORTS_DIR",
            "timestamp_floor": "TIMESTAMP_FLOOR",
            "world_dir": "WORLD_DIR",
            "models_dir": "MODELS_DIR",
            "dbt_project_dir": "DBT_PROJECT_DIR",
            "dbt_target_dir": "DBT_TARGET_DIR",
            "airflow_home": "AIRFLOW_HOME",
            "world_customers": "WORLD_CUSTOMERS",
            "world_seed": "WORLD_SEED",
            "world_start": "WORLD_START",
            "world_file_format": "WORLD_FORMAT",
            "world_days": "WORLD_DAYS",
            "earn_expiry_days": "EARN_EXPIRY_DAYS",
            "churn_lookback_days": "CHURN_LOOKBACK_DAYS",
            "churn_horizon_days": "CHURN_HORIZON_DAYS",
            "xgb_device": "XGB_DEVICE",
        }
        env = {ENV_PREFIX + name: str(getattr(self, field)) for field, name in names.items()}
        env[ENV_PREFIX + "WORLD"] = "on" if self.world_enabled else "off"
        return env

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (handy in tests and the CLI)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def dbt_env(self) -> dict[str, str]:
        """Environment variables the dbt profile and project read."""
        return {
            "BOOMERANG_WAREHOUSE": str(self.warehouse_path),
            "DBT_TARGET_PATH": str(self.dbt_target_dir),
            "DBT_LOG_PATH": str(self.dbt_target_dir / "logs"),
            "DBT_PROFILES_DIR": str(self.dbt_project_dir),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DO_NOT_TRACK": "1",
            "DBT_USE_COLORS": "false",
        }

    def dbt_vars(self, as_of: date) -> dict[str, object]:
        """dbt variables for a run at ``as_of``."""
        return {
            "as_of": as_of.isoformat(),
            "earn_expiry_days": self.earn_expiry_days,
            "churn_lookback_days": self.churn_lookback_days,
            "churn_horizon_days": self.churn_horizon_days,
        }
