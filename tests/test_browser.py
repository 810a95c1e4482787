"""`recapture serve` driven by a real headless Chromium (Debian's chromium + chromedriver, via Selenium).

Skipped locally when the browser is missing (scripts/install_browser.sh installs it); in CI (``CI`` set)
a missing browser fails instead, so these tests cannot be skipped silently there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from io import BytesIO
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from test_app import save_tiny_model, write_pose_file

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1800")
WAIT_S = 40


def _require(what: str) -> None:
    message = f"browser tests need {what} (run scripts/install_browser.sh; pip install selenium)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(message + ": CI must run them")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of `recapture serve` with the tiny model and one pose file, in a subprocess."""
    root = tmp_path_factory.mktemp("serve")
    model = save_tiny_model(root / "tiny.safetensors")
    poses, _ = write_pose_file(root / "poses-test.csv")
    port = _free_port()
    env = {**os.environ, "GRADIO_TEMP_DIR": str(root / "uploads"), "OMP_NUM_THREADS": "1"}
    log = (root / "serve.log").open("w")
    command = [sys.executable, "-m", "recapture", "serve", "--model", str(model), "--port", str(port),
               "--pose-file", str(poses)]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"recapture serve exited ({process.returncode}):\n{(root / 'serve.log').read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"recapture serve did not answer:\n{(root / 'serve.log').read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        _require("Debian's chromium and chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _require("selenium")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _wait(driver: object, condition: object, what: str) -> object:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(condition, message=f"timed out waiting for {what}")


def _open(driver: object, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#generate"), "the page")


def _image(driver: object, elem_id: str) -> Image.Image:
    """Wait for the image shown in component ``elem_id`` and download it as the page does."""
    from selenium.webdriver.common.by import By

    found = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"#{elem_id} img"), elem_id)
    with urllib.request.urlopen(found[0].get_attribute("src"), timeout=10) as reply:
        return Image.open(BytesIO(reply.read()))


def _toasts(driver: object) -> list[str]:
    from selenium.webdriver.common.by import By

    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, "[data-testid=toast-text]")]


def test_generate_from_a_sample(browser: object, server: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = browser
    _open(driver, server)
    driver.find_element(By.CSS_SELECTOR, "#sample input").click()
    options = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#sample li[role=option]"), "samples")
    options[1].click()
    source = _image(driver, "source-image")
    assert source.size[1] % 32 == 0 and source.size[0] * 32 == source.size[1] * 24
    factor = driver.find_element(By.CSS_SELECTOR, "#figure-arms input[type=number]")
    factor.clear()
    factor.send_keys("1.3", Keys.TAB)
    driver.find_element(By.XPATH, "//*[@id='clothing-lower']//label[.//span[text()='skirt']]").click()
    driver.find_element(By.ID, "generate").click()
    result = _image(driver, "result-image")
    assert result.size == source.size and np.asarray(result.convert("RGB")).std() > 0
    status = _wait(driver, lambda d: d.find_element(By.ID, "status").text, "the status line")
    assert "Generated" in status and "arms=1.3" in status and "lower=skirt" in status
    link = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#download a[href]"), "the download link")
    with urllib.request.urlopen(link[0].get_attribute("href"), timeout=10) as reply:
        assert Image.open(BytesIO(reply.read())).size == (24, 32)  # the model-resolution PNG
    driver.find_element(By.CSS_SELECTOR, "#result-image img").click()
    attention = _image(driver, "attention")
    assert attention.size == (2 * result.size[0], result.size[1])  # clicked pixel | attention over the source
    driver.save_screenshot(str(tmp_path / "editor.png"))
    assert (tmp_path / "editor.png").stat().st_size > 10_000
    assert not _toasts(driver)


def test_bad_uploads_show_clean_errors(browser: object, server: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    cases = {
        "notes.png": (b"this is not an image", "not an image"),
        "huge.png": (b"\x89PNG" + bytes(11 * 1024 * 1024), "maximum allowed size"),
        "wide.png": (None, "at most 4096x4096"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content is None:
            Image.new("L", (5000, 64)).save(path)
        else:
            path.write_bytes(content)
        _open(driver, server)
        driver.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(path))
        toasts = _wait(driver, lambda d: [t for t in _toasts(d) if message in t], f"the error for {name}")
        assert "Traceback" not in driver.find_element(By.TAG_NAME, "body").text, toasts
        assert not driver.find_elements(By.CSS_SELECTOR, "#source-image img")
