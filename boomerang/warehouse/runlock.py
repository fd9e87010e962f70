"""One pipeline run at a time: the run lock every step holds while it works.

DuckDB's own file lock only keeps two processes from holding the warehouse open at the same moment:
two runs (a manual ``boomerang run`` while an Airflow run is writing) would still interleave their
steps, each opening and closing the file between its writes. The run lock is a file next to the
warehouse (``<warehouse>.lock``) that every step of every run locks for its duration with
``flock``, which the OS releases when the process ends, however it ends: no lock outlives its holder.
Its content says who holds it (which run, which step, which process, since when) and whether that
run is in a step, between two steps (an Airflow run between tasks) or done.

A step of another run is refused (:class:`RunInProgress`, before it does anything) while a run is in
a step, or between steps and its lease (:data:`LEASE_S`) has not run out. A run whose holder died in
a step (the lock free, the record saying "in a step") is taken over, with a warning naming it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from boomerang.config import Settings

log = logging.getLogger(__name__)

# How long a run between two steps keeps the warehouse to itself: an Airflow run between two tasks
# (the scheduler starts the next one within seconds; a failed task's retry waits its retry_delay, 2
# minutes for boomerang_daily, 5 for boomerang_train: the lease covers both, twice over). Past it, a
# run that never came back (its next task never started) no longer blocks others.
LEASE_S = 600

IN_STEP, BETWEEN_STEPS, DONE = "in_step", "between_steps", "done"

# The locks this process holds, by lock file: a step run inside another step of the same process
# (flock conflicts between two descriptors of one process) goes on under the outer one.
_held: dict[Path, int] = {}


class RunInProgress(RuntimeError):
    """Another run holds the warehouse (in a step, or between two steps within its lease); the step
    that asked did nothing."""


def lock_path(settings: Settings) -> Path:
    """The run lock of the warehouse of ``settings``: ``<warehouse>.lock``, next to it."""
    return settings.warehouse_path.with_name(settings.warehouse_path.name + ".lock")


def process_identity() -> str:
    """The identity of a step run on its own (not by ``boomerang run`` or Airflow): this process."""
    return f"process {os.getpid()}"


def command_identity(command: str) -> str:
    """The identity of a run started from the command line: ``boomerang run pid <pid>``."""
    return f"boomerang {command} pid {os.getpid()}"


@dataclass
class Hold:
    """The lock a step holds; set ``last`` to end the run with this step (a short-circuit that
    skips the rest)."""

    last: bool


@contextmanager
def run_lock(
    settings: Settings, as_of: date, identity: str, step: str, *, last: bool = False
) -> Iterator[Hold]:
    """Hold the run lock of the warehouse for ``step`` of the run ``identity`` for ``as_of``.

    ``identity`` names the run: the same for every step of one run and for a retry of a step
    (``airflow <dag_id> <run_id>``, ``boomerang run pid <pid>``), so a run's next step or retry goes
    on. Raises :class:`RunInProgress` when another run holds it. Afterwards the record says the run is
    between steps, or done when ``last`` (the run's last step) is set.
    """
    path = lock_path(settings)
    if path in _held:  # a step inside a step of this process: the outer step holds the lock
        yield Hold(last=False)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInProgress(_refusal(path, _read(fd), as_of, identity, step, in_step=True)) from None
        now = _now()
        holder = _read(fd)
        if holder is not None and holder.get("identity") != identity:
            age = (now - _time(holder.get("updated_at"))).total_seconds()
            gone = _one_process_run_gone(holder)
            if holder.get("state") == BETWEEN_STEPS and age < LEASE_S and not gone:
                raise RunInProgress(_refusal(path, holder, as_of, identity, step, in_step=False))
            if holder.get("state") == IN_STEP or (holder.get("state") == BETWEEN_STEPS and gone):
                log.warning(
                    "The run lock %s names %s, in step %s since %s, but no process holds it: that run "
                    "died (killed in or after that step, or its machine stopped). Taking over for %s, step %s.",
                    path,
                    _describe(holder),
                    holder.get("step"),
                    holder.get("step_started_at"),
                    identity,
                    step,
                )
        same_run = holder is not None and holder.get("identity") == identity
        record = {
            "identity": identity,
            "as_of": as_of.isoformat(),
            "step": step,
            "state": IN_STEP,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": holder.get("started_at") if same_run and holder else _iso(now),
            "step_started_at": _iso(now),
            "updated_at": _iso(now),
        }
        _write(fd, record)
        _held[path] = fd
        hold = Hold(last=last)
        try:
            yield hold
        finally:
            del _held[path]
            _write(fd, {**record, "state": DONE if hold.last else BETWEEN_STEPS, "updated_at": _iso(_now())})
    finally:
        os.close(fd)  # releases the flock


def _one_process_run_gone(holder: dict) -> bool:
    """Whether ``holder`` is a run that lives in one process (``boomerang run``, a step on its own: not
    an Airflow run, whose steps are processes of their own) on this host, and that process is gone: it
    was killed between two of its steps and will not come back, so no lease is owed to it."""
    pid = holder.get("pid")
    if str(holder.get("identity")).startswith("airflow ") or holder.get("host") != socket.gethostname():
        return False
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def finish_run(settings: Settings, identity: str) -> None:
    """Mark the run ``identity`` done when it still holds the record (say it stopped before its last
    step: a failure, a short-circuit), so no one waits out its lease."""
    path = lock_path(settings)
    if path in _held or not path.exists():
        return
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another run holds it now: the record is theirs
        holder = _read(fd)
        if holder is not None and holder.get("identity") == identity and holder.get("state") != DONE:
            _write(fd, {**holder, "state": DONE, "updated_at": _iso(_now())})
    finally:
        os.close(fd)


def read_holder(settings: Settings) -> dict | None:
    """The record of the run lock (who holds or last held it), or None when there is none."""
    try:
        return _parse(lock_path(settings).read_bytes())
    except FileNotFoundError:
        return None


def _refusal(path: Path, holder: dict | None, as_of: date, identity: str, step: str, *, in_step: bool) -> str:
    this = f"This run ({identity}, as_of {as_of}, step {step}) did nothing"
    if holder is None:
        return (
            f"Another run is writing the warehouse {path.with_suffix('')} (it holds the run lock {path}, "
            f"which does not say who it is). {this}. Wait for that run to end, then run again."
        )
    pid, host = holder.get("pid"), holder.get("host")
    where = f"pid {pid} on {host}" if host and host != socket.gethostname() else f"pid {pid}"
    if in_step:
        doing = (
            f"in step {holder.get('step')} since {holder.get('step_started_at')} "
            f"(the run started at {holder.get('started_at')})"
        )
        stop = f"`kill {pid}`" + (f" on {host}" if host and host != socket.gethostname() else "")
        if str(holder.get("identity")).startswith("airflow "):
            stop += ", or mark its Airflow task failed"
        what = f"Wait for it to end, then run again; if it is hung, stop it ({stop}) and run again."
    else:
        doing = (
            f"between two steps: its step {holder.get('step')} ended at {holder.get('updated_at')} and "
            f"its next step is due within the {LEASE_S} s lease (the run started at {holder.get('started_at')})"
        )
        what = (
            "Wait for it to end, then run again; if that run stopped for good (a failed Airflow run "
            f"whose next task will not start), the lock lapses {LEASE_S} s after its last step."
        )
    return (
        f"Another run is writing the warehouse: {holder.get('identity')} (as_of {holder.get('as_of')}, "
        f"{where}) is {doing}. {this}. {what} (Run lock: {path}.)"
    )


def _describe(holder: dict) -> str:
    return f"{holder.get('identity')} (as_of {holder.get('as_of')}, pid {holder.get('pid')} on {holder.get('host')})"


def _read(fd: int) -> dict | None:
    return _parse(os.pread(fd, 1 << 16, 0))


def _parse(content: bytes) -> dict | None:
    # one JSON line; a shorter record over a longer one leaves the old one's tail after the newline
    line = content.split(b"\n", 1)[0]
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _write(fd: int, record: dict) -> None:
    data = (json.dumps(record, sort_keys=True) + "\n").encode()
    os.pwrite(fd, data, 0)  # in place (the flock is on this file): a reader never sees it empty
    os.ftruncate(fd, len(data))
    os.fsync(fd)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _time(text: object) -> datetime:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)  # unreadable: long ago
