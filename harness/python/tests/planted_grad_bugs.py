"""Gradient bugs planted in HF at dump time, and fixture edits, shared by the gradient tests
(harness/cli/cli_grad_test.py: `parity check --grad`; cli_grad_compare_test.py: `compare --grad`)."""

from __future__ import annotations

import contextlib
import shutil
import types
from pathlib import Path

import h5py
import torch


# Bugs planted in one layer's router at dump time (the training-engine failures of the issue: a
# router whose top-k weights leave the graph, a renormalisation whose denominator does).
def olmoe_router(detach: str):
    def forward(self, hidden_states):
        hidden_states = hidden_states.reshape(-1, self.hidden_dim)
        router_logits = torch.nn.functional.linear(hidden_states, self.weight)
        router_probs = torch.nn.functional.softmax(router_logits, dtype=torch.float, dim=-1)
        top_value, index = torch.topk(router_probs, self.top_k, dim=-1)
        if detach == "weights":
            top_value = top_value.detach()
        if self.norm_topk_prob:
            total = top_value.sum(dim=-1, keepdim=True)
            top_value = top_value / (total.detach() if detach == "denominator" else total)
        top_value = top_value.to(router_logits.dtype)
        return router_logits, top_value, index
    return forward


def gemma4_router(detach: str):
    def forward(self, hidden_states):
        hidden_states = self.norm(hidden_states) * self.scale * self.scalar_root_size
        probs = torch.nn.functional.softmax(self.proj(hidden_states), dim=-1, dtype=torch.float32)
        top_k_weights, top_k_index = torch.topk(probs, k=self.config.top_k_experts, dim=-1)
        if detach == "weights":
            top_k_weights = top_k_weights.detach()
        total = top_k_weights.sum(dim=-1, keepdim=True)
        top_k_weights = top_k_weights / (total.detach() if detach == "denominator" else total)
        return probs, top_k_weights * self.per_expert_scale[top_k_index], top_k_index
    return forward


PLANTED = {  # name: (config, the layer-1 router's module path in the HF model, its forward, HF name of it)
    "olmoe_detached_weights": ("olmoe", "model.layers.1.mlp.gate", olmoe_router("weights")),
    "olmoe_detached_denominator": ("olmoe_norm_topk_clip_qkv", "model.layers.1.mlp.gate", olmoe_router("denominator")),
    "gemma4_detached_weights": ("gemma4", "model.layers.1.router", gemma4_router("weights")),
}
# Not among them: Gemma-4 with the denominator detached. Its experts' output passes through
# post_feedforward_layernorm_2, an RMSNorm, which cancels a common scale of the routing weights, so
# the denominator's gradient path is worth almost nothing there (measured: the router's gradients
# move by 1.9e-5 relative, rms_norm_eps's share); a check cannot and need not call that a bug.
ROUTER_PARAMETER = r"model\.layers\.1\.(mlp\.gate\.weight|router\.(proj\.weight|scale|per_expert_scale))"
# Where the router's weights leave the graph entirely (OLMoE's detached top-k, no per_expert_scale
# after it), no gradient reaches HF's router at all: the first failure is then the break itself,
# the gradient HF lacks and the math has: of the router's top-k weights (chained), of the experts'
# routing-weights input (isolated, where each module starts from HF's own output gradient and HF's
# router, given none, rightly computes none).
ROUTER_LINK = {"grad.chained": r"model\.layers\.1\.mlp\.gate@top_k_weights",
               "grad.isolated": r"model\.layers\.1\.mlp\.experts@in2"}


def plant(path: str, forward):
    @contextlib.contextmanager
    def patch(model):
        module = model.get_submodule(path)
        module.forward = types.MethodType(forward, module)
        try:
            yield
        finally:
            del module.forward
    return patch


def edited(tmp_path: Path, source: Path, edit) -> Path:
    """A copy of `source` with edit(h5py.File) applied."""
    out = tmp_path / f"edited_{len(list(tmp_path.glob('edited_*')))}.h5"
    shutil.copy(source, out)
    with h5py.File(out, "r+") as f:
        edit(f)
    return out


def replace(f, path: str, value) -> None:
    del f[path]
    f[path] = value
