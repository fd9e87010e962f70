"""Airflow's own surfaces on a local home, as a data engineer meets them: `airflow dags list` right after
the metadata database is prepared, and the boomerang_daily graph in Airflow 3's UI, in a real browser.

The UI is a React app: headless Chromium is driven over the DevTools protocol (a websocket; no
selenium in the lock file) to set the UI's "default view" to the graph, load the DAG's page and read
the nodes React Flow drew."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import make_settings

from boomerang.config import Settings
from boomerang.pipeline import DAILY_STEPS, TRAINING_STEPS, WATCHER
from devtools.local_airflow import airflow_env, airflow_executable, api_server, ensure_metadata_db

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A fresh local Airflow home, prepared as `make demo` prepares it (no DAG has run)."""
    settings = make_settings(tmp_path_factory.mktemp("airflow_ui"))
    ensure_metadata_db(settings)
    return settings


def test_airflow_dags_list_shows_the_dags_right_after_the_database_is_prepared(airflow_home):
    result = subprocess.run(
        [airflow_executable(), "dags", "list", "--output", "json"],
        env=airflow_env(airflow_home),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "No data found" not in result.stdout
    [table] = [line for line in result.stdout.splitlines() if line.startswith("[{")]  # log lines aside
    listed = {row["dag_id"] for row in json.loads(table)}
    assert {"boomerang_daily", "boomerang_train"} <= listed


# ------------------------------------------------------------------------------- in a browser


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Browser:
    """One headless Chromium page, driven over the DevTools protocol."""

    def __init__(self, websocket) -> None:
        self._ws, self._ids = websocket, itertools.count(1)

    def call(self, method: str, **params) -> dict:
        message_id = next(self._ids)
        self._ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == message_id:
                assert "error" not in message, message
                return message.get("result", {})

    def evaluate(self, expression: str, *, check: bool = True):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            assert not check, result["exceptionDetails"]
            return None
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout: float = 30):
        """The value of ``expression`` once it is truthy (polled; an error, such as no document yet while
        a page loads, counts as not yet)."""
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression, check=False)):
            if time.monotonic() > deadline:
                return value
            time.sleep(0.25)
        return value


@contextmanager
def headless_chromium(binary: str, profile: Path) -> Iterator[Browser]:
    from websockets.sync.client import connect

    process = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--window-size=1400,1000",
            "about:blank",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        endpoint = None
        for line in process.stderr:
            if found := re.search(r"DevTools listening on ws://([^/]+)/", line):
                endpoint = found[1]
                break
        assert endpoint, "Chromium did not open its DevTools port"
        with urllib.request.urlopen(f"http://{endpoint}/json/list", timeout=10) as answer:
            [page] = [target for target in json.load(answer) if target["type"] == "page"]
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as websocket:
            browser = Browser(websocket)
            browser.call("Page.enable")
            yield browser
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.timeout(240)
def test_the_boomerang_daily_graph_shows_every_step_in_the_airflow_ui(airflow_home, tmp_path):
    binary = chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("headless Chromium is missing: `make test` installs it (`make browser`)")
        pytest.skip(
            "headless Chromium is not installed (`make browser` installs it): the Airflow UI check is skipped"
        )
    steps = [step.name for step in DAILY_STEPS]
    tasks = [*steps, WATCHER]  # the watcher, downstream of every step, fails the run when one failed

    with api_server(airflow_home) as url, headless_chromium(binary, tmp_path / "profile") as browser:
        # The DAG list first: it logs the browser in (the simple auth manager, everyone an admin), and it
        # is the UI's origin, where the default DAG view is kept.
        browser.open(f"{url}/dags")
        assert browser.wait_for("document.body.innerText.includes('boomerang_daily')"), browser.evaluate(
            "document.body && document.body.innerText"
        )
        assert browser.evaluate("document.body.innerText.includes('boomerang_train')")
        browser.evaluate("localStorage.setItem('default_dag_view', JSON.stringify('graph'))")

        browser.open(f"{url}/dags/boomerang_daily")
        count = f"document.querySelectorAll('.react-flow__node').length >= {len(tasks)}"
        assert browser.wait_for(count), browser.evaluate("document.body && document.body.innerText")
        nodes = browser.evaluate(
            "[...document.querySelectorAll('.react-flow__node')].map(n => [n.dataset.id, n.innerText])"
        )
        edges = browser.evaluate("document.querySelectorAll('.react-flow__edge').length")
        title = browser.evaluate("document.title")

    assert sorted(node_id for node_id, _ in nodes) == sorted(tasks)
    assert all(node_id in text for node_id, text in nodes)  # the task id is drawn, not only an attribute
    assert edges == (len(steps) - 1) + len(steps)  # one chain, in DAILY_STEPS' order, and into the watcher
    assert "boomerang_daily" in title
    assert {step.name for step in TRAINING_STEPS}.isdisjoint(steps)  # the page showed the right DAG
