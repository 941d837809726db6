"""The README's picture of the 4D viewer: a generated scene's recording in the Rerun web viewer, screenshot
by headless Chromium (Debian's `chromium` package).

    OMP_NUM_THREADS=1 python benchmarks/viewer_screenshot.py out/scene docs/viewer.png

OUT is a `nano4d generate` output folder (its scene.rrd) or an .rrd file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nanofourdnex.tools.screenshot import screenshot_recording


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a generate output folder or an .rrd file")
    parser.add_argument("png", type=Path, help="where to write the screenshot")
    args = parser.parse_args()
    recording = args.source / "scene.rrd" if args.source.is_dir() else args.source
    stats = screenshot_recording(recording, args.png)
    print(f"wrote {args.png}: {stats}")


if __name__ == "__main__":
    main()
