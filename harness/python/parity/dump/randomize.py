"""Seeded randomisation of EVERY parameter and persistent buffer of a tiny model.

HF initialises RMSNorm weights, Gemma-4 router.scale / per_expert_scale and layer_scalar to 1.
With those values a norm using 1+w instead of w, a dropped per-expert scale or an ignored layer
scalar changes nothing, so such bugs go unseen. After randomisation no tensor is constant.

Rule (documented in golden/README.md):
  1-D and 0-D tensors (norm weights, scales, layer_scalar):  U(0.5, 1.5)
  tensors of rank >= 2 (linear, embedding, expert weights):   N(0, 1) / sqrt(shape[-1])
Values are drawn in float32 from one torch.Generator seeded with `seed`, tensor after tensor in
`named_parameters()` order then persistent `named_buffers()` order, and cast to each tensor's dtype.
Parameters are visited once, so tied weights stay tied.
"""

from __future__ import annotations

import torch


def persistent_tensors(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Floating parameters and persistent buffers, each shared tensor once, in a stable order."""
    state_keys = set(model.state_dict().keys())
    tensors = list(model.named_parameters())
    tensors += [(name, b) for name, b in model.named_buffers() if name in state_keys]
    seen: set[int] = set()
    unique = []
    for name, tensor in tensors:
        if tensor.is_floating_point() and id(tensor) not in seen:  # a tied Parameter is one object
            seen.add(id(tensor))
            unique.append((name, tensor))
    return unique


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Overwrites every floating parameter and persistent buffer in place (see module doc)."""
    generator = torch.Generator().manual_seed(seed)
    for _, tensor in persistent_tensors(model):
        if tensor.dim() <= 1:
            values = torch.rand(tensor.shape, generator=generator, dtype=torch.float32) + 0.5
        else:
            values = torch.randn(tensor.shape, generator=generator, dtype=torch.float32)
            values /= tensor.shape[-1] ** 0.5
        tensor.copy_(values.to(tensor.device))
