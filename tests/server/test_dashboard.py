"""The dashboard of `faasemu up` (issue 14), driven in a real headless Chromium against a real `up`.

Chromium's own headless mode through its DevTools protocol (CDP), with the `websockets` client that
uvicorn[standard] already brings: no Playwright (its pip package carries its own Node driver and
browser downloads, ~100 MB, for the five calls these tests make). One browser and one `up` per module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, wait_for, write_project
from websockets.sync.client import connect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

MANIFEST = """\
    state:
      dir: state
    functions:
      hello:
        handler: app.py:hello
        http: {path: /hello, methods: [GET]}
      flaky:
        handler: app.py:flaky
        events: [order.*]
        retries: 1
"""
APP = '''\
import json, os


def hello(event, context):
    return {"statusCode": 200, "body": "<b>hi</b>"}


def flaky(event, context):
    """Fails while state/broken exists: a dead letter until the test removes it and redrives."""
    state = os.environ["FAASEMU_STATE"]
    if os.path.exists(os.path.join(state, "broken")):
        raise RuntimeError("payment API down")
    with open(os.path.join(state, "delivered-" + event.get("id", "x")), "w") as file:
        file.write("ok")
'''


class Browser:
    """A headless Chromium and one page, driven over the DevTools protocol."""

    def __init__(self, width: int = 1280, height: int = 800) -> None:
        self.profile = tempfile.mkdtemp(prefix="faasemu-chromium-")
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if line.startswith("DevTools listening on "):
                url = line.split(" ", 3)[3].strip()
            elif not line and self.process.poll() is not None:
                break
        if url is None:
            self.process.kill()
            raise AssertionError("chromium did not print its DevTools address")
        # chromium keeps writing to stderr: drain it, or a full pipe would stall the browser
        threading.Thread(target=self.process.stderr.read, daemon=True).start()
        port = url.split(":")[2].split("/")[0]
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(p for p in pages if p["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024, legacy=True)
        self.next_id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        assert self.wait("document.readyState === 'complete' && !!document.getElementById('tabs')")

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 20) -> bool:
        return wait_for(lambda: bool(self.eval(expression)), timeout)

    def text(self, selector: str) -> str:
        return str(self.eval(f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''"))

    def click(self, selector: str) -> None:
        self.eval(f"document.querySelector({json.dumps(selector)}).click()")

    def screenshot(self, path: Path) -> None:
        import base64

        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stderr is not None:
                self.process.stderr.close()
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: apt-get install chromium (.ci/run installs it)")
    page = Browser()
    yield page
    page.close()


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dash")
    manifest = write_project(root, {"faasemu.yaml": MANIFEST, "app.py": APP})
    (root / "state").mkdir(exist_ok=True)
    server = Server(manifest, "--retry-delay", "0.05").start()
    yield server
    server.stop()


def publish(server: Server, event_id: str, kind: str = "order.placed") -> None:
    event = {"specversion": "1.0", "id": event_id, "source": "test", "type": kind, "data": {"n": 1}}
    answer = httpx.post(f"{server.url}/_faasemu/events", json=event, timeout=10)
    assert answer.status_code == 202, answer.text


def test_up_prints_the_dashboard_url(dash: Server) -> None:
    assert f"dashboard {dash.url}/_faasemu/" in dash.output()


def test_the_functions_view_lists_each_function(dash: Server, browser: Browser) -> None:
    browser.goto(f"{dash.url}/_faasemu/")
    assert browser.wait("document.querySelectorAll('#functions tbody tr').length === 2")
    assert "GET /hello" in browser.text("#functions tr[data-function=hello]")
    assert "event order.*" in browser.text("#functions tr[data-function=flaky]")
    assert "aws-lambda" in browser.text("#functions tr[data-function=hello]")


def test_an_invocation_appears_live(dash: Server, browser: Browser) -> None:
    browser.goto(f"{dash.url}/_faasemu/#live")
    assert browser.wait("document.getElementById('status').textContent === 'live'")
    assert httpx.get(f"{dash.url}/hello", timeout=30).status_code == 200
    assert browser.wait("[...document.querySelectorAll('#live li')].some(li => li.textContent.includes('GET /hello'))")


def test_retries_dead_letter_and_a_redrive_that_delivers(dash: Server, browser: Browser) -> None:
    state = dash.manifest.parent / "state"
    (state / "broken").write_text("")
    publish(dash, "dead-1")
    browser.goto(f"{dash.url}/_faasemu/#events")
    row = "#events tr[data-event='dead-1']"
    assert browser.wait(f"!!document.querySelector(\"{row} .delivery[data-status=dead]\") || (loaders.events(), false)")
    shown = browser.text(row)
    assert "2 attempts" in shown and "payment API down" in shown, shown
    (state / "broken").unlink()
    browser.click(f"{row} button.redrive")
    assert wait_for(lambda: (state / "delivered-dead-1").exists(), 30)
    assert browser.wait(f"!!document.querySelector(\"{row} .delivery[data-status=done]\") || (loaders.events(), false)")


def test_the_send_box_publishes_an_event(dash: Server, browser: Browser) -> None:
    browser.goto(f"{dash.url}/_faasemu/#send")
    assert browser.wait("document.getElementById('send-type').value === 'order.*' || "
                        "document.getElementById('send-type').options.length > 0")
    browser.eval("document.getElementById('send-body').value = '{\"n\": 2}'")
    browser.click("#send-form button[type=submit]")
    assert browser.wait("document.getElementById('send-result').textContent.startsWith('HTTP 202')")
    browser.eval("document.getElementById('send-function').value = 'hello'")
    browser.eval("document.getElementById('send-result').textContent = ''")
    browser.click("#send-form button[type=submit]")
    assert browser.wait("document.getElementById('send-result').textContent.startsWith('HTTP 200')")
    assert "<b>hi</b>" in browser.text("#send-result")


def test_user_text_is_never_markup(dash: Server, browser: Browser) -> None:
    browser.goto(f"{dash.url}/_faasemu/#events")
    publish(dash, "<img src=x onerror=window.pwned=1>")
    assert browser.wait("(loaders.events(), document.querySelector('#events tbody').textContent.includes('<img'))")
    assert browser.eval("document.querySelector('#events img') === null && window.pwned === undefined")


# -- plain HTTP: the security rules of `up` apply to the dashboard ----------------------------------

def test_a_form_post_from_another_site_is_refused(dash: Server) -> None:
    answer = httpx.post(f"{dash.url}/_faasemu/api/redrive", content="event=x", timeout=10,
                        headers={"content-type": "application/x-www-form-urlencoded", "origin": "http://evil.example"})
    assert answer.status_code == 403
    answer = httpx.post(f"{dash.url}/_faasemu/api/redrive", content="event=x", timeout=10,
                        headers={"content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "same-origin"})
    assert answer.status_code == 415
    assert httpx.post(f"{dash.url}/_faasemu/api/redrive", json={"event": None}, timeout=10).status_code == 200


def test_the_host_check_applies_to_the_page(dash: Server) -> None:
    assert httpx.get(f"{dash.url}/_faasemu/", headers={"host": "evil.example"}, timeout=10).status_code == 403
    page = httpx.get(f"{dash.url}/_faasemu/", timeout=10)
    assert page.status_code == 200 and "app.js" in page.text
    assert httpx.get(f"{dash.url}/_faasemu/ui/secret.py", timeout=10).status_code == 404


def test_events_are_paged(dash: Server) -> None:
    first = httpx.get(f"{dash.url}/_faasemu/api/events?limit=1", timeout=10).json()
    assert len(first["events"]) == 1 and first["total"] >= 2 and first["next"] is not None
    second = httpx.get(f"{dash.url}/_faasemu/api/events?limit=1&before={first['next']}", timeout=10).json()
    assert second["events"][0]["seq"] < first["events"][0]["seq"]


def test_no_ui_turns_the_dashboard_off(tmp_path: Path) -> None:
    manifest = write_project(tmp_path, {"faasemu.yaml": MANIFEST, "app.py": APP})
    with Server(manifest, "--no-ui") as server:
        assert httpx.get(f"{server.url}/_faasemu/", timeout=10).status_code == 404
        assert "dashboard http" not in server.output()


def test_a_campaigns_counterexample_is_drawn(tmp_path: Path, browser: Browser) -> None:
    from conftest import run_cli

    from faasemu.verify.report import LAST_CAMPAIGN, write_last_campaign

    root = tmp_path / "counter"
    shutil.copytree(Path(__file__).parents[1] / "scenarios" / "counter", root)
    result = run_cli("chaos", "events.jsonl", "--runs", "2", "--seed", "7", "--json", "report.json", cwd=root,
                     timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    if not (root / ".faasemu" / LAST_CAMPAIGN).exists():  # until faasemu/verify/command.py writes it itself
        write_last_campaign(str(root), json.loads((root / "report.json").read_text()))
    with Server(root / "faasemu.yaml") as server:
        browser.goto(f"{server.url}/_faasemu/#campaign")
        cex = "[data-cex='.faasemu/cex/credit-idempotency.json']"
        assert browser.wait(f"!!document.querySelector(\"{cex}\")")
        assert "NO" in browser.text("#verdicts tr[data-function=credit]")
        assert "duplicate" in browser.text(f"{cex} .perturbed-run")
        assert browser.eval(f"document.querySelectorAll(\"{cex} .in-order-run li\").length") >= 1
        assert "accounts[id=alice].balance" in browser.text(f"{cex} table.diff")
        assert "faasemu chaos events.jsonl --runs 2 --seed 7 --only credit" in browser.text(f"{cex} .reproduce")


def test_sink_calls_are_listed(dash: Server, browser: Browser) -> None:
    answer = httpx.post(f"{dash.url}/_faasemu/sink/email", json={"to": "<i>ann</i>"}, timeout=10)
    assert answer.status_code == 200
    browser.goto(f"{dash.url}/_faasemu/#events")
    assert browser.wait("(loaders.events(), document.querySelector('#sink tbody').textContent.includes('POST email'))")
    assert "<i>ann</i>" in browser.text("#sink tbody") and browser.eval("document.querySelector('#sink i') === null")
