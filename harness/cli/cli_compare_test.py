"""End-to-end tests of `parity compare BASE TARGET` (compare.cpp, cli_compare.cpp): two dumps of the
same model and inputs compared hook by hook with check's metrics, budgets, reports and exit codes;
hooks on one side only, mixed dtypes, and the three-way view (the reference replayed on each side)."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import GOLDEN, run_parity

OLMOE = GOLDEN / "olmoe_base.h5"
PERTURBED = "model.layers.1.mlp.gate@top_k_weights"  # a hook the dumper stored as a dataset, not a link
REMOVED = "model.layers.1.self_attn@attn_weights"


def compare(tmp_path: Path, base: Path, target: Path, *args) -> tuple[int, dict, str]:
    out = tmp_path / "compare.json"
    result = run_parity("compare", base, target, "--json", out, *args)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(out.read_text()), result.stdout


def copy_with(tmp_path: Path, source: Path, edit, name="target.h5") -> Path:
    path = tmp_path / name
    shutil.copy(source, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def links_into(f: h5py.File) -> set[str]:
    """Every path some soft link of the fixture points at (deduplicated tensors, golden/README.md)."""
    targets = set()
    for group in ("hooks", "outputs", "weights"):
        for name in f[group]:
            link = f[group].get(name, getlink=True)
            if isinstance(link, h5py.SoftLink):
                targets.add(link.path)
    return targets


def scale_hook(key: str, factor: float):
    def edit(f: h5py.File) -> None:
        # Scaled in place: a soft link would carry the change to every key that points at the tensor.
        assert not isinstance(f["hooks"].get(key, getlink=True), h5py.SoftLink)
        f["hooks"][key][...] = f["hooks"][key][()] * factor
    return edit


def remove_hook(key: str):
    def edit(f: h5py.File) -> None:
        assert f"/hooks/{key}" not in links_into(f)  # nothing else reads its tensor
        del f["hooks"][key]
    return edit


def hook(report: dict, key: str) -> dict:
    return next(h for h in report["hooks"] if h["hook"] == key)


def budget_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "budget.toml"
    path.write_text("[compare]\ndefault = { rel_l2 = 1e-4 }\n" + text)
    return path


# --- the gate ------------------------------------------------------------------------------------

def test_a_fixture_compared_with_itself_passes_at_zero(tmp_path):
    code, report, stdout = compare(tmp_path, OLMOE, OLMOE)
    assert code == 0 and report["verdict"] == "pass" and report["first_failure"] is None
    run = report["runs"][0]
    assert run["mode"] == "compare" and run["sides"] == {"ref": "target", "hf": "base"}
    assert run["fixture"] == str(OLMOE) and run["target"] == str(OLMOE)
    floats = [h for h in report["hooks"] if h["kind"] == "float"]
    assert floats and all(h["rel_l2"] == 0 and h["status"] == "pass" for h in floats)
    with h5py.File(OLMOE) as f:
        keys = list(f["hooks"]) + [f"/outputs/{k}" for k in f["outputs"]]
    assert [h["hook"] for h in report["hooks"]] == keys  # every hook and output, in forward order
    assert hook(report, "model.layers.0.mlp.gate@top_k_index")["kind"] == "top_k"
    assert hook(report, "model.layers.0.mlp.experts@in1")["kind"] == "top_k"  # a link to the router's index
    assert hook(report, "model@in.input_ids")["budget"]["rule"] == "exact (integer tensor)"
    assert all(h["lower_precision"] is None for h in report["hooks"])
    # The three-way view judges every float and top-k hook: here both sides agree with the reference
    # wherever it computes the hook (module inputs it does not compute have no verdict).
    judged = [h["reference"] for h in report["hooks"] if h["reference"] and h["reference"]["departs"]]
    assert judged and all(v["departs"] == "neither" for v in judged)
    assert stdout.startswith(f"parity compare {OLMOE} (base) vs {OLMOE} (target)")
    assert "PASS compare: " in stdout


def test_a_perturbed_hook_fails_first_there_and_the_target_departs_from_the_reference(tmp_path):
    target = copy_with(tmp_path, OLMOE, scale_hook(PERTURBED, 1.5))
    code, report, stdout = compare(tmp_path, OLMOE, target)
    assert code == 1 and report["verdict"] == "fail"
    first = report["first_failure"]
    assert first["mode"] == "compare" and first["hook"] == PERTURBED
    # Gated against the compare noise floor: two float32 reference forwards of this model.
    assert first["message"].startswith("rel_l2 = 0.5, ") and " x its noise floor " in first["message"]
    assert first["message"].endswith("over budget rel_l2 <= max(8 x floor, 2.4e-07)")
    keys = [h["hook"] for h in report["hooks"]]
    assert all(h["status"] == "pass" for h in report["hooks"][:keys.index(PERTURBED)])
    h = hook(report, PERTURBED)
    assert h["rel_l2"] == pytest.approx(0.5, rel=1e-6)
    assert 0 < h["floor"]["rel_l2"] < 1e-6 and h["budget"]["rule"] == "default"
    ref = h["reference"]
    assert ref["departs"] == "target"
    assert ref["vs_target_rel_l2"] > 0.1 and ref["vs_base_rel_l2"] < 1e-5
    assert ref["base"]["within_budget"] is True and ref["target"]["within_budget"] is False
    assert ref["verdict"].startswith("the target departs from the reference (rel_l2 ")
    assert f"first divergence {PERTURBED}: the target departs from the reference" in stdout
    # The same pair the other way round: now the base is the side that departs.
    code, report, _ = compare(tmp_path, target, OLMOE)
    assert code == 1 and hook(report, PERTURBED)["reference"]["departs"] == "base"


def test_no_reference_skips_the_three_way_view(tmp_path):
    target = copy_with(tmp_path, OLMOE, scale_hook(PERTURBED, 1.5))
    code, report, stdout = compare(tmp_path, OLMOE, target, "--no-reference")
    assert code == 1 and report["first_failure"]["hook"] == PERTURBED
    assert all(h["reference"] is None for h in report["hooks"])
    assert report["runs"][0]["notes"] == ["noise floor: off (--no-reference)", "three-way: off (--no-reference)"]
    assert "note: three-way: off (--no-reference)" in stdout and "note: noise floor: off (--no-reference)" in stdout
    # Without a floor the built-in default falls back to its fixed limit, and says so per hook.
    h = hook(report, PERTURBED)
    assert h["floor"] is None and h["budget"]["metric"] == "rel_l2" and h["budget"]["limit"] == 1e-4
    assert h["budget"]["rule"] == "default (no noise floor: fixed limit)"


def test_a_floor_ratio_rule_without_a_floor_fails_closed(tmp_path):
    """The fixed fallback is the built-in default's alone: a rule a budget file states as floor_ratio
    cannot gate a hook without a floor, and fails it rather than passing it."""
    budget = tmp_path / "budget.toml"
    budget.write_text('[compare]\ndefault = { floor_ratio = 8, min_rel_l2 = 2.4e-7 }\n')
    code, report, _ = compare(tmp_path, OLMOE, OLMOE, "--no-reference", "--budget", budget)
    assert code == 1
    assert report["first_failure"]["message"].startswith("no noise floor for this hook")
    code, _, _ = compare(tmp_path, OLMOE, OLMOE, "--budget", budget)  # with the floor it gates, and passes
    assert code == 0


def test_a_target_without_weights_is_replayed_with_the_bases(tmp_path):
    def strip(f):
        scale_hook(PERTURBED, 1.5)(f)
        for name in list(f["weights"]):
            del f["weights"][name]
    target = copy_with(tmp_path, OLMOE, strip)
    code, report, _ = compare(tmp_path, OLMOE, target)
    assert code == 1 and hook(report, PERTURBED)["reference"]["departs"] == "target"
    assert "three-way: the target has no weights; the reference replayed it with the base's" in report["runs"][0]["notes"]


def test_weights_of_another_run_dtype_are_not_borrowed(tmp_path):
    """An fp32 dump judged with bf16 weights would be blamed for rounding it never did."""
    def strip(f):
        for name in list(f["weights"]):
            del f["weights"][name]
    base = copy_with(tmp_path, OLMOE, strip)
    code, report, _ = compare(tmp_path, base, GOLDEN / "olmoe_base_bf16.h5")
    assert code == 1
    failing = [h["reference"] for h in report["hooks"] if h["reference"]]
    assert failing and all(r["departs"] is None and "the target's are bfloat16, not float32" in r["base"]["note"]
                           for r in failing)


def as_unknown_model(f: h5py.File) -> None:
    """The fixture relabelled as a model_type the reference does not know."""
    config = json.loads(f["meta/config"][()])
    config["model_type"] = "not_a_family"
    del f["meta/config"]
    f["meta"].create_dataset("config", data=json.dumps(config))
    f["meta"].attrs["model_type"] = "not_a_family"


def test_a_model_without_a_reference_is_compared_and_the_three_way_view_says_why_it_is_missing(tmp_path):
    base = copy_with(tmp_path, OLMOE, as_unknown_model, name="base.h5")
    target = copy_with(tmp_path, base, scale_hook(PERTURBED, 1.5))
    code, report, stdout = compare(tmp_path, base, target)
    assert code == 1 and report["first_failure"]["hook"] == PERTURBED  # a note, not a failure of its own
    ref = hook(report, PERTURBED)["reference"]
    assert ref["departs"] is None and "has no reference" in ref["base"]["note"]
    notes = report["runs"][0]["notes"]
    assert any(n.startswith("three-way: the reference cannot replay the target: ") for n in notes)
    assert "note: three-way: the reference cannot replay the base" in stdout
    # Without a reference the configs are compared as raw JSON.
    def other(f):
        config = json.loads(f["meta/config"][()])
        config["hidden_size"] = 48
        del f["meta/config"]
        f["meta"].create_dataset("config", data=json.dumps(config))
    assert "hidden_size = 64 (base) vs 48 (target)" in refused(base, copy_with(tmp_path, base, other, name="other.h5"))


# --- hooks on one side only -----------------------------------------------------------------------

@pytest.mark.parametrize("missing_from", ["target", "base"])
def test_a_hook_on_one_side_only_fails_unless_the_budget_allows_it(tmp_path, missing_from):
    stripped = copy_with(tmp_path, OLMOE, remove_hook(REMOVED))
    base, target = (OLMOE, stripped) if missing_from == "target" else (stripped, OLMOE)
    present = "base" if missing_from == "target" else "target"
    code, report, _ = compare(tmp_path, base, target)
    assert code == 1
    assert report["first_failure"]["hook"] == REMOVED
    assert report["first_failure"]["message"] == f"only in the {present}: the {missing_from} has no such hook"
    keys = [h["hook"] for h in report["hooks"]]
    assert keys.index(REMOVED) == keys.index("model.layers.1.self_attn") + 1  # still in forward order

    allowed = budget_file(tmp_path, f'[[one_side]]\nhooks = "{REMOVED}"\nreason = "the engine never materialises attention weights"\n')
    code, report, _ = compare(tmp_path, base, target, "--budget", allowed)
    assert code == 0, report["first_failure"]
    h = hook(report, REMOVED)
    assert h["status"] == "skipped" and h["message"].startswith(f"only in the {present}: allowed: the engine never materialises attention weights (")


def test_an_unused_one_side_entry_fails_the_run(tmp_path):
    stale = budget_file(tmp_path, '[[one_side]]\nhooks = "model.layers.9.*"\nreason = "no such layer"\n')
    code, report, stdout = compare(tmp_path, OLMOE, OLMOE, "--budget", stale)
    assert code == 1
    problems = report["runs"][0]["problems"]
    assert len(problems) == 1 and "one_side" in problems[0] and "matches no hook that only one dump holds" in problems[0]
    assert report["first_failure"]["hook"] is None


def test_a_budget_without_a_compare_section_gates_on_the_builtin_compare_limits(tmp_path):
    path = tmp_path / "isolated_only.toml"
    path.write_text("[isolated]\ndefault = { rel_l2 = 1e-5 }\n")
    out = tmp_path / "r.json"
    result = run_parity("compare", OLMOE, OLMOE, "--budget", path, "--json", out)
    assert result.returncode == 0, result.stdout + result.stderr
    budgets = [h["budget"] for h in json.loads(out.read_text())["hooks"]
               if h["kind"] == "float" and h["budget"]["rule"] != "exact (integer tensor)"]
    # The built-in float32 compare default: the noise floor, with its fixed fallback.
    assert {(b["metric"], b["limit"], b["rule"]) for b in budgets} == {("floor_ratio", 8, "default")}


# --- mixed dtypes -----------------------------------------------------------------------------------

def test_float32_against_bfloat16_reports_the_lower_precision_metrics_and_the_floor(tmp_path):
    code, report, stdout = compare(tmp_path, GOLDEN / "gemma4_full.h5", GOLDEN / "gemma4_full_bf16.h5")
    run = report["runs"][0]
    assert run["budget"].startswith("built-in defaults for bfloat16 (the lower precision")
    mixed = [h for h in report["hooks"] if h["lower_precision"] is not None]
    assert mixed and all(h["lower_precision"]["dtype"] == "bfloat16" and h["lower_precision"]["higher_side"] == "base"
                         for h in mixed)
    # Rounding a float32 tensor to bf16 costs about 2^-9 relative: the floor a bf16 engine cannot beat.
    floors = [h["lower_precision"]["floor"] for h in mixed]
    assert all(0 < f < 4e-3 for f in floors), max(floors)
    # The rotary tables: the bf16 run rounds HF's float32 cos/sin, nothing more, so they are equal
    # once rounded, and their raw difference is exactly the floor.
    cos = hook(report, "model.rotary_emb@sliding_attention.cos")
    assert cos["lower_precision"]["rel_l2"] == 0 and cos["rel_l2"] == pytest.approx(cos["lower_precision"]["floor"])
    # HF's masks hold each dtype's finfo.min; rounding saturates instead of making -inf.
    mask = hook(report, "model.layers.0@in.attention_mask")
    assert mask["status"] == "pass" and mask["lower_precision"]["rel_l2"] == 0
    # The gate: the bf16 run breaks router near-ties the other way (token 11 of layer 0 takes another
    # expert) and the drift that follows cascades through every later layer. The compare floor (the
    # reference at float32 and its bfloat16 second opinion, each routed as its dump) drifts the same
    # way, so the pair passes, with each near-tie counted, listed, and left out of the weights.
    assert code == 0, stdout
    index = hook(report, "model.layers.0.router@top_k_index")
    assert index["status"] == "pass" and index["tokens_differ"] == 0 and index["near_ties"] == 1
    assert index["near_tie_tokens"] == [11] and "1 near-ties (token 11)" in stdout
    weights = hook(report, "model.layers.0.router@top_k_weights")
    assert weights["note"] == "1 near-tie token(s) left out (their experts differ): 11"
    routers = [h for h in report["hooks"] if h["kind"] == "top_k"]
    assert sum(h["near_ties"] for h in routers) == sum(len(h["near_tie_tokens"]) for h in routers) > 1
    floats = [h for h in report["hooks"] if h["kind"] == "float" and h["status"] == "pass"]
    gated = [h for h in floats if h["budget"]["metric"] == "floor_ratio"]
    assert gated and all(h["floor"] is not None for h in gated)
    # The floor tracks the measured drift: the worst hook stays within 2 x (its limit).
    assert max(h["floor_ratio"] for h in gated if h["rel_l2"] > 1.5e-3) < 2
    assert "bfloat16 rounded: rel_l2" in stdout
    # Without the floor the same pair fails: the fixed 5e-2 fallback cannot tell a cascade of
    # near-ties from a bug (the first token routed differently moves layer 0's expert output 0.39).
    code, report, _ = compare(tmp_path, GOLDEN / "gemma4_full.h5", GOLDEN / "gemma4_full_bf16.h5", "--no-reference")
    assert code == 1 and report["first_failure"]["hook"] == "model.layers.0.experts"


# --- refusals (exit 2, one line) ------------------------------------------------------------------

def refused(*args) -> str:
    result = run_parity("compare", *args)
    assert result.returncode == 2, result.stdout
    assert result.stdout == "" and result.stderr.startswith("parity: error: ") and result.stderr.count("\n") == 1
    return result.stderr


def test_different_inputs_are_refused_naming_both_files_and_the_first_difference(tmp_path):
    def edit(f):
        ids = f["inputs/input_ids"][()]
        ids[0, 3] = (ids[0, 3] + 1) % 128
        f["inputs/input_ids"][...] = ids
    target = copy_with(tmp_path, OLMOE, edit)
    message = refused(OLMOE, target)
    assert str(OLMOE) in message and str(target) in message and "/inputs/input_ids differ at [0, 3]" in message


def test_configs_of_different_models_are_refused(tmp_path):
    def edit(f):
        config = json.loads(f["meta/config"][()])
        config["rms_norm_eps"] = 1e-3
        del f["meta/config"]
        f["meta"].create_dataset("config", data=json.dumps(config))
    target = copy_with(tmp_path, OLMOE, edit)
    message = refused(OLMOE, target)
    assert "the configs describe different models: rms_norm_eps = " in message and str(target) in message


def test_truncated_missing_and_foreign_files_are_refused(tmp_path):
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(OLMOE.read_bytes()[:100_000])
    for path, what in ((truncated, "truncated file"), (tmp_path / "none.h5", "no such file")):
        assert what in refused(OLMOE, path)
        assert what in refused(path, OLMOE)
    assert "TARGET" in refused(OLMOE)  # both dumps are required: a usage error


# --- reports ------------------------------------------------------------------------------------------

def test_json_junit_and_html_reports_are_written(tmp_path):
    target = copy_with(tmp_path, OLMOE, scale_hook(PERTURBED, 1.5))
    paths = {kind: tmp_path / f"r.{kind}" for kind in ("json", "xml", "html")}
    result = run_parity("compare", OLMOE, target, "--json", paths["json"], "--junit", paths["xml"],
                        "--html", paths["html"], "--failures-only")
    assert result.returncode == 1, result.stderr
    report = json.loads(paths["json"].read_text())
    assert report["schema"] == "parity-check/1" and report["runs"][0]["mode"] == "compare"
    perturbed = hook(report, PERTURBED)
    # compare names its sides: the base's norm is the denominator, elements say target and base.
    assert perturbed["rel_l2_denominator"] == "base_l2" and perturbed["base_l2"] > 0
    assert {"target_at_max_abs", "base_at_max_abs"} <= set(perturbed) and "hf_at_max_abs" not in perturbed
    assert set(perturbed["nonfinite"]) == {"target_nan", "target_inf", "base_nan", "base_inf"}
    assert perturbed["worst"] and set(perturbed["worst"][0]) == {"at", "target", "base", "abs_diff"}
    suites = ET.parse(paths["xml"]).getroot().findall("testsuite")
    assert len(suites) == 1 and suites[0].get("name") == f"{OLMOE} vs {target} [compare]"
    failures = [c for c in suites[0].findall("testcase") if c.find("failure") is not None]
    assert failures[0].get("name") == PERTURBED
    assert "the target departs from the reference" in failures[0].find("failure").get("message")
    html = paths["html"].read_text()
    assert "parity compare: " in html and "Against the C++ reference" in html and "the target departs" in html
    assert "<th>target</th><th>base</th>" in html  # the worst elements name the sides
    # --failures-only prints failed hooks only; the verdict line still comes last.
    rows = [line for line in result.stdout.splitlines() if line.lstrip().split(" ")[0].isdigit()]
    assert rows and all(" fail " in row for row in rows)
    # parity report renders the same page from the JSON.
    rendered = tmp_path / "rendered.html"
    assert run_parity("report", paths["json"], "-o", rendered).returncode == 0
    assert "Against the C++ reference" in rendered.read_text()


def test_baselines_of_a_comparison(tmp_path):
    baseline = tmp_path / "baseline.json"
    result = run_parity("compare", OLMOE, OLMOE, "--write-baseline", baseline)
    assert result.returncode == 0, result.stderr
    values = json.loads(baseline.read_text())["values"]
    assert values and {v["mode"] for v in values} == {"compare"}
    target = copy_with(tmp_path, OLMOE, scale_hook(PERTURBED, 1.0 + 1e-6))  # inside the budget, outside the band
    code, report, _ = compare(tmp_path, OLMOE, target, "--baseline", baseline)
    assert code == 1 and report["runs"][0]["verdict"] == "pass" and report["baseline"]["verdict"] == "fail"


def test_swapping_base_and_target_keeps_the_routing_verdict(tmp_path):
    """Near-ties count by either dump's router scores: the argument order changes no verdict."""
    bf16 = GOLDEN / "olmoe_base_bf16.h5"
    _, forward, _ = compare(tmp_path, OLMOE, bf16)
    _, backward, _ = compare(tmp_path, bf16, OLMOE)
    routing = lambda report: {h["hook"]: h["status"] for h in report["hooks"] if h["kind"] == "top_k"}
    assert routing(forward) == routing(backward) and routing(forward)
    assert forward["verdict"] == backward["verdict"] and forward["first_failure"] == backward["first_failure"]
