"""The Gemma-4 reference (gemma4*.cpp) against real HF transformers models, through `parity check`.

Covers the Gemma-4 issue's "done when": configs the repo has never seen (other head dims, partial
rotary factors, windows, expert counts, top-k, layer patterns; with and without MoE, PLE, KV
sharing, k_eq_v, softcap) pass isolated and chained with no code change, and the layer bugs of the
Megatron-bridge Gemma-4 PR (docs/hf-forward-passes.md "Known engine pitfalls"), planted into HF itself, fail
the gate at the hook where they live. Also: checkpoints in either text prefix and either config
layout, and the multimodal Gemma4ForConditionalGeneration wrapper."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path

import pytest
import safetensors.torch
import torch
import transformers

from helpers import GOLDEN, PARITY, tiny_config
from parity.dump import dump
from parity.dump.build import random_input_ids, random_model
from parity.dump.randomize import randomize_
from parity.zoo import BUGS


def check(fixture: Path, tmp_path: Path, *args) -> tuple[int, dict]:
    out = tmp_path / "report.json"
    result = subprocess.run([str(PARITY), "check", str(fixture), "--json", str(out), *map(str, args)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(out.read_text())


def dump_gemma4(tmp_path: Path, config: Path, *, seed=21, batch=2, seq_len=11, dtype="float32", **kwargs) -> Path:
    model = random_model(config, seed=seed, dtype=dtype)
    path = tmp_path / "fixture.h5"
    dump(model, random_input_ids(seed, batch, seq_len, model.config.vocab_size), path, progress=False, **kwargs)
    return path


def rope(sliding: dict, full: dict) -> dict:
    return {"sliding_attention": sliding, "full_attention": full}


# --- configs the repo has never seen ------------------------------------------------------------

UNSEEN = {
    "other head dims and GQA": dict(head_dim=8, global_head_dim=24, num_attention_heads=6, num_key_value_heads=3,
                                    num_global_key_value_heads=2),
    "prf 0.5, factor 2, other thetas": dict(rope_parameters=rope(
        {"rope_type": "default", "rope_theta": 500.0},
        {"rope_type": "proportional", "partial_rotary_factor": 0.5, "rope_theta": 20000.0, "factor": 2.0})),
    "prf 0.3 on head dim 40 (6 of 20 angles)": dict(global_head_dim=40, rope_parameters=rope(
        {"rope_type": "default", "rope_theta": 10000.0},
        {"rope_type": "proportional", "partial_rotary_factor": 0.3, "rope_theta": 1e6})),
    "proportional on both types": dict(rope_parameters=rope(
        {"rope_type": "proportional", "partial_rotary_factor": 0.5, "rope_theta": 10000.0},
        {"rope_type": "proportional", "partial_rotary_factor": 1.0, "rope_theta": 1e6})),
    "window 1, 5 experts top-3": dict(sliding_window=1, num_experts=5, top_k_experts=3, moe_intermediate_size=24),
    "window past the sequence, 16 experts top-1": dict(sliding_window=64, num_experts=16, top_k_experts=1),
    "default layer pattern, 7 layers": dict(layer_types=None, num_hidden_layers=7, num_kv_shared_layers=1),
    "full attention only": dict(layer_types=["full_attention"] * 3, num_hidden_layers=3, num_kv_shared_layers=1),
    "dense, no PLE, no sharing, no k_eq_v, no softcap": dict(
        enable_moe_block=False, hidden_size_per_layer_input=0, num_kv_shared_layers=0, attention_k_eq_v=False,
        final_logit_softcapping=None),
    "MoE without PLE or sharing": dict(hidden_size_per_layer_input=0, num_kv_shared_layers=0),
    "PLE, sharing of one type only, single-wide": dict(
        enable_moe_block=False, num_hidden_layers=4, num_kv_shared_layers=2, use_double_wide_mlp=False,
        layer_types=["sliding_attention", "full_attention", "sliding_attention", "sliding_attention"]),
    "untied head, silu, eps 1e-3, softcap 30": dict(tie_word_embeddings=False, hidden_activation="silu",
                                                    rms_norm_eps=1e-3, final_logit_softcapping=30.0),
    "global head dim left to its default (512)": dict(global_head_dim=None, num_global_key_value_heads=None),
    "per_layer_config layout": dict(global_head_dim=None, num_global_key_value_heads=None, per_layer_config={
        "2": {"head_dim": 24, "num_key_value_heads": 1}, "5": {"head_dim": 24, "num_key_value_heads": 1}}),
}


def unseen_config(tmp_path: Path, overrides: dict) -> Path:
    fields = json.loads((GOLDEN / "configs" / "gemma4_full.json").read_text())
    fields.update(overrides)
    for key in ("global_head_dim", "num_global_key_value_heads"):  # None: leave the key out, HF defaults apply
        if key in overrides and overrides[key] is None:
            del fields[key]
    path = tmp_path / "unseen.json"
    path.write_text(json.dumps(fields))
    return path


@pytest.mark.parametrize("name", UNSEEN)
def test_a_gemma4_config_the_repo_has_never_seen_passes_both_modes_with_the_builtin_budget(tmp_path, name):
    fixture = dump_gemma4(tmp_path, unseen_config(tmp_path, UNSEEN[name]), batch=3, seq_len=9)
    for mode in ("isolated", "chained"):
        code, report = check(fixture, tmp_path, "--mode", mode)
        assert code == 0, (mode, report["first_failure"])
        compared = {h["hook"] for h in report["hooks"] if h["status"] == "pass"}
        assert "/outputs/logits" in compared and "lm_head" in compared


def test_an_unseen_bf16_run_matches_under_bf16_emulation(tmp_path):
    config = unseen_config(tmp_path, UNSEEN["prf 0.3 on head dim 40 (6 of 20 angles)"])
    fixture = dump_gemma4(tmp_path, config, dtype="bfloat16")
    for mode in ("isolated", "chained"):
        code, report = check(fixture, tmp_path, "--mode", mode)
        assert code == 0, (mode, report["first_failure"])
        assert report["runs"][0]["precision"] == "bf16"


def test_every_module_output_of_the_fixture_is_compared(tmp_path):
    """Nothing HF returned escapes the gate: every non-input hook and both outputs pass."""
    import h5py
    for mode in ("isolated", "chained"):
        code, report = check(GOLDEN / "gemma4_full.h5", tmp_path, "--mode", mode)
        assert code == 0
        compared = {h["hook"] for h in report["hooks"] if h["status"] == "pass"}
        with h5py.File(GOLDEN / "gemma4_full.h5") as f:
            outputs = {k for k in f["hooks"] if "@in" not in k} | {f"/outputs/{k}" for k in f["outputs"]}
        assert outputs <= compared
        # Tensors HF computes inline, compared too: the sliding mask, the K/V a source layer shares.
        assert {"model.layers.0@in.attention_mask", "model.layers.3@in.shared_kv_states.full_attention.0",
                "model.layers.2@in1", "model.layers.1.pre_feedforward_layernorm@in"} <= compared


def test_a_padded_batch_passes_both_modes(tmp_path):
    """Left padding: padded keys are masked in both mask types, fully masked rows stay uniform."""
    model = random_model(GOLDEN / "configs" / "gemma4_full.json", seed=3)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, :3] = 0
    fixture = tmp_path / "padded.h5"
    dump(model, random_input_ids(3, 2, 12, 128), fixture, attention_mask=mask, progress=False)
    for mode in ("isolated", "chained"):
        code, report = check(fixture, tmp_path, "--mode", mode)
        assert code == 0, (mode, report["first_failure"])


def test_a_fixture_of_some_layers_checks_isolated_and_chained_against_the_checkpoint(tmp_path):
    model = random_model(GOLDEN / "configs" / "gemma4_full.json", seed=3)
    model.save_pretrained(tmp_path / "ckpt")
    fixture = tmp_path / "layers.h5"
    dump(model, random_input_ids(3, 2, 12, 128), fixture, layers=[1, 4], progress=False)
    code, report = check(fixture, tmp_path)
    assert code == 0, report["first_failure"]
    hooks = {h["hook"] for h in report["hooks"]}
    assert "model.layers.4.router@top_k_index" in hooks and not any(".layers.2." in h for h in hooks)
    code, report = check(fixture, tmp_path, "--mode", "chained", "--weights", tmp_path / "ckpt")
    assert code == 0, report["first_failure"]


# --- the bridge PR's bugs, planted into HF: the gate must fail where each one lives --------------

def first_failure(tmp_path: Path, fixture: Path, mode: str) -> str:
    code, report = check(fixture, tmp_path, "--mode", mode)
    assert code == 1 and report["verdict"] == "fail"
    return report["first_failure"]["hook"]


@contextlib.contextmanager
def one_pre_norm(model):
    """The experts fed pre_feedforward_layernorm's output (one pre-norm) instead of _2's (PR fix 1)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for layer in model.model.layers:
            dense_norm = layer.pre_feedforward_layernorm
            monkeypatch.setattr(layer.pre_feedforward_layernorm_2, "forward",
                                lambda x, norm=dense_norm: type(norm).forward(norm, x))
        yield


