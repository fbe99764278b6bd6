"""A small Chrome DevTools Protocol driver over `--remote-debugging-pipe` (no websocket needed).

It drives the real headless Chromium as an officer would: open a page, fill a form, click,
wait for the page to load; it counts top-level navigations and takes PNG screenshots.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

from conftest import wait_until


def _above_4(fd: int) -> int:
    """Return a copy of `fd` numbered 5 or more (closing `fd`): moving the pipes onto 3 and 4
    then cannot overwrite one with the other."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 5)
    os.close(fd)
    return high


class Browser:
    """One headless Chromium with one page, driven over the DevTools pipe."""

    def __init__(self, chromium: str, profile: Path, flags: list[str]) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        to_child_r, from_child_w = (_above_4(to_child_r), _above_4(from_child_w))
        # bash (which reads fd numbers above 9) puts the pipes on fds 3 and 4, where Chromium expects them.
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_child_r} 4>&{from_child_w}', chromium, *flags,
             f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(to_child_r, from_child_w), stdout=subprocess.DEVNULL,
            stderr=open(profile.with_suffix(".log"), "w"))  # noqa: SIM115
        os.close(to_child_r)
        os.close(from_child_w)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.navigations: list[str] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.loads = 0
        threading.Thread(target=self._read, daemon=True).start()
        targets = self.send("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", targetId=page["targetId"],
                                 flatten=True)["sessionId"]
        for domain in ("Page.enable", "Runtime.enable"):
            self.send(domain, session=True)

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._from_child, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                buffer += chunk
                while b"\0" in buffer:
                    raw, buffer = buffer.split(b"\0", 1)
                    message = json.loads(raw)
                    if "id" in message:
                        with self._lock:
                            self._replies[message["id"]] = message
                    else:
                        self._event(message)

    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Page.frameNavigated" and not params["frame"].get("parentId"):
            self.navigations.append(params["frame"]["url"])
        elif method == "Page.loadEventFired":
            self.loads += 1
        elif method == "Runtime.exceptionThrown":
            self.errors.append(json.dumps(params["exceptionDetails"])[:500])
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(json.dumps(params["args"])[:500])
        self.events.put(message)

    def send(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (fail on a protocol error)."""
        self._next_id += 1
        number = self._next_id
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        reply = wait_until(lambda: self._replies.get(number), 60, method)
        assert isinstance(reply, dict)
        assert "error" not in reply, (method, reply["error"])
        return dict(reply.get("result", {}))

    def evaluate(self, script: str) -> Any:
        """Return the value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", session=True, expression=script,
                           returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def _wait_loaded(self, loads_before: int) -> None:
        wait_until(lambda: self.loads > loads_before, 60, "the page to load")

    def open(self, url: str) -> None:
        """Load a page as typing its address would, and wait until it has loaded."""
        before = self.loads
        self.send("Page.navigate", session=True, url=url)
        self._wait_loaded(before)

    def click_and_wait(self, selector: str) -> None:
        """Click an element that loads a new page, and wait until it has loaded."""
        before = self.loads
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        self._wait_loaded(before)

    def fill(self, fields: dict[str, str]) -> None:
        """Type values into form fields named by CSS selectors."""
        for selector, value in fields.items():
            self.evaluate(f"document.querySelector({json.dumps(selector)}).value = "
                          f"{json.dumps(value)}")

    def screenshot(self, path: Path, width: int, height: int = 800) -> Path:
        """Save the whole page as a PNG, laid out `width` pixels wide."""
        self.send("Emulation.setDeviceMetricsOverride", session=True, width=width,
                  height=height, deviceScaleFactor=1, mobile=False)
        size = self.send("Page.getLayoutMetrics", session=True)["cssContentSize"]
        shot = self.send("Page.captureScreenshot", session=True, format="png",
                         captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": width,
                               "height": min(max(size["height"], height), 6000), "scale": 1})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        self._next_id += 1
        os.write(self._to_child, json.dumps({"id": self._next_id, "method": "Browser.close",
                                             "params": {}}).encode() + b"\0")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self._to_child)
