"""Bug-zoo cases: [expect] makes a case pass only when its gate fails first where it says."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest

from helpers import GOLDEN, REPO, run_parity
from parity.zoo.patches import BUGS

ZOO_CASE = REPO / "cases" / "zoo" / "gemma4_router_on_normed_input.toml"


def case_file(tmp_path: Path, fixture: Path, expect: str, modes: str = '["isolated", "chained"]') -> Path:
    path = tmp_path / "case.toml"
    path.write_text(f'fixture = "{fixture}"\nmodes = {modes}\n[isolated]\ndefault = {{ rel_l2 = 1e-5 }}\n'
                    f'[chained]\ndefault = {{ rel_l2 = 1e-4 }}\n[expect]\n{expect}\n')
    return path


def run_case(tmp_path: Path, case: Path) -> tuple[int, dict, str]:
    out = tmp_path / "r.json"
    result = run_parity("check", "--case", case, "--json", out, "--junit", tmp_path / "r.xml")
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(out.read_text()), result.stdout


def test_a_zoo_case_passes_when_its_bug_fails_where_it_lives(tmp_path):
    code, report, text = run_case(tmp_path, ZOO_CASE)
    assert code == 0 and report["verdict"] == "pass"
    assert report["expect"]["met"] and report["expect"]["diagnosis_found"] == "gemma4_router_on_normed_input"
    assert [m["first_failure"] for m in report["expect"]["modes"]] == ["model.layers.0.router@in"] * 2
    # The gate itself failed: the runs and hooks still say so.
    assert all(run["verdict"] == "fail" for run in report["runs"])
    assert "expected failure reproduced" in text
    junit = (tmp_path / "r.xml").read_text()
    # The case's testcases are the expectation's: CI sees a passing case, not the planted bug's hooks.
    assert 'name="expected failure" tests="3" failures="0"' in junit and "<failure" not in junit


def test_an_expected_failure_on_a_clean_fixture_fails_the_case(tmp_path):
    fixture = GOLDEN / "gemma4_full.h5"
    code, report, text = run_case(tmp_path, case_file(tmp_path, fixture, 'isolated = "model.layers.0.router@in"\n'
                                                                          'chained = "model.layers.0.router@in"'))
    assert code == 1 and report["verdict"] == "fail" and not report["expect"]["met"]
    assert report["expect"]["modes"][0]["first_failure"] is None
    assert "expected failure NOT reproduced: isolated the gate passed" in text


def test_a_failure_elsewhere_fails_the_case_naming_both_hooks(tmp_path):
    fixture = GOLDEN / "zoo" / "gemma4_router_on_normed_input.h5"
    code, report, text = run_case(tmp_path, case_file(tmp_path, fixture, 'isolated = "model.layers.0.mlp@in"\n'
                                                                          'chained = "model.layers.0.router*"'))
    assert code == 1
    modes = {m["mode"]: m for m in report["expect"]["modes"]}
    assert not modes["isolated"]["met"] and modes["chained"]["met"]  # a glob may name the module
    assert "isolated fails first at model.layers.0.router@in (expected model.layers.0.mlp@in)" in text


def test_a_wrong_diagnosis_fails_the_case(tmp_path):
    fixture = GOLDEN / "zoo" / "gemma4_router_on_normed_input.h5"
    case = case_file(tmp_path, fixture, 'isolated = "model.layers.0.router@in"\nchained = "model.layers.0.router@in"\n'
                                        'diagnosis = "gemma4_no_final_softcap"')
    code, report, _ = run_case(tmp_path, case)
    assert code == 1 and report["expect"]["diagnosis_found"] == "gemma4_router_on_normed_input"
    assert run_parity("diagnose", "--case", case).returncode == 1
    assert run_parity("diagnose", "--case", ZOO_CASE).returncode == 0


def test_a_stale_budget_rule_fails_a_zoo_case_even_when_the_bug_is_reproduced(tmp_path):
    fixture = GOLDEN / "zoo" / "gemma4_router_on_normed_input.h5"
    case = case_file(tmp_path, fixture, 'isolated = "model.layers.0.router@in"\nchained = "model.layers.0.router@in"')
    case.write_text(case.read_text() + '[[isolated.rule]]\nhooks = "no.such.hook"\nrel_l2 = 1\n')
    code, report, text = run_case(tmp_path, case)
    assert code == 1 and not report["expect"]["met"]
    assert "isolated fails first at run problem: budget rule" in text


def test_a_diagnosis_in_a_chained_only_case_replays_isolated_on_the_builtin_budget(tmp_path):
    path = tmp_path / "case.toml"
    path.write_text(f'fixture = "{GOLDEN / "gemma4_full.h5"}"\nmodes = ["chained"]\n[chained]\n'
                    'default = { rel_l2 = 1e-4 }\n[expect]\nchained = "x"\ndiagnosis = "hf"\n')
    out = tmp_path / "r.json"
    result = run_parity("check", "--case", path, "--json", out)
    expect = json.loads(out.read_text())["expect"]
    # The clean fixture passes its chained gate (so the expected failure is not met) and matches HF.
    assert result.returncode == 1 and not expect["met"] and expect["diagnosis_found"] == "hf"


@pytest.mark.parametrize("expect, message", [
    ('isolated = "x"', "needs chained = "),
    ('isolated = "x"\nchained = "y"\nsideways = "z"', 'unknown key "sideways"'),
    ('isolated = ""\nchained = "y"', "isolated must be a non-empty string"),
    ('isolated = "x"\nchained = "y"\ndiagnosis = "no_such_bug"', 'diagnosis "no_such_bug" is neither'),
    ('bug = "no_such_bug"', 'bug "no_such_bug" is not in the known-bug registry'),
    ('bug = "gemma4_no_final_softcap"\nisolated = "x"', '"isolated" cannot be given beside it'),
])
def test_a_malformed_expectation_is_exit_2_naming_the_case(tmp_path, expect, message):
    case = case_file(tmp_path, GOLDEN / "gemma4_full.h5", expect)
    result = run_parity("check", "--case", case)
    assert result.returncode == 2 and message in result.stderr and str(case) in result.stderr


def test_an_expectation_for_a_mode_the_case_does_not_run_is_refused(tmp_path):
    case = case_file(tmp_path, GOLDEN / "gemma4_full.h5", 'isolated = "x"\nchained = "y"', modes='["isolated"]')
    result = run_parity("check", "--case", case)
    assert result.returncode == 2 and 'names mode "chained", which the case does not run' in result.stderr


# The bf16 budget before the noise floor (issue: bf16 gates tight enough to catch cast bugs).
_OLD_BF16_BUDGET = """near_tie_rel = 1e-2
[isolated]
default = { rel_l2 = 1e-2 }
[chained]
default = { rel_l2 = 5e-2 }
"""
_BF16_CAST_BUGS = sorted(name for name, bug in BUGS.items() if bug.fixture["dtype"] == "bfloat16")


def _first_failure(tmp_path: Path, fixture: Path, mode: str, *budget) -> str | None:
    out = tmp_path / f"{mode}.json"
    result = run_parity("check", fixture, "--mode", mode, "--json", out, *budget)
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(out.read_text())
    assert (result.returncode == 1) == (report["first_failure"] is not None)
    return report["first_failure"]["hook"] if report["first_failure"] else None


def test_the_bf16_zoo_holds_the_five_cast_point_bugs():
    assert _BF16_CAST_BUGS == ["gemma4_attention_softmax_bf16", "gemma4_embed_scale_not_bf16", "gemma4_residual_fp32_rounded_late",
                               "gemma4_rmsnorm_bf16", "gemma4_router_bf16"]


@pytest.mark.parametrize("bug", _BF16_CAST_BUGS)
def test_the_old_fixed_bf16_budget_missed_each_cast_point_bug_that_the_floor_budget_catches(tmp_path, bug):
    entry = BUGS[bug]
    fixture = GOLDEN / "zoo" / entry.fixture["file"]
    old = tmp_path / "old.toml"
    old.write_text(_OLD_BF16_BUDGET)
    # The old 1e-2 passed every one isolated; chained, 5e-2 either passed or failed only layers later,
    # away from where the bug lives (the embedding bug: at layer 2's post_per_layer_input_norm).
    assert _first_failure(tmp_path, fixture, "isolated", "--budget", old) is None
    late = _first_failure(tmp_path, fixture, "chained", "--budget", old)
    assert late is None or not fnmatch.fnmatchcase(late, entry.first_failure["chained"]), late
    # The built-in bf16 budget (2 x the noise floor, min 1.5e-3) fails first where it lives.
    for mode in ("isolated", "chained"):
        first = _first_failure(tmp_path, fixture, mode)
        assert first is not None and fnmatch.fnmatchcase(first, entry.first_failure[mode]), (mode, first)
