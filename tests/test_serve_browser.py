"""The workspace in a real browser: headless Chromium driven by Selenium (Debian's chromium-driver) against a real
`addendum serve`: log in with the one-time URL, watch the draft redline follow an edit on disk, commit and publish."""

from __future__ import annotations

import shutil
import tomllib
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests_support import POLICY_DIR, Served, git_in

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
WAIT = 20.0

pytestmark = pytest.mark.skipif(not Path(CHROMEDRIVER).exists(), reason="chromium-driver is not installed (scripts/check-system)")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}",
                     "--window-size=1200,1400"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def server(published_terms: Callable[[int], Path]) -> Iterator[tuple[Path, Served]]:
    root = published_terms(2)
    served = Served(root)
    yield root, served
    served.stop()


def console_errors(driver: object) -> list[dict[str, object]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]  # type: ignore[attr-defined]


def test_an_editor_logs_in_watches_the_draft_follow_an_edit_and_publishes(browser: object, server: tuple[Path, Served],
                                                                          tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    root, served = server
    driver: object = browser
    wait = WebDriverWait(driver, WAIT)  # type: ignore[arg-type]
    shots = tmp_path / "screenshots"
    shots.mkdir()

    def shot(name: str) -> None:
        assert driver.save_screenshot(str(shots / f"{name}.png"))  # type: ignore[attr-defined]

    assert served.login_url
    driver.get(served.login_url)  # type: ignore[attr-defined]
    wait.until(seen.presence_of_element_located((By.LINK_TEXT, "Terms")))
    shot("1-policies")
    driver.get(f"{served.base}/policies/terms/draft")  # type: ignore[attr-defined]
    wait.until(seen.frame_to_be_available_and_switch_to_it((By.ID, "redline")))
    wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "main.text-body")))
    assert "Write to" in driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
    driver.switch_to.default_content()  # type: ignore[attr-defined]
    shot("2-draft")

    for language, sentence in (("en", "Write to"), ("nl", "Schrijf naar")):
        path = root / POLICY_DIR / f"{language}.md"
        path.write_text(path.read_text(encoding="utf-8").replace(sentence, sentence + " our team at"), encoding="utf-8")

    def shows_the_edit(_: object) -> bool:
        try:
            driver.switch_to.default_content()  # type: ignore[attr-defined]
            driver.switch_to.frame("redline")  # type: ignore[attr-defined]
            inserted = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "ins.change")]  # type: ignore[attr-defined]
            return any("our team at" in text for text in inserted)
        except Exception:  # the page is reloading under us
            return False

    wait.until(shows_the_edit)  # no click: the server's change event reloaded the page
    driver.switch_to.default_content()  # type: ignore[attr-defined]
    assert "1 section changed" in driver.find_element(By.CLASS_NAME, "assessment").text  # type: ignore[attr-defined]
    shot("3-draft-after-edit")

    driver.get(f"{served.base}/policies/terms")  # type: ignore[attr-defined]
    driver.find_element(By.NAME, "message").send_keys("Contact wording")  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "form.commit button").click()  # type: ignore[attr-defined]
    wait.until(seen.text_to_be_present_in_element((By.CLASS_NAME, "notice"), "committed"))
    shot("4-committed")

    driver.get(f"{served.base}/policies/terms/publish")  # type: ignore[attr-defined]
    refusals = driver.find_element(By.ID, "refusals").text  # type: ignore[attr-defined]
    assert "a summary in en (the default language) is required" in refusals
    assert not driver.find_element(By.ID, "publish-button").is_enabled()  # type: ignore[attr-defined]
    shot("5-gates")
    effective = date.today() + timedelta(days=45)
    field = driver.find_element(By.NAME, "effective")  # type: ignore[attr-defined]
    driver.execute_script("arguments[0].value = arguments[1]", field, effective.isoformat())  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "input[value=material]").click()  # type: ignore[attr-defined]
    driver.find_element(By.NAME, "summary-en").send_keys("How to reach us.")  # type: ignore[attr-defined]
    driver.find_element(By.NAME, "summary-nl").send_keys("Hoe u ons bereikt.")  # type: ignore[attr-defined]
    driver.find_element(By.ID, "check-button").click()  # type: ignore[attr-defined]
    wait.until(seen.presence_of_element_located((By.ID, "ready")))
    shot("6-ready")
    driver.find_element(By.ID, "publish-button").click()  # type: ignore[attr-defined]
    wait.until(seen.text_to_be_present_in_element((By.CLASS_NAME, "notice"), f"published terms@{effective.isoformat()}"))
    shot("7-published")

    ledger = tomllib.loads((root / "history/terms/ledger.toml").read_text(encoding="utf-8"))["version"]
    assert ledger[-1]["id"] == f"terms@{effective.isoformat()}" and ledger[-1]["summary"]["nl"] == "Hoe u ons bereikt."
    assert git_in(root, "tag", "--list", ledger[-1]["id"]).strip() == ledger[-1]["id"]
    assert sorted(p.name for p in shots.iterdir()) == [f"{n}.png" for n in ("1-policies", "2-draft", "3-draft-after-edit",
                                                                         "4-committed", "5-gates", "6-ready", "7-published")]
    assert console_errors(driver) == []
