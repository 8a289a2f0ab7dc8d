"""Gradients for a fixture (format v2, golden/README.md "Gradients"): HF's forward in training mode
with dropout off, a backward from a defined scalar loss, and the gradient of every hooked module's
float outputs and inputs and of every parameter.

How each gradient is taken, and why:
- Each hooked module's float outputs that are in the autograd graph are kept as a clone, and the
  module's caller receives a clone of that clone (a forward hook may replace the output). The kept
  tensor's only consumer is the caller's copy, so its gradient is dL/d(output) as it arrives from
  outside the module: not the module's own further uses of the tensor (OLMoE's router softmaxes
  the logits it also returns), and before HF's in-place edits after the call (OLMoE clip_qkv
  clamps q_norm's and v_proj's outputs in place), which land on the caller's copy.
- The module receives clones of its float inputs (a forward pre-hook may replace the arguments), so
  each clone's only consumer is the module: its gradient is the module's own vector-Jacobian
  product, J_inᵀ·dL/d(outputs) — what a module's backward computes from its output gradient, not
  the total gradient of a tensor that other modules (a residual add) read too.
- A mutable mapping passed by reference (Gemma-4's `shared_kv_states`, a UserDict a source layer
  writes its K/V into and later layers read) cannot be replaced by a copy: writes would miss the
  original. Its tensors are swapped for kept clones in place for the duration of the call and
  restored after it, so each clone's only consumer is that call: a reading layer's stored
  gradient of `@in.shared_kv_states.<type>.0 / .1` is its own VJP for the K/V it read.
- The parameter gradients (and the loss) come from a first forward and backward that no hook
  changes: HF's training backward bit for bit (tested against a hook-free one). The module
  gradients come from a second one with these clones in the graph: the same forward values (a
  clone is exact; the dumper checks the two losses are equal), but a tensor several modules read
  now sums its gradient contributions in another order (measured: parameter gradients of such a
  backward differ from HF's by up to 5e-7 relative in fp32).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from . import naming
from .capture import ModuleHooks, is_rotary, rotary_layer_type
from .errors import DumpError

# The scalar losses a gradient dump can start from (golden/README.md "Gradients").
LOSSES = {
    "logprob_sum": "sum over b, s of loss_weights[b, s] * log_softmax(float32(logits[b, s]))[input_ids[b, s + 1]]",
    "ce_mean": "HF's own labels loss (ForCausalLMLoss): mean cross-entropy of the next token over labels != -100, "
               "labels = input_ids with -100 where attention_mask is 0",
}


@dataclass
class Kept:
    """A float tensor of the graph whose gradient is stored under `key` in /grad_hooks."""

    key: str
    tensor: torch.Tensor
    module_class: str


@dataclass
class GradRecorder(ModuleHooks):
    """Hooks that keep each hooked module's float inputs and outputs in the graph (see the module doc)."""

    kept: list[Kept] = field(default_factory=list)
    # Per path, the in-place swaps of the call now running (mapping, key, original, clone).
    _swapped: dict[str, list[tuple[MutableMapping, Any, Any, Any]]] = field(default_factory=dict)

    def _pre(self, path: str):
        def hook(module, args, kwargs):
            call = self._calls.get(path, 0)
            self._calls[path] = call + 1
            if is_rotary(module):
                return None  # its input only carries the dtype
            if not args and torch.is_tensor(kwargs.get("hidden_states")):  # the primary input, by keyword
                args, kwargs = (), dict(kwargs)
                primary = {"hidden_states": self._clone_tree(path, naming.INPUT, call, kwargs.pop("hidden_states"), module)}
            else:
                primary = {}
            new_args = tuple(self._clone_tree(path, naming.INPUT if i == 0 else f"{naming.INPUT}{i}", call, value, module)
                             for i, value in enumerate(args))
            new_kwargs = {}
            for name, value in kwargs.items():
                if isinstance(value, MutableMapping) and type(value) is not dict:
                    self._swap_in_place(path, f"{naming.INPUT}.{name}", call, value, module)
                    new_kwargs[name] = value
                else:
                    new_kwargs[name] = self._clone_tree(path, f"{naming.INPUT}.{name}", call, value, module)
            return new_args, {**primary, **new_kwargs}

        return hook

    def _swap_in_place(self, path: str, slot: str, call: int, mapping: MutableMapping, module) -> None:
        swaps = self._swapped.setdefault(path, [])
        for key, value in list(mapping.items()):
            clone = self._clone_tree(path, f"{slot}.{key}", call, value, module)
            if clone is not value:
                mapping[key] = clone
                swaps.append((mapping, key, value, clone))

    def _restore(self, path: str) -> None:
        # Only what is still this call's clone: an entry the module wrote itself stays.
        for mapping, key, original, clone in self._swapped.pop(path, []):
            if mapping.get(key) is clone:
                mapping[key] = original

    def _post(self, path: str):
        def hook(module, args, kwargs, output):
            self._restore(path)
            call = self._calls[path] - 1
            layer_type = rotary_layer_type(module, args, kwargs)
            repeat = 0 if layer_type else call
            if torch.is_tensor(output):
                return self._keep_clone(path, "", repeat, output, module)
            if isinstance(output, tuple) and not isinstance(output, Mapping) and not is_rotary(module):
                names = dict(naming.output_slots(module, output))  # slot -> tensor, for the slot names
                by_id = {id(t): slot for slot, t in names.items()}
                return tuple(self._keep_clone(path, by_id.get(id(item), f"out{i}"), repeat, item, module)
                             if _differentiable(item) else item for i, item in enumerate(output))
            return None  # mappings (ModelOutput) and rotary tables: nothing to differentiate

        return hook

    def _clone_tree(self, path: str, slot: str, call: int, value: Any, module) -> Any:
        """An input `value` with every differentiable tensor replaced by a kept clone (nested tuples/lists/dicts)."""
        if torch.is_tensor(value):
            return self._keep_clone(path, slot, call, value, module, is_input=True) if _differentiable(value) else value
        if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
            return type(value)(self._clone_tree(path, f"{slot}.{i}", call, v, module) for i, v in enumerate(value))
        if type(value) is dict:
            return {k: self._clone_tree(path, f"{slot}.{k}", call, v, module) for k, v in value.items()}
        return value

    def _keep_clone(self, path: str, slot: str, call: int, tensor: torch.Tensor, module,
                    is_input: bool = False) -> torch.Tensor:
        if not _differentiable(tensor):
            return tensor
        clone = tensor.clone()
        self.kept.append(Kept(naming.hook_key(path, slot, call), clone, type(module).__name__))
        # An input: the module reads the kept clone, so its gradient is the module's own VJP. An
        # output: the caller reads a second clone, so the kept one's gradient is what arrives from
        # outside the module (not the module's own internal uses of that tensor, e.g. the router's
        # softmax of the logits it also returns), and in-place edits land on the second clone.
        return clone if is_input else clone.clone()


