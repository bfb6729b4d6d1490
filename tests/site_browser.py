"""A real browser for the site's tests: Debian's Chromium driven by Selenium through /usr/bin/chromedriver.

Nothing is downloaded: the driver's path is given explicitly and Selenium Manager runs offline (SE_OFFLINE), so a
missing browser is an error naming the packages (``apt-get install chromium chromium-driver``), never a skip.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--force-device-scale-factor=1")


def chromium_binary() -> str:
    """The installed Chromium; an error naming the Debian packages when there is none."""
    for path in CHROMIUM:
        if os.access(path, os.X_OK):
            return path
    raise RuntimeError("no Chromium: install Debian's browser and driver (apt-get install -y chromium chromium-driver)")


class Browser:
    """One headless Chromium (a fresh profile), its console log, screenshots at a given window size."""

    def __init__(self, width: int = 1280, height: int = 800):
        os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look anything up
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        if not os.access(CHROMEDRIVER, os.X_OK):
            raise RuntimeError(f"no {CHROMEDRIVER}: apt-get install -y chromium-driver")
        self.profile = tempfile.mkdtemp(prefix="site-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = chromium_binary()
        for flag in FLAGS + (f"--user-data-dir={self.profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(60)

    def open(self, url: str, ready: str = "#main > *:not(noscript)", timeout: float = 20.0):
        """Load ``url`` and wait until ``ready`` (a CSS selector) is on the page."""
        self.driver.get(url)
        return self.wait(ready, timeout)

    def wait(self, selector: str, timeout: float = 20.0):
        """The first element matching ``selector``, waiting for it to appear."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, selector)))

    def run(self, script: str, *args):
        """The value of a JavaScript function body on the page."""
        return self.driver.execute_script(script, *args)

    def console(self) -> list[dict]:
        """The browser console's entries since the last call."""
        return self.driver.get_log("browser")

    def errors(self) -> list[str]:
        """The console's errors (SEVERE) since the last call."""
        return [entry["message"] for entry in self.console() if entry.get("level") == "SEVERE"]

    def resize(self, width: int, height: int) -> None:
        """Set the viewport to ``width`` x ``height`` CSS pixels (the window's outer size adjusted to match)."""
        self.driver.set_window_size(width, height)
        inner = self.run("return [window.innerWidth, window.innerHeight];")
        self.driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])

    def screenshot(self, path: Path, width: int, height: int) -> Path:
        """A screenshot of the viewport at ``width`` x ``height`` saved to ``path``."""
        self.resize(width, height)
        time.sleep(0.2)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path

    def full_page(self, path: Path, width: int) -> Path:
        """A screenshot of the whole page at viewport ``width`` (for reading a long page), saved to ``path``."""
        import base64

        self.resize(width, 800)
        height = int(self.run("return document.documentElement.scrollHeight;"))
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        """Quit the browser and remove its profile."""
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
