"""Hook keys: how a module call's inputs and outputs are named in a fixture's /hooks group.

The rules (documented for users in golden/README.md, "Hook keys"):
  <path>              the module's output; for a tuple output, its element 0
  <path>@<slot>       element i >= 1 of a tuple output: a named slot for known classes
                      (attention -> attn_weights; routers -> top_k_weights, top_k_index),
                      otherwise out<i>; a mapping output (ModelOutput) gives one key per field
  <path>@in           the primary input: first positional argument, else the hidden_states kwarg
  <path>@in<i>        positional argument i >= 1 (numbered by position; non-tensors store nothing)
  <path>@in.<name>    other tensor keyword arguments; nested tuples/mappings add .<index>/.<key>
  <path>#<k>          k-th repeated call (k >= 1) of a module called more than once per forward
Paths are HF `named_modules()` paths, so keys never need translating.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Iterator

import torch

INPUT = "in"

# Element i >= 1 of a tuple output, by module class-name suffix. Element 0 keeps the bare path.
OUTPUT_SLOTS: dict[str, tuple[str, ...]] = {
    "Attention": ("", "attn_weights"),  # eager attention returns (attn_output, attn_weights)
    "TopKRouter": ("", "top_k_weights", "top_k_index"),  # OLMoE: (router_logits, weights, index)
    "TextRouter": ("", "top_k_weights", "top_k_index"),  # Gemma-4: (router_probs, weights, index)
}

# Classes whose whole output is a (cos, sin) pair: no bare key, two named slots.
ROTARY_SUFFIX = "RotaryEmbedding"


def hook_key(path: str, slot: str = "", call: int = 0) -> str:
    """The /hooks dataset name for `path` (module path), `slot` (after '@') and repeat `call`."""
    base = path if call == 0 else f"{path}#{call}"
    return f"{base}@{slot}" if slot else base


def flatten_tensors(value: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
    """Yields (name, tensor) for every tensor inside nested tuples, lists and mappings."""
    if torch.is_tensor(value):
        yield prefix, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from flatten_tensors(item, f"{prefix}.{key}")
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            yield from flatten_tensors(item, f"{prefix}.{index}")


def input_slots(args: tuple, kwargs: dict) -> list[tuple[str, torch.Tensor]]:
    """Slots for a call's inputs: in, in1, in2, ... by argument position, then in.<kwarg>."""
    if not args and torch.is_tensor(kwargs.get("hidden_states")):
        args = (kwargs["hidden_states"],)
        kwargs = {k: v for k, v in kwargs.items() if k != "hidden_states"}
    slots: list[tuple[str, torch.Tensor]] = []
    for index, value in enumerate(args):
        slots.extend(flatten_tensors(value, INPUT if index == 0 else f"{INPUT}{index}"))
    for name, value in kwargs.items():
        slots.extend(flatten_tensors(value, f"{INPUT}.{name}"))
    return slots


def output_slots(module: torch.nn.Module, output: Any, rotary_layer_type: str = "") -> list[tuple[str, torch.Tensor]]:
    """Slots for a call's output ("" is the bare path)."""
    class_name = type(module).__name__
    if class_name.endswith(ROTARY_SUFFIX) and isinstance(output, tuple) and len(output) == 2:
        # Gemma-4 calls its rotary module once per layer type; the type qualifies the slot.
        prefix = f"{rotary_layer_type}." if rotary_layer_type else ""
        return [(f"{prefix}cos", output[0]), (f"{prefix}sin", output[1])]
    if torch.is_tensor(output):
        return [("", output)]
    if isinstance(output, Mapping):
        return [(name, t) for key, value in output.items() for name, t in flatten_tensors(value, key)]
    if isinstance(output, (tuple, list)):
        names = next((slots for suffix, slots in OUTPUT_SLOTS.items() if class_name.endswith(suffix)), ())
        slots = []
        for index, item in enumerate(output):
            name = names[index] if index < len(names) else ("" if index == 0 else f"out{index}")
            slots.extend(flatten_tensors(item, name) if not torch.is_tensor(item) else [(name, item)])
        return slots
    return []
