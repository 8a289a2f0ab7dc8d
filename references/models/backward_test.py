"""The reference's isolated backward (olmoe_backward.cpp, gemma4_backward.cpp, parity.replay_backward)
against HF's own autograd: every module the reference has a backward for, in real transformers
models of both families (golden configs and ones the repo has never seen: norm_topk_prob both ways,
clip_qkv; Gemma-4 MoE with k_eq_v, proportional RoPE and per-layer inputs, dense Gemma-4 with KV
sharing), both losses, replayed from HF's inputs and HF's output gradients of a gradient fixture,
must give HF's input and parameter gradients to fp32 round-off, and together cover every
parameter's gradient; the chained forward and backward from the loss (OLMoE) must give every
parameter's gradient."""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest
import torch

import parity
from helpers import GOLDEN, tiny_config
from parity.dump import dump
from parity.dump.build import random_input_ids, random_model

# HF's fp32 backward against the exact math from HF's own inputs: measured at most 1.4e-6 (rel_l2,
# a q_norm weight of the unseen dense Gemma-4; OLMoE: 4.9e-7) over these configs, except below.
TOLERANCE = 2e-6
# torch's fp32 gelu_tanh backward: 5.0e-6 from the exact derivative on gemma4_full's layer-4 act_fn
# input, where torch's own float64 autograd agrees with the reference to 3.5e-15 (measured): HF's
# round-off near the derivative's zero crossing, not the reference's. 4x that.
TOLERANCE_ACTIVATION = 2e-5
# A composite module (a decoder layer, an attention or MoE block, the Gemma-4 router) recomputes its
# intermediates from its own input, so HF's fp32 drift inside the block is in the comparison:
# measured at most 2.24e-6 (the unseen Gemma-4 MoE's layer-0 q_norm weight through self_attn,
# 2.14e-6 through gemma4_dense's layer 1); the chained limit below.
# A decoder layer recomputes every norm inside it: up to 3.9e-5 where a PLE norm reads rows at rms
# 0.019 (the unseen Gemma-4 MoE's last layer), HF's fp32 backward round-off: HF float64 agrees with
# the reference to 1e-6 there (test_the_backward_is_exact_against_hf_in_float64). 2.6x that.
COMPOSITE_TOLERANCE = 1e-4


def tolerance_of(module: str, modules: list[str]) -> float:
    if not any(other.startswith(module + ".") for other in modules):
        return TOLERANCE
    return COMPOSITE_TOLERANCE if re.fullmatch(r".*layers\.\d+", module) else CHAINED_TOLERANCE

UNSEEN_OLMOE = dict(hidden_size=48, intermediate_size=20, num_hidden_layers=2, num_attention_heads=6,
                    num_key_value_heads=2, num_experts=6, num_experts_per_tok=3, norm_topk_prob=True, clip_qkv=0.5,
                    vocab_size=90, tie_word_embeddings=False)
UNSEEN_GEMMA4 = dict(hidden_size=40, num_attention_heads=2, num_key_value_heads=1, head_dim=8, global_head_dim=24,
                     num_global_key_value_heads=1, num_hidden_layers=3, attention_k_eq_v=True,
                     layer_types=["sliding_attention", "full_attention", "sliding_attention"], sliding_window=3,
                     num_experts=5, top_k_experts=2, moe_intermediate_size=12, hidden_size_per_layer_input=4,
                     num_kv_shared_layers=1, vocab_size=97, vocab_size_per_layer_input=97,
                     final_logit_softcapping=5.0,
                     rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 500.0},
                                      "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.5,
                                                         "rope_theta": 1e5}})