def _differentiable(value: Any) -> bool:
    return torch.is_tensor(value) and value.is_floating_point() and value.requires_grad


@contextmanager
def training_mode_without_dropout(model: torch.nn.Module):
    """HF's training-mode forward (`self.training` paths) with every dropout probability at 0, so the
    gradient is deterministic; restores the mode and the probabilities after."""
    was_training = model.training
    saved: list[tuple[Any, str, float]] = []
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            saved.append((module, "p", module.p))
            module.p = 0.0
        for name in ("attention_dropout", "dropout"):
            if isinstance(getattr(module, name, None), float) and not isinstance(module, torch.nn.Dropout):
                saved.append((module, name, getattr(module, name)))
                setattr(module, name, 0.0)
    model.train()
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)
        model.train(was_training)


def check_no_aux_loss(model: torch.nn.Module) -> None:
    """HF adds router_aux_loss_coef x the load-balancing loss to its labels loss when the config says
    output_router_logits: the stored loss would then not be the one grad_loss names."""
    config = model.config.get_text_config()
    if getattr(config, "output_router_logits", False):
        raise DumpError("the config sets output_router_logits: HF would add its router auxiliary loss to the loss; "
                        "set output_router_logits = False for a gradient dump")


def checked_loss_weights(loss: str, weights: torch.Tensor | None, input_ids: torch.Tensor,
                         attention_mask: torch.Tensor) -> torch.Tensor | None:
    """The per-token weights of `logprob_sum` ([B, S-1] float32; default: the next token's attention
    mask), or None for `ce_mean`, which takes none."""
    if loss not in LOSSES:
        raise DumpError(f"grad must be one of {', '.join(LOSSES)}, got {loss!r}")
    batch, seq_len = input_ids.shape
    if loss == "ce_mean":
        if weights is not None:
            raise DumpError("loss_weights belong to the logprob_sum loss; ce_mean is HF's unweighted labels loss")
        return None
    if weights is None:
        return attention_mask[:, 1:].to(torch.float32)
    if not torch.is_tensor(weights) or tuple(weights.shape) != (batch, seq_len - 1) or not weights.is_floating_point():
        raise DumpError(f"loss_weights must be a float tensor of shape {(batch, seq_len - 1)} (one weight per scored "
                        f"next token), got {getattr(weights, 'shape', type(weights).__name__)}")
    weights = weights.detach().to(device=input_ids.device, dtype=torch.float32)
    if not torch.isfinite(weights).all():
        raise DumpError("loss_weights holds NaN or Inf")
    return weights


def labels_for(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """HF's labels for `ce_mean`: the input ids, -100 (ignored) where the mask is 0."""
    return input_ids.masked_fill(attention_mask == 0, -100)


def logprob_sum(logits: torch.Tensor, input_ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The `logprob_sum` loss (LOSSES): float32 log-softmax, as /outputs/logprobs is computed."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)[:, :-1].gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return (weights * logprobs).sum()


def parameter_gradients(loss: torch.Tensor, parameters: list[tuple[str, torch.Tensor]]):
    """d loss / d each parameter (None where none flows), by name; tied names share one gradient."""
    if not loss.requires_grad:
        raise DumpError("the loss does not depend on any parameter: are the model's parameters frozen "
                        "(requires_grad = False)?")
    unique = {id(p): p for _, p in parameters if p.requires_grad}
    grads = dict(zip(unique, torch.autograd.grad(loss, list(unique.values()), allow_unused=True)))
    return [(name, grads.get(id(p))) for name, p in parameters]


def module_gradients(loss: torch.Tensor, kept: list[Kept]) -> list[torch.Tensor | None]:
    """d loss / d each kept tensor (None where none flows: an output nothing downstream reads)."""
    return list(torch.autograd.grad(loss, [k.tensor for k in kept], allow_unused=True))
