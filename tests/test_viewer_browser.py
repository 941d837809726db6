"""The web viewer in a real browser: served offline by rerun-sdk, rendered by headless Chromium.

Spec: specs/viewer.md

The browser is driven by `tools/screenshot.py` (its docstring has the measured pixel statistics of the
loading page, the welcome page and a recording); a screenshot counts as showing the recording only
when it passes `loaded`'s thresholds, about half of what a recording measures.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from nanofourdnex.synthetic import make_scene, write_clip
from nanofourdnex.tools.screenshot import CHROMIUM, LOAD_SECONDS, loaded, screenshot_recording
from nanofourdnex.viewer import View, read_training_clip, record_scene, serve_web


def small_recording(path: Path) -> Path:
    """A 5-frame 48 × 72 synthetic clip, recorded as its ground truth (first-camera frame, all points)."""
    record_scene(
        read_training_clip(
            write_clip(make_scene(0, num_frames=5, height=48, width=72), path.parent / "clip")
        ),
        path,
    )
    return path


def test_the_web_viewer_is_served_offline_from_rerun_sdk(tmp_path):
    process, url = serve_web(small_recording(tmp_path / "scene.rrd"), port=0)
    try:
        assert url.startswith("http://127.0.0.1:") and "?url=rerun%2Bhttp%3A%2F%2F127.0.0.1%3A" in url
        with urllib.request.urlopen(url, timeout=10) as page:
            html = page.read().decode()
        assert page.status == 200 and "Rerun Viewer" in html
        wasm = url.split("?")[0].rstrip("/") + "/re_viewer_bg.wasm"
        with urllib.request.urlopen(wasm, timeout=30) as viewer:
            assert viewer.status == 200 and viewer.read(4) == b"\0asm"  # the viewer itself, from localhost
    finally:
        View(tmp_path / "scene.rrd", None, process=process).close()
    assert process.poll() is not None


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (CI: apt-get install -y chromium)")
def test_headless_chromium_shows_the_recording(tmp_path):
    stats = screenshot_recording(small_recording(tmp_path / "scene.rrd"), tmp_path / "screenshot.png")
    assert loaded(stats), (
        f"the recording did not show within {LOAD_SECONDS} s: {stats}, see {tmp_path / 'screenshot.png'}"
    )
