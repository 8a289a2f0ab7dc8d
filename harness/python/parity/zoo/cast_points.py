"""The bug zoo's bf16 cast-point bugs: each changes only where a bf16 run rounds (a float32 model
computes HF's math under it, so each patch refuses one). Registered like every other patch
(`@_plants`, patches.py); the registry entries are in references/models/known_bugs.toml.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator

import torch
from torch.nn import functional as F
from transformers.models.gemma4 import modeling_gemma4 as g4

from .patches import _attributes, _gemma4_attention_forward, _gemma4_layer_forward, _gemma4_layers, _hf_rope, \
    _modules, _plants, _Wiring

def _eager_attention_softmax_in_dtype(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                                      softcap=None, **kwargs):
    """eager_attention_forward (transformers 5.15.0) with the softmax computed in the activation dtype:
    `w - w.amax(-1)`, `.exp()` and `/ .sum(-1)` on the bf16 scores, each result rounded (torch's
    bf16 sum accumulates in float and rounds once), instead of softmax(dtype=float32).to(dtype)."""
    key_states = g4.repeat_kv(key, module.num_key_value_groups)
    value_states = g4.repeat_kv(value, module.num_key_value_groups)
    attn_weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
    assert softcap is None, "Gemma-4 text attention has no softcap"
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = (attn_weights - attn_weights.amax(dim=-1, keepdim=True)).exp()
    attn_weights = attn_weights / attn_weights.sum(dim=-1, keepdim=True)
    attn_output = torch.matmul(attn_weights, value_states)
    return attn_output.transpose(1, 2).contiguous(), attn_weights


def _low_precision(model, bug: str) -> None:
    """The bf16 cast-point bugs change where a low-precision run rounds; a float32 model would plant nothing."""
    dtype = next(model.parameters()).dtype
    if dtype == torch.float32 or dtype == torch.float64:
        raise ValueError(f"{bug}: a {dtype} model computes the same as HF (a bf16 cast-point bug: dump in bfloat16)")


# The bf16 cast-point bugs (issue: "bf16 gates tight enough to catch cast bugs"). Each moves hooks by
# about one bf16 rounding, which the old fixed bf16 budgets (1e-2 isolated, 5e-2 chained) passed.

@_plants
@contextlib.contextmanager
def gemma4_embed_scale_not_bf16(model) -> Iterator[None]:
    """Each `Gemma4TextScaledWordEmbedding` multiplies by its Python-float `scalar_embed_scale`.

    HF multiplies by the `embed_scale` buffer cast to the weight's dtype (a bf16 model holds it in
    bf16); with the Python float torch multiplies the bf16 rows by the float32 scale in float and
    rounds the product once, so the scale keeps all its bits (√48 = 6.928 instead of bf16's 6.938).
    """
    bug = "gemma4_embed_scale_not_bf16"
    _low_precision(model, bug)
    embeddings = _modules(model, g4.Gemma4TextScaledWordEmbedding, "gemma4", bug, "Gemma-4 scaled word embedding")
    if all(torch.tensor(e.scalar_embed_scale).to(e.weight.dtype) == torch.tensor(e.scalar_embed_scale)
           for e in embeddings):
        raise ValueError(f"{bug}: every embed_scale is a {embeddings[0].weight.dtype} value (sqrt(dim) exact)")

    def forward(embedding, input_ids):
        return torch.nn.Embedding.forward(embedding, input_ids) * embedding.scalar_embed_scale

    with _attributes([(e, "forward", functools.partial(forward, e)) for e in embeddings]):
        yield


@_plants
@contextlib.contextmanager
def gemma4_attention_softmax_bf16(model) -> Iterator[None]:
    """Every layer's attention computes its softmax in bf16 (`_eager_attention_softmax_in_dtype`).

    The attention forward is HF's with that kernel in place of the eager one; q, k, v, RoPE, the
    mask and o_proj are HF's.
    """
    bug = "gemma4_attention_softmax_bf16"
    _low_precision(model, bug)
    layers = _gemma4_layers(model, bug)
    with _attributes([(l.self_attn, "forward", functools.partial(
            _gemma4_attention_forward, l.self_attn, _hf_rope, False,
            attention_function=_eager_attention_softmax_in_dtype)) for l in layers]):
        yield


@_plants
@contextlib.contextmanager
def gemma4_rmsnorm_bf16(model) -> Iterator[None]:
    """Every `Gemma4RMSNorm` (with a weight or without) computes in the activation dtype.

    HF's `_norm` on `x` itself instead of `x.float()`, then `* weight` in bf16: x², the mean,
    `+ eps`, its square root, the reciprocal, `x *` and `* weight` are each rounded to bf16. The
    inverse root is `1 / sqrt(·)` (both correctly rounded by torch) rather than HF's `pow(·, -0.5)`,
    whose bf16 kernel rounds differently in its vectorised and scalar paths (torch 2.13 CPU: 28% of
    the results of a 16-element call differ from a 64-element one), so the bug is the same on
    every tensor size.
    """
    bug = "gemma4_rmsnorm_bf16"
    _low_precision(model, bug)
    norms = _modules(model, g4.Gemma4RMSNorm, "gemma4", bug, "Gemma-4 RMSNorm")

    def forward(norm, hidden_states):
        mean_squared = hidden_states.pow(2).mean(-1, keepdim=True) + norm.eps
        normed = hidden_states * (1 / torch.sqrt(mean_squared))
        return normed * norm.weight if norm.with_scale else normed

    with _attributes([(n, "forward", functools.partial(forward, n)) for n in norms]):
        yield


@_plants
@contextlib.contextmanager
def gemma4_residual_fp32_rounded_late(model) -> Iterator[None]:
    """Every decoder layer sums its residual stream in fp32 and rounds it once, before `layer_scalar`.

    `stream = residual.float() + attn`, then `+ ffn` (and `+ per-layer input`) in fp32; each branch
    reads `stream.to(dtype)`, and the layer's output is `stream.to(dtype) * layer_scalar`. HF adds
    and rounds at every residual add.
    """
    bug = "gemma4_residual_fp32_rounded_late"
    _low_precision(model, bug)
    layers = _gemma4_layers(model, bug)
    wiring = _Wiring(residual_fp32_rounded_late=True)
    with _attributes([(l, "forward", functools.partial(_gemma4_layer_forward, l, wiring)) for l in layers]):
        yield


@_plants
@contextlib.contextmanager
def gemma4_router_bf16(model) -> Iterator[None]:
    """Each router's softmax runs without `dtype=torch.float32`, so routing happens in bf16.

    `softmax(expert_scores)` of the bf16 scores (computed in float, rounded to bf16), top-k of the
    bf16 probabilities, the renormalisation and `* per_expert_scale` in bf16; norm, scale and
    proj as HF.
    """
    bug = "gemma4_router_bf16"
    _low_precision(model, bug)
    routers = _modules(model, g4.Gemma4TextRouter, "gemma4", bug, "Gemma-4 router")

    def forward(router, hidden_states):
        hidden_states = router.norm(hidden_states)
        hidden_states = hidden_states * router.scale * router.scalar_root_size
        expert_scores = router.proj(hidden_states)
        router_probabilities = F.softmax(expert_scores, dim=-1)
        top_k_weights, top_k_index = torch.topk(router_probabilities, k=router.config.top_k_experts, dim=-1)
        top_k_weights /= top_k_weights.sum(dim=-1, keepdim=True)
        top_k_weights = top_k_weights * router.per_expert_scale[top_k_index]
        return router_probabilities, top_k_weights, top_k_index

    with _attributes([(r, "forward", functools.partial(forward, r)) for r in routers]):
        yield
