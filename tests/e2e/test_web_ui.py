"""The browser UI against a real system started by bin/start.sh: Debian chromium via playwright-core.

web/e2e/run.mjs drives the browser (submit through the form, watch a run finish live, follow a live
log, cancel, a validation error) and saves a screenshot of every view.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def system(tmp_path: Path) -> object:
    home = tmp_path / "home"
    shutil.copytree(REPO / "tasks", home / "tasks")
    port = _free_port()
    env = {**os.environ, "TASKHUB_HOME": str(home), "TASKHUB_PORT": str(port), "TASKHUB_STOP_TIMEOUT": "10"}
    env.pop("TASKHUB_TOKEN", None)
    started = subprocess.run([str(REPO / "bin/start.sh"), "2"], env=env, capture_output=True, text=True, timeout=600)
    assert started.returncode == 0, started.stdout + started.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/api/health", timeout=2).status_code == 200, timeout=30)
        yield url, env
    finally:
        subprocess.run([str(REPO / "bin/stop.sh")], env=env, capture_output=True, timeout=120)


def test_ui_in_a_real_browser(system: tuple[str, dict[str, str]]) -> None:
    url, env = system
    assert (REPO / "web/dist/index.html").is_file(), "bin/start.sh should have built web/dist"
    assert shutil.which("chromium") or Path("/usr/bin/chromium").exists(), "bin/test.sh installs chromium"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["npm", "run", "--silent", "e2e"], cwd=REPO / "web", capture_output=True, text=True, timeout=300,
        env={**env, "TASKHUB_URL": url, "TASKHUB_SCREENSHOTS": str(SCREENSHOTS)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout, result.stdout
    shots = sorted(p.name for p in SCREENSHOTS.glob("*.png"))
    assert len(shots) >= 6, shots
