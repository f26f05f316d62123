"""Headless Chromium for the browser tests: load a page with a probe script, read back what it found."""

import json
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def open_in_chromium(page: Path, script: str, attempts: int = 3) -> dict:
    """Load a copy of ``page`` (same folder, so its links work) with ``script`` injected at the start of
    its head; the JSON that script writes into ``<pre id="handlib-check">``.

    Headless Chromium now and then exits without dumping the page (seen once in CI on a page that
    loads in 2 s here), so a load is tried ``attempts`` times; the last failure shows Chromium's stderr.
    """
    probe = page.with_name(f"_probe_{page.name}")
    probe.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + script, 1), encoding="utf-8")
    try:
        for _ in range(attempts):
            run = subprocess.run(
                [
                    CHROMIUM,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--allow-file-access-from-files",
                    "--virtual-time-budget=30000",
                    "--dump-dom",
                    probe.as_uri(),
                ],
                capture_output=True,
                text=True,
                timeout=180,
            )
            found = re.search(r'<pre id="handlib-check">(.*?)</pre>', run.stdout, re.S)
            if found:
                break
    finally:
        probe.unlink()
    assert found, (
        f"{page.name}: the page did not finish loading in Chromium (exit {run.returncode}): {run.stderr[-2000:]}"
    )
    return json.loads(
        found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )
