"""``graphrec serve`` in a real browser: Debian's chromium, headless, driven by selenium.

Opens the catalogue page, searches, opens a product, clicks one of its recommendations,
filters by category, and checks that every image on the way really loaded
(``naturalWidth > 0``), on a desktop-sized and a phone-sized window. Skipped, saying why,
only where chromium or chromium-driver is not installed (``.ci/run`` installs them).

``GRAPHREC_SCREENSHOTS=DIR`` also saves the screenshots there (docs/images/ was made so,
see docs/serve.md).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from test_serve import live_server, serve_run  # noqa: F401  (session fixtures shared with the API tests)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="the browser test needs Debian's chromium and chromium-driver packages (apt-get install chromium chromium-driver)",
)
WINDOWS = {"desktop": (1280, 900), "phone": (390, 844)}


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d))


def _images_loaded(driver, selector: str) -> int:
    """Scroll the images of ``selector`` into view (they load lazily), wait until each has
    finished, and return how many there are; every one must have real pixels."""
    count = driver.execute_script(f"return document.querySelectorAll({selector!r}).length")
    driver.execute_script(f"for (const i of document.querySelectorAll({selector!r})) i.loading = 'eager';")
    _wait(driver, lambda d: d.execute_script(f"return [...document.querySelectorAll({selector!r})].every(i => i.complete)"))
    widths = driver.execute_script(f"return [...document.querySelectorAll({selector!r})].map(i => i.naturalWidth)")
    assert widths and all(width > 0 for width in widths), widths
    return count


def _shot(driver, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"serve-{name}.png"
    driver.execute_script("window.scrollTo(0, 0)")
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 10_000
    if os.environ.get("GRAPHREC_SCREENSHOTS"):
        target = Path(os.environ["GRAPHREC_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)


@pytest.mark.parametrize("window", list(WINDOWS))
def test_search_open_a_product_and_follow_a_recommendation(browser, live_server, window, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.set_window_size(*WINDOWS[window])
    browser.get(live_server + "/")
    assert _images_loaded(browser, ".card img") >= 20
    _shot(browser, tmp_path, f"home-{window}")

    first_title = browser.find_element(By.CSS_SELECTOR, ".card .title").text
    word = first_title.split()[0]
    box = browser.find_element(By.CSS_SELECTOR, "input[name=q]")
    box.clear()
    box.send_keys(word[:4])
    box.submit()
    _wait(browser, lambda d: "q=" in d.current_url)
    results = browser.find_elements(By.CSS_SELECTOR, ".card")
    assert results and all(word[:4].lower() in card.text.lower() for card in results)

    results[0].click()
    _wait(browser, lambda d: "/products/" in d.current_url)
    product = urlparse(browser.current_url).path.rsplit("/", 1)[-1]
    assert _images_loaded(browser, ".hero img, .card img") >= 11  # the product and its ten recommendations
    _shot(browser, tmp_path, f"product-{window}")

    recommended = browser.find_elements(By.CSS_SELECTOR, ".recs .card")
    target = recommended[1].get_attribute("data-asin")
    browser.execute_script("arguments[0].scrollIntoView()", recommended[1])
    recommended[1].click()
    _wait(browser, lambda d: d.current_url.endswith(f"/products/{target}"))
    assert target != product and f"ASIN {target}" in browser.find_element(By.CSS_SELECTOR, ".details").text
    _images_loaded(browser, ".hero img, .card img")

    choice = Select(browser.find_element(By.CSS_SELECTOR, "select[name=category]"))
    women = next(o for o in choice.options if o.get_attribute("value") == "Clothing, Shoes & Jewelry|Women")
    choice.select_by_value(women.get_attribute("value"))  # the page's script applies the filter at once
    _wait(browser, lambda d: "category=" in d.current_url)
    assert parse_qs(urlparse(browser.current_url).query)["category"] == ["Clothing, Shoes & Jewelry|Women"]
    _images_loaded(browser, ".hero img, .card img")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= WINDOWS[window][0]  # nothing sticks out sideways, even on a phone


def test_a_friendly_page_for_an_unknown_product(browser, live_server):  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.set_window_size(*WINDOWS["desktop"])
    browser.get(live_server + "/products/B00NOSUCH1")
    text = browser.find_element(By.CSS_SELECTOR, "main").text
    assert "Not found" in text and "B00NOSUCH1" in text
    browser.find_element(By.LINK_TEXT, "Back to the catalogue").click()
    _wait(browser, lambda d: urlparse(d.current_url).path == "/")
