"""Debian's headless Chromium driven by Selenium through /usr/bin/chromedriver: nothing is
downloaded, nothing leaves loopback. Screenshots go to ``artifacts/browser/`` (gitignored).

``browser()`` skips a test where chromium or its driver is missing (fails under CI,
``services.missing``); ``tests/tools/system-deps.sh`` installs both.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

from tests.support.services import missing

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver
from tests.support.worker_helpers import ROOT

CHROMIUM: Final = "/usr/bin/chromium"
DRIVER: Final = "/usr/bin/chromedriver"
ARTIFACTS: Final = ROOT / "artifacts" / "browser"
FLAGS: Final = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage")  # fmt: skip
DESKTOP: Final = (1280, 900)
PHONE: Final = (390, 844)


@contextmanager
def browser(width: int = DESKTOP[0], height: int = DESKTOP[1]) -> Iterator[WebDriver]:
    """A fresh headless Chromium (own profile directory), quit afterwards."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        missing("chromium and chromium-driver (apt-get install chromium chromium-driver)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="lw-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: WebDriver, name: str) -> Path:
    """Save the whole page as ``artifacts/browser/NAME.png`` (the window's width)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, max(300, min(int(height) + 120, 4000)))
    driver.save_screenshot(str(path))
    return path