@contextlib.contextmanager
def router_on_normed_residual(model):
    """The router fed pre_feedforward_layernorm_2(h1) instead of the un-normed h1 (NeMo Automodel #1895),
    the norm computed inside the router's call (parity.zoo's gemma4_router_on_normed_input instead
    passes the router the norm module's output)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for layer in model.model.layers:
            forward, norm2 = layer.router.forward, layer.pre_feedforward_layernorm_2
            monkeypatch.setattr(layer.router, "forward", lambda x, f=forward, n=norm2: f(type(n).forward(n, x)))
        yield


# The other bugs of the PR live in the zoo (parity.zoo, golden/zoo/README.md):
# gemma4_rope_contiguous_partial is Megatron's partial RoPE on the global layers (PR fix 2),
# gemma4_no_final_softcap the stubbed softcap (PR fix 3), rmsnorm_one_plus_weight Gemma 1-3's x̂ · (1 + w).
PLANTED = {  # bug -> (its patch, the first failing hook isolated, chained)
    "one_pre_norm": (one_pre_norm, "model.layers.0.pre_feedforward_layernorm_2",
                     "model.layers.0.pre_feedforward_layernorm_2"),
    "router_on_normed_residual": (router_on_normed_residual, "model.layers.0.router", "model.layers.0.router.norm"),
    "gemma4_rope_contiguous_partial": (BUGS["gemma4_rope_contiguous_partial"].patch,
                                       "model.layers.2.self_attn.o_proj@in", "model.layers.2.self_attn.o_proj@in"),
    "gemma4_no_final_softcap": (BUGS["gemma4_no_final_softcap"].patch, "/outputs/logits", "/outputs/logits"),
    "rmsnorm_one_plus_weight": (BUGS["rmsnorm_one_plus_weight"].patch, "model.per_layer_projection_norm",
                                "model.per_layer_projection_norm"),
}


@pytest.mark.parametrize("bug", PLANTED)
def test_a_bug_planted_in_hf_fails_first_where_it_lives(tmp_path, bug):
    model = random_model(GOLDEN / "configs" / "gemma4_full.json", seed=1)
    plant, isolated, chained = PLANTED[bug]
    fixture = tmp_path / "buggy.h5"
    with plant(model):
        dump(model, random_input_ids(1, 2, 12, 128), fixture, progress=False)
    assert first_failure(tmp_path, fixture, "isolated") == isolated
    assert first_failure(tmp_path, fixture, "chained") == chained


def test_the_sliding_layers_pass_when_only_global_rope_is_wrong(tmp_path):
    """The PR localised the rotary bug to the first global layer; so does the isolated gate."""
    model = random_model(GOLDEN / "configs" / "gemma4_full.json", seed=1)
    fixture = tmp_path / "buggy.h5"
    with BUGS["gemma4_rope_contiguous_partial"].patch(model):
        dump(model, random_input_ids(1, 2, 12, 128), fixture, progress=False)
    _, report = check(fixture, tmp_path, "--mode", "isolated")
    status = {h["hook"]: h["status"] for h in report["hooks"]}
    assert status["model.layers.0.self_attn"] == status["model.layers.1.self_attn"] == "pass"
    assert status["model.layers.2.self_attn"] == "fail" and status["model.layers.2.self_attn.q_norm"] == "pass"


# --- checkpoints: either text prefix, either config layout ---------------------------------------

def multimodal_model(seed: int, text_config: Path, **wrapper) -> torch.nn.Module:
    text = json.loads(text_config.read_text())
    text.pop("model_type")
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=2, head_dim=16, patch_size=4, image_size=16)
    config = transformers.AutoConfig.for_model("gemma4", text_config=text, vision_config=vision, audio_config=None,
                                               **wrapper)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager",
                                                          experts_implementation="eager")
    randomize_(model, seed)
    return model.eval()


def test_a_multimodal_fixture_checks_against_its_own_and_a_text_only_checkpoint(tmp_path):
    """Released checkpoints are Gemma4ForConditionalGeneration (model.language_model.*)."""
    model = multimodal_model(4, GOLDEN / "configs" / "gemma4_full.json")
    fixture = tmp_path / "multimodal.h5"
    dump(model, random_input_ids(4, 2, 10, 128), fixture, progress=False)
    text_only = tmp_path / "text_only"
    text_only.mkdir()
    state = {k.replace("model.language_model.", "model."): v for k, v in model.state_dict().items()
             if k.startswith("model.language_model.")}
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, text_only / "model.safetensors")
    for mode in ("isolated", "chained"):
        code, report = check(fixture, tmp_path, "--mode", mode)
        assert code == 0, report["first_failure"]
        assert "model.language_model.layers.5.router@top_k_index" in {h["hook"] for h in report["hooks"]}
        code, report = check(fixture, tmp_path, "--mode", mode, "--weights", text_only)
        assert code == 0, report["first_failure"]


def test_multimodal_placeholder_ids_are_embedded_as_the_pad_token_in_a_chained_run(tmp_path):
    """Gemma4Model.forward swaps image/video/audio placeholder ids for text_config.pad_token_id before
    the embedding and the per-layer-input lookup; a chat prompt carries such ids."""
    model = multimodal_model(7, GOLDEN / "configs" / "gemma4_full.json", image_token_id=5, video_token_id=6,
                             audio_token_id=7)
    ids = random_input_ids(7, 2, 10, 128)
    ids[0, 2:5] = torch.tensor([5, 6, 7])
    ids[1, 8] = 5
    fixture = tmp_path / "placeholders.h5"
    dump(model, ids, fixture, progress=False)
    code, report = check(fixture, tmp_path, "--mode", "chained")
    assert code == 0, report["first_failure"]


def test_an_activation_only_fixture_checks_against_a_multimodal_checkpoint(tmp_path):
    """A Gemma4ForCausalLM fixture (model.*) against model.language_model.* weights, the config.json
    in the multimodal wrapper's layout and saved by transformers <= 5.14 (global_head_dim keys)."""
    text_config = GOLDEN / "configs" / "gemma4_full.json"
    multimodal = multimodal_model(6, text_config)
    multimodal.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    old_layout = json.loads(text_config.read_text())
    config["text_config"].pop("per_layer_config")
    config["text_config"].update(global_head_dim=old_layout["global_head_dim"],
                                 num_global_key_value_heads=old_layout["num_global_key_value_heads"])
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    causal = random_model(text_config, seed=0)
    missing, unexpected = causal.load_state_dict(
        {k.replace("model.language_model.", "model."): v for k, v in multimodal.state_dict().items()
         if k.startswith("model.language_model.")}, strict=False)
    assert missing == ["lm_head.weight"] and not unexpected  # the head is tied to the embedding
    fixture = tmp_path / "activations.h5"
    dump(causal, random_input_ids(6, 2, 10, 128), fixture, weights="none", progress=False)
    for mode in ("isolated", "chained"):
        code, report = check(fixture, tmp_path, "--mode", mode, "--weights", tmp_path / "ckpt")
        assert code == 0, report["first_failure"]


@pytest.mark.parametrize("key, value, named", [("sliding_window", 5, "sliding_window"),
                                               ("top_k_experts", 3, "top_k_experts"),
                                               ("final_logit_softcapping", 30.0, "final_logit_softcapping"),
                                               ("num_global_key_value_heads", 2, "layers.2.num_key_value_heads")])
def test_a_checkpoint_of_another_gemma4_is_refused_naming_what_differs(tmp_path, key, value, named):
    other = random_model(tiny_config(tmp_path, "gemma4_full", **{key: value}), seed=1)
    other.save_pretrained(tmp_path / "other")
    result = subprocess.run([str(PARITY), "check", str(GOLDEN / "gemma4_full.h5"), "--weights", tmp_path / "other"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"config.json has {named} = " in result.stderr and str(tmp_path / "other") in result.stderr
