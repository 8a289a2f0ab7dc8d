"""`--html` and `parity report` (reports/html_*.cpp, harness/cli_report.cpp): the page written by a
command equals the one rendered later from its saved JSON, pages are self-contained, strings from
fixtures and tokenizers are escaped, and bad input is one line and exit 2."""

from __future__ import annotations

import json
import re

import pytest

from helpers import GOLDEN, HOSTILE, REPO
from helpers import run_parity as parity


def without_nonce(html: str) -> str:
    return re.sub(r"nonce-?=?\"?'?[0-9a-f]{24}", "NONCE", html)


@pytest.mark.parametrize("command", [
    ["check", "--case", REPO / "cases" / "olmoe_base.toml"],
    ["logprobs", "--case", REPO / "cases" / "logprobs" / "gemma4_full_fp32_vs_bf16.toml"],
])
def test_html_from_the_command_equals_html_from_its_saved_json(tmp_path, command):
    result = parity(*command, "--json", tmp_path / "r.json", "--html", tmp_path / "direct.html")
    assert result.returncode == 0, result.stdout[-2000:]
    rendered = parity("report", tmp_path / "r.json", "-o", tmp_path / "later.html")
    assert rendered.returncode == 0 and rendered.stdout == f"wrote {tmp_path / 'later.html'}\n"
    assert without_nonce((tmp_path / "direct.html").read_text()) == without_nonce((tmp_path / "later.html").read_text())


def test_a_summary_renders_as_the_index(tmp_path, golden_reports):
    result = parity("report", golden_reports / "summary.json", "-o", tmp_path / "index.html")
    assert result.returncode == 0
    assert without_nonce((tmp_path / "index.html").read_text()) == without_nonce((golden_reports / "index.html").read_text())


def test_every_page_is_self_contained(golden_reports):
    pages = sorted(golden_reports.rglob("*.html"))
    assert len(pages) == len(list((REPO / "cases").rglob("*.toml"))) + 1
    for page in pages:
        html = page.read_text()
        assert "default-src 'none'" in html, page
        assert not re.search(r"(src|href)=\"(https?:)?//", html), page
        assert html.count("<script") == 1, page


def test_hostile_token_and_source_texts_are_escaped(hostile_logprobs):
    html = (hostile_logprobs / "hostile.html").read_text()
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '" onmouseover' not in html and "&quot; onmouseover=&quot;alert(2)" in html
    assert "trainer &lt;b&gt;" in html


def test_the_check_page_carries_every_section(golden_reports):
    html = (golden_reports / "cases" / "gemma4_full.html").read_text()
    report = json.loads((golden_reports / "cases" / "gemma4_full.json").read_text())
    assert html.count("<tr class=\"pass\" data-status=\"pass\"") == len(report["hooks"])
    for marker in ('id="verdict"', 'id="drift-chart"', 'class="heatmap-isolated"', 'class="heatmap-chained"',
                   'id="first-divergence"', 'data-baseline="pass"', 'id="hook-table"'):
        assert marker in html, marker


@pytest.mark.parametrize("content, expected", [
    ("{", "not JSON"),
    ('{"schema": "parity-check/1", "verdict": "pass"}', "not a valid parity-check/1 result"),
    ('{"schema": "something-else"}', 'schema "something-else" is not a parity result'),
    ("[1, 2]", 'schema "" is not a parity result'),
])
def test_bad_results_are_one_line_and_exit_2(tmp_path, content, expected):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = parity("report", bad, "-o", tmp_path / "out.html")
    assert result.returncode == 2
    assert result.stderr.startswith(f"parity: error: [report {bad}] ") and result.stderr.count("\n") == 1
    assert expected in result.stderr
    assert not (tmp_path / "out.html").exists()  # no half page


def test_report_usage_errors_are_exit_2(tmp_path):
    assert parity("report", GOLDEN / "baselines" / "olmoe_base.json").returncode == 2  # -o is required
    result = parity("report", tmp_path / "absent.json", "-o", tmp_path / "x.html")
    assert result.returncode == 2 and "cannot open the file" in result.stderr
