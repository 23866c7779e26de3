"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for the report's
tests: open a file, collect every console message, exception, log entry and network request,
read the DOM after the scripts ran, take a full-page screenshot.

One browser process per page, started as root with the flags a sandbox-less CI needs and a
new empty profile; the DevTools websocket is on a port Chromium picks, on loopback.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1400,1000",
)
LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


@dataclass
class Loaded:
    """What the page did and showed."""

    dom: str
    values: dict[str, Any] = field(default_factory=dict)  # the probes' results
    console: list[dict[str, Any]] = field(default_factory=list)  # type, text
    requests: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    def errors(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, and log entries of level error
        (a blocked load, a Content-Security-Policy violation)."""
        return [f"{m['type']}: {m['text']}" for m in self.console if m["type"] in BAD]


BAD = {"error", "warning", "assert", "exception", "log-error", "log-warning"}


class _Session:
    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            self.events.append(json.loads(self.ws.recv()))
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout} s")


def open_page(
    path: Path,
    *,
    screenshot: Path | None = None,
    ready: str = "true",
    probes: dict[str, str] | None = None,
    timeout: float = 60,
) -> Loaded:
    """Load `path` (a file) in a new headless Chromium; `ready` is a JavaScript expression
    that is true once the page finished drawing; `probes` are expressions evaluated then (their
    JSON-able values land in `Loaded.values`)."""
    assert CHROMIUM is not None, "chromium is not installed (apt-get install chromium)"
    profile = Path(tempfile.mkdtemp(prefix="dumpledger-chromium-"))
    log = profile / "stderr.log"  # a file, not a pipe: a full pipe would stop Chromium
    with log.open("w") as err:
        proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile / 'profile'}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        return _drive(_listening(proc, log), path, screenshot, ready, probes or {}, timeout)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)


def _listening(proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = LISTENING.search(log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"chromium gave no DevTools endpoint: {log.read_text(errors='replace')}")


def _drive(
    ws_url: str, path: Path, shot: Path | None, ready: str, probes: dict[str, str], timeout: float
) -> Loaded:
    cdp = _Session(ws_url)
    target = cdp.send("Target.createTarget", url="about:blank")["targetId"]
    sid = cdp.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Runtime", "Log", "Network", "Page"):
        cdp.send(f"{domain}.enable", sid)
    cdp.send("Page.navigate", sid, url=path.resolve().as_uri())
    cdp.wait_for("Page.loadEventFired", timeout)
    deadline = time.monotonic() + timeout
    while not _evaluate(cdp, sid, ready):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page was not ready ({ready}) within {timeout} s")
        time.sleep(0.1)
    loaded = Loaded(dom=str(_evaluate(cdp, sid, "document.documentElement.outerHTML")))
    loaded.values = {name: _evaluate(cdp, sid, js) for name, js in probes.items()}
    if shot is not None:
        height = int(_evaluate(cdp, sid, "document.documentElement.scrollHeight"))
        cdp.send("Emulation.setDeviceMetricsOverride", sid, width=1400, height=height,
                 deviceScaleFactor=1, mobile=False)  # fmt: skip
        data = cdp.send("Page.captureScreenshot", sid, format="png", captureBeyondViewport=True)
        shot.write_bytes(base64.b64decode(data["data"]))
        loaded.screenshot = shot
    _collect(cdp.events, loaded)
    cdp.ws.close()
    return loaded


def _evaluate(cdp: _Session, sid: str, expression: str) -> Any:
    result = cdp.send("Runtime.evaluate", sid, expression=expression, returnByValue=True)
    if "exceptionDetails" in result:
        raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
    return result["result"].get("value")


def _collect(events: list[dict[str, Any]], loaded: Loaded) -> None:
    for ev in events:
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            loaded.console.append({"type": params["type"], "text": text})
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            loaded.console.append({"type": "exception", "text": text})
        elif method == "Log.entryAdded":
            entry = params["entry"]
            loaded.console.append({"type": f"log-{entry['level']}", "text": entry["text"]})
        elif method == "Network.requestWillBeSent":
            loaded.requests.append(params["request"]["url"])
