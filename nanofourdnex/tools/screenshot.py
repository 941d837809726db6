"""Screenshots of the Rerun web viewer in headless Chromium: for the README's figure and the browser test.

Chromium (Debian's /usr/bin/chromium) is driven over the DevTools protocol on a pipe, with WebGL 2
through SwiftShader; screenshots are taken until the recording is on screen. "On screen" is measured,
not assumed: the loading page is two flat colours and Rerun's welcome page has almost no saturated
pixels, while a recording's depth (turbo colour map) and XYZ-as-colour views are vivid. Measured on
1280 × 720 screenshots (Chromium 156, rerun-sdk 0.41):

    page                             std   distinct colours   saturated pixels   … in the right quarter
    loading ("Loading Application…")   2           2                 0 %                 0 %
    welcome (no recording)            27         958                 0.4 %               0.01 %
    a small synthetic recording       60       6,600                12 %                45 %
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ..viewer import View, serve_web

CHROMIUM = Path("/usr/bin/chromium")
SIZE = (1280, 720)  # screenshot width, height
LOAD_SECONDS = 45  # the page, its wasm and the recording, through a software rasteriser
# Thresholds at about half of what a loaded recording measures (see the table above).
MIN_STD, MIN_COLOURS, MIN_SATURATED, MIN_SATURATED_RIGHT = 30.0, 3000, 0.05, 0.20


def pixel_statistics(png: bytes) -> dict[str, float]:
    """std of all channels, distinct colours, and the fraction of saturated pixels (overall, right quarter)."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)  # (H, W, 3)
    high, low = rgb.max(-1), rgb.min(-1)
    saturated = ((high - low) / np.maximum(high, 1) > 0.5) & (high > 80)  # vivid: not grey, not dark
    return {
        "std": float(rgb.std()),
        "colours": len(np.unique(rgb.reshape(-1, 3), axis=0)),
        "saturated": float(saturated.mean()),
        "saturated_right": float(saturated[:, 3 * rgb.shape[1] // 4 :].mean()),
    }


def loaded(stats: dict[str, float]) -> bool:
    return (
        stats["std"] >= MIN_STD
        and stats["colours"] >= MIN_COLOURS
        and stats["saturated"] >= MIN_SATURATED
        and stats["saturated_right"] >= MIN_SATURATED_RIGHT
    )


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fd 3: commands in, fd 4: replies out)."""

    def __init__(self, profile: Path):
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()

        def wire_pipes() -> None:  # in the child: the pipe ends become fds 3 and 4
            commands, replies = os.dup(commands_read), os.dup(replies_write)  # neither can land on 4
            os.dup2(commands, 3)
            os.dup2(replies, 4)

        self.process = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
             "--no-first-run", "--disable-quic", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4), preexec_fn=wire_pipes,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(commands_read)
        os.close(replies_write)
        self._buffer, self._id, self.session = b"", 0, None

    def call(self, method: str, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session is not None and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:  # replies and events are NUL-separated JSON; skip events
            while b"\0" not in self._buffer:
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the DevTools pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=SIZE[0],
            height=SIZE[1],
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.navigate", url=url)

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        os.close(self._commands)
        os.close(self._replies)


def screenshot_recording(recording: Path, png: Path, load_seconds: float = LOAD_SECONDS) -> dict[str, float]:
    """Serve `recording` in the web viewer, screenshot it in headless Chromium once it shows; its statistics."""
    if not CHROMIUM.exists():
        raise ValueError(f"{CHROMIUM} is missing (Debian: apt-get install -y chromium)")
    process, url = serve_web(Path(recording), port=0)
    profile = Path(png).with_name(f".{Path(png).stem}.chromium")
    browser = Chromium(profile)
    try:
        browser.open(url)
        deadline = time.monotonic() + load_seconds
        while True:
            time.sleep(2)
            shot = browser.screenshot()
            stats = pixel_statistics(shot)
            if loaded(stats) or time.monotonic() > deadline:
                break
    finally:
        browser.close()
        View(Path(recording), None, process=process).close()
        import shutil

        shutil.rmtree(profile, ignore_errors=True)
    Path(png).write_bytes(shot)
    return stats
