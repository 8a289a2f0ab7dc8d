"""The bug zoo's patches: each plants one known bug into a live HF model for a `with` block.

    with gemma4_no_final_softcap(model):
        dump(model, ids, "buggy.h5")        # weights and /meta/config stay the model's true ones

What each bug is (title, story, source, where it lives, its zoo fixture and the first failure the
gate must report) is its entry in the registry references/models/known_bugs.toml, read through
parity.known_bugs(); a patch here is bound to its entry by its function name (`@_plants`), and its
docstring says how it plants the bug (golden/zoo/README.md shows both: python -m parity.zoo.table).
The C++ variant of the same name (references/models/variants.h) computes the same thing.

Every patch works per instance (an instance attribute `forward`, or an attribute such as
`scaling`, set on the affected modules and removed again in `finally`), never touches a weight,
buffer or config value the dumper writes, and runs each module once per forward, so a patched dump
has the clean dump's hook keys (golden/zoo/README.md lists the order changes).
A patch that would plant nothing in the given model (wrong family, no MoE layer, ...) raises
ValueError: a "buggy" fixture that is silently clean would pass every gate.
"""

from __future__ import annotations

import contextlib
import functools
import re
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch.nn import functional as F
from transformers.models.gemma4 import modeling_gemma4 as g4
from transformers.models.olmoe import modeling_olmoe as olmoe

from .._parity import known_bugs


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


# Every patch, by the name of its registry entry (the function's own name).
_PATCHES: dict[str, Callable[[torch.nn.Module], contextlib.AbstractContextManager]] = {}


def _plants(patch):
    """Registers a patch as the one of the registry entry named like the function."""
    if patch.__name__ in _PATCHES:
        raise RuntimeError(f"two zoo patches named {patch.__name__}")
    _PATCHES[patch.__name__] = patch
    return patch


# --- Gemma-4 forwards with switches: HF 5.15.0's own code, the bugs as options ------------------

@dataclass(frozen=True)
class _Wiring:
    """How a Gemma-4 decoder layer wires its MoE block and output; the defaults are HF's."""

    router_input: str = "residual"       # or "normed2": pre_feedforward_layernorm_2's output
    mlp_input: str = "pre_feedforward_layernorm"  # or "normed2"
    apply_layer_scalar: bool = True
    residual_fp32_rounded_late: bool = False  # the residual stream summed in fp32, rounded before layer_scalar


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
    late = wiring.residual_fp32_rounded_late
    stream = residual.float() + hidden_states.float() if late else None  # the fp32 residual stream
    hidden_states = stream.to(residual.dtype) if late else residual + hidden_states

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
    if late:
        stream = stream + hidden_states.float()
        hidden_states = stream.to(residual.dtype)
    else:
        hidden_states = residual + hidden_states

    if layer.hidden_size_per_layer_input:
        residual = hidden_states
        hidden_states = layer.per_layer_input_gate(hidden_states)
        hidden_states = layer.act_fn(hidden_states)
        hidden_states = hidden_states * per_layer_input
        hidden_states = layer.per_layer_projection(hidden_states)
        hidden_states = layer.post_per_layer_input_norm(hidden_states)
        if late:
            stream = stream + hidden_states.float()
            hidden_states = stream.to(residual.dtype)
        else:
            hidden_states = residual + hidden_states

    if wiring.apply_layer_scalar:
        hidden_states *= layer.layer_scalar
    return hidden_states


def _hf_rope(x, cos, sin):
    return g4.apply_rotary_pos_emb(x, cos, sin, unsqueeze_dim=2)


def _gemma4_attention_forward(attn, rope: Callable, values_from_finished_keys: bool, hidden_states,
                              position_embeddings, attention_mask, shared_kv_states, past_key_values=None,
                              attention_function: Callable | None = None, **kwargs):
    """Gemma4TextAttention.forward (transformers 5.15.0) with the RoPE of q and k replaceable
    (`rope(x [B, S, N, d], cos, sin)`), with values_from_finished_keys, a K=V layer's values
    taken from the keys after k_norm and RoPE, and the attention kernel replaceable (default: the
    one HF's config selects)."""
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

    attention_interface = attention_function or g4.ALL_ATTENTION_FUNCTIONS.get_interface(
        attn.config._attn_implementation, g4.eager_attention_forward)
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