UNSEEN_GEMMA4_DENSE = dict(num_hidden_layers=4, num_kv_shared_layers=2, hidden_size_per_layer_input=8,
                           layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"])


def group(f: h5py.File, name: str) -> dict[str, np.ndarray]:
    return {key: f[name][key][()] for key in f[name]}


def gradient_dump(tmp_path, config, loss: str):
    model = random_model(config, seed=9)
    ids = random_input_ids(10, 2, 8, model.config.vocab_size)
    weights = torch.linspace(-1.0, 2.0, 14).reshape(2, 7) if loss == "logprob_sum" else None  # advantages
    path = tmp_path / f"{loss}.h5"
    dump(model, ids, path, grad=loss, loss_weights=weights, progress=False)
    fixture = parity.Fixture(path)
    with h5py.File(path) as f:
        hooks, grad_hooks, grads = group(f, "hooks"), group(f, "grad_hooks"), group(f, "grads")
    hooks["/inputs/position_ids"] = fixture.read("inputs", "position_ids")
    return fixture, hooks, grad_hooks, grads


def rel_l2(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


# name: (golden config it starts from, overrides; None: the golden config itself)
CONFIGS = {
    "olmoe_base": ("olmoe_base", None), "olmoe_norm_topk": ("olmoe_norm_topk", None),
    "olmoe_clip_qkv": ("olmoe_clip_qkv", None), "olmoe_unseen": ("olmoe_base", UNSEEN_OLMOE),
    "gemma4_full": ("gemma4_full", None), "gemma4_dense": ("gemma4_dense", None),
    "gemma4_moe_unseen": ("gemma4_full", UNSEEN_GEMMA4), "gemma4_dense_unseen": ("gemma4_dense", UNSEEN_GEMMA4_DENSE),
}


def config_path(tmp_path, name):
    base, overrides = CONFIGS[name]
    return tiny_config(tmp_path, base, **overrides) if overrides else GOLDEN / "configs" / f"{base}.json"


@pytest.mark.parametrize("loss", ["logprob_sum", "ce_mean"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_module_backward_matches_hf_autograd_and_covers_every_parameter(tmp_path, name, loss):
    fixture, hooks, grad_hooks, grads = gradient_dump(tmp_path, config_path(tmp_path, name), loss)
    shares: dict[str, dict[str, np.ndarray]] = {}  # parameter -> module -> that module's share
    inputs_compared = 0
    modules = parity.modules(fixture)
    for module in modules:
        if "@" in module:  # a Gemma-4 replay unit of one input (forward only), not a module
            continue
        if not any(k == module or k.startswith(module + "@") for k in grad_hooks):
            continue  # nothing downstream of it was differentiated (rotary tables, masks)
        try:
            out = parity.replay_backward(fixture, module, hooks, grad_hooks, fixture)
        except parity.InputError as error:  # the rotary tables only: nothing else lacks a backward
            assert "no backward for module" in str(error) and "rotary_emb" in module, error
            continue
        for key, got in out.items():
            if key.startswith("/grads/"):
                shares.setdefault(key.removeprefix("/grads/"), {})[module] = got
                continue
            want = grad_hooks[key]
            tolerance = TOLERANCE_ACTIVATION if module.endswith("act_fn") else tolerance_of(module, modules)
            assert got.shape == want.shape, key
            assert rel_l2(got, want) <= tolerance, f"{key}: rel_l2 {rel_l2(got, want):.2e}"
            inputs_compared += 1
    # A parameter's gradient is the sum of the shares of the outermost modules that use it (a tied
    # head and embedding); a module inside another (the Gemma-4 router's proj, an attention block's
    # projections) repeats its parent's share from HF's own intermediate tensors, and must give HF's
    # gradient too.
    param_sums, param_tolerance = {}, {}
    for name_, by_module in shares.items():
        outer = [m for m in by_module if not any(m.startswith(o + ".") for o in by_module if o != m)]
        param_sums[name_] = sum(by_module[m] for m in outer)
        param_tolerance[name_] = max(tolerance_of(m, modules) for m in outer)
        for m, share in by_module.items():
            if m not in outer:
                assert rel_l2(share, grads[name_]) <= tolerance_of(m, modules), f"{name_}: {m}'s share"
    # The modules cover every parameter the model has; a tied head's share is the embedding's.
    tied = {"lm_head.weight"} if fixture.config.get("tie_word_embeddings") else set()
    assert set(param_sums) == set(grads) - tied, sorted((set(grads) - tied) ^ set(param_sums))
    for name_, got in param_sums.items():
        assert rel_l2(got, grads[name_]) <= param_tolerance[name_], f"{name_}: rel_l2 {rel_l2(got, grads[name_]):.2e}"
    assert inputs_compared > 10


# The reference's own exact forward and backward from the loss against HF's fp32 training step:
# measured at most 1.3e-6 (rel_l2, a k_norm weight) over the OLMoE configs, the loss to 2e-7
# relative. 4x that: the chained forward's drift is in both.
CHAINED_TOLERANCE = 5e-6
# Gemma-4's chained gradients are worse conditioned (softcap, four norms a layer, PLE, shared K/V):
# measured at most 3.5e-5 over these configs (gemma4_moe_unseen's layer-0 q_norm weight, whose
# float64 HF run is 1.0e-5 from the reference: HF's fp32 round-off; the CLI gates chained rows
# against the second opinion's floor). 2.9x that.
GEMMA4_CHAINED_TOLERANCE = 1e-4


@pytest.mark.parametrize("loss", ["logprob_sum", "ce_mean"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_chained_backward_from_the_loss_matches_hf_for_every_parameter(tmp_path, name, loss):
    fixture, hooks, grad_hooks, grads = gradient_dump(tmp_path, config_path(tmp_path, name), loss)
    with h5py.File(tmp_path / f"{loss}.h5") as f:
        ids, value = f["inputs/input_ids"][()], float(f["loss/value"][()])
        spec = {"loss_weights": f["loss/weights"][()]} if loss == "logprob_sum" else {"labels": f["loss/labels"][()]}
    # Routed as HF routed (a near-tie broken the other way would move a whole token's experts).
    routing = {key.removesuffix("@top_k_index"): hooks[key] for key in hooks if key.endswith("@top_k_index")}
    out = parity.forward_backward(fixture, ids, fixture, loss, routing=routing, **spec)
    assert float(out["/loss/value"]) == pytest.approx(value, rel=1e-6)
    tolerance = GEMMA4_CHAINED_TOLERANCE if name.startswith("gemma4") else CHAINED_TOLERANCE
    tied = {"lm_head.weight"} if fixture.config.get("tie_word_embeddings") else set()  # the embedding's
    assert {k.removeprefix("/grads/") for k in out if k.startswith("/grads/")} == set(grads) - tied
    for name_, want in grads.items():
        got = out["/grads/" + ("model.embed_tokens.weight" if name_ in tied else name_)]
        assert rel_l2(got, want) <= tolerance, f"{name_}: rel_l2 {rel_l2(got, want):.2e}"
    # The module output gradients it passes, too (every layer, the experts, the router weights).
    passed = [k for k in out if not k.startswith("/")]
    assert len(passed) > 5 and all(rel_l2(out[k], grad_hooks[k]) <= tolerance for k in passed), \
        max((rel_l2(out[k], grad_hooks[k]), k) for k in passed)


def test_the_check_can_fail_a_router_backward_with_the_wrong_renormalisation(tmp_path):
    fixture, hooks, grad_hooks, grads = gradient_dump(tmp_path, GOLDEN / "configs" / "olmoe_base.json", "ce_mean")
    router = "model.layers.1.mlp.gate"
    right = parity.replay_backward(fixture, router, hooks, grad_hooks, fixture)
    wrong = parity.replay_backward({**fixture.config, "norm_topk_prob": True}, router, hooks, grad_hooks, fixture)
    want = grads[f"{router}.weight"]
    assert rel_l2(right[f"/grads/{router}.weight"], want) <= TOLERANCE
    assert rel_l2(wrong[f"/grads/{router}.weight"], want) > 1e-2


def test_bad_backward_use_is_refused_naming_it(tmp_path):
    fixture, hooks, grad_hooks, _ = gradient_dump(tmp_path, GOLDEN / "configs" / "olmoe_base.json", "ce_mean")
    with pytest.raises(parity.InputError, match="no backward for module model.rotary_emb yet"):
        parity.replay_backward(fixture, "model.rotary_emb", hooks, grad_hooks, fixture)
    with pytest.raises(parity.InputError, match="no gradient of model.layers.0.self_attn.q_proj's output"):
        parity.replay_backward(fixture, "model.layers.0.self_attn.q_proj", hooks, {}, fixture)
    with pytest.raises(parity.InputError, match="is not a module"):
        parity.replay_backward(fixture, "model.layers.9.mlp.gate", hooks, grad_hooks, fixture)
    with pytest.raises(TypeError, match="grads: expected a dict"):
        parity.replay_backward(fixture, "lm_head", hooks, [1], fixture)
    with pytest.raises(TypeError, match="expected a float array"):
        parity.replay_backward(fixture, "lm_head", hooks, {"lm_head": np.zeros((2, 8, 128), np.int64)}, fixture)
    with pytest.raises(parity.InputError, match="gradient of lm_head is"):
        parity.replay_backward(fixture, "lm_head", hooks, {"lm_head": np.zeros((2, 8, 3))}, fixture)
    with pytest.raises(parity.InputError, match="gradient of lm_head is"):  # the right size, transposed
        parity.replay_backward(fixture, "lm_head", hooks, {"lm_head": grad_hooks["lm_head"].transpose(1, 0, 2)}, fixture)
    with pytest.raises(parity.InputError, match="0-d input"):
        parity.replay_backward(fixture, "lm_head", {**hooks, "lm_head@in": np.zeros((), np.float32)}, grad_hooks, fixture)
    gate = "model.layers.0.mlp.gate"
    with pytest.raises(parity.InputError, match=f"gradient of {gate} is"):  # the logits' gradient, mis-sized
        parity.replay_backward(fixture, gate, hooks, {**grad_hooks, gate: np.full((3,), 1e3)}, fixture)


def test_bad_chained_backward_use_is_refused_naming_it(tmp_path):
    fixture, hooks, _, _ = gradient_dump(tmp_path, GOLDEN / "configs" / "olmoe_base.json", "ce_mean")
    ids = fixture.read("inputs", "input_ids")
    weights = np.ones((2, 7))
    run = lambda **kw: parity.forward_backward(fixture, ids, fixture, **{"loss": "logprob_sum", "loss_weights": weights, **kw})
    assert "/loss/value" in run()
    with pytest.raises(parity.InputError, match='"model.layers.0.mlp.gatee" is no router'):
        run(routing={"model.layers.0.mlp.gatee": hooks["model.layers.0.mlp.gate@top_k_index"]})
    with pytest.raises(parity.InputError, match="routing.*is \\[2, 2\\]"):
        run(routing={"model.layers.0.mlp.gate": np.array([[0, 1], [1, 2]])})
    with pytest.raises(parity.InputError, match="loss_weights \\[2, 8\\] must be"):
        run(loss_weights=np.ones((2, 8)))
    with pytest.raises(parity.InputError, match="loss_weights: nan"):
        run(loss_weights=np.full((2, 7), np.nan))
    with pytest.raises(TypeError, match="loss_weights: expected a float array"):
        run(loss_weights=np.ones((2, 7), np.int64))
    with pytest.raises(parity.InputError, match="needs labels"):
        run(loss="ce_mean", loss_weights=None)
    with pytest.raises(parity.InputError, match="every label is -100"):
        run(loss="ce_mean", loss_weights=None, labels=np.full((2, 8), -100))
    with pytest.raises(parity.InputError, match='expected "logprob_sum" or "ce_mean"'):
        run(loss="mse")
    with pytest.raises(parity.InputError, match="is not the input id"):
        run(loss="ce_mean", loss_weights=None, labels=(ids + 1) % 128)
    with pytest.raises(parity.InputError, match="loss_weights belong to the logprob_sum loss"):
        run(loss="ce_mean", labels=ids)
    with pytest.raises(parity.InputError, match="labels belong to the ce_mean loss"):
        run(labels=ids)
    with pytest.raises(parity.InputError, match="overflow"):
        run(loss_weights=np.full((2, 7), 1e308))
    with pytest.raises(parity.InputError, match="names an expert twice"):
        run(routing={"model.layers.0.mlp.gate": np.zeros((16, 2), np.int64)})



# HF run in float64 (the model's float32 weights, widened): what is left of HF's round-off is the
# float32 its eager attention and router softmaxes and its losses keep. Against it every module's
# isolated backward agrees with the reference to 1.6e-7 at most (measured over these configs), and
# OLMoE's chained one to 6.4e-7, so the fp32 limits above are HF's own round-off, not the
# reference's error. Gemma-4's chained gradients carry those float32 softmaxes through layers whose
# per-layer-input norm reads near-zero rows: measured 1.03e-5 (gemma4_moe_unseen's layer-0
# post_per_layer_input_norm weight), against 2.3e-5 for HF's fp32 run.
F64_TOLERANCE = 2e-6
F64_GEMMA4_CHAINED_TOLERANCE = 5e-5


@pytest.mark.parametrize("name", ["olmoe_unseen", "gemma4_moe_unseen", "gemma4_dense_unseen"])
def test_the_backward_is_exact_against_hf_in_float64(tmp_path, name):
    model = random_model(config_path(tmp_path, name), seed=9).double()
    ids = random_input_ids(10, 2, 8, model.config.vocab_size)
    path = tmp_path / "f64.h5"
    dump(model, ids, path, grad="ce_mean", progress=False)
    fixture = parity.Fixture(path)
    with h5py.File(path) as f:
        hooks, grad_hooks, grads = group(f, "hooks"), group(f, "grad_hooks"), group(f, "grads")
        labels = f["loss/labels"][()]
    hooks["/inputs/position_ids"] = fixture.read("inputs", "position_ids")
    worst = (0.0, "")
    modules = [m for m in parity.modules(fixture) if "@" not in m and "rotary_emb" not in m]
    for module in modules:
        if not any(k == module or k.startswith(module + "@") for k in grad_hooks):
            continue
        for key, got in parity.replay_backward(fixture, module, hooks, grad_hooks, fixture).items():
            want = grads[key.removeprefix("/grads/")] if key.startswith("/grads/") else grad_hooks[key]
            shared = any(o.startswith(module + ".") for o in modules) or (
                fixture.config.get("tie_word_embeddings") and key.endswith("embed_tokens.weight"))
            if key.startswith("/grads/") and shared:
                continue  # a share of a parameter another module uses too (a composite's, a tied head's)
            worst = max(worst, (rel_l2(got, want), f"{module}: {key}"))
    routing = {key.removesuffix("@top_k_index"): hooks[key] for key in hooks if key.endswith("@top_k_index")}
    out = parity.forward_backward(fixture, ids.numpy(), fixture, "ce_mean", labels=labels, routing=routing)
    assert worst[0] <= F64_TOLERANCE, worst
    tied = {"lm_head.weight"} if fixture.config.get("tie_word_embeddings") else set()
    chained = max((rel_l2(out["/grads/" + ("model.embed_tokens.weight" if n in tied else n)], want), n)
                  for n, want in grads.items())
    assert chained[0] <= (F64_GEMMA4_CHAINED_TOLERANCE if name.startswith("gemma4") else F64_TOLERANCE), chained
