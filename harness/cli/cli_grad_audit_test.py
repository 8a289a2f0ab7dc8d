"""`parity grad-audit` end to end (run/grad_audit.cpp): on gradient dumps of models the repo has
never seen, every parameter learns alike on HF's side and the reference's (one dump) and between a
float32 and a bfloat16 dump (two), and every router "matches HF"; a router path detached in HF at
dump time, a frozen router, a rescaled gradient and a NaN fail naming the parameter; bad use is
refused (exit 2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import parity
from helpers import GOLDEN, run_parity
from planted_grad_bugs import PLANTED, edited, plant, replace
from unseen_models import GRADIENT_CONFIGS, unseen_gradient_dump


def audit_json(tmp_path: Path, *args) -> tuple[int, dict]:
    out = tmp_path / "audit.json"
    result = run_parity("grad-audit", *args, "--json", out)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(out.read_text())


def dump_in(tmp_path: Path, side: str, name: str, dtype: str = "float32", patch=None) -> Path:
    folder = tmp_path / side
    folder.mkdir(exist_ok=True)
    return unseen_gradient_dump(folder, name, "logprob_sum", dtype, patch=patch)


def row(audit: dict, param: str) -> dict:
    return next(r for r in audit["params"] if r["param"] == param)


@pytest.mark.parametrize("name", sorted(GRADIENT_CONFIGS))
def test_unseen_models_learn_alike_against_the_reference_and_across_precisions(tmp_path, name):
    base = dump_in(tmp_path, "base", name)
    target = dump_in(tmp_path, "target", name, dtype="bfloat16")
    for args in ((base,), (target,), (base, target)):
        code, audit = audit_json(tmp_path, *args)
        assert code == 0, (name, args, [r["message"] for r in audit["params"] if r["status"] == "fail"][:3])
        assert audit["schema"] == "parity-grad-audit/1" and audit["failed"] == 0
        assert len(audit["params"]) > 10 and all(r["base"]["learns"] and r["target"]["learns"] for r in audit["params"])
        assert all(r["band"] is not None and abs(r["norm_ratio"] - 1) <= r["band"] for r in audit["params"])
        moe = GRADIENT_CONFIGS[name].get("enable_moe_block", True) and "num_experts" in GRADIENT_CONFIGS[name] or \
            GRADIENT_CONFIGS[name].get("enable_moe_block", False)
        if moe:
            assert audit["routers"] and all(r["matches"] and r["sentence"].endswith(f"matches {audit['sides']['base']}")
                                            for r in audit["routers"]), audit["routers"]


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_a_detached_router_path_fails_the_audit_at_that_router(tmp_path, bug):
    config, path, forward = PLANTED[bug]
    base = dump_in(tmp_path, "base", config)
    planted = dump_in(tmp_path, "target", config, patch=plant(path, forward))
    for args, learner in (((planted,), "reference"), ((base, planted), "base")):
        code, audit = audit_json(tmp_path, *args)
        assert code == 1
        failing = [r for r in audit["params"] if r["status"] == "fail"]
        # Layer 1's router, and what the backward reaches after it (layers 0-1, the embeddings; a
        # tied head's weight gradient is the embedding's), never the layers after it.
        assert any(r["param"].startswith(path + ".") for r in failing), failing
        assert not [r["param"] for r in failing if re.match(r"model\.layers\.[2-9]|model\.norm", r["param"])]
        router = next(r for r in audit["routers"] if r["router"] == path)
        assert not router["matches"] and "does not match" in router["sentence"], router
        assert all(r["matches"] for r in audit["routers"] if r["layer"] > 1)  # before the break in the backward
        if bug != "olmoe_detached_denominator":  # a detached denominator rescales, a detached top-k stops
            assert any(f"{learner} learns it" in r["message"] and "gives it no gradient" in r["message"]
                       for r in failing), failing


def test_a_frozen_router_a_rescaled_gradient_and_a_nan_fail_naming_the_parameter(tmp_path):
    base = dump_in(tmp_path, "base", "olmoe")
    gate = "model.layers.1.mlp.gate.weight"
    frozen = edited(tmp_path, base, lambda f: f.__delitem__(f"grads/{gate}"))
    code, audit = audit_json(tmp_path, base, frozen)
    assert code == 1 and row(audit, gate)["message"] == f"{gate}: base learns it (‖∇‖ = " \
        f"{row(audit, gate)['base']['norm']:.3g}), target gives it no gradient"
    skip = tmp_path / "skip.toml"
    skip.write_text(f'[[skip]]\nhooks = "{gate}"\nreason = "LoRA: the router is not adapted"\n')
    code, audit = audit_json(tmp_path, base, frozen, "--budget", skip)
    assert code == 0 and row(audit, gate)["status"] == "skipped"
    up = "model.layers.0.self_attn.q_proj.weight"
    scaled = edited(tmp_path, base, lambda f: replace(f, f"grads/{up}", f[f"grads/{up}"][()] * 1.5))
    code, audit = audit_json(tmp_path, base, scaled)
    assert code == 1 and "norm ratio 1.5 (target / base) outside 1 ±" in row(audit, up)["message"]
    assert [r["param"] for r in audit["params"] if r["status"] == "fail"] == [up]

    def nan(f):
        value = f[f"grads/{up}"][()]
        value[0, 0] = np.nan
        replace(f, f"grads/{up}", value)
    code, audit = audit_json(tmp_path, edited(tmp_path, base, nan))
    assert code == 1 and "NaN/Inf in the gradient: HF 1, reference 0" in row(audit, up)["message"]


def test_bad_use_is_refused_and_a_band_needs_a_rel_l2_or_floor_ratio_limit(tmp_path):
    base = dump_in(tmp_path, "base", "olmoe")
    result = run_parity("grad-audit", GOLDEN / "olmoe_base.h5")
    assert result.returncode == 2 and "holds no gradients" in result.stderr
    result = run_parity("grad-audit", base, GOLDEN / "olmoe_base.h5")
    assert result.returncode == 2 and "holds no gradients" in result.stderr
    result = run_parity("grad-audit", base, GOLDEN / "olmoe_base_grad.h5")
    assert result.returncode == 2 and "different models" in result.stderr
    cosine = tmp_path / "cosine.toml"
    cosine.write_text('[[grad.chained.rule]]\nhooks = "model.norm.weight"\ncosine = 0.99\n')
    code, audit = audit_json(tmp_path, base, "--budget", cosine)
    assert code == 1 and "a norm ratio band needs a rel_l2 or floor_ratio limit" in row(audit, "model.norm.weight")["message"]


def test_python_grad_audit_is_the_cli_json(tmp_path):
    base = dump_in(tmp_path, "base", "olmoe")
    _, audit = audit_json(tmp_path, base)
    assert parity.grad_audit(str(base)) == audit
    with pytest.raises(parity.InputError, match="holds no gradients"):
        parity.grad_audit(GOLDEN / "olmoe_base.h5")


def test_gradients_whose_norms_agree_but_which_point_apart_or_differ_in_shape_or_kind_fail(tmp_path):
    base = dump_in(tmp_path, "base", "olmoe")
    o_proj = "model.layers.1.self_attn.o_proj.weight"
    negated = edited(tmp_path, base, lambda f: replace(f, f"grads/{o_proj}", -f[f"grads/{o_proj}"][()]))
    code, audit = audit_json(tmp_path, base, negated)
    assert code == 1 and "the gradients point apart: rel_l2 2, cosine -1" in row(audit, o_proj)["message"]
    transposed = edited(tmp_path, base, lambda f: replace(f, f"grads/{o_proj}", f[f"grads/{o_proj}"][()].T.copy()))
    code, audit = audit_json(tmp_path, base, transposed)
    message = row(audit, o_proj)["message"]  # a square matrix keeps its shape: then its direction tells
    assert code == 1 and ("shape mismatch" in message or "point apart" in message), message
    wrong_kind = edited(tmp_path, base, lambda f: replace(f, f"grads/{o_proj}", np.ones(f[f"grads/{o_proj}"].shape, np.int32)))
    code, audit = audit_json(tmp_path, base, wrong_kind)
    assert code == 1 and row(audit, o_proj)["message"].startswith(f"kind mismatch: /grads/{o_proj}")
    empty = edited(tmp_path, base, lambda f: replace(f, f"grads/{o_proj}", np.zeros((0,), np.float32)))
    code, audit = audit_json(tmp_path, empty, empty)
    assert code == 1 and "empty comparison" in row(audit, o_proj)["message"]


def test_stale_budget_entries_an_all_skipped_audit_and_a_one_sided_top_k_path_fail(tmp_path):
    base = dump_in(tmp_path, "base", "olmoe")
    stale = tmp_path / "stale.toml"
    stale.write_text('[[grad.compare.rule]]\nhooks = "model.layers.99.*"\nrel_l2 = 1\n')
    code, audit = audit_json(tmp_path, base, base, "--budget", stale)
    assert code == 1 and any("matches no hook" in p for p in audit["problems"])
    everything = tmp_path / "all.toml"
    everything.write_text('[[skip]]\nhooks = "*"\nreason = "nothing to see"\n')
    code, audit = audit_json(tmp_path, base, base, "--budget", everything)
    assert code == 1 and audit["problems"] == ["empty audit: every parameter was skipped"]
    gate = "model.layers.1.mlp.gate"
    no_top_k = edited(tmp_path, base, lambda f: replace(f, f"grad_hooks/{gate}@top_k_weights",
                                                        np.zeros(f[f"grad_hooks/{gate}@top_k_weights"].shape, np.float32)))
    code, audit = audit_json(tmp_path, base, no_top_k)
    router = next(r for r in audit["routers"] if r["router"] == gate)
    assert code == 1 and not router["matches"] and "top_k_weights on the base only" in router["sentence"]
