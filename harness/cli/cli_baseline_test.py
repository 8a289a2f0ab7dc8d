"""End-to-end tests of regression baselines (baseline.cpp, cli_check.cpp, cli_logprobs.cpp): a
planted regression in a real fixture is flagged whether its error grew or dropped, only a passing
run is accepted as a baseline, and a baseline of the wrong kind or a broken file fails closed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import h5py
import pytest

from helpers import GOLDEN, PARITY, REPO

PLANTED_HOOK = "model.layers.1.mlp"


def parity(*args) -> subprocess.CompletedProcess:
    if not PARITY.exists():
        pytest.fail(f"{PARITY} is missing: run ci/setup first")
    return subprocess.run([str(PARITY), *map(str, args)], capture_output=True, text=True, timeout=300)


def olmoe_case(tmp_path: Path, fixture: Path, baseline: Path, name: str) -> Path:
    """cases/olmoe_base.toml (its budgets and [bands]) with another fixture and baseline."""
    text = (REPO / "cases" / "olmoe_base.toml").read_text()
    text = text.replace('fixture = "../golden/olmoe_base.h5"', f'fixture = "{fixture}"')
    text = text.replace('baseline = "../golden/baselines/olmoe_base.json"', f'baseline = "{baseline}"')
    assert str(fixture) in text and str(baseline) in text
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def outside_band(report: dict) -> dict[tuple[str, str, str], str]:
    return {(e["mode"], e["hook"], e["metric"]): e["drift"] for e in report["baseline"]["entries"]
            if e["drift"] != "within"}


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """golden/olmoe_base.h5 with HF's output of one MLP scaled by 1 + 2e-6: its rel_l2 grows about
    tenfold (3e-7 -> 2e-6), still far inside the 1e-5 budget. Only a baseline can see it."""
    path = tmp_path_factory.mktemp("planted") / "olmoe_base_planted.h5"
    shutil.copy(GOLDEN / "olmoe_base.h5", path)
    with h5py.File(path, "r+") as f:
        f[f"hooks/{PLANTED_HOOK}"][...] = f[f"hooks/{PLANTED_HOOK}"][...] * (1 + 2e-6)
    return path


def test_the_golden_case_is_within_its_committed_baseline(tmp_path):
    result = parity("check", "--case", REPO / "cases" / "olmoe_base.toml", "--json", tmp_path / "r.json")
    assert result.returncode == 0, result.stdout[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    counts = report["baseline"]["counts"]
    assert counts["within"] == len(report["baseline"]["entries"]) > 0
    assert "PASS baseline" in result.stdout


def test_a_planted_regression_inside_the_budget_is_flagged_when_its_error_grows(tmp_path, planted):
    case = olmoe_case(tmp_path, planted, GOLDEN / "baselines" / "olmoe_base.json", "grew")
    result = parity("check", "--case", case, "--json", tmp_path / "r.json")
    assert result.returncode == 1, result.stdout[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert all(run["verdict"] == "pass" for run in report["runs"])  # every hook inside its budget
    flagged = outside_band(report)
    assert {hook for _, hook, _ in flagged} == {PLANTED_HOOK}
    assert flagged[("isolated", PLANTED_HOOK, "rel_l2")] == "grew"
    assert flagged[("chained", PLANTED_HOOK, "rel_l2")] == "grew"
    assert report["verdict"] == "fail"
    assert f"isolated {PLANTED_HOOK} rel_l2" in result.stdout and "grew" in result.stdout


def test_a_planted_regression_is_flagged_when_its_error_drops(tmp_path, planted):
    """The planted run accepted as the baseline, the clean fixture then measured against it: the
    MLP's error suddenly drops by 10x, which is as suspicious as a growth."""
    accepted = tmp_path / "planted_baseline.json"
    case = olmoe_case(tmp_path, planted, GOLDEN / "baselines" / "olmoe_base.json", "accept")
    # Accepted although the run is outside the committed baseline (exit 1): accepting means the
    # budgets pass; moving away from the old baseline is the point of accepting a new one.
    assert parity("check", "--case", case, "--write-baseline", accepted).returncode == 1
    assert accepted.exists()
    clean = olmoe_case(tmp_path, GOLDEN / "olmoe_base.h5", accepted, "dropped")
    result = parity("check", "--case", clean, "--json", tmp_path / "r.json")
    assert result.returncode == 1, result.stdout[-2000:]
    flagged = outside_band(json.loads((tmp_path / "r.json").read_text()))
    assert {hook for _, hook, _ in flagged} == {PLANTED_HOOK}
    assert flagged[("isolated", PLANTED_HOOK, "rel_l2")] == "dropped"
    assert flagged[("chained", PLANTED_HOOK, "rel_l2")] == "dropped"


def test_a_run_that_fails_its_gate_is_not_accepted_as_a_baseline(tmp_path):
    budget = tmp_path / "tight.toml"
    budget.write_text("[isolated]\ndefault = { rel_l2 = 1e-12 }\n")
    out = tmp_path / "baseline.json"
    result = parity("check", GOLDEN / "olmoe_base.h5", "--budget", budget, "--write-baseline", out)
    assert result.returncode == 1
    assert not out.exists()
    assert "not written: the run failed its gate" in result.stderr


def test_a_fixture_run_against_a_baseline_of_both_modes_misses_the_other_mode(tmp_path):
    result = parity("check", GOLDEN / "olmoe_base.h5", "--baseline", GOLDEN / "baselines" / "olmoe_base.json",
                    "--json", tmp_path / "r.json")
    assert result.returncode == 1
    drifts = {e["drift"] for e in json.loads((tmp_path / "r.json").read_text())["baseline"]["entries"]
              if e["mode"] == "chained"}
    assert drifts == {"missing"}


def test_a_logprob_baseline_flags_a_metric_that_moved(tmp_path):
    baseline = json.loads((GOLDEN / "baselines" / "logprobs" / "olmoe_base_fp32_vs_bf16.json").read_text())
    for value in baseline["values"]:
        if value["metric"] == "kl_k3":
            value["value"] *= 0.9  # as if the accepted KL had been 10% smaller: this run's grew
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(baseline))
    run = GOLDEN / "logprob_runs" / "olmoe_base_fp32_vs_bf16.h5"
    result = parity("logprobs", run, "--baseline", moved, "--json", tmp_path / "r.json")
    assert result.returncode == 1
    assert outside_band(json.loads((tmp_path / "r.json").read_text())) == {("", "", "kl_k3"): "grew"}


@pytest.mark.parametrize("baseline, expected", [
    ("logprobs/olmoe_base_fp32_vs_bf16.json", "holds logprobs metrics, this is a check run"),
])
def test_a_baseline_of_the_other_kind_fails(tmp_path, baseline, expected):
    result = parity("check", GOLDEN / "olmoe_base.h5", "--baseline", GOLDEN / "baselines" / baseline)
    assert result.returncode == 1
    assert expected in result.stdout


def test_a_broken_baseline_file_is_one_line_and_exit_2(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": "parity-baseline/1", "kind": "check", "values": [')
    result = parity("check", GOLDEN / "olmoe_base.h5", "--baseline", broken)
    assert result.returncode == 2
    assert result.stderr.startswith(f"parity: error: [baseline {broken}] not JSON") and result.stderr.count("\n") == 1