# --- the bugs -----------------------------------------------------------------------------------

@_plants
@contextlib.contextmanager
def olmoe_router_topk_softmax(model) -> Iterator[None]:
    """Each `OlmoeTopKRouter`'s forward weights the top-k by a softmax over their logits alone.

    Logits and top-k indices as HF; weights = `softmax(float32(logits gathered at the top-k))`
    (divided by their sum if `norm_topk_prob`), cast to the logits' dtype.
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


@_plants
@contextlib.contextmanager
def gemma4_rope_contiguous_partial(model) -> Iterator[None]:
    """The full layers' q and k rotated in Megatron's partial-RoPE layout.

    The attention forward of layers with proportional RoPE and `partial_rotary_factor` < 1 rotates
    q (after `q_norm`) and k (after `k_norm`) with HF's cos/sin in pairs (j, j + A) over the first
    2A dims, the rest passing through; A = the nonzero entries of HF's `inv_freq` (2 of 8 in the zoo
    model).
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


@_plants
@contextlib.contextmanager
def gemma4_no_final_softcap(model) -> Iterator[None]:
    """The model's forward runs with `final_logit_softcapping` switched off.

    The cap is put back before anything reads the config again, so the dumped /meta/config keeps
    the true one (1.5 in the zoo model): logits are the lm_head output.
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


@_plants
@contextlib.contextmanager
def gemma4_router_on_normed_input(model) -> Iterator[None]:
    """The MoE decoder layers' forward feeds the router `pre_feedforward_layernorm_2`'s output.

    It computes `normed2 = pre_feedforward_layernorm_2(residual)` once and passes it to the router
    and the experts (`router@in` is `normed2`); the router module itself is HF's: the bug is in
    what the decoder layer passes it.
    """
    layers = _gemma4_layers(model, "gemma4_router_on_normed_input", moe=True)
    wiring = _Wiring(router_input="normed2")
    with _attributes([(l, "forward", functools.partial(_gemma4_layer_forward, l, wiring)) for l in layers]):
        yield


@_plants
@contextlib.contextmanager
def gemma4_mlp_on_pre_feedforward_layernorm_2(model) -> Iterator[None]:
    """The MoE decoder layers' forward feeds the dense MLP `pre_feedforward_layernorm_2`'s output.

    `pre_feedforward_layernorm` still runs (its output unused, so the fixture records what HF
    would feed the MLP); `normed2` is computed once and read by the MLP (reshaped to [B, S, H]) and
    the experts; the router reads the residual as in HF.
    """
    layers = _gemma4_layers(model, "gemma4_mlp_on_pre_feedforward_layernorm_2", moe=True)
    wiring = _Wiring(mlp_input="normed2")
    with _attributes([(l, "forward", functools.partial(_gemma4_layer_forward, l, wiring)) for l in layers]):
        yield


@_plants
@contextlib.contextmanager
def rmsnorm_one_plus_weight(model) -> Iterator[None]:
    """Every RMSNorm with a weight scales by (1 + w), in any family.

    Gemma-4: `x̂_f32 · (1 + w.float())`, then cast; OLMoE: `(1 + w) · x̂.to(dtype)`. Weight-less
    norms (`v_norm`, `router.norm`) are unchanged.
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


@_plants
@contextlib.contextmanager
def gemma4_attention_scale_inv_sqrt_d(model) -> Iterator[None]:
    """`self_attn.scaling = head_dim ** -0.5` on every layer, with that layer's head dim.

    HF's attention forward passes `scaling` to the attention kernel, so only the attribute changes.
    """
    layers = _gemma4_layers(model, "gemma4_attention_scale_inv_sqrt_d")
    with _attributes([(l.self_attn, "scaling", l.self_attn.head_dim ** -0.5) for l in layers]):
        yield


