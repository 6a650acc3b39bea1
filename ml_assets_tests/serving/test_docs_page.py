"""The API documentation renders without internet access: /docs in headless Chromium (Debian's,
through Playwright) loads only what the service serves itself and shows every operation."""

import os
from pathlib import Path

import pytest

from ml_assets.serving.app import create_app
from ml_assets_tests.serving.conftest import served

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install -y chromium)")
def test_the_docs_page_renders_from_the_service_alone(make_service, tmp_path):
    from playwright.sync_api import sync_playwright

    screenshot = Path(os.environ.get("ML_ASSETS_DOCS_SCREENSHOT", tmp_path / "docs.png"))
    with served(create_app(make_service())) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 1400},
        )  # fmt: skip
        page = browser.new_page()
        requested, failed = [], []
        page.on("request", lambda request: requested.append(request.url))
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.goto(f"{base}/docs", wait_until="networkidle")
        page.wait_for_selector(".swagger-ui .information-container .title", timeout=20_000)
        title = page.inner_text(".swagger-ui .information-container .title")
        operations = page.locator(".opblock-summary-path").all_inner_texts()
        page.screenshot(path=str(screenshot), full_page=False)
        browser.close()

    assert "ml_assets flight disruption service" in title
    assert {"/v1/predict", "/v1/events", "/v2/models/{model_name}/infer", "/v2/health/ready"} <= {
        o.replace("\u200b", "") for o in operations
    }  # fmt: skip
    assert requested and all(url.startswith(base) for url in requested), requested
    assert f"{base}/openapi.json" in requested and not failed
    assert screenshot.stat().st_size > 20_000
