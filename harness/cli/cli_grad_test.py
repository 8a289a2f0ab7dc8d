"""`parity check --grad` end to end (run/grad_check.cpp): gradient dumps of models the repo has
never seen (tests/unseen_models.py GRADIENT_CONFIGS: OLMoE with and without norm_topk_prob and
with clip_qkv, a Gemma-4 MoE with k_eq_v, proportional RoPE and per-layer inputs, a dense Gemma-4
with per-layer inputs and KV sharing) pass both gradient modes with both losses in float32 and
bfloat16 under the built-in budgets; a router whose top-k weights are detached and a
renormalisation whose denominator is detached, planted in one layer of HF at dump time, each fail
first at that layer's router parameter gradient in both modes; bad use is refused (exit 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import GOLDEN, run_parity
from planted_grad_bugs import PLANTED, ROUTER_LINK, ROUTER_PARAMETER, edited, olmoe_router, plant, replace
from unseen_models import GRADIENT_CONFIGS, unseen_gradient_dump


def check_json(tmp_path: Path, fixture: Path, *args) -> tuple[int, dict]:
    out = tmp_path / "check.json"
    result = run_parity("check", fixture, *args, "--json", out)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(out.read_text())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", sorted(GRADIENT_CONFIGS))
def test_unseen_gradient_dumps_pass_both_gradient_modes_with_both_losses(tmp_path, name, dtype):
    for loss in ("logprob_sum", "ce_mean"):
        fixture = unseen_gradient_dump(tmp_path, name, loss, dtype)
        for mode in ("isolated", "chained"):
            code, report = check_json(tmp_path, fixture, "--mode", mode, "--grad")
            assert [run["mode"] for run in report["runs"]] == [mode, f"grad.{mode}"]
            assert code == 0, f"{name} {dtype} {loss} {mode}: {report['first_failure']}"
            grad_rows = [h for h in report["hooks"] if h["mode"] == f"grad.{mode}"]
            # Every parameter is a row, and each row was measured (not merely present).
            params = {h["hook"] for h in grad_rows if "@" not in h["hook"] and h["hook"] != "loss"}
            assert any(p.endswith("embed_tokens.weight") for p in params) and len(params) > 20
            assert all(h["status"] == "pass" for h in grad_rows)


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_a_detached_router_path_fails_first_at_that_layers_router_parameter_gradient(tmp_path, bug):
    config, path, forward = PLANTED[bug]
    fixture = unseen_gradient_dump(tmp_path, config, "logprob_sum", patch=plant(path, forward))
    # The forward is HF's own: the forward check passes, only the gradients tell.
    assert check_json(tmp_path, fixture, "--mode", "isolated")[0] == 0
    for mode in ("grad.isolated", "grad.chained"):
        code, report = check_json(tmp_path, fixture, "--mode", mode)
        assert code == 1, f"{bug} passed {mode}"
        first = report["first_failure"]
        link = bug == "olmoe_detached_weights"
        assert re.fullmatch(ROUTER_LINK[mode] if link else ROUTER_PARAMETER, first["hook"]), f"{bug} {mode}: {first}"
        if link:
            assert first["message"].endswith("the reference has a gradient, HF has none"), first


def test_a_parameter_with_a_gradient_on_one_side_only_fails_saying_so(tmp_path):
    fixture = unseen_gradient_dump(tmp_path, "olmoe", "logprob_sum", patch=plant("model.layers.1.mlp.gate",
                                                                                   olmoe_router("weights")))
    code, report = check_json(tmp_path, fixture, "--mode", "grad.chained")
    row = next(h for h in report["hooks"] if h["hook"] == "model.layers.1.mlp.gate.weight")
    assert row["status"] == "fail"
    assert row["message"] == "model.layers.1.mlp.gate.weight: the reference has a gradient, HF has none"


def test_gradient_modes_refuse_a_fixture_without_gradients_and_bad_grad_budgets(tmp_path):
    v1 = GOLDEN / "olmoe_base.h5"
    result = run_parity("check", v1, "--grad")
    assert result.returncode == 2 and "holds no gradients" in result.stderr and "--grad" in result.stderr
    fixture = unseen_gradient_dump(tmp_path, "olmoe", "ce_mean")
    for text, message in [
        ("[grad.isolatd]\ndefault = { rel_l2 = 1e-5 }\n", 'unknown key "grad.isolatd"'),
        ("[grad]\nisolated = 3\n", "a mode section must be a table"),
        ("grad = true\n", "grad must hold the tables"),
        ("[[grad.chained.rule]]\nhooks = \"*.nothing\"\nrel_l2 = 1e-5\n", "matches no hook"),
    ]:
        budget = tmp_path / "budget.toml"
        budget.write_text(text)
        result = run_parity("check", fixture, "--mode", "grad.chained", "--budget", budget)
        expected = 1 if "matches no hook" in message else 2
        assert result.returncode == expected, (text, result.stdout, result.stderr)
        assert message in result.stdout + result.stderr, (text, result.stdout, result.stderr)


def test_a_grad_budget_rule_gates_the_rows_it_names(tmp_path):
    fixture = unseen_gradient_dump(tmp_path, "olmoe", "ce_mean")
    budget = tmp_path / "budget.toml"
    budget.write_text('[[grad.isolated.rule]]\nhooks = "model.layers.0.mlp.gate.weight"\nrel_l2 = 0\n')
    code, report = check_json(tmp_path, fixture, "--mode", "grad.isolated", "--budget", budget)
    assert code == 1 and report["first_failure"]["hook"] == "model.layers.0.mlp.gate.weight"
    row = next(h for h in report["hooks"] if h["hook"] == "model.layers.0.mlp.gate.weight")
    assert row["budget"]["rule"].endswith("budget.toml:1") and row["rel_l2"] > 0
    assert 0.99 < row["norm_ratio"] < 1.01


def test_bad_gradients_fail_naming_the_tensor_and_bad_loss_inputs_are_input_errors(tmp_path):
    import numpy as np
    source = unseen_gradient_dump(tmp_path, "olmoe", "logprob_sum")
    gate = "model.layers.1.mlp.gate"

    def nan_grad(f):
        value = f[f"grads/{gate}.weight"][()]
        value[0, 0] = np.nan
        replace(f, f"grads/{gate}.weight", value)

    failing = [  # (edit, mode, the failing row, its message)
        (nan_grad, "grad.isolated", f"{gate}.weight", "NaN/Inf"),
        (lambda f: replace(f, f"grad_hooks/{gate}@in", np.zeros((3, 4), np.float32)), "grad.isolated", f"{gate}@in",
         "shape mismatch"),
        (lambda f: replace(f, f"grad_hooks/{gate}@top_k_weights", np.zeros((3,), np.float32)), "grad.isolated", gate,
         "cannot run the backward"),
        (lambda f: replace(f, f"grads/{gate}.weight", np.zeros(f[f"grads/{gate}.weight"].shape, np.int64)),
         "grad.chained", f"{gate}.weight", "kind mismatch"),
        (lambda f: replace(f, "loss/value", np.float32(123.0)), "grad.chained", "loss", "over budget"),
    ]
    for edit, mode, row, message in failing:
        code, report = check_json(tmp_path, edited(tmp_path, source, edit), "--mode", mode)
        assert code == 1, (row, message)
        failed = {h["hook"]: h["message"] for h in report["hooks"] if h["status"] == "fail"}
        assert row in failed and message in failed[row], (row, message, failed)
    input_errors = [
        (lambda f: f.__delitem__("loss/weights"), "weights"),
        (lambda f: replace(f, "loss/weights", np.ones((2, 3), np.float32)), "loss weights"),
        (lambda f: replace(f, "loss/value", np.ones((2,), np.float32)), "loss/value"),
    ]
    for edit, message in input_errors:
        result = run_parity("check", edited(tmp_path, source, edit), "--mode", "grad.chained")
        assert result.returncode == 2, (message, result.stdout[-500:], result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