@_plants
@contextlib.contextmanager
def gemma4_k_eq_v_after_norm_and_rope(model) -> Iterator[None]:
    """K=V layers take their values from the finished keys.

    On `attention_k_eq_v` layers that compute their own K/V (full attention, not KV-shared), the
    attention forward takes the values from the keys after `k_norm` and RoPE ([B, S, Nkv, d]),
    then `v_norm` as usual.
    """
    layers = [l for l in _gemma4_layers(model, "gemma4_k_eq_v_after_norm_and_rope")
              if not l.self_attn.is_kv_shared_layer and l.self_attn.v_proj is None]
    if not layers:
        raise ValueError("gemma4_k_eq_v_after_norm_and_rope: no attention_k_eq_v layer computes its own K/V")
    with _attributes([(l.self_attn, "forward", functools.partial(_gemma4_attention_forward, l.self_attn, _hf_rope, True))
                      for l in layers]):
        yield


@_plants
@contextlib.contextmanager
def gemma4_layer_scalar_ignored(model) -> Iterator[None]:
    """Every decoder layer's forward skips `hidden_states *= layer_scalar`.

    The buffer itself stays, so the fixture's weights keep the true, randomised scalar.
    """
    layers = _gemma4_layers(model, "gemma4_layer_scalar_ignored")
    wiring = _Wiring(apply_layer_scalar=False)
    with _attributes([(l, "forward", functools.partial(_gemma4_layer_forward, l, wiring)) for l in layers]):
        yield


@_plants
@contextlib.contextmanager
def gemma4_router_folded_bf16(model) -> Iterator[None]:
    """Each router's `proj` reads the norm's output with the scale folded into a bf16 weight.

    `proj` reads `router.norm`'s output (no `· scale · H^-½`) with the weight
    `bf16(W · (scale · H^-½))` cast back to the run dtype; softmax, top-k, renormalisation and
    `per_expert_scale` as HF.
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
    """A known bug: its entry of references/models/known_bugs.toml (whose comments say what each
    field means), as parity.known_bugs() gives it, and the patch that plants it into a live model."""

    name: str
    family: str                    # "olmoe", "gemma4" or "any" (the families its variant applies to)
    title: str                     # one line: what the buggy engine computes
    lives_in: str                  # the module (or wiring) where the bug lives, in words
    source: str                    # the public PR or issue its story cites
    story: str                     # the bug, how it showed up, and the fix
    first_failure: dict[str, str]  # {"isolated": hook glob, "chained": hook glob} of its zoo fixture
    lives_at: str                  # regex of the first failing hook on unseen configs (harness/cli/cli_diagnose_test.py)
    fixture: dict[str, object]     # how golden/zoo/<file> is made: file, config, seed, batch, seq_len, dtype
    patch: Callable[[torch.nn.Module], contextlib.AbstractContextManager]


def bind(entries: list[dict], patches: dict[str, Callable]) -> dict[str, Bug]:
    """One Bug per registry entry, with the patch of the same name, in the registry's order.

    Fails closed: an entry without a patch, a patch without an entry or a lives_at that is no
    regex raises RuntimeError naming them, so the zoo never silently skips a bug."""
    names = [entry["name"] for entry in entries]
    problems = []
    if no_patch := [name for name in names if name not in patches]:
        problems.append(f"registry entries without a patch in parity/zoo/patches.py: {', '.join(no_patch)}")
    if no_entry := sorted(set(patches) - set(names)):
        problems.append(f"patches without a [[bug]] entry in references/models/known_bugs.toml: {', '.join(no_entry)}")
    if problems:
        raise RuntimeError("; ".join(problems))
    bugs = {}
    for entry in entries:
        try:
            re.compile(entry["lives_at"])
        except re.error as error:
            raise RuntimeError(f"known_bugs.toml: bug {entry['name']!r}: lives_at is not a regex: {error}") from None
        bugs[entry["name"]] = Bug(**entry, patch=patches[entry["name"]])
    return bugs


# The bf16 cast-point bugs live in their own module; importing it registers them (it reads this
# module's helpers, all defined above).
from . import cast_points  # noqa: E402,F401

BUGS: dict[str, Bug] = bind(known_bugs(), _PATCHES)
