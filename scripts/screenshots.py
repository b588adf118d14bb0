"""Screenshots of each view of the `faasemu up` dashboard at 1280x800, into docs/images/.

    .ci/venv/bin/python scripts/screenshots.py [--events 10000]

Runs a real campaign (tests/scenarios/counter) and a real `up` in a scratch folder, makes some
traffic (invocations, a retried and dead-lettered event), then drives headless Chromium over its
DevTools protocol (the Browser of tests/server/test_dashboard.py). With --events N it also posts N
more events and prints how long the events view takes to load and render its first page.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "server")]

from conftest import Server, run_cli, wait_for  # noqa: E402
from test_dashboard import Browser  # noqa: E402

from faasemu.verify.report import LAST_CAMPAIGN, write_last_campaign  # noqa: E402

EXTRA = """\
  hello:
    handler: app.py:hello
    http: {path: /hello, methods: [GET]}
  flaky:
    handler: app.py:flaky
    events: [order.*]
    retries: 1
"""
APP = '''\
import os


def hello(event, context):
    return {"statusCode": 200, "body": "hi"}


def flaky(event, context):
    """Fails while ./broken exists (the counter scenario's state is one SQLite file, not a folder)."""
    if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "broken")):
        raise RuntimeError("payment API down")
'''
VIEWS = ("functions", "live", "events", "send", "campaign")


def prepare(root: Path) -> Path:
    shutil.copytree(ROOT / "tests" / "scenarios" / "counter", root)
    result = run_cli("chaos", "events.jsonl", "--runs", "2", "--seed", "7", "--json", "report.json", cwd=root,
                     timeout=300)
    if result.returncode != 1:
        raise SystemExit(f"faasemu chaos exited {result.returncode}:\n{result.stdout}{result.stderr}")
    if not (root / ".faasemu" / LAST_CAMPAIGN).exists():
        write_last_campaign(str(root), json.loads((root / "report.json").read_text()))
    manifest = root / "faasemu.yaml"
    manifest.write_text(manifest.read_text().rstrip("\n") + "\n" + EXTRA)
    (root / "app.py").write_text(APP)
    return manifest


def publish(url: str, events: list[dict], batch: bool = False) -> None:
    if batch:
        answer = httpx.post(f"{url}/_faasemu/events", content=json.dumps(events), timeout=60,
                            headers={"content-type": "application/cloudevents-batch+json"})
    else:
        answer = httpx.post(f"{url}/_faasemu/events", json=events[0], timeout=30)
    answer.raise_for_status()


def event(event_id: str, kind: str, data: dict) -> dict:
    return {"specversion": "1.0", "id": event_id, "source": "shop", "type": kind, "data": data}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=0, help="also measure the events view with N more events")
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="faasemu-shots-"))
    manifest = prepare(scratch / "shop")
    broken = manifest.parent / "broken"
    browser = Browser(1280, 800)
    try:
        with Server(manifest, "--retry-delay", "0.05") as server:
            browser.goto(f"{server.url}/_faasemu/#live")
            browser.wait("document.getElementById('status').textContent === 'live'")
            for _ in range(3):
                httpx.get(f"{server.url}/hello", timeout=30)
            publish(server.url, [event("ord-1001", "order.placed", {"total": 42})])
            broken.write_text("")
            publish(server.url, [event("ord-1002", "order.placed", {"total": 7})])
            publish(server.url, [event("ord-1003", "order.paid", {"total": 7})])
            wait_for(lambda: "dead letter" in server.output(), 30)
            broken.unlink()
            for view in VIEWS:
                browser.goto(f"{server.url}/_faasemu/#{view}")
                time.sleep(0.8)  # let the view fetch and render
                browser.eval("window.scrollTo(0, 0)")
                if view == "send":
                    browser.eval("document.getElementById('send-body').value = JSON.stringify("
                                 "{total: 42, items: ['book']}, null, 2)")
                    browser.click("#send-form button[type=submit]")
                    browser.wait("document.getElementById('send-result').textContent.startsWith('HTTP')")
                if view == "live":
                    browser.eval("document.querySelector('#live li.error') && "
                                 "document.querySelector('#live li.error').classList.add('open')")
                browser.screenshot(out / f"dashboard-{view}.png")
                print(f"wrote {out / f'dashboard-{view}.png'}")
            if args.events:
                measure(browser, server, args.events)
    finally:
        browser.close()
        shutil.rmtree(scratch, ignore_errors=True)


def measure(browser: Browser, server: Server, count: int) -> None:
    """Post `count` events nobody subscribes to (no deliveries: only the log grows), then time the view."""
    started = time.perf_counter()
    for start in range(0, count, 1000):
        chunk = range(start, min(count, start + 1000))
        publish(server.url, [event(f"bulk-{i}", "audit.logged", {"i": i}) for i in chunk], batch=True)
    print(f"posted {count} events in {time.perf_counter() - started:.1f} s")
    browser.goto(f"{server.url}/_faasemu/#functions")
    timings = []
    for _ in range(5):
        ms = browser.eval("""(async () => { const t = performance.now(); await loadEvents(false);
                               return performance.now() - t; })()""")
        timings.append(ms)
    rows = browser.eval("document.querySelectorAll('#events tbody tr').length")
    shown = browser.eval("document.getElementById('events-count').textContent")
    api = []
    for _ in range(5):
        t = time.perf_counter()
        httpx.get(f"{server.url}/_faasemu/api/events?limit=50", timeout=30).raise_for_status()
        api.append((time.perf_counter() - t) * 1000)
    print(f"events view with {shown}: first page ({rows} rows) fetched and rendered in "
          f"{min(timings):.0f}-{max(timings):.0f} ms (median {sorted(timings)[2]:.0f}); "
          f"GET /_faasemu/api/events?limit=50 {min(api):.0f}-{max(api):.0f} ms")


if __name__ == "__main__":
    main()
