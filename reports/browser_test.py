"""The HTML reports in a real browser: Debian's chromium, headless, driven by playwright (no
browser download: executable_path=/usr/bin/chromium). Asserts what a person debugging drift sees:
the verdict, the table rows, the chart and heatmap elements, sorting and filtering, the baseline
panel, and that a token whose text is <script>alert(1)</script> renders as text. No page may touch
the network. Screenshots go to reports/out/screenshots/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import GOLDEN, HOSTILE, REPO
from helpers import run_parity as parity

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "reports" / "out" / "screenshots"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: ci/setup installs Debian's chromium (ci/apt-packages.txt)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: ci/setup installs it (requirements.txt)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A page that records dialogs and every request that is not a file. (The pages' CSP would block an
    injected script even if escaping failed, so the escaping itself is asserted on the rendered text.)"""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.dialogs, page.network = [], []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: page.network.append(r.url) if not r.url.startswith("file://") else None)
    yield page
    assert page.dialogs == [], "a script from the data ran"
    assert page.network == [], "a report reached for the network"
    context.close()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def column_values(page, table: str, column: int) -> list[float]:
    """A numeric column's values top to bottom; cells without a value (not applicable) must come last."""
    keys = page.eval_on_selector_all(f"#{table} tbody tr:not([hidden])",
                                     f"rows => rows.map(r => r.cells[{column}].getAttribute('data-v'))")
    values = [float(k) for k in keys if k]
    assert keys[len(values):] == [""] * (len(keys) - len(values)), "a value sorted after an empty cell"
    assert not any(v != v for v in values), "NaN in a golden report"
    return values


def test_the_index_shows_the_verdict_and_links_every_case(page, golden_reports):
    page.goto((golden_reports / "index.html").as_uri())
    assert page.locator("#verdict").get_attribute("data-verdict") == "pass"
    assert page.locator("#verdict").inner_text().startswith("PASS")
    cases = len(list((REPO / "cases").rglob("*.toml")))
    assert page.locator("#case-table tbody tr").count() == cases
    page.select_option("select[data-key='kind']", "logprobs")
    assert page.locator("#case-table tbody tr:not([hidden])").count() == len(list((REPO / "cases" / "logprobs").glob("*.toml")))
    page.select_option("select[data-key='kind']", "")
    screenshot(page, "index")
    page.click("a.case-link >> text=gemma4_full")
    assert page.url.endswith("/cases/gemma4_full.html")
    assert page.locator("h1").inner_text().endswith("golden/gemma4_full.h5")


def test_a_check_report_draws_its_chart_heatmaps_and_a_sortable_filterable_table(page, golden_reports):
    report = json.loads((golden_reports / "cases" / "gemma4_full.json").read_text())
    page.goto((golden_reports / "cases" / "gemma4_full.html").as_uri())
    assert page.locator("#verdict").inner_text().startswith("PASS")
    assert page.locator("#hook-table tbody tr").count() == len(report["hooks"])
    assert page.locator(".shown[data-table='hook-table']").inner_text() == f"{len(report['hooks'])} of {len(report['hooks'])} rows"
    chart = page.locator("#drift-chart")
    assert chart.is_visible()
    assert chart.locator("polyline.series.isolated").count() == 1 and chart.locator("polyline.series.chained").count() == 1
    assert chart.locator("polyline.budget").count() == 2
    plotted = [h for h in report["hooks"] if h["kind"] == "float" and "@in" not in h["hook"] and h["status"] != "skipped"]
    assert chart.locator("circle.point").count() == len(plotted)  # module outputs, both modes
    assert page.locator("svg.heatmap-isolated rect.cell").count() > 100
    assert page.locator("svg.heatmap-chained rect.cell").count() > 100
    assert page.locator("#first-divergence + .panel").inner_text().startswith("No hook is outside its budget.")
    assert page.locator("[data-baseline='pass']").count() == 1

    rel_l2 = page.locator("#hook-table th", has_text="rel_l2")
    rel_l2.click()
    ascending = column_values(page, "hook-table", 9)
    assert ascending == sorted(ascending) and rel_l2.get_attribute("aria-sort") == "ascending"
    rel_l2.click()
    descending = column_values(page, "hook-table", 9)
    assert descending == sorted(descending, reverse=True)
    worst = max(h["rel_l2"] for h in report["hooks"] if h["rel_l2"] is not None)
    assert descending[0] == pytest.approx(worst, rel=1e-12)

    page.fill("input.filter[data-table='hook-table']", "experts")
    visible = page.locator("#hook-table tbody tr:not([hidden]) td.hook").all_inner_texts()
    assert visible and all("experts" in hook for hook in visible)
    page.select_option("select[data-key='mode']", "chained")
    assert set(page.locator("#hook-table tbody tr:not([hidden]) td:nth-child(2)").all_inner_texts()) == {"chained"}
    page.select_option("select[data-key='status']", "fail")
    assert page.locator("#hook-table tbody tr:not([hidden])").count() == 0
    page.fill("input.filter[data-table='hook-table']", "")
    page.select_option("select[data-key='status']", "")
    page.select_option("select[data-key='mode']", "")
    screenshot(page, "check")


