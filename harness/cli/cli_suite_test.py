"""End-to-end tests of multi-case runs (cli_suite.cpp): `parity check DIR --out OUT` runs every
case (check and logprob cases), writes each case's reports, one index page, one JSON summary and one
JUnit file, keeps going past a case that cannot run, and exits with the worst verdict."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers import PARITY, REPO


def parity(*args) -> subprocess.CompletedProcess:
    if not PARITY.exists():
        pytest.fail(f"{PARITY} is missing: run ci/setup first")
    return subprocess.run([str(PARITY), *map(str, args)], capture_output=True, text=True, timeout=600)


def copy_case(src: Path, dst: Path) -> None:
    """A case file moved elsewhere: its relative paths rewritten to absolute ones."""
    text = src.read_text()
    for key in ("fixture", "baseline", "run", "train", "rollout", "tokenizer"):
        prefix = f'{key} = "'
        for line in text.splitlines():
            if line.startswith(prefix) and not line.startswith(f'{prefix}reference"'):
                relative = line[len(prefix):-1]
                text = text.replace(line, f'{prefix}{(src.parent / relative).resolve()}"')
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text)


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    """A passing check case, a passing logprob case, a failing case and one that cannot run."""
    cases = tmp_path_factory.mktemp("cases")
    copy_case(REPO / "cases" / "olmoe_base.toml", cases / "olmoe_base.toml")
    copy_case(REPO / "cases" / "logprobs" / "olmoe_base_fp32_vs_bf16.toml", cases / "logprobs" / "olmoe_fp32_vs_bf16.toml")
    tight = (cases / "olmoe_base.toml").read_text() + "\n[isolated]\ndefault = { rel_l2 = 1e-9 }\n"
    (cases / "olmoe_tight.toml").write_text(tight)
    (cases / "broken.toml").write_text('fixture = "missing.h5"\nmodes = ["isolated"]\n[isolated]\ndefault = { rel_l2 = 1e-5 }\n')
    (cases / "README.md").write_text("not a case")
    out = tmp_path_factory.mktemp("out")
    return cases, out, parity("check", cases, "--out", out)


def test_the_exit_status_is_the_worst_verdict_and_every_case_ran(mixed_run):
    cases, out, result = mixed_run
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:4]] == ["ERROR", "PASS", "PASS", "FAIL"]
    assert [line.split()[2] for line in lines[:4]] == ["broken", "logprobs/olmoe_fp32_vs_bf16", "olmoe_base", "olmoe_tight"]
    assert "missing.h5" in lines[0]
    assert lines[-2] == "verdict: error (4 cases: 2 passed, 1 failed, 1 could not run)"
    assert lines[-1] == f"index: {out / 'index.html'}"


def test_the_summary_lists_every_case_with_its_reports(mixed_run):
    _, out, _ = mixed_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "parity-summary/1" and summary["verdict"] == "error" and summary["exit_code"] == 2
    by_name = {c["name"]: c for c in summary["cases"]}
    assert by_name["olmoe_base"]["verdict"] == "pass" and by_name["olmoe_base"]["baseline"] == "pass"
    assert by_name["logprobs/olmoe_fp32_vs_bf16"]["kind"] == "logprobs"
    assert by_name["olmoe_tight"]["verdict"] == "fail" and by_name["olmoe_tight"]["first_failure"].startswith("isolated ")
    assert by_name["broken"]["error"] and by_name["broken"]["reports"] == {"text": "cases/broken.txt"}
    for case in summary["cases"]:
        for path in case["reports"].values():
            assert (out / path).is_file(), path
    report = json.loads((out / "cases" / "olmoe_base.json").read_text())
    assert report["schema"] == "parity-check/1" and report["verdict"] == "pass"


def test_one_junit_file_carries_every_case(mixed_run):
    _, out, _ = mixed_run
    root = ET.parse(out / "junit.xml").getroot()
    suites = [s.get("name") for s in root.findall("testsuite")]
    assert "case broken" in suites
    assert any(name.startswith("logprobs ") for name in suites)
    assert any(name.startswith("baseline ") for name in suites)
    assert root.find("testsuite[@name='case broken']/testcase/error") is not None
    assert root.findall(".//failure")  # the tight case's hooks


def test_the_index_links_every_case_report(mixed_run):
    _, out, _ = mixed_run
    index = (out / "index.html").read_text()
    for href in ("./cases/olmoe_base.html", "./cases/logprobs/olmoe_fp32_vs_bf16.html", "./cases/olmoe_tight.html",
                 "./cases/broken.txt", "./junit.xml"):
        assert f'href="{href}"' in index
    assert 'data-verdict="error"' in index


def test_the_golden_cases_all_pass(tmp_path):
    result = parity("check", REPO / "cases", "--out", tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["cases"]) == len(list((REPO / "cases").rglob("*.toml")))
    # Every case but the bug zoo's names a baseline (a zoo case pins where its gate fails, not how much).
    assert all(c["baseline"] == "pass" for c in summary["cases"] if not c["name"].startswith("zoo/"))
    assert {c["baseline"] for c in summary["cases"] if c["name"].startswith("zoo/")} == {None}


@pytest.mark.parametrize("args, expected", [
    (["cases", "--json", "x.json"], "--json applies to one fixture or case, not to a directory of cases"),
    (["cases", "--baseline", "b.json"], "--baseline applies to one fixture or case"),
    (["cases"], "needs --out DIR for its reports"),
    (["golden/olmoe_base.h5", "--out", "x"], "--out and --write-baselines take a directory of cases"),
])
def test_directory_usage_errors_are_exit_2(args, expected):
    result = subprocess.run([str(PARITY), "check", *args], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 2
    assert expected in result.stderr and result.stderr.count("\n") == 1


def test_a_directory_without_cases_is_exit_2(tmp_path):
    result = parity("check", tmp_path, "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "holds no case files" in result.stderr


def test_an_earlier_index_does_not_survive_a_run_that_stops_early(tmp_path, mixed_run):
    _, out, _ = mixed_run
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    assert (copy / "index.html").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = parity("check", empty, "--out", copy)
    assert result.returncode == 2
    assert not any((copy / name).exists() for name in ("index.html", "summary.json", "junit.xml"))


def test_a_case_whose_reports_cannot_be_written_is_an_error_and_the_others_run(tmp_path):
    cases = tmp_path / "cases"
    copy_case(REPO / "cases" / "olmoe_base.toml", cases / "index.toml")  # no clash with the run's own index
    copy_case(REPO / "cases" / "olmoe_norm_topk.toml", cases / "norm_topk.toml")
    out = tmp_path / "out"
    (out / "cases" / "norm_topk.html").mkdir(parents=True)  # a (non-empty) directory where its report goes
    (out / "cases" / "norm_topk.html" / "keep").write_text("")
    result = parity("check", cases, "--out", out)
    assert result.returncode == 2
    summary = json.loads((out / "summary.json").read_text())
    by_name = {c["name"]: c for c in summary["cases"]}
    assert by_name["index"]["verdict"] == "pass" and (out / "cases" / "index.html").is_file()
    assert by_name["norm_topk"]["verdict"] == "error" and "norm_topk.html" in by_name["norm_topk"]["error"]
    assert not (out / "cases" / "norm_topk.json").exists()  # no partial report beside the error
