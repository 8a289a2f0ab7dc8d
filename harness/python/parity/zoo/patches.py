"""The bug zoo's patches: each plants one known bug into a live HF model for a `with` block.

    with gemma4_no_final_softcap(model):
        dump(model, ids, "buggy.h5")        # weights and /meta/config stay the model's true ones

Exact semantics: the zoo spec, shared with the C++ variants (references/models/variants.h); the
stories: golden/zoo/README.md. Every patch works per instance (an instance attribute `forward`, or
an attribute such as `scaling`, set on the affected modules and removed again in `finally`), never
touches a weight, buffer or config value the dumper writes, and runs each module once per forward,
so a patched dump has the clean dump's hook keys (golden/zoo/README.md lists the order changes).
A patch that would plant nothing in the given model (wrong family, no MoE layer, ...) raises
ValueError: a "buggy" fixture that is silently clean would pass every gate.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch.nn import functional as F
from transformers.models.gemma4 import modeling_gemma4 as g4
from transformers.models.olmoe import modeling_olmoe as olmoe


# --- helpers ------------------------------------------------------------------------------------

_MISSING = object()


@contextlib.contextmanager
def _attributes(changes: list[tuple[object, str, object]]) -> Iterator[None]:
    """Sets obj.name = value for each change, and on exit puts back the previous value, or removes an
    instance attribute that did not exist before (so `forward` falls back to the class's again)."""
    saved = []
    try:
        for obj, name, value in changes:
            saved.append((obj, name, obj.__dict__.get(name, _MISSING)))
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, previous in reversed(saved):
            if previous is _MISSING:
                delattr(obj, name)
            else:
                setattr(obj, name, previous)


def _modules(model: torch.nn.Module, cls: type, family: str, bug: str, what: str) -> list[torch.nn.Module]:
    found = [m for m in model.modules() if isinstance(m, cls)]
    if not found:
        raise ValueError(f"{bug}: no {what} in {type(model).__name__} (a {family} bug)")
    return found


def _gemma4_layers(model, bug: str, *, moe: bool = False) -> list[g4.Gemma4TextDecoderLayer]:
    layers = _modules(model, g4.Gemma4TextDecoderLayer, "gemma4", bug, "Gemma-4 text decoder layer")
    if moe:
        layers = [layer for layer in layers if layer.enable_moe_block]
        if not layers:
            raise ValueError(f"{bug}: the model has no MoE layer (enable_moe_block is false)")
    return layers


def _text_config(model):
    return model.config.get_text_config()


# --- Gemma-4 forwards with switches: HF 5.15.0's own code, the bugs as options ------------------

@dataclass(frozen=True)
class _Wiring:
    """How a Gemma-4 decoder layer wires its MoE block and output; the defaults are HF's."""

    router_input: str = "residual"       # or "normed2": pre_feedforward_layernorm_2's output
    mlp_input: str = "pre_feedforward_layernorm"  # or "normed2"
    apply_layer_scalar: bool = True


def _gemma4_layer_forward(layer, wiring: _Wiring, hidden_states, per_layer_input=None, shared_kv_states=None,
                          position_embeddings=None, attention_mask=None, position_ids=None, past_key_values=None,
                          **kwargs):
    """Gemma4TextDecoderLayer.forward (transformers 5.15.0) with `wiring`'s switches."""
    residual = hidden_states
    hidden_states = layer.input_layernorm(hidden_states)
    hidden_states, _ = layer.self_attn(
        hidden_states=hidden_states, position_embeddings=position_embeddings, attention_mask=attention_mask,
        shared_kv_states=shared_kv_states, position_ids=position_ids, past_key_values=past_key_values, **kwargs)
    hidden_states = layer.post_attention_layernorm(hidden_states)
    hidden_states = residual + hidden_states

    residual = hidden_states
    dense_input = layer.pre_feedforward_layernorm(hidden_states)  # run in every wiring (its hook records it)
    normed2 = None
    if layer.enable_moe_block:
        hidden_states_flat = residual.reshape(-1, residual.shape[-1])
        if wiring.mlp_input == "normed2":
            normed2 = layer.pre_feedforward_layernorm_2(hidden_states_flat)  # computed once, read twice
            dense_input = normed2.reshape(residual.shape)
    hidden_states = layer.mlp(dense_input)

    if layer.enable_moe_block:
        hidden_states_1 = layer.post_feedforward_layernorm_1(hidden_states)
        if wiring.router_input == "normed2" and normed2 is None:
            normed2 = layer.pre_feedforward_layernorm_2(hidden_states_flat)
        router_input = normed2 if wiring.router_input == "normed2" else hidden_states_flat
        _, top_k_weights, top_k_index = layer.router(router_input)
        if normed2 is None:
            normed2 = layer.pre_feedforward_layernorm_2(hidden_states_flat)
        hidden_states_2 = layer.experts(normed2, top_k_index, top_k_weights)
        hidden_states_2 = hidden_states_2.reshape(residual.shape)
        hidden_states_2 = layer.post_feedforward_layernorm_2(hidden_states_2)
        hidden_states = hidden_states_1 + hidden_states_2

    hidden_states = layer.post_feedforward_layernorm(hidden_states)
    hidden_states = residual + hidden_states

    if layer.hidden_size_per_layer_input:
        residual = hidden_states
        hidden_states = layer.per_layer_input_gate(hidden_states)
        hidden_states = layer.act_fn(hidden_states)
        hidden_states = hidden_states * per_layer_input
        hidden_states = layer.per_layer_projection(hidden_states)
        hidden_states = layer.post_per_layer_input_norm(hidden_states)
        hidden_states = residual + hidden_states

    if wiring.apply_layer_scalar:
        hidden_states *= layer.layer_scalar
    return hidden_states


def _hf_rope(x, cos, sin):
    return g4.apply_rotary_pos_emb(x, cos, sin, unsqueeze_dim=2)


def _gemma4_attention_forward(attn, rope: Callable, values_from_finished_keys: bool, hidden_states,
                              position_embeddings, attention_mask, shared_kv_states, past_key_values=None, **kwargs):
    """Gemma4TextAttention.forward (transformers 5.15.0) with the RoPE of q and k replaceable
    (`rope(x [B, S, N, d], cos, sin)`) and, with values_from_finished_keys, a K=V layer's values
    taken from the keys after k_norm and RoPE."""
    input_shape = hidden_states.shape[:-1]
    hidden_shape = (*input_shape, -1, attn.head_dim)
    cos, sin = position_embeddings

    query_states = attn.q_proj(hidden_states).view(hidden_shape)
    query_states = attn.q_norm(query_states)
    query_states = rope(query_states, cos, sin)
    query_states = query_states.transpose(1, 2)

    if attn.is_kv_shared_layer:
        key_states, value_states = shared_kv_states[attn.layer_type]
        key_states = key_states.to(query_states.device)
        value_states = value_states.to(query_states.device)
    else:
        key_states = attn.k_proj(hidden_states).view(hidden_shape)
        value_states = attn.v_proj(hidden_states).view(hidden_shape) if attn.v_proj is not None else key_states
        key_states = attn.k_norm(key_states)
        key_states = rope(key_states, cos, sin)
        if values_from_finished_keys and attn.v_proj is None:
            value_states = key_states
        key_states = key_states.transpose(1, 2)
        value_states = attn.v_norm(value_states)
        value_states = value_states.transpose(1, 2)

    if past_key_values is not None and not attn.is_kv_shared_layer:
        key_states, value_states = past_key_values.update(key_states, value_states, attn.layer_idx)
    if attn.store_full_length_kv:
        shared_kv_states[attn.layer_type] = key_states, value_states

    attention_interface = g4.ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation,
                                                                   g4.eager_attention_forward)
    attn_output, attn_weights = attention_interface(
        attn, query_states, key_states, value_states, attention_mask,
        dropout=attn.attention_dropout if attn.training else 0.0, scaling=attn.scaling,
        sliding_window=attn.sliding_window, **kwargs)
    attn_output = attn_output.reshape(*input_shape, -1).contiguous()
    attn_output = attn.o_proj(attn_output)
    return attn_output, attn_weights