def test_a_failing_check_highlights_the_first_divergence(page, tmp_path):
    budget = tmp_path / "tight.toml"
    budget.write_text('[isolated]\ndefault = { rel_l2 = 1e-5 }\n[[isolated.rule]]\nhooks = "model.layers.1.mlp"\nrel_l2 = 1e-9\n')
    result = parity("check", GOLDEN / "olmoe_base.h5", "--budget", budget, "--html", tmp_path / "fail.html")
    assert result.returncode == 1
    page.goto((tmp_path / "fail.html").as_uri())
    assert page.locator("#verdict").get_attribute("data-verdict") == "fail"
    assert "first failure: model.layers.1.mlp (isolated)" in page.locator("#verdict").inner_text()
    row = page.locator("#first-divergence-row")
    assert row.locator("td.hook").inner_text() == "model.layers.1.mlp"
    assert page.locator(".panel.alert table.worst tbody tr").count() == 5  # the worst elements, both values
    assert page.locator("#drift-chart circle.point.fail").count() == 1
    assert page.locator("svg.heatmap-isolated rect.cell.fail").count() == 1
    screenshot(page, "check_failing")


def test_a_logprob_report_moved_from_its_baseline_shows_the_band(page, tmp_path):
    baseline = json.loads((GOLDEN / "baselines" / "logprobs" / "gemma4_full_fp32_vs_bf16.json").read_text())
    for value in baseline["values"]:
        if value["metric"] == "ess_seq_mean":
            value["value"] *= 1.05  # as if the accepted ESS had been higher: this run's dropped
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(baseline))
    case = REPO / "cases" / "logprobs" / "gemma4_full_fp32_vs_bf16.toml"
    result = parity("logprobs", "--case", case, "--baseline", moved, "--html", tmp_path / "lp.html")
    assert result.returncode == 1
    page.goto((tmp_path / "lp.html").as_uri())
    assert page.locator("#verdict").get_attribute("data-verdict") == "fail"
    assert page.locator("[data-baseline='fail']").count() == 1
    rows = page.locator("#baseline-outside tbody tr")
    assert rows.count() == 1
    assert rows.locator("td").nth(2).inner_text() == "ess_seq_mean" and rows.get_attribute("data-drift") == "dropped"
    assert page.locator("#catastrophic-table tbody tr").count() == 2
    assert page.locator("#metric-table tbody tr").count() == 30
    screenshot(page, "logprobs")


def test_a_hostile_token_renders_as_text(page, hostile_logprobs):
    page.goto((hostile_logprobs / "hostile.html").as_uri())
    assert page.locator("script").count() == 1  # the report's own
    token = page.locator("#catastrophic-table tbody tr").first.locator("td").nth(3)
    assert token.inner_text() == HOSTILE
    assert page.locator("#catastrophic-table mark.tok").inner_text() == HOSTILE
    assert '" onmouseover="alert(2)' in page.locator("#catastrophic-table tbody tr").first.inner_text()
    page.hover("#catastrophic-table .ctx")  # an injected handler would fire here
    screenshot(page, "hostile_token")
