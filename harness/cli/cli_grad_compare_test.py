"""`parity compare --grad` end to end (run/grad_compare.cpp): two gradient dumps of models the repo
has never seen (tests/unseen_models.py GRADIENT_CONFIGS), float32 against bfloat16, pass under the
built-in budget; a router path detached in the target's HF at dump time (cli_grad_test.py's planted
bugs) fails the gradient compare, first at that layer's router, while the forward compare passes,
and the three-way view names the target; bad use is refused (exit 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import parity
from planted_grad_bugs import PLANTED, ROUTER_PARAMETER, edited, plant, replace
from helpers import GOLDEN, run_parity
from unseen_models import GRADIENT_CONFIGS, unseen_gradient_dump


def dump_in(tmp_path: Path, side: str, name: str, loss: str = "logprob_sum", dtype: str = "float32", patch=None):
    folder = tmp_path / side
    folder.mkdir(exist_ok=True)
    return unseen_gradient_dump(folder, name, loss, dtype, patch=patch)


def compare_json(tmp_path: Path, base: Path, target: Path, *args) -> tuple[int, dict]:
    out = tmp_path / "compare.json"
    result = run_parity("compare", "--grad", base, target, *args, "--json", out)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(out.read_text())


def zeroed_gradient(tmp_path: Path, dump: Path, param: str) -> Path:
    """A copy of `dump` whose gradient of `param` is all zero (kept: a parameter that learns nothing)."""
    return edited(tmp_path, dump, lambda f: replace(f, f"grads/{param}", np.zeros(f[f"grads/{param}"].shape, np.float32)))


def grad_rows(report: dict) -> list[dict]:
    return [h for h in report["hooks"] if h["mode"] == "grad.compare"]


@pytest.mark.parametrize("name", sorted(GRADIENT_CONFIGS))
def test_float32_against_bfloat16_gradient_dumps_of_unseen_models_pass(tmp_path, name):
    base = dump_in(tmp_path, "base", name)
    target = dump_in(tmp_path, "target", name, dtype="bfloat16")
    code, report = compare_json(tmp_path, base, target)
    assert [run["mode"] for run in report["runs"]] == ["compare", "grad.compare"]
    assert code == 0, f"{name}: {report['first_failure']}"
    rows = grad_rows(report)
    assert rows[0]["hook"] == "loss"  # backward order: the loss, then the head, ..., the embedding last
    assert any(h["hook"].endswith("embed_tokens.weight") for h in rows[-3:])
    measured = [h for h in rows if h["rel_l2"] is not None]
    assert len(measured) == len(rows) and not [h for h in rows if h["status"] == "fail"]
    # The loss and every parameter against their noise floor; each module's input VJP judged by each
    # side's own backward; only inner outputs neither covers are left ungated, saying so.
    floored = [h for h in rows if h["floor"] is not None]
    assert all(h["budget"]["metric"] == "floor_ratio" for h in floored)
    # Gated, unless the floor itself is 1 or more (two correct precisions disagree completely).
    assert all(h["status"] == "pass" or (h["floor"]["rel_l2"] >= 1 and h["message"].startswith("not gated: its noise"))
               for h in floored)
    assert sum(h["status"] == "pass" for h in floored) > len(floored) / 2
    assert {h["hook"] for h in floored} >= {h["hook"] for h in rows if "@" not in h["hook"] and h["hook"] != "loss"
                                            and h["hook"].endswith(("weight", "scale", "scalar"))}
    judged = [h for h in rows if h["floor"] is None and h["status"] == "pass"]
    assert judged and all("@in" in h["hook"] and "three-way" in h["note"] for h in judged)
    ungated = [h for h in rows if h["status"] == "skipped" and h["floor"] is None]
    assert all("@in" not in h["hook"] and h["message"].startswith("not gated: no noise floor") for h in ungated)
    assert len(ungated) < len(rows) / 3
    assert max(h["rel_l2"] for h in rows) > 1e-3  # the bf16 side really differs from the fp32 one
    assert all(h["reference"] is not None for h in rows if h["floor"] is not None or h["status"] != "skipped")


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_a_router_path_detached_in_the_target_fails_the_gradient_compare_at_its_router(tmp_path, bug):
    config, path, forward = PLANTED[bug]
    base = dump_in(tmp_path, "base", config)
    target = dump_in(tmp_path, "target", config, patch=plant(path, forward))
    code, report = compare_json(tmp_path, base, target)
    assert code == 1
    forward_run, grad_run = report["runs"]
    assert forward_run["verdict"] == "pass"  # the forward is HF's own: only the gradients tell
    first = grad_run["first_failure"]
    # A row of layer 1's router: its parameters, or where no gradient reaches part of it (a detached
    # top-k) the break itself, a gradient the base has and the target lacks (the router's own output,
    # the experts' routing-weights input).
    layer_1_router = ROUTER_PARAMETER + r"|model\.layers\.1\.(router\.proj|mlp\.experts@in2)"
    assert re.fullmatch(layer_1_router, first["hook"]), f"{bug}: {first}"
    # Every failing row lies at or after the break in backward order: nothing of layer 2 onwards, the
    # head or the loss (a tied head's weight gradient is the embedding's, complete at the end).
    failing = [h["hook"] for h in grad_rows(report) if h["status"] == "fail"]
    assert not any(re.match(r"model\.layers\.[2-9]|lm_head(@|$)|model\.norm|loss", h) for h in failing), failing
    # The three-way view names the target: its own backward departs from the reference in layer 1.
    departing = [h["hook"] for h in grad_rows(report) if h["reference"] and h["reference"]["departs"] == "target"]
    assert departing and all(re.match(r"model\.layers\.1[.@]|model\.layers\.1$", h) for h in departing), departing
    assert not [h for h in grad_rows(report) if h["reference"] and h["reference"]["departs"] in ("base", "both")]


def test_a_bf16_target_with_a_detached_router_fails_against_a_float32_base(tmp_path):
    config, path, forward = PLANTED["gemma4_detached_weights"]
    base = dump_in(tmp_path, "base", config)
    target = dump_in(tmp_path, "target", config, dtype="bfloat16", patch=plant(path, forward))
    code, report = compare_json(tmp_path, base, target)
    assert code == 1 and report["runs"][0]["verdict"] == "pass"
    first = report["runs"][1]["first_failure"]["hook"]
    assert re.fullmatch(ROUTER_PARAMETER + r"|model\.layers\.1\.router\.proj", first), report["first_failure"]


def test_one_sided_gradients_fail_saying_which_side_has_one_unless_allowed(tmp_path):
    base = dump_in(tmp_path, "base", "olmoe")
    param = "model.layers.1.mlp.gate.weight"
    zeroed = zeroed_gradient(tmp_path, base, param)
    code, report = compare_json(tmp_path, base, zeroed)
    row = next(h for h in grad_rows(report) if h["hook"] == param)
    assert code == 1 and row["message"] == f"{param}: the base has a gradient, the target has none (all zero)"
    gone = edited(tmp_path, base, lambda f: f.__delitem__(f"grads/{param}"))
    code, report = compare_json(tmp_path, gone, base)
    row = next(h for h in grad_rows(report) if h["hook"] == param)
    assert code == 1 and row["message"] == f"{param}: the target has a gradient, the base has none"
    budget = tmp_path / "one_side.toml"
    budget.write_text(f'[[one_side]]\nhooks = "{param}"\nreason = "the engine does not train its routers"\n')
    code, report = compare_json(tmp_path, gone, base, "--budget", budget)
    row = next(h for h in grad_rows(report) if h["hook"] == param)
    assert code == 0 and row["status"] == "skipped" and "does not train its routers" in row["message"]


def test_bad_gradient_pairs_and_budgets_are_input_errors(tmp_path):
    base = dump_in(tmp_path, "base", "olmoe")
    ce = dump_in(tmp_path, "ce", "olmoe", loss="ce_mean")
    weights = edited(tmp_path, base, lambda f: replace(f, "loss/weights", f["loss/weights"][()] * 2))
    refused = {  # (base, target, extra args): what the one-line error says
        (GOLDEN / "olmoe_base.h5", base, ()): "holds no gradients",
        (base, ce, ()): "the losses differ: logprob_sum (base) vs ce_mean (target)",
        (base, weights, ()): "the losses differ: /loss/weights at flat position 0",
    }
    for (b, t, extra), message in refused.items():
        result = run_parity("compare", "--grad", b, t, *extra)
        assert result.returncode == 2 and message in result.stderr, (message, result.stderr)
        assert result.stderr.count("\n") == 1
    bogus = tmp_path / "bogus.toml"
    bogus.write_text("[grad.bogus]\ndefault = { rel_l2 = 1 }\n")
    result = run_parity("compare", "--grad", base, base, "--budget", bogus)
    assert result.returncode == 2 and "grad.compare" in result.stderr
    stale = tmp_path / "stale.toml"
    stale.write_text('[[grad.compare.rule]]\nhooks = "model.layers.9.*"\nrel_l2 = 1\n')
    code, report = compare_json(tmp_path, base, base, "--budget", stale)
    assert code == 1 and any("matches no hook" in p for p in report["runs"][1]["problems"])


def test_python_compare_grad_is_the_cli_json(tmp_path):
    base = dump_in(tmp_path, "base", "olmoe")
    target = dump_in(tmp_path, "target", "olmoe", dtype="bfloat16")
    _, report = compare_json(tmp_path, base, target)
    from_python = parity.compare(str(base), str(target), grad=True)
    assert [r["mode"] for r in from_python["runs"]] == ["compare", "grad.compare"]
    assert from_python["hooks"] == report["hooks"] and from_python["verdict"] == report["verdict"]
    assert [r["mode"] for r in parity.compare(base, target)["runs"]] == ["compare"]
    # The HTML report charts the gradient run in backward order beside the forward one.
    page = parity.html_report(from_python)
    assert 'id="drift-chart-grad.compare"' in page and "model.layers.1.mlp.gate.weight" in page
    with pytest.raises(parity.InputError, match="holds no gradients"):
        parity.compare(GOLDEN / "olmoe_base.h5", base, grad=True)


def test_gradients_both_dumps_drop_empty_gradients_and_what_hooks_selects(tmp_path):
    base = dump_in(tmp_path, "base", "olmoe")
    param = "model.layers.1.mlp.gate.weight"
    zeroed = zeroed_gradient(tmp_path, base, param)
    code, report = compare_json(tmp_path, zeroed, zeroed)
    row = next(h for h in grad_rows(report) if h["hook"] == param)
    assert code == 1 and row["message"].startswith(f"{param}: neither dump has a gradient, but the reference's backward")
    empty = edited(tmp_path, base, lambda f: replace(f, f"grads/{param}", np.zeros((0,), np.float32)))
    code, report = compare_json(tmp_path, empty, empty)
    row = next(h for h in grad_rows(report) if h["hook"] == param)
    assert code == 1 and row["message"] == "empty comparison: the tensor has no elements"
    # A glob of parameter names gates the gradient run alone (the forward one left out, saying so);
    # without --grad it selects nothing (exit 2).
    result = run_parity("compare", "--grad", base, base, "--hooks", "*.weight", "--json", tmp_path / "w.json")
    report = json.loads((tmp_path / "w.json").read_text())
    assert result.returncode == 0 and [r["mode"] for r in report["runs"]] == ["grad.compare"]
    assert "compare did not run" in result.stdout + result.stderr
    result = run_parity("compare", base, base, "--hooks", "*.weight")
    assert result.returncode == 2 and "needs --grad" in result.stderr


def test_each_side_of_the_three_way_view_names_its_own_metric(tmp_path):
    base = dump_in(tmp_path, "base", "olmoe")
    target = dump_in(tmp_path, "target", "olmoe", dtype="bfloat16")
    key = "model.layers.1.mlp.gate@in"
    _, report = compare_json(tmp_path, base, target)
    row = next(h for h in grad_rows(report) if h["hook"] == key)
    # float32's grad.isolated gates floor_ratio, bfloat16's rel_l2: each side is named by its own.
    assert row["reference"]["base"]["metric"] == "floor_ratio" and row["reference"]["target"]["metric"] == "rel_l2"