def _contiguous_partial_rope(angles: int):
    """Megatron's partial RoPE: the first 2A dims rotate in pairs (j, j + A), the rest pass through."""
    def rope(x, cos, sin):
        c = torch.cat([cos[..., :angles]] * 2, -1).unsqueeze(2)
        s = torch.cat([sin[..., :angles]] * 2, -1).unsqueeze(2)
        rotary, rest = x[..., :2 * angles], x[..., 2 * angles:]
        half = torch.cat((-rotary[..., angles:], rotary[..., :angles]), -1)
        return torch.cat((rotary * c + half * s, rest), -1)
    return rope


# --- the ten bugs -------------------------------------------------------------------------------

@contextlib.contextmanager
def olmoe_router_topk_softmax(model) -> Iterator[None]:
    """OLMoE top-k weights = softmax over the k selected logits only (mlxcel PR #391).

    Behaves as if norm_topk_prob were always true; OLMoE ships norm_topk_prob=false, so the
    weights no longer are the full-softmax probabilities and the output drifts into non-sequiturs.
    Same top-k experts as HF. Fix: softmax over all experts, gather at the top-k, renormalise only
    when norm_topk_prob.
    """
    routers = _modules(model, olmoe.OlmoeTopKRouter, "olmoe", "olmoe_router_topk_softmax", "OLMoE router")

    def forward(router, hidden_states):
        hidden_states = hidden_states.reshape(-1, router.hidden_dim)
        router_logits = F.linear(hidden_states, router.weight)
        router_probs = F.softmax(router_logits, dtype=torch.float, dim=-1)
        _, router_indices = torch.topk(router_probs, router.top_k, dim=-1)  # HF's selection
        top_value = F.softmax(router_logits.float().gather(-1, router_indices), dim=-1)
        if router.norm_topk_prob:
            top_value = top_value / top_value.sum(dim=-1, keepdim=True)
        return router_logits, top_value.to(router_logits.dtype), router_indices

    with _attributes([(r, "forward", functools.partial(forward, r)) for r in routers]):
        yield


