"""The Great Expectations gate: a corpus of malformed batches, each rejected whole, explained and kept."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest
from conftest import make_settings, query, table_checksums, write_file

from boomerang.ingest.gate import QualityGateError
from boomerang.ingest.loader import load_landing, validate_landing

CORPUS = Path(__file__).parents[1] / "corpus"
AS_OF = date(2025, 1, 6)

GOOD = {
    "customers/2025-01-02.csv": (
        "customer_id,signup_date,region,birth_year,marketing_consent,email,phone,updated_at\n"
        "C1,2025-01-01,north,1980,true,a@example.com,,2025-01-01T09:00:00Z\n"
        "C2,2025-01-02,west,,false,b@example.com,+1-555-0100,2025-01-02T09:00:00Z\n"
    ),
    "transactions/2025-01-04.csv": (
        "transaction_id,customer_id,occurred_at,kind,amount,channel\n"
        "T1,C1,2025-01-03T10:00:00Z,purchase,12.50,store\n"
        "T2,C2,2025-01-03T11:00:00Z,purchase,40.00,online\n"
    ),
    "complaints/2025-01-04.csv": (
        "complaint_id,customer_id,opened_at,resolved_at,category,satisfaction\n"
        "K1,C1,2025-01-03T10:00:00Z,,billing,\n"
    ),
}

# case -> fragments the data engineer must read in the error (besides the file name and quarantine path)
CASES = {
    "missing_column": ["missing column(s) channel"],
    "extra_column": ["unexpected column(s) coupon", "rejected, not dropped"],
    "wrong_type": ["1 row(s) have amount that is not a decimal number", "row 3: 'ten'"],
    "null_key": ["1 row(s) have an empty transaction_id", "row 3"],
    "duplicate_key_in_batch": ["2 row(s) have a transaction_id repeated within the file", "row 2: 'T10'"],
    "key_already_loaded": [
        "1 row(s) have a transaction_id already loaded (a duplicate, not an update)",
        "row 3: 'T1'",
    ],
    "negative_amount": ["1 row(s) have amount < 0", "row 3: -12.50"],
    "unknown_kind": ["kind not in (purchase, refund)", "row 3: 'gift'"],
    "unknown_channel": ["channel not in (store, online, app)", "row 3: 'fax'"],
    "unknown_customer": ["a customer_id not found in customers", "row 3: 'C999'"],
    "future_timestamp": ["occurred_at before 1990-01-01 or in the future", "row 3: 2099-01-05"],
    "timestamp_before_floor": ["occurred_at before 1990-01-01", "row 3: 1970-01-01"],
    "unparseable_timestamp": ["occurred_at that is not an ISO-8601 timestamp", "row 3: 'last tuesday'"],
    "resolved_before_opened": ["resolved_at before opened_at", "row 2"],
    "satisfaction_out_of_range": ["satisfaction outside 1-5", "row 2: 7"],
    "points_not_positive": ["points <= 0", "row 2: 0"],
    "header_only": ["no rows: an empty file is not loaded"],
    "empty_file": ["the file is empty (0 bytes)"],
    "truncated": ["cannot be read as CSV", "Expected Number of Columns: 6 Found: 3", "cut off"],
    "bad_encoding": ["cannot be read as CSV", "line 2 (byte 16 of the line) is not UTF-8"],
    "corrupt_parquet": ["cannot be read as PARQUET", "No magic bytes"],
    "duplicate_customer_version": [
        "the same (customer_id, updated_at) as another row of the file",
        "customer_id 'C3', updated_at 2025-01-05T09:00:00Z",
    ],
    "unparseable_boolean": ["marketing_consent that is not true/false", "'maybe'"],
    # Nothing is coerced: each of these was accepted and silently changed before issue #18.
    "fractional_points": [
        "1 row(s) have points that is not a whole number",
        "never rounded",
        "row 3: '10.5'",
    ],
    "fractional_points_parquet": ["points that is not a whole number", "row 1: '10.5'"],
    "amount_too_precise": [
        "amount that is not a decimal number with at most 2 decimal places",
        "row 3: '12.505'",
    ],
    "padded_key": [
        "1 row(s) have customer_id with leading or trailing whitespace",
        "not trimmed",
        "row 3: ' C1'",
    ],
    "padded_number": ["amount with leading or trailing whitespace", "row 3: '3.00 '"],
    "boolean_spelled_yes": ["marketing_consent that is not true/false", "row 2: 'yes'"],
    "date_with_time": ["signup_date that is not a date (YYYY-MM-DD)", "row 2: '2025-01-05 10:00:00'"],
    # Caught before, for the wrong reason or without saying where.
    "repeated_header": ["the header repeats `amount` (columns 5, 7)"],
    "padded_header": ["leading or trailing whitespace: ' customer_id'"],
    "amount_out_of_range": ["1 row(s) have amount out of range", "9,999,999,999,999,999.99", "row 3: '1e18'"],
    "amount_out_of_range_parquet": ["amount out of range", "row 1: '1e+18'"],
    "points_out_of_range": [
        "points out of range",
        "9,223,372,036,854,775,807",
        "row 2: '99999999999999999999'",
    ],
    "nul_in_key": ["1 row(s) have customer_id with a control character", "row 3: 'C\\x002'"],
    "control_in_text": ["category with a control character", "row 2: 'bill\\x07ing'"],
    "ragged_row": ["line 3 has 7 field(s), the header has 6"],
    "not_utf8_later_line": ["line 4 (byte 44 of the line) is not UTF-8 text", "re-export the file as UTF-8"],
}

# case -> fragments that must NOT be in the error: each problem is reported once, for its own reason
ABSENT = {
    "repeated_header": ["Binder Error", "struct_pack"],
    "amount_out_of_range": ["not a decimal number"],
    "amount_out_of_range_parquet": ["not a decimal number"],
    "points_out_of_range": ["not a whole number"],
    "nul_in_key": ["not found in customers"],
    "padded_key": ["not found in customers"],
    "padded_number": ["not a decimal number"],
}


def _case_file(case: str) -> Path:
    [path] = [p for p in (CORPUS / case).rglob("*") if p.is_file()]
    return path


@pytest.fixture
def loaded(settings):
    for relative, text in GOOD.items():
        write_file(settings.landing_dir, relative, text)
    load_landing(settings, AS_OF)
    return settings


def test_the_corpus_covers_every_case():
    assert sorted(p.name for p in CORPUS.iterdir() if p.is_dir()) == sorted(CASES)
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_malformed_batch_is_quarantined_whole_and_explained(loaded, case: str):
    corpus_file = _case_file(case)
    relative = corpus_file.relative_to(CORPUS / case).as_posix()
    source = relative.split("/")[0]
    before = table_checksums(loaded.warehouse_path)
    dropped = loaded.landing_dir / relative
    dropped.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(corpus_file, dropped)

    with pytest.raises(QualityGateError) as error:
        load_landing(loaded, AS_OF)

    message = str(error.value)
    assert f"{relative}: " in message
    for fragment in CASES[case]:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    for fragment in ABSENT.get(case, []):
        assert fragment not in message, f"{fragment!r} in:\n{message}"
    assert "fix it and drop it back into" in message
    # Nothing of it reached raw ...
    assert table_checksums(loaded.warehouse_path) == before
    # ... and nothing is lost: the file sits in quarantine, byte for byte, with its reports.
    assert not dropped.exists()
    [(quarantined, outcome, failed)] = query(
        loaded,
        "select quarantine_path, outcome, failed_expectations from ops.quality_results where file_path = ?",
        [relative],
    )
    assert outcome == "quarantined" and failed >= 1
    kept = Path(quarantined)
    assert kept.read_bytes() == corpus_file.read_bytes()
    assert kept.parent.parent == loaded.quarantine_dir / source
    assert f"quarantine/{source}/" in message
    report = json.loads((kept.parent / "report.json").read_text())
    assert report["file"] == relative and report["failures"]
    assert "<table>" in (kept.parent / "report.html").read_text()
    rules = query(
        loaded,
        "select rule, column_name, unexpected_count from ops.quality_failures where file_path = ?",
        [relative],
    )
    assert rules and all(rule for rule, _column, _count in rules)
    # Reports name the file's own columns, never the gate's helper columns.
    assert not [
        column for _rule, column, _count in rules if column and (column.startswith("_") or "__" in column)
    ]


def test_a_good_and_a_bad_batch_in_one_run(loaded):
    write_file(
        loaded.landing_dir,
        "transactions/good.csv",
        "transaction_id,customer_id,occurred_at,kind,amount,channel\nT20,C1,2025-01-05T10:00:00Z,purchase,5.00,app\n",
    )
    shutil.copy(_case_file("negative_amount"), loaded.landing_dir / "transactions" / "bad.csv")
    with pytest.raises(QualityGateError, match="1 landing batch"):
        load_landing(loaded, AS_OF)
    assert query(loaded, "select transaction_id from raw.transactions order by 1") == [
        ("T1",),
        ("T2",),
        ("T20",),
    ]
    assert query(
        loaded, "select outcome from ops.quality_results where file_path = 'transactions/good.csv'"
    ) == [("passed",)]


def test_a_corrected_file_dropped_back_loads_and_the_history_keeps_both(loaded):
    dropped = loaded.landing_dir / "transactions" / "2025-01-05.csv"
    shutil.copy(_case_file("negative_amount"), dropped)
    with pytest.raises(QualityGateError):
        load_landing(loaded, AS_OF)
    dropped.write_text(_case_file("negative_amount").read_text().replace("refund,-12.50", "refund,12.50"))
    report = load_landing(loaded, AS_OF)
    assert report.loaded == [("transactions/2025-01-05.csv", 2)]
    history = query(
        loaded,
        "select outcome, count(distinct content_hash) from ops.quality_results "
        "where file_path = 'transactions/2025-01-05.csv' group by 1 order by 1",
    )
    assert history == [("passed", 1), ("quarantined", 1)]
    assert query(
        loaded, "select count(*) from ops.load_manifest where file_path = 'transactions/2025-01-05.csv'"
    ) == [(1,)]


def test_rows_on_or_after_the_as_of_date_wait_for_a_later_run(loaded):
    late = write_file(
        loaded.landing_dir,
        "transactions/2025-01-06.csv",
        "transaction_id,customer_id,occurred_at,kind,amount,channel\nT30,C1,2025-01-06T08:00:00Z,purchase,5.00,app\n",
    )
    report = load_landing(loaded, AS_OF)
    assert [file for file, _why in report.deferred] == ["transactions/2025-01-06.csv"]
    assert "loads in a run on or after 2025-01-07" in report.deferred[0][1]
    assert late.exists()
    assert load_landing(loaded, date(2025, 1, 7)).loaded == [("transactions/2025-01-06.csv", 1)]


def test_validate_then_load_checks_each_file_once(settings):
    for relative, text in GOOD.items():
        write_file(settings.landing_dir, relative, text)
    validated = validate_landing(settings, AS_OF)
    assert len(validated.validated) == 3 and query(settings, "select count(*) from raw.customers") == [(0,)]
    loaded = load_landing(settings, AS_OF)
    assert len(loaded.loaded) == 3
    assert query(settings, "select count(*), count(distinct file_path) from ops.quality_results") == [(3, 3)]


def test_customers_and_keys_arriving_in_the_same_run_count_as_known(settings):
    for relative, text in GOOD.items():
        write_file(settings.landing_dir, relative, text)
    # A second pending file repeats a key of the first: only one of them may pass.
    write_file(settings.landing_dir, "transactions/2025-01-05.csv", GOOD["transactions/2025-01-04.csv"])
    with pytest.raises(QualityGateError, match="already loaded"):
        validate_landing(settings, AS_OF)
    outcomes = dict(query(settings, "select file_path, outcome from ops.quality_results"))
    assert outcomes["transactions/2025-01-04.csv"] == "passed"  # its customers arrive in the same run
    assert outcomes["transactions/2025-01-05.csv"] == "quarantined"


def test_bi_tables_chart_batches_per_day(loaded):
    shutil.copy(_case_file("unknown_kind"), loaded.landing_dir / "transactions" / "x.csv")
    with pytest.raises(QualityGateError):
        load_landing(loaded, AS_OF)
    assert query(
        loaded,
        "select as_of_date, sum(batches), sum(passed), sum(quarantined) from ops.quality_by_day group by 1",
    ) == [(AS_OF, 4, 3, 1)]
    [(expectation, column, batches)] = query(
        loaded, "select expectation, column_name, batches from ops.quality_failing_expectations"
    )
    assert (expectation, column, batches) == ("expect_column_values_to_be_in_set", "kind", 1)


def test_the_html_report_lists_every_batch_offline(loaded):
    index = loaded.reports_dir / "quality" / "index.html"
    text = index.read_text()
    for relative in GOOD:
        assert relative in text
    assert "http://" not in text and "https://" not in text  # no CDN: it opens offline


def test_a_passing_batch_is_validated_once_for_its_verdict_a_failing_one_again_for_the_details(
    loaded, monkeypatch
):
    """GX first answers whether every expectation holds (one count each); only a batch that fails
    is validated again with the failing rows and sample values the report shows."""
    from great_expectations.datasource.fluent.interfaces import Batch

    formats: list[str] = []
    validate = Batch.validate

    def recording(self, expect, *args, result_format=None, **kwargs):
        formats.append(result_format["result_format"])
        return validate(self, expect, *args, result_format=result_format, **kwargs)

    monkeypatch.setattr(Batch, "validate", recording)
    write_file(
        loaded.landing_dir,
        "transactions/good.csv",
        "transaction_id,customer_id,occurred_at,kind,amount,channel\nT20,C1,2025-01-05T10:00:00Z,purchase,5.00,app\n",
    )
    assert load_landing(loaded, AS_OF).loaded == [("transactions/good.csv", 1)]
    assert formats == ["BOOLEAN_ONLY"]

    formats.clear()
    shutil.copy(_case_file("negative_amount"), loaded.landing_dir / "transactions" / "bad.csv")
    with pytest.raises(QualityGateError, match=r"1 row\(s\) have amount < 0"):
        validate_landing(loaded, AS_OF)
    assert formats == ["BOOLEAN_ONLY", "SUMMARY"]
    [message] = [
        m for (m,) in query(loaded, "select message from ops.quality_results where outcome = 'quarantined'")
    ]
    assert "row 3: -12.50" in message  # the details of the second pass


# ------------------------------------------------------------------ files validated together

BACKFILL = {
    "customers/2025-01-02.csv": GOOD["customers/2025-01-02.csv"],
    "customers/2025-01-03.csv": (
        "customer_id,signup_date,region,birth_year,marketing_consent,email,phone,updated_at\n"
        "C3,2025-01-03,east,1990,true,c@example.com,,2025-01-03T09:00:00Z\n"
    ),
    "customers/2025-01-04.csv": (  # a new version of C1 and a new customer, read as UTC (counted)
        "customer_id,signup_date,region,birth_year,marketing_consent,email,phone,updated_at\n"
        "C1,2025-01-01,south,1980,true,a@example.com,,2025-01-04T09:00:00\n"
        "C4,2025-01-04,north,1975,false,d@example.com,,2025-01-04T10:00:00Z\n"
    ),
    "transactions/2025-01-03.csv": (
        "transaction_id,customer_id,occurred_at,kind,amount,channel\n"
        "T1,C1,2025-01-03T10:00:00Z,purchase,12.50,store\n"
    ),
    "transactions/2025-01-04.csv": (  # C4 arrives in a customers file of the same run
        "transaction_id,customer_id,occurred_at,kind,amount,channel\n"
        "T2,C4,2025-01-04T11:00:00Z,purchase,40.00,online\n"
        "T3,C3,2025-01-04T12:00:00Z,refund,4.00,app\n"
    ),
    "transactions/2025-01-05.csv": (
        "transaction_id,customer_id,occurred_at,kind,amount,channel\n"
        "T4,C2,2025-01-05T10:00:00Z,purchase,7.00,app\n"
    ),
    "transactions/2025-01-06.csv": (  # on the as-of date: deferred, between files that pass
        "transaction_id,customer_id,occurred_at,kind,amount,channel\nT5,C1,2025-01-06T08:00:00Z,purchase,5.00,app\n"
    ),
    "transactions/2025-01-07.csv": (
        "transaction_id,customer_id,occurred_at,kind,amount,channel\n"
        "T6,C2,2025-01-05T10:00:00Z,purchase,7.00,app\n"
    ),
}

RESULTS = (
    "select file_path, outcome, row_count, expectations, failed_expectations, message "
    "from ops.quality_results order by file_path"
)


@pytest.fixture
def validations(monkeypatch) -> list[int]:
    """Rows of each batch GX validates, in order (whatever the result format)."""
    from great_expectations.datasource.fluent.interfaces import Batch

    rows: list[int] = []
    validate = Batch.validate

    def counting(self, *args, **kwargs):
        rows.append(len(self.data.dataframe))
        return validate(self, *args, **kwargs)

    monkeypatch.setattr(Batch, "validate", counting)
    return rows


def _backfill(settings, files: dict[str, str]):
    for relative, text in files.items():
        write_file(settings.landing_dir, relative, text)
    try:
        return validate_landing(settings, AS_OF), None
    except QualityGateError as error:
        return None, error


def test_files_of_a_source_are_validated_together_with_the_verdicts_of_one_at_a_time(
    tmp_path, validations, monkeypatch
):
    """A backfill's files: one GX run per source and run of files, not one per file; what the gate
    records is the same as when each file is validated on its own (GROUP_ROWS 0)."""
    from boomerang.ingest import gate

    grouped = make_settings(tmp_path / "grouped")
    report, error = _backfill(grouped, BACKFILL)
    assert error is None
    # customers: one run of 3 files; transactions: 3 files, the deferred one, then the last alone
    assert validations == [5, 4, 1]
    assert [file for file, _rows in report.validated] == [
        name for name in sorted(BACKFILL) if name != "transactions/2025-01-06.csv"
    ]
    assert [file for file, _why in report.deferred] == ["transactions/2025-01-06.csv"]

    validations.clear()
    monkeypatch.setattr(gate, "GROUP_ROWS", 0)
    alone = make_settings(tmp_path / "alone")
    _backfill(alone, BACKFILL)
    assert validations == [2, 1, 2, 1, 2, 1, 1]
    assert query(grouped, RESULTS) == query(alone, RESULTS)
    assert (
        "1 updated_at value(s) without a UTC offset, read as UTC"
        in dict((row[0], row[5]) for row in query(grouped, RESULTS))["customers/2025-01-04.csv"]
    )
    loaded = load_landing(grouped, AS_OF).loaded
    assert len(loaded) == 7 and loaded == load_landing(alone, AS_OF).loaded
    assert table_checksums(grouped.warehouse_path) == table_checksums(alone.warehouse_path)
    # Loading what passed earlier in the run reads the typed columns alone (no expectation columns,
    # no key lookups): the same rows as a load that validates each file as it goes.
    direct = make_settings(tmp_path / "direct")
    for relative, text in BACKFILL.items():
        write_file(direct.landing_dir, relative, text)
    assert load_landing(direct, AS_OF).loaded == loaded
    assert table_checksums(direct.warehouse_path) == table_checksums(alone.warehouse_path)


def test_a_group_that_fails_is_decided_file_by_file(tmp_path, validations, monkeypatch):
    """A bad file (and a key repeated across files) among good ones: the group's GX run fails, each
    file is then validated on its own, and exactly the bad ones are quarantined, as one at a time."""
    from boomerang.ingest import gate

    files = {
        **BACKFILL,
        "transactions/2025-01-04b.csv": _case_file("negative_amount").read_text(),
        "transactions/2025-01-05b.csv": BACKFILL["transactions/2025-01-05.csv"],  # T4 again
    }
    grouped = make_settings(tmp_path / "grouped")
    _report, error = _backfill(grouped, files)
    assert error is not None and "2 landing batch(es)" in str(error)
    # customers together; transactions: the group fails (1 run), then each file (the bad two twice:
    # the verdict, then the details)
    assert validations[:2] == [5, 7]
    monkeypatch.setattr(gate, "GROUP_ROWS", 0)
    alone = make_settings(tmp_path / "alone")
    _backfill(alone, files)
    assert query(grouped, RESULTS) == query(alone, RESULTS)
    outcomes = dict((row[0], row[1]) for row in query(grouped, RESULTS))
    assert (
        outcomes["transactions/2025-01-04b.csv"] == outcomes["transactions/2025-01-05b.csv"] == "quarantined"
    )
    assert outcomes["transactions/2025-01-05.csv"] == outcomes["transactions/2025-01-04.csv"] == "passed"
