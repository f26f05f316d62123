"""The explore notebook in a real JupyterLab, driven through its UI in headless Chromium: the panel
appears, the refinement runs without blocking the kernel, Run and Stop work, and moving the
iteration slider changes the 3D view and the overlays. Nothing may leave the machine: every
request the page makes to another host is recorded and refused.

``HANDLIB_LAB_SCREENSHOTS=DIR`` keeps the screenshots there (``figures/`` holds the committed ones,
made with ``HANDLIB_LAB_PROFILE=quick``)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from browser import CHROMIUM

REPO = Path(__file__).resolve().parents[1]
PROFILE = os.environ.get("HANDLIB_LAB_PROFILE", "smoke")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab as ``make lab`` starts it, on a free port, in a copy of the notebook set to PROFILE."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy(REPO / "notebooks" / "jupyter_lab_config.py", folder)
    notebook = nbformat.read(REPO / "notebooks" / "explore.ipynb", 4)
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    parameters.source = re.sub(r'^profile = ".*"', f'profile = "{PROFILE}"', parameters.source, flags=re.M)
    nbformat.write(notebook, folder / "explore.ipynb")
    port, token = free_port(), "handlib-test-token"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    env.update(JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"))
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0"]
        + [f"--IdentityProvider.token={token}", "--config=jupyter_lab_config.py"],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).read()
            break
        except OSError:
            assert server.poll() is None, server.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "JupyterLab did not start within 120 s"
            time.sleep(0.5)
    try:
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (make test installs Debian's chromium)")
def test_explore_notebook_runs_and_scrubs_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, token = lab
    shots = Path(os.environ.get("HANDLIB_LAB_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    outside = []

    def local_only(route):
        if route.request.url.startswith((base, "data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        page.route("**/*", local_only)
        page.goto(f"{base}/lab/tree/explore.ipynb?token={token}")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
        kernel = page.get_by_role("button", name=re.compile(r"Python 3.*\| Idle"))
        expect(kernel).to_be_visible(timeout=120_000)  # the kernel started
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run All Cells", exact=True).click()

        status = page.locator(".widget-html-content").first
        # The run goes on in the background: the cells after the panel finish while it refines.
        waiting = page.get_by_text("Press Run in the panel above", exact=False)
        expect(waiting).to_be_visible(timeout=180_000)
        assert "Done" not in status.inner_text(), "the later cells waited for the refinement"
        expect(status).to_contain_text("Done", timeout=600_000)

        images = page.locator(".jupyter-widgets img")  # 3D view, curves, overlays (in that order)
        slider = page.locator(".widget-slider").first
        readout = slider.locator(".widget-readout")
        shown = int(readout.inner_text())  # the best iteration
        key, target = ("ArrowLeft", 0) if shown > 0 else ("ArrowRight", 3)
        panel = page.locator(".jp-OutputArea-output .widget-vbox").first
        panel.scroll_into_view_if_needed()
        page.wait_for_timeout(1500)
        before = {k: images.nth(k).screenshot() for k in (0, 2)}
        panel.screenshot(path=str(shots / "lab_after_run.png"))
        page.screenshot(path=str(shots / "lab_window.png"))
        handle = slider.locator(".noUi-handle")
        handle.focus()
        for _ in range(abs(target - shown)):
            page.keyboard.press(key)
        expect(readout).to_have_text(str(target), timeout=30_000)
        page.wait_for_timeout(3000)  # the kernel redraws the three images
        after = {k: images.nth(k).screenshot() for k in (0, 2)}
        panel.screenshot(path=str(shots / "lab_after_slider.png"))

        # Run again with the panel's button, and stop it part-way: it ends at once, stopped.
        page.locator("button.widget-button", has_text="Run").click()
        expect(status).to_contain_text("iteration", timeout=120_000)
        page.locator("button.widget-button", has_text="Stop").click()
        expect(status).to_contain_text("Done (stopped)", timeout=120_000)

        browser.close()
    assert before[0] != after[0], "the 3D view did not change with the slider"
    assert before[2] != after[2], "the overlays did not change with the slider"
    assert outside == [], outside
