"""The dbt process that serves a run's dbt calls: it starts and parses the project once.

A ``dbt`` command pays, before it builds anything, Python's start-up, dbt's imports (about 2 s) and
a check of the parsed project (about 1 s). A daily run calls dbt twice (the daily build, then the
ledger marts after the rewards steps), and ``make demo``'s Airflow process 34 times in its 17 days.
This process pays those costs once: started by :func:`boomerang.warehouse.dbt.run_dbt` on a run's
first dbt call, it parses the project on its first request and runs each request with dbt's
programmatic runner on that parsed project (``dbtRunner(manifest=...)``), as dbt's documentation
suggests for repeated invocations.

Each call runs with ``--no-write-json``: this process writes ``run_results.json`` after every call
and dbt's 2 MB ``manifest.json`` once (see :func:`write_artifacts`), not after every call as dbt would.

dbt still never runs in the process that opens the warehouse afterwards (DuckDB has one writer):
after every request this process closes dbt-duckdb's connection and says whether it still has the
warehouse open (Linux: ``/proc/self/fd``). When it does, or cannot tell, its parent stops it, so the
next step always finds the warehouse free.

The protocol with :func:`boomerang.warehouse.dbt.run_dbt`, one line at a time on stdin and stdout:

* the parent writes a request: ``{"args": [dbt's arguments], "env": {"BOOMERANG_AS_OF": ...}}``;
* this process runs it; dbt's log lines come out on stdout as dbt writes them;
* then one line: :data:`DONE` followed by ``{"exit_code": 0|1|2, "holds_warehouse": true|false|null}``
  (the exit code the ``dbt`` command would have had: 0 success, 1 a model or test failed, 2 dbt
  itself failed).

It is started as ``python -m boomerang.warehouse.dbt_worker --project-dir P --profiles-dir P --vars V``
(what it parses the project with), with the dbt environment of the settings it serves; it ends when
its stdin closes, and on Linux with its parent (see :func:`boomerang.warehouse.dbt._die_with_parent`).
The parent keys a worker on the project's files, vars and dbt environment and starts another when
any of them changes, so a parsed project is never used after its files changed.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# The line that ends the output of each request (dbt never writes a record separator).
DONE = "\x1eboomerang-dbt-worker-done "


def exit_code(result) -> int:
    """The exit code the ``dbt`` command gives for a ``dbtRunnerResult``."""
    if result.success:
        return 0
    return 2 if result.exception is not None else 1


def _unsaid(error: BaseException) -> bool:
    """Whether dbt did not log ``error`` itself: it logs what a command raises ("Encountered an
    error: ..."), not a usage error (an unknown option, say) nor an odd exit, which the ``dbt``
    command prints."""
    from dbt.cli.exceptions import DbtInternalException, DbtUsageException

    return isinstance(error, DbtUsageException | DbtInternalException)


def target_dir(parse_args: Sequence[str]) -> Path:
    """Where dbt writes its artifacts: ``DBT_TARGET_PATH`` (the settings always set it), else the
    project's ``target`` folder."""
    if os.environ.get("DBT_TARGET_PATH"):
        return Path(os.environ["DBT_TARGET_PATH"])
    args = list(parse_args)
    project = args[args.index("--project-dir") + 1] if "--project-dir" in args else "."
    return Path(project) / "target"


def write_artifacts(run_result, manifest, target: Path, written: set[Path]) -> None:
    """What ``dbt --write-json`` writes after a call, at a fraction of its cost: ``run_results.json``
    (what the call built) after every call, ``manifest.json`` once per target folder.

    dbt serialises its whole manifest (2 MB here) after every call, about 1 s each on 2 cores, twice
    a day. What the manifest's readers use (the serving snapshot's descriptions and PII tags, the
    columns and contracts) comes from the parsed project, which cannot change while this process
    lives: a changed project gets a new process. So the calls run with ``--no-write-json`` and the
    manifest is written after the first call into each target folder (with that call's compiled code).
    """
    from dbt.parser.manifest import write_manifest

    target.mkdir(parents=True, exist_ok=True)
    if target not in written or not (target / "manifest.json").exists():
        write_manifest(manifest, str(target))
        written.add(target)
    if hasattr(run_result, "write"):  # none when dbt stopped before running anything
        run_result.write(str(target / "run_results.json"))


def release_duckdb() -> None:
    """Close dbt-duckdb's connection to the warehouse, which it keeps between invocations.

    dbt-duckdb holds one DuckDB environment per process (``DuckDBConnectionManager._ENV``) and closes
    its database only when every handle is gone; a programmatic invocation leaves it open. If a later
    dbt-duckdb names it differently, nothing is closed here and :func:`holds_file` tells the parent,
    which then stops this process.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    environment = getattr(DuckDBConnectionManager, "_ENV", None)
    DuckDBConnectionManager.close_all_connections()
    if environment is not None:
        environment.close()
    del environment
    gc.collect()


def holds_file(path: str | None) -> bool | None:
    """Whether this process has ``path`` (or its ``.wal``, its ``.tmp`` spill files) open; None when it
    cannot tell (no ``/proc/self/fd``: not Linux)."""
    fds = Path("/proc/self/fd")
    if not path or not fds.is_dir():
        return None
    target = os.path.realpath(path)
    for fd in fds.iterdir():
        try:
            opened = os.readlink(fd)
        except OSError:  # closed while we looked
            continue
        if opened == target or opened.startswith(target + "."):
            return True
    return False


def serve(parse_args: Sequence[str]) -> int:
    """Answer requests from stdin until it closes (see the module's docstring)."""
    from dbt.cli.main import dbtRunner

    sys.stdout.reconfigure(line_buffering=True)
    # Parsed now, before the first request, so that a worker started ahead of its first call
    # (boomerang.warehouse.dbt.warm_up) is ready by then. Quietly: what it prints would go to the
    # first call's log. A parse that fails here is done again for the first request, which reports it.
    quiet = dbtRunner().invoke(["parse", "--no-write-json", "--quiet", *parse_args])
    manifest = quiet.result if quiet.success else None
    written: set[Path] = set()  # the target folders this parsed project's manifest.json is in
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        os.environ.update(request.get("env", {}))
        code = 2
        try:
            if manifest is None:
                # manifest.json is written by the build that follows; only the parsed project is kept
                parsed = dbtRunner().invoke(["parse", "--no-write-json", *parse_args])
                manifest = parsed.result if parsed.success else None
                code = exit_code(parsed)
                if parsed.exception is not None and _unsaid(parsed.exception):
                    print(f"Encountered an error: {parsed.exception}", flush=True)
            if manifest is not None:
                result = dbtRunner(manifest=manifest).invoke([*request["args"], "--no-write-json"])
                code = exit_code(result)
                write_artifacts(result.result, manifest, target_dir(parse_args), written)
                if result.exception is not None and _unsaid(result.exception):
                    print(f"Encountered an error: {result.exception}", flush=True)
        except BaseException as error:  # the parent must always get its answer
            print(f"Encountered an error in the dbt worker: {type(error).__name__}: {error}", flush=True)
            code = 2
        finally:
            release_duckdb()
        holds = holds_file(os.environ.get("BOOMERANG_WAREHOUSE"))
        print(DONE + json.dumps({"exit_code": code, "holds_warehouse": holds}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))