@contextlib.contextmanager
def gemma4_rope_contiguous_partial(model) -> Iterator[None]:
    """Global layers rotated as Megatron's partial RoPE (bridge PR, fix 2).

    A 64-wide inv_freq with rotary_percent 0.25 on the 512-dim global head: the first 2A dims
    rotate in pairs (j, j + A) where HF pairs j with j + head_dim/2 over the whole head (A: the
    nonzero proportional inv_freq entries); lpdiff 0.10 from this alone. Fix: zero-pad inv_freq to
    head_dim/2 and rotate the whole head (rotary_percent 1.0).
    """
    bug = "gemma4_rope_contiguous_partial"
    config = _text_config(model)
    rotary = _modules(model, g4.Gemma4TextRotaryEmbedding, "gemma4", bug, "Gemma-4 text rotary embedding")[0]
    changes = []
    for layer in _gemma4_layers(model, bug):
        attn = layer.self_attn
        params = config.rope_parameters[attn.layer_type]
        if params.get("rope_type") != "proportional" or params.get("partial_rotary_factor", 1.0) >= 1.0:
            continue
        angles = int((getattr(rotary, f"{attn.layer_type}_inv_freq") != 0).sum())  # HF's rotated angles
        assert angles == int(params["partial_rotary_factor"] * attn.head_dim // 2), "HF's proportional RoPE changed"
        changes.append((attn, "forward", functools.partial(
            _gemma4_attention_forward, attn, _contiguous_partial_rope(angles), False)))
    if not changes:
        raise ValueError(f"{bug}: no layer with proportional partial RoPE (partial_rotary_factor < 1)")
    with _attributes(changes):
        yield


@contextlib.contextmanager
def gemma4_no_final_softcap(model) -> Iterator[None]:
    """The final logit softcap stubbed out (bridge PR, fix 3).

    A patch made it a no-op "to match sglang" while the config still says e.g. 1.5: logits are the
    lm_head output, tail logits over-extreme. The config is switched off only inside the forward, so
    the dumped /meta/config keeps the true cap. Fix: logits = cap * tanh(logits / cap).
    """
    config = _text_config(model)
    if config.model_type not in ("gemma4_text", "gemma4") or config.final_logit_softcapping is None:
        raise ValueError("gemma4_no_final_softcap: needs a Gemma-4 model with final_logit_softcapping set")
    forward = model.forward

    def uncapped(*args, **kwargs):
        cap = config.final_logit_softcapping
        config.final_logit_softcapping = None
        try:
            return forward(*args, **kwargs)
        finally:
            config.final_logit_softcapping = cap

    with _attributes([(model, "forward", uncapped)]):
        yield


@contextlib.contextmanager
def gemma4_router_on_normed_input(model) -> Iterator[None]:
    """The router fed pre_feedforward_layernorm_2's output (NeMo Automodel #1895, bridge PR fix 1).

    HF's router sees the un-normed post-attention residual; this wiring computes
    normed2 = pre_feedforward_layernorm_2(residual) once and feeds it to the router and the experts.
    The router module itself is HF's: the bug is in what the decoder layer passes it.
    Fix: feed the router the raw residual.
    """
    layers = _gemma4_layers(model, "gemma4_router_on_normed_input", moe=True)
    wiring = _Wiring(router_input="normed2")
    with _attributes([(l, "forward", functools.partial(_gemma4_layer_forward, l, wiring)) for l in layers]):
        yield


@contextlib.contextmanager
def gemma4_mlp_on_pre_feedforward_layernorm_2(model) -> Iterator[None]:
    """The dense (shared-expert) MLP fed pre_feedforward_layernorm_2's output (bridge PR, first commit).

    "The shared expert ends up receiving unit_norm(x) * w_pffl_2 instead of unit_norm(x) * w_pffl_1":
    lpdiff 0.02-0.05, called production-grade. pre_feedforward_layernorm still runs (its output
    unused), normed2 is computed once and read by the MLP and the experts. Fix: the dense MLP
    reads pre_feedforward_layernorm (w1).
    """
    layers = _gemma4_layers(model, "gemma4_mlp_on_pre_feedforward_layernorm_2", moe=True)
    wiring = _Wiring(mlp_input="normed2")
    with _attributes([(l, "forward", functools.partial(_gemma4_layer_forward, l, wiring)) for l in layers]):
        yield


@contextlib.contextmanager
def rmsnorm_one_plus_weight(model) -> Iterator[None]:
    """Every RMSNorm with a weight scales by (1 + w) instead of w (any family).

    Gemma 1-3 store w - 1 and compute x̂(1 + w); Gemma-4 (and OLMoE) store w and compute x̂·w.
    Code ported from Gemma-3 scales every activation by about (1 + w). Weight-less norms (v_norm,
    router.norm) are unchanged. Fix: multiply by w.
    """
    def gemma4(norm, hidden_states):
        normed = norm._norm(hidden_states.float()) * (1.0 + norm.weight.float())
        return normed.type_as(hidden_states)

    def olmoe_norm(norm, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + norm.variance_epsilon)
        return (1 + norm.weight) * hidden_states.to(input_dtype)

    changes = []
    for module in model.modules():
        if isinstance(module, g4.Gemma4RMSNorm) and module.with_scale:
            changes.append((module, "forward", functools.partial(gemma4, module)))
        elif isinstance(module, olmoe.OlmoeRMSNorm):
            changes.append((module, "forward", functools.partial(olmoe_norm, module)))
    if not changes:
        raise ValueError(f"rmsnorm_one_plus_weight: no Gemma-4 or OLMoE RMSNorm with a weight in {type(model).__name__}")
    with _attributes(changes):
        yield


@contextlib.contextmanager
def gemma4_attention_scale_inv_sqrt_d(model) -> Iterator[None]:
    """Attention scores scaled by head_dim ** -0.5 instead of Gemma-4's 1.0.

    The default of eager_attention_forward and of most engines' attention kernels; Gemma-4's
    q_norm/k_norm already fix the scale and it passes scaling = 1.0 (query_pre_attn_scalar is gone).
    Every layer, with that layer's head_dim. Fix: pass scale 1.0.
    """
    layers = _gemma4_layers(model, "gemma4_attention_scale_inv_sqrt_d")
    with _attributes([(l.self_attn, "scaling", l.self_attn.head_dim ** -0.5) for l in layers]):
        yield


@contextlib.contextmanager
def gemma4_k_eq_v_after_norm_and_rope(model) -> Iterator[None]:
    """K=V tying implemented by reusing the finished key tensor.

    On attention_k_eq_v layers that compute their own K/V (full attention, not KV-shared), the
    values are the keys after k_norm and RoPE (then v_norm as usual) where HF ties them to the raw
    k_proj output. Fix: tie to the raw projection.
    """
    layers = [l for l in _gemma4_layers(model, "gemma4_k_eq_v_after_norm_and_rope")
              if not l.self_attn.is_kv_shared_layer and l.self_attn.v_proj is None]
    if not layers:
        raise ValueError("gemma4_k_eq_v_after_norm_and_rope: no attention_k_eq_v layer computes its own K/V")
    with _attributes([(l.self_attn, "forward", functools.partial(_gemma4_attention_forward, l.self_attn, _hf_rope, True))
                      for l in layers]):
        yield


@contextlib.contextmanager
def gemma4_layer_scalar_ignored(model) -> Iterator[None]:
    """The decoder layer's output not multiplied by layer_scalar.

    A bridge that maps no weight for the layer_scalar buffer (HF initialises it to 1) silently keeps
    1.0; the checkpoint's value (kept in the fixture's weights) is never applied.
    Fix: load and apply it.
    """
    layers = _gemma4_layers(model, "gemma4_layer_scalar_ignored")
    wiring = _Wiring(apply_layer_scalar=False)
    with _attributes([(l, "forward", functools.partial(_gemma4_layer_forward, l, wiring)) for l in layers]):
        yield


@contextlib.contextmanager
def gemma4_router_folded_bf16(model) -> Iterator[None]:
    """Router scale and 1/sqrt(H) folded into router.proj.weight in bf16 (bridge PR, first commit).

    "Fuse router scale/root_size/w_pffl_2 into router.proj.weight": proj reads the norm's output
    and a weight bf16(W * (scale * H^-1/2)) cast back to the run dtype, which "blew up on near-zero
    channels". Softmax, top-k, renormalisation and per_expert_scale as HF.
    Fix: keep the router unfused in fp32.
    """
    routers = _modules(model, g4.Gemma4TextRouter, "gemma4", "gemma4_router_folded_bf16", "Gemma-4 router")

    def proj_forward(router, x):
        weight = router.proj.weight
        folded = (weight.float() * (router.scale.float() * router.scalar_root_size)).to(torch.bfloat16).to(weight.dtype)
        return F.linear(x, folded)

    def router_forward(router, hidden_states):
        expert_scores = router.proj(router.norm(hidden_states))
        router_probabilities = F.softmax(expert_scores, dim=-1, dtype=torch.float32)
        top_k_weights, top_k_index = torch.topk(router_probabilities, k=router.config.top_k_experts, dim=-1)
        top_k_weights /= top_k_weights.sum(dim=-1, keepdim=True)
        top_k_weights = top_k_weights * router.per_expert_scale[top_k_index]
        return router_probabilities, top_k_weights, top_k_index

    changes = []
    for r in routers:
        changes += [(r, "forward", functools.partial(router_forward, r)),
                    (r.proj, "forward", functools.partial(proj_forward, r))]
    with _attributes(changes):
        yield


# --- the registry -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bug:
    name: str
    family: str    # "olmoe" or "gemma4"; rmsnorm_one_plus_weight applies to both, its fixture is Gemma-4
    patch: Callable[[torch.nn.Module], contextlib.AbstractContextManager]
    lives_in: str  # the module (or wiring) where the bug lives, as the gate should find it
    summary: str


BUGS: dict[str, Bug] = {bug.name: bug for bug in [
    Bug("olmoe_router_topk_softmax", "olmoe", olmoe_router_topk_softmax, "model.layers.N.mlp.gate",
        "top-k weights = softmax over the k selected logits (as if norm_topk_prob were always true)"),
    Bug("gemma4_rope_contiguous_partial", "gemma4", gemma4_rope_contiguous_partial,
        "model.layers.N.self_attn of proportional partial-RoPE (full_attention) layers",
        "partial RoPE rotates the first 2A dims in pairs (j, j + A) instead of the whole head"),
    Bug("gemma4_no_final_softcap", "gemma4", gemma4_no_final_softcap, "the head: /outputs/logits",
        "final_logit_softcapping not applied"),
    Bug("gemma4_router_on_normed_input", "gemma4", gemma4_router_on_normed_input,
        "model.layers.N.router's input (the decoder layer's MoE wiring)",
        "the router reads pre_feedforward_layernorm_2's output instead of the raw residual"),
    Bug("gemma4_mlp_on_pre_feedforward_layernorm_2", "gemma4", gemma4_mlp_on_pre_feedforward_layernorm_2,
        "model.layers.N.mlp's input (the decoder layer's MoE wiring)",
        "the dense MLP reads pre_feedforward_layernorm_2's output instead of pre_feedforward_layernorm's"),
    Bug("rmsnorm_one_plus_weight", "gemma4", rmsnorm_one_plus_weight, "the first RMSNorm with a weight",
        "every weighted RMSNorm scales by (1 + w) instead of w"),
    Bug("gemma4_attention_scale_inv_sqrt_d", "gemma4", gemma4_attention_scale_inv_sqrt_d, "model.layers.N.self_attn",
        "attention scores scaled by head_dim ** -0.5 instead of 1.0"),
    Bug("gemma4_k_eq_v_after_norm_and_rope", "gemma4", gemma4_k_eq_v_after_norm_and_rope,
        "model.layers.N.self_attn of attention_k_eq_v layers computing their own K/V",
        "K=V values taken from the keys after k_norm and RoPE instead of the raw k_proj output"),
    Bug("gemma4_layer_scalar_ignored", "gemma4", gemma4_layer_scalar_ignored, "model.layers.N (the layer output)",
        "the decoder layer's output not multiplied by layer_scalar"),
    Bug("gemma4_router_folded_bf16", "gemma4", gemma4_router_folded_bf16, "model.layers.N.router",
        "router scale and H^-1/2 folded into router.proj.weight, rounded to bf16"),
]}
