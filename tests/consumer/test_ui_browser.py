"""The platform UI in a real browser: Debian's chromium driven by Playwright over a real `rdbridge ui` process,
on a library synced from a real `rdbridge serve`. Screenshots go to the test's tmp dir."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from consumer.conftest import TOKEN, Producer
from consumer.registry_setup import SCRIPT_NAME
from consumer.servers import Proc, start_ui
from rdbridge.consumer.sync import sync

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@dataclass
class Ui:
    proc: Proc
    shots: Path
    db: str

    @property
    def url(self) -> str:
        return self.proc.url


@pytest.fixture(scope="module")
def ui(producer: Producer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ui]:
    home = tmp_path_factory.mktemp("platform")
    db = f"sqlite:///{home / 'platform.sqlite'}"
    report = sync(producer.url, db, token=TOKEN)
    assert report.ok, report.issues
    proc = start_ui(home, db)
    try:
        yield Ui(proc=proc, shots=home / "screenshots", db=db)
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = ctx.new_page()
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    yield pg
    ctx.close()
    assert dialogs == [], f"a script ran in the page: {dialogs}"


def test_search_filter_source_tag_reload(ui: Ui, page: Page) -> None:
    page.goto(f"{ui.url}/factors")
    expect(page.locator("h1")).to_contain_text("Factors")
    rows = page.locator("#factor-table tbody tr")
    assert rows.count() == 50  # first page of Alpha158 + RD-Agent factors
    page.select_option("select[name=source]", "rdagent")
    page.fill("input[name=q]", "volume")
    page.click("button:has-text('Apply')")
    expect(page).to_have_url(re.compile(r"source=rdagent.*q=volume|q=volume.*source=rdagent"))  # bookmarkable
    page.wait_for_load_state()  # the filtered page, not the one it replaces
    texts = rows.all_inner_texts()
    assert texts and all("volume" in t.lower() for t in texts)  # name or description matches
    assert all(s == "rdagent" for s in page.locator("#factor-table .src").all_inner_texts())
    ui.shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ui.shots / "factors_filtered.png"), full_page=True)
    page.locator("#factor-table td.name a").first.click()
    expect(page.locator(".source .hl")).to_be_visible()  # highlighted source of the exact implementation
    assert "def " in page.locator(".source").inner_text()
    name = page.locator("h1.factor-name").inner_text()
    page.fill("input[name=value][maxlength='64']", "shortlist")
    page.click("button:has-text('Add tag')")
    # each form posts and redirects back: wait for the page it lands on before the next step (a reload while
    # that navigation was in flight failed once in CI with "Not attached to an active page")
    expect(page.locator("#user-tags .tag")).to_have_text(["shortlist"])
    page.select_option("select[name=value]", "candidate")
    page.click("button:has-text('Set mark')")
    expect(page.locator("#user-mark")).to_have_text("candidate")
    page.reload()  # stored, not only shown
    expect(page.locator("#user-tags .tag")).to_have_text(["shortlist"])
    expect(page.locator("#user-mark")).to_have_text("candidate")
    page.screenshot(path=str(ui.shots / "factor_tagged.png"), full_page=True)
    page.goto(f"{ui.url}/factors?tag=shortlist")
    assert page.locator("#factor-table td.name a").all_inner_texts() == [name]


def test_loop_page_shows_hypothesis_feedback_and_both_charts(ui: Ui, page: Page, producer: Producer) -> None:
    page.goto(f"{ui.url}/experiments")
    expect(page.locator(".mat-failed")).to_have_count(1)  # the failed materialization is listed, with its error
    expect(page.locator(".err").first).to_contain_text("chart rendering failed")
    run, loop = producer.done[0].rsplit("/", 1)
    page.goto(f"{ui.url}/experiments/{quote(run, safe='')}/{loop}")
    assert page.locator("#hypothesis").inner_text().strip()
    charts = page.locator("img.chart")
    expect(charts).to_have_count(2)
    for i in range(2):
        charts.nth(i).scroll_into_view_if_needed()
        assert charts.nth(i).evaluate("img => img.complete && img.naturalWidth > 100")
    page.screenshot(path=str(ui.shots / "loop.png"), full_page=True)


def test_script_named_factor_renders_as_text(ui: Ui, page: Page) -> None:
    page.goto(f"{ui.url}/factors?q={quote('<script>')}")
    link = page.locator("#factor-table td.name a")
    expect(link).to_have_text([SCRIPT_NAME])
    link.click()
    expect(page.locator("h1.factor-name")).to_have_text(SCRIPT_NAME)
    assert page.locator("main script").count() == 0
    html = httpx.get(page.url).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    page.screenshot(path=str(ui.shots / "script_factor.png"), full_page=True)


def test_forms_need_the_csrf_token(ui: Ui) -> None:
    with httpx.Client(base_url=ui.url) as c:
        c.get("/factors")  # gets the cookie
        form = {"kind": "factor", "key": "KMID", "action": "tag", "value": "x"}
        assert c.post("/annotate", data=form).status_code == 403
        assert c.post("/annotate", data={**form, "csrf_token": "guess"}).status_code == 403
        token = c.cookies.get("rdbridge_csrf")
        cross = c.post("/annotate", data={**form, "csrf_token": token}, headers={"Origin": "http://evil.example"})
        assert cross.status_code == 403
        ok = c.post("/annotate", data={**form, "csrf_token": token})
        assert ok.status_code == 303 and ok.headers["location"] == "/factors/KMID"


@pytest.mark.parametrize("path", ["/alpha158", "/strategies", "/models", "/experiments", "/factors?page=2",
                                  "/factors?sort=source&desc=true"])
def test_every_page_renders_without_javascript(ui: Ui, path: str) -> None:
    r = httpx.get(ui.url + path)
    assert r.status_code == 200 and "<script" not in r.text.lower()
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_alpha158_page_lists_all(ui: Ui) -> None:
    r = httpx.get(ui.url + "/alpha158")
    assert r.text.count('href="/factors/') == 158


def test_files_are_served_by_id_only(ui: Ui, producer: Producer) -> None:
    run, loop = producer.done[0].rsplit("/", 1)
    base = f"{ui.url}/experiments/{quote(run, safe='')}/{loop}/files"
    assert httpx.get(f"{base}/999999").status_code == 404
    assert httpx.get(f"{base}/..%2F..%2Fplatform.sqlite").status_code in (404, 422)


def test_metric_range_filter_and_sort(ui: Ui) -> None:
    from rdbridge.consumer import library as lib
    from rdbridge.consumer.db import init_platform_db, session_scope

    engine = init_platform_db(ui.db)
    with session_scope(engine, write=False) as s:
        everything = lib.list_factors(s, per_page=1000).rows
        ic = {f.name: f.best_metrics["IC"] for f in everything if f.best_metrics and "IC" in f.best_metrics}
        got = lib.list_factors(s, metric="IC", metric_min=0.03, sort="metric", desc=True, per_page=1000).rows
    engine.dispose()
    assert len(ic) >= 2
    expected = sorted((n for n, v in ic.items() if v >= 0.03), key=lambda n: -ic[n])
    assert [f.name for f in got] == expected
    page = httpx.get(ui.url + "/factors", params={"metric": "IC", "min": "0.03", "sort": "metric", "desc": "true"})
    shown = [line.split('">', 1)[1].split("<", 1)[0] for line in page.text.splitlines() if 'td class="name"' in line]
    assert len(shown) == len(expected)
    assert httpx.get(ui.url + "/factors", params={"metric": "IC", "min": "abc"}).status_code == 400
