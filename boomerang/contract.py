"""The raw contract: which sources a landing folder may hold, their columns and types.

This is the one place that says what a user's files must look like; the loader,
the simulator, the dbt sources and the README table all follow it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    duckdb_type: str
    nullable: bool = False
    accepted: tuple[str, ...] | None = None
    # Inclusive bounds for numbers; strict_min makes the lower bound exclusive (points > 0).
    min_value: float | None = None
    max_value: float | None = None
    strict_min: bool = False

    @property
    def is_temporal(self) -> bool:
        return self.duckdb_type in ("DATE", "TIMESTAMPTZ")

    @property
    def type_words(self) -> str:
        """The type as a data engineer would say it."""
        return {
            "VARCHAR": "text",
            "DATE": "a date (YYYY-MM-DD)",
            "TIMESTAMPTZ": "an ISO-8601 timestamp",
            "INTEGER": "a whole number (a fraction is never rounded)",
            "BIGINT": "a whole number (a fraction is never rounded)",
            "BOOLEAN": "true/false",
            "DECIMAL(18,2)": "a decimal number with at most 2 decimal places (never rounded)",
        }[self.duckdb_type]


@dataclass(frozen=True)
class Source:
    """One raw source: a folder ``<landing>/<name>/`` and a table ``raw.<name>``."""

    name: str
    columns: tuple[Column, ...]
    required: bool
    # Columns that identify one row version. For sources where a newer row
    # replaces an older one (customers, complaints) the version column is part
    # of it: the same customer may arrive again with a later ``updated_at``.
    row_key: tuple[str, ...]
    description: str
    # (later, earlier): the first column may not be before the second when both are given.
    ordered_pairs: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return self.columns[0].name

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def is_versioned(self) -> bool:
        return len(self.row_key) > 1

    @property
    def references_customers(self) -> bool:
        return self.name != "customers" and "customer_id" in self.column_names

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)


TS = "TIMESTAMPTZ"

SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            name="customers",
            columns=(
                Column("customer_id", "VARCHAR"),
                Column("signup_date", "DATE"),
                Column("region", "VARCHAR"),
                Column("birth_year", "INTEGER", nullable=True, min_value=1900, max_value=2100),
                Column("marketing_consent", "BOOLEAN"),
                Column("email", "VARCHAR"),
                Column("phone", "VARCHAR", nullable=True),
                Column("updated_at", TS),
            ),
            required=True,
            row_key=("customer_id", "updated_at"),
            description="Customer master data; a newer updated_at replaces older rows.",
        ),
        Source(
            name="transactions",
            columns=(
                Column("transaction_id", "VARCHAR"),
                Column("customer_id", "VARCHAR"),
                Column("occurred_at", TS),
                Column("kind", "VARCHAR", accepted=("purchase", "refund")),
                Column("amount", "DECIMAL(18,2)", min_value=0),
                Column("channel", "VARCHAR", accepted=("store", "online", "app")),
            ),
            required=True,
            row_key=("transaction_id",),
            description="Purchases and refunds.",
        ),
        Source(
            name="mileage_events",
            columns=(
                Column("event_id", "VARCHAR"),
                Column("customer_id", "VARCHAR"),
                Column("occurred_at", TS),
                Column("kind", "VARCHAR", accepted=("earn", "redeem")),
                Column("points", "BIGINT", min_value=0, strict_min=True),
                Column("transaction_id", "VARCHAR", nullable=True),
            ),
            required=False,
            row_key=("event_id",),
            description="Mileage earned and redeemed.",
        ),
        Source(
            name="interactions",
            columns=(
                Column("interaction_id", "VARCHAR"),
                Column("customer_id", "VARCHAR"),
                Column("occurred_at", TS),
                Column(
                    "channel",
                    "VARCHAR",
                    accepted=("email", "sms", "push", "app", "web", "call_center", "store"),
                ),
                Column("kind", "VARCHAR", accepted=("sent", "opened", "clicked", "visit", "call")),
                Column("campaign_id", "VARCHAR", nullable=True),
            ),
            required=False,
            row_key=("interaction_id",),
            description="Messages sent, opened and clicked; visits and calls.",
        ),
        Source(
            name="complaints",
            columns=(
                Column("complaint_id", "VARCHAR"),
                Column("customer_id", "VARCHAR"),
                Column("opened_at", TS),
                Column("resolved_at", TS, nullable=True),
                Column("category", "VARCHAR"),
                Column("satisfaction", "INTEGER", nullable=True, min_value=1, max_value=5),
            ),
            required=False,
            # A complaint arrives when opened and again when resolved.
            row_key=("complaint_id", "resolved_at"),
            description="Complaints; a later row with resolved_at replaces the open one.",
            ordered_pairs=(("resolved_at", "opened_at"),),
        ),
    )
}

FILE_SUFFIXES = (".csv", ".parquet")

# Columns the loader adds to every raw row: which batch it came from.
LINEAGE_COLUMNS = (
    Column("_batch_id", "VARCHAR"),
    Column("_source_file", "VARCHAR"),
)
