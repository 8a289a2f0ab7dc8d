"""End-to-end tests of `parity check` (run/check.cpp, run/replay_sink.cpp, run/hook_gate.cpp, gate/budget.cpp, cli/cli_check.cpp):
real HF models dumped by parity.dump, replayed by build/parity. Covers the OLMoE issue's "done
when": unseen configs pass with no code change, a router bug is caught at the router, and
checkpoints can replace fixture weights; plus fail-closed behaviour and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import transformers.models.olmoe.modeling_olmoe as modeling_olmoe

from helpers import GOLDEN, PARITY, REPO, tiny_config
from parity.dump import dump
from parity.dump.build import random_input_ids, random_model


def parity(*args: str | Path) -> subprocess.CompletedProcess:
    if not PARITY.exists():
        pytest.fail(f"{PARITY} is missing: run ci/setup first")
    return subprocess.run([str(PARITY), *map(str, args)], capture_output=True, text=True, timeout=300)


def check_json(tmp_path: Path, *args: str | Path) -> tuple[int, dict]:
    out = tmp_path / "report.json"
    result = parity("check", *args, "--json", out)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(out.read_text())


def dump_olmoe(tmp_path: Path, config: Path, *, seed=11, batch=2, seq_len=9, **kwargs) -> Path:
    model = random_model(config, seed=seed)
    ids = random_input_ids(seed, batch, seq_len, model.config.vocab_size)
    path = tmp_path / "fixture.h5"
    dump(model, ids, path, progress=False, **kwargs)
    return path


@pytest.fixture(scope="module")
def golden_copy(tmp_path_factory) -> Path:
    """A writable copy of golden/olmoe_base.h5 for tests that damage it."""
    path = tmp_path_factory.mktemp("golden") / "olmoe_base.h5"
    shutil.copy(GOLDEN / "olmoe_base.h5", path)
    return path


def damaged(tmp_path: Path, golden_copy: Path, edit) -> Path:
    path = tmp_path / "damaged.h5"
    shutil.copy(golden_copy, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


# --- the "done when" -------------------------------------------------------------------

UNSEEN = dict(hidden_size=48, intermediate_size=20, num_hidden_layers=3, num_attention_heads=6,
              num_key_value_heads=2, num_experts=5, num_experts_per_tok=3, norm_topk_prob=True, clip_qkv=0.7,
              rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 500.0})


@pytest.mark.parametrize("mode", ["isolated", "chained"])
def test_an_olmoe_config_the_repo_has_never_seen_passes_with_the_builtin_budget(tmp_path, mode):
    fixture = dump_olmoe(tmp_path, tiny_config(tmp_path, "olmoe_base", **UNSEEN), batch=3, seq_len=7)
    code, report = check_json(tmp_path, fixture, "--mode", mode)
    assert code == 0, report["first_failure"]
    compared = {h["hook"] for h in report["hooks"] if h["status"] == "pass"}
    with h5py.File(fixture) as f:
        outputs = {k for k in f["hooks"] if "@in" not in k}  # everything a module returned
    assert outputs <= compared
    assert {"model.layers.2.mlp.gate@top_k_index", "model.layers.2.self_attn@attn_weights", "lm_head"} <= compared


def test_a_fixture_of_layer_10_does_not_replay_layer_1(tmp_path):
    """Module names share prefixes: hooks of model.layers.10 are not hooks of model.layers.1."""
    config = tiny_config(tmp_path, "olmoe_base", num_hidden_layers=11)
    fixture = dump_olmoe(tmp_path, config, seq_len=5, layers=[10])
    code, report = check_json(tmp_path, fixture, "--mode", "isolated")
    assert code == 0, report["first_failure"]
    hooks = {h["hook"] for h in report["hooks"]}
    assert "model.layers.10.mlp" in hooks and not any(h.startswith("model.layers.1.") for h in hooks)


def softmax_over_top_k_only(self, hidden_states):
    """The classic router bug (lablup/mlxcel #391): softmax over the k selected logits only."""
    hidden_states = hidden_states.reshape(-1, self.hidden_dim)
    router_logits = torch.nn.functional.linear(hidden_states, self.weight)
    top_logits, router_indices = torch.topk(router_logits, self.top_k, dim=-1)
    router_scores = torch.softmax(top_logits, dim=-1, dtype=torch.float).to(router_logits.dtype)
    return router_logits, router_scores, router_indices


@pytest.mark.parametrize("mode", ["isolated", "chained"])
def test_a_router_that_softmaxes_only_the_top_k_fails_first_at_the_router(tmp_path, monkeypatch, mode):
    monkeypatch.setattr(modeling_olmoe.OlmoeTopKRouter, "forward", softmax_over_top_k_only)
    fixture = dump_olmoe(tmp_path, GOLDEN / "configs" / "olmoe_base.json")
    code, report = check_json(tmp_path, fixture, "--mode", mode)
    assert code == 1
    assert report["verdict"] == "fail"
    assert report["first_failure"]["hook"] == "model.layers.0.mlp.gate@top_k_weights"
    router_logits = next(h for h in report["hooks"] if h["hook"] == "model.layers.0.mlp.gate")
    assert router_logits["status"] == "pass"  # the logits are right; the weights made from them are not


# --- weights from a checkpoint ------------------------------------------------------------------

def test_an_activation_only_fixture_checks_against_a_sharded_per_expert_checkpoint(tmp_path):
    config = GOLDEN / "configs" / "olmoe_base.json"
    model = random_model(config, seed=5)
    model.save_pretrained(tmp_path / "ckpt", max_shard_size="100KB")  # Hub layout: per-expert tensors
    assert (tmp_path / "ckpt" / "model.safetensors.index.json").exists()
    fixture = tmp_path / "activations.h5"
    dump(model, random_input_ids(5, 2, 8, 128), fixture, weights="none", progress=False)
    for mode in ("isolated", "chained"):
        result = parity("check", fixture, "--mode", mode, "--weights", tmp_path / "ckpt")
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    # Without weights anywhere, the check refuses to start.
    result = parity("check", fixture)
    assert result.returncode == 2 and "--weights" in result.stderr


def test_a_checkpoint_of_another_model_is_refused_naming_the_config_key(tmp_path):
    other = random_model(tiny_config(tmp_path, "olmoe_base", num_experts_per_tok=3), seed=1)
    other.save_pretrained(tmp_path / "other")
    result = parity("check", GOLDEN / "olmoe_base.h5", "--weights", tmp_path / "other")
    assert result.returncode == 2 and "num_experts_per_tok = 3" in result.stderr


def test_a_checkpoint_with_mis_shaped_weights_fails_naming_the_weight(tmp_path):
    other = random_model(tiny_config(tmp_path, "olmoe_base", hidden_size=32, num_attention_heads=2,
                                     num_key_value_heads=1), seed=1)
    other.save_pretrained(tmp_path / "other")
    (tmp_path / "other" / "config.json").unlink()  # no config to compare: the shapes must catch it
    code, report = check_json(tmp_path, GOLDEN / "olmoe_base.h5", "--weights", tmp_path / "other")
    assert code == 1
    assert "model.embed_tokens.weight" in report["first_failure"]["message"]


# --- gating and fail-closed behaviour -----------------------------------------------------------

def test_a_budget_tighter_than_the_measured_error_fails_the_gate(tmp_path):
    budget = tmp_path / "tight.toml"
    budget.write_text('[isolated]\ndefault = { rel_l2 = 1e-5 }\n'
                      '[[isolated.rule]]\nhooks = "model.layers.1.mlp.experts"\nrel_l2 = 1e-12\n')
    code, report = check_json(tmp_path, GOLDEN / "olmoe_base.h5", "--budget", budget)
    assert code == 1
    assert report["first_failure"]["hook"] == "model.layers.1.mlp.experts"
    hook = next(h for h in report["hooks"] if h["hook"] == "model.layers.1.mlp.experts")
    assert hook["budget"] == {"metric": "rel_l2", "limit": 1e-12, "min_rel_l2": None, "bound": "max", "rule": f"{budget}:3"}


def test_nan_in_a_dumped_hook_fails_that_hook(tmp_path, golden_copy):
    def poison(f):
        data = f["hooks/lm_head"][...]
        data[0, 0, 0] = np.nan
        f["hooks/lm_head"][...] = data
    code, report = check_json(tmp_path, damaged(tmp_path, golden_copy, poison))
    assert code == 1
    assert report["first_failure"]["hook"] == "lm_head"
    assert "NaN" in report["first_failure"]["message"]


def test_a_hook_missing_from_the_fixture_fails(tmp_path, golden_copy):
    path = damaged(tmp_path, golden_copy, lambda f: f["hooks"].pop("model.layers.0.mlp.gate@router_probs"))
    code, report = check_json(tmp_path, path)
    assert code == 1
    assert report["first_failure"]["hook"] == "model.layers.0.mlp.gate@router_probs"
    assert "fixture has no such hook" in report["first_failure"]["message"]


def test_a_fixture_hook_the_reference_cannot_produce_fails_unless_skipped(tmp_path, golden_copy):
    def add(f):
        f["hooks"].create_dataset("model.layers.0.mystery", data=np.zeros((2, 3), np.float32))
        f["hooks/model.layers.0.mystery"].attrs["dtype"] = "float32"
    path = damaged(tmp_path, golden_copy, add)
    code, report = check_json(tmp_path, path)
    assert code == 1 and report["first_failure"]["hook"] == "model.layers.0.mystery"
    budget = tmp_path / "skip.toml"
    budget.write_text('[isolated]\ndefault = { rel_l2 = 1e-5 }\n'
                      '[[skip]]\nhooks = "*.mystery"\nreason = "an engine-only tensor"\n')
    code, report = check_json(tmp_path, path, "--budget", budget)
    assert code == 0
    assert next(h for h in report["hooks"] if h["hook"] == "model.layers.0.mystery")["status"] == "skipped"


def test_a_budget_rule_that_matches_no_hook_fails(tmp_path):
    budget = tmp_path / "stale.toml"
    budget.write_text('[isolated]\ndefault = { rel_l2 = 1e-5 }\n'
                      '[[isolated.rule]]\nhooks = "model.layers.*.block_sparse_moe"\nrel_l2 = 1e-3\n')
    code, report = check_json(tmp_path, GOLDEN / "olmoe_base.h5", "--budget", budget)
    assert code == 1
    assert "matches no hook" in report["first_failure"]["message"]


def test_the_most_specific_rule_wins(tmp_path):
    budget = tmp_path / "rules.toml"
    budget.write_text('[isolated]\ndefault = { rel_l2 = 1e-5 }\n'
                      '[[isolated.rule]]\nhooks = "model.layers.0.*"\nmax_abs = 1e-3\n'
                      '[[isolated.rule]]\nhooks = "model.layers.0.self_attn.q_proj"\ncosine = 0.999\n')
    code, report = check_json(tmp_path, GOLDEN / "olmoe_base.h5", "--budget", budget)
    assert code == 0
    budgets = {h["hook"]: h["budget"]["metric"] for h in report["hooks"]}
    assert budgets["model.layers.0.self_attn.q_proj"] == "cosine"
    assert budgets["model.layers.0.self_attn.k_proj"] == "max_abs"
    assert budgets["model.layers.1.self_attn.k_proj"] == "rel_l2"


# --- reports ------------------------------------------------------------------------------------

def test_json_and_junit_reports_carry_every_hook_with_stable_keys(tmp_path):
    junit = tmp_path / "junit.xml"
    code, report = check_json(tmp_path, "--case", REPO / "cases" / "olmoe_base.toml", "--junit", junit)
    assert code == 0 and report["verdict"] == "pass" and report["first_failure"] is None
    assert [r["mode"] for r in report["runs"]] == ["isolated", "chained"]
    for hook in report["hooks"]:
        assert {"hook", "rel_l2", "max_abs", "budget", "status", "mode"} <= hook.keys()
    floats = [h for h in report["hooks"] if h["kind"] == "float"]
    assert all(h["rel_l2_denominator"] == "hf_l2" and h["hf_l2"] > 0 for h in floats)
    import xml.etree.ElementTree as ET
    suites = ET.parse(junit).getroot().findall("testsuite")
    hook_suites = [s for s in suites if not s.get("name").startswith("baseline ")]
    assert sum(len(s.findall("testcase")) for s in hook_suites) == len(report["hooks"])
    baseline = [s for s in suites if s.get("name").startswith("baseline ")]
    assert len(baseline) == 1 and len(baseline[0].findall("testcase")) == len(report["baseline"]["entries"])
    assert not ET.parse(junit).getroot().findall(".//failure")


def test_the_table_marks_the_first_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(modeling_olmoe.OlmoeTopKRouter, "forward", softmax_over_top_k_only)
    result = parity("check", dump_olmoe(tmp_path, GOLDEN / "configs" / "olmoe_base.json"))
    assert result.returncode == 1
    marked = [line for line in result.stdout.splitlines() if "<<< first failure" in line]
    assert len(marked) == 1 and "model.layers.0.mlp.gate@top_k_weights" in marked[0]
    assert "verdict: fail" in result.stdout


# --- bad input: one line, exit 2 ----------------------------------------------------------------

BAD_BUDGETS = {
    "not TOML": ("[isolated\n", "budget"),
    "unknown key": ('[isolated]\ndefault = { rel_l2 = 1e-5 }\ntolerance = 3\n', 'unknown key "tolerance"'),
    "no metric": ('[isolated]\ndefault = {}\n', "names no metric"),
    "hooks in a default": ('[isolated]\ndefault = { hooks = "x", rel_l2 = 1 }\n', 'unknown key "hooks"'),
    "infinite limit": ('[isolated]\ndefault = { rel_l2 = inf }\n', "finite"),
    "near-tie of 1": ('near_tie_rel = 1.0\n[isolated]\ndefault = { rel_l2 = 1e-5 }\n', "near_tie_rel"),
    "unknown key in a skip": ('[isolated]\ndefault = { rel_l2 = 1 }\n[[skip]]\nhooks = "x"\nreason = "r"\n'
                              'mode = "chained"\n', 'unknown key "mode"'),
    "a case file": ('fixture = "x.h5"\nmodes = ["isolated"]\n[isolated]\ndefault = { rel_l2 = 1 }\n', "--case"),
    "two metrics": ('[isolated]\ndefault = { rel_l2 = 1e-5, max_abs = 1 }\n', "exactly one metric"),
    "negative": ('[isolated]\ndefault = { rel_l2 = -1 }\n', "non-negative"),
    "unknown metric": ('[isolated]\ndefault = { l2 = 1 }\n', 'unknown key "l2"'),
    "default not a table": ('[isolated]\ndefault = 1e-5\n', "default must be"),
    "rule without hooks": ('[isolated]\ndefault = { rel_l2 = 1 }\n[[isolated.rule]]\nrel_l2 = 1\n', "hooks"),
    "skip without reason": ('[isolated]\ndefault = { rel_l2 = 1 }\n[[skip]]\nhooks = "x"\n', "reason"),
}


def test_a_budget_states_only_what_differs_from_the_builtin_one(tmp_path):
    """A section without a default, or no section for the mode run, keeps the built-in limits."""
    budget = tmp_path / "rules.toml"
    budget.write_text('[[isolated.rule]]\nhooks = "model.norm"\nmax_abs = 1e-3\n[chained]\ndefault = { rel_l2 = 1e-3 }\n')
    out = tmp_path / "r.json"
    result = parity("check", GOLDEN / "olmoe_base.h5", "--budget", budget, "--json", out)
    assert result.returncode == 0, result.stdout + result.stderr
    hooks = {h["hook"]: h["budget"] for h in json.loads(out.read_text())["hooks"]}
    assert hooks["model.norm"]["metric"] == "max_abs" and hooks["model.norm"]["limit"] == 1e-3
    assert hooks["lm_head"]["metric"] == "rel_l2" and hooks["lm_head"]["limit"] == 1e-5  # the built-in default


@pytest.mark.parametrize("name", BAD_BUDGETS)
def test_a_malformed_budget_is_one_line_and_exit_2(tmp_path, name):
    text, expected = BAD_BUDGETS[name]
    budget = tmp_path / "bad.toml"
    budget.write_text(text)
    result = parity("check", GOLDEN / "olmoe_base.h5", "--budget", budget)
    assert result.returncode == 2, result.stdout
    assert result.stderr.count("\n") == 1 and expected in result.stderr and "bad.toml" in result.stderr


@pytest.mark.parametrize("args, expected", [
    (["check"], "exactly one of FIXTURE or --case"),
    (["check", "golden/olmoe_base.h5", "--case", "cases/olmoe_base.toml"], "exactly one of"),
    (["check", "--case", "cases/olmoe_base.toml", "--budget", "cases/olmoe_base.toml"], "--budget"),
    (["check", "golden/olmoe_base.h5", "--mode", "sideways"], "sideways"),
    (["check", "golden/olmoe_base.h5", "--precision", "fp8"], "fp8"),
    (["check", "golden/olmoe_base.h5", "--hooks", "model.layers.9.*"], "matches no hook"),
    (["check", "golden/missing.h5"], "missing.h5"),
    (["check", "golden/olmoe_base.h5", "--weights", "/nonexistent/ckpt"], "/nonexistent/ckpt"),
])
def test_bad_usage_is_one_line_and_exit_2(args, expected):
    result = subprocess.run([str(PARITY), *args], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2, result.stdout
    assert result.stderr.count("\n") == 1 and expected in result.stderr


def test_a_model_type_without_a_reference_is_one_line_and_exit_2(tmp_path, golden_copy):
    def relabel(f):
        config = json.loads(f["meta/config"][()])
        config["model_type"] = "llama"
        del f["meta/config"]
        f["meta"].create_dataset("config", data=json.dumps(config))
        f["meta"].attrs["model_type"] = "llama"
    result = parity("check", damaged(tmp_path, golden_copy, relabel))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert 'model_type "llama" has no reference' in result.stderr


def test_meta_that_disagrees_with_the_config_or_the_stored_dtype_is_exit_2(tmp_path, golden_copy):
    """/meta picks the family and the budget: a model_type the config does not share, or a run dtype the
    stored logits contradict (a float32 dump relabelled bfloat16 would pass on bf16's 1000x looser budget)."""
    def other_family(f):
        f["meta"].attrs["model_type"] = "gemma4_text"
    result = parity("check", damaged(tmp_path, golden_copy, other_family))
    assert result.returncode == 2 and 'model_type "gemma4_text" disagrees with /meta/config\'s "olmoe"' in result.stderr

    def relabelled(f):
        f["meta"].attrs["dtype"] = "bfloat16"
    result = parity("check", damaged(tmp_path, golden_copy, relabelled))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "/outputs/logits: stored as float32, but /meta says the model ran in bfloat16" in result.stderr

    def not_a_dtype(f):
        f["meta"].attrs["dtype"] = "int8"
    result = parity("check", damaged(tmp_path, golden_copy, not_a_dtype))
    assert result.returncode == 2 and 'dtype "int8" is not a floating run dtype' in result.stderr


@pytest.mark.parametrize("extra, expected", [
    ('modes = ["isolated", "isolated"]\n', "twice"),
    ('modes = ["isolated"]\nprecision = 64\n', "precision"),
    ('modes = ["isolated"]\n[bands]\ndefault = { rel = 0.1 }\n', "has [bands] but no baseline"),
    ('modes = ["isolated"]\nbaseline = 3\n', "baseline must be a non-empty string"),
])
def test_a_malformed_case_is_exit_2(tmp_path, extra, expected):
    case = tmp_path / "case.toml"
    case.write_text(f'fixture = "{GOLDEN / "olmoe_base.h5"}"\n{extra}[isolated]\ndefault = {{ rel_l2 = 1e-5 }}\n')
    result = parity("check", "--case", case)
    assert result.returncode == 2 and expected in result.stderr and result.stderr.count("\n") == 1


def test_an_unwritable_report_path_is_exit_2_before_any_work(tmp_path):
    result = parity("check", GOLDEN / "olmoe_base.h5", "--json", tmp_path / "no" / "such" / "dir.json")
    assert result.returncode == 2 and "--json" in result.stderr
    assert "verdict" not in result.stdout


@pytest.mark.parametrize("listed", ["0", "0x", "0,7"])
def test_meta_hooked_layers_cannot_hide_hooks_from_the_gate(tmp_path, golden_copy, listed):
    def lie(f):
        f["meta"].attrs["hooked_layers"] = listed
    result = parity("check", damaged(tmp_path, golden_copy, lie))
    if listed == "0":  # layer 1's hooks are still in the fixture: compared all the same
        assert result.returncode == 0 and "model.layers.1.mlp.experts" in result.stdout
    else:
        assert result.returncode == 2 and "hooked_layers" in result.stderr


def test_clip_qkv_clips_at_the_bound_rounded_to_bf16_as_torch_does(tmp_path):
    config = tiny_config(tmp_path, "olmoe_base", hidden_size=96, num_attention_heads=8, num_key_value_heads=1,
                         intermediate_size=16, num_experts=16, num_experts_per_tok=1, clip_qkv=0.05)
    model = random_model(config, seed=5, dtype="bfloat16")
    fixture = tmp_path / "clip_bf16.h5"
    dump(model, random_input_ids(5, 3, 7, 128), fixture, progress=False)
    for mode in ("isolated", "chained"):
        code, report = check_json(tmp_path, fixture, "--mode", mode)
        assert code == 0, report["first_failure"]
        attn = next(h for h in report["hooks"] if h["hook"] == "model.layers.0.self_attn")
        assert attn["rel_l2"] <= 1e-3  # clipping at ±0.05 instead of ±bf16(0.05) gave 2.7e-3


def test_a_case_mode_without_a_budget_section_takes_the_builtin_limits(tmp_path):
    case = tmp_path / "case.toml"
    case.write_text(f'fixture = "{GOLDEN / "olmoe_base.h5"}"\nmodes = ["isolated", "chained"]\n'
                    '[isolated]\ndefault = { rel_l2 = 2e-5 }\n')
    out = tmp_path / "r.json"
    result = parity("check", "--case", case, "--json", out)
    assert result.returncode == 0, result.stdout + result.stderr
    limits = {(h["mode"], h["budget"]["metric"], h["budget"]["limit"])
              for h in json.loads(out.read_text())["hooks"] if h["kind"] == "float"}
    # The case's own, and the built-in float32 chained default (8 x the noise floor, docs/budgets.md).
    assert limits == {("isolated", "rel_l2", 2e-5), ("chained", "floor_ratio", 8)}
