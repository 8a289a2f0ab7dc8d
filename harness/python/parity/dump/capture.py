"""Forward hooks on every selected module; captures clones of inputs, outputs and named intermediates.

Clones are taken at the moment a hook fires: OLMoE clip_qkv clamps q/k/v in place, its router
renormalises in place, and Gemma-4 multiplies the layer output by layer_scalar in place, so a
reference kept until after the forward would record the wrong values.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from . import naming

_LAYER_INDEX = re.compile(r"(?:^|\.)layers\.(\d+)(?:\.|$)")


@dataclass(frozen=True)
class DecoderLayers:
    """Where a model's text decoder layers live: `model.layers.` for Gemma4ForCausalLM and OLMoE,
    `model.language_model.layers.` for multimodal Gemma-4 (whose vision encoder has `layers` too)."""

    prefix: str  # "" when the model has no get_decoder(): any `layers.<i>` path counts

    @staticmethod
    def of(model: torch.nn.Module) -> "DecoderLayers":
        decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
        for path, module in model.named_modules():
            if decoder is not None and module is decoder:
                return DecoderLayers(f"{path}.layers." if path else "layers.")
        return DecoderLayers("")

    def index(self, path: str) -> int | None:
        """The decoder-layer index of a module or weight path (`model.layers.3.mlp` -> 3), or None."""
        if not self.prefix:
            match = _LAYER_INDEX.search(path)
            return int(match.group(1)) if match else None
        if not path.startswith(self.prefix):
            return None
        head = path[len(self.prefix):].split(".", 1)[0]
        return int(head) if head.isdigit() else None


@dataclass
class Captured:
    """One /hooks tensor: its key, a CPU clone, and the attributes written beside it."""

    key: str
    tensor: torch.Tensor
    module_class: str
    derived: str = ""  # non-empty when the dumper computed it (with HF's own expression)


@dataclass
class ModuleHooks:
    """A forward pre-hook (`_pre(path)`) and hook (`_post(path)`) on every module `selected`
    admits; subclasses say what each does. Counts calls per path for repeated modules."""

    _calls: dict[str, int] = field(default_factory=dict)
    _handles: list = field(default_factory=list)

    def attach(self, model: torch.nn.Module, layers: set[int] | None = None) -> list[str]:
        """Hooks every module that `selected` admits; returns the hooked paths."""
        hooked = []
        decoder_layers = DecoderLayers.of(model)
        for path, module in model.named_modules():
            if path and selected(path, model, decoder_layers, layers):
                self._handles.append(module.register_forward_pre_hook(self._pre(path), with_kwargs=True))
                self._handles.append(module.register_forward_hook(self._post(path), with_kwargs=True))
                hooked.append(path)
        return hooked

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @contextmanager
    def attached(self, model: torch.nn.Module, layers: set[int] | None = None):
        self.attach(model, layers)
        try:
            yield self
        finally:
            self.detach()


@dataclass
class Recorder(ModuleHooks):
    """Registers hooks and accumulates Captured tensors in execution order."""

    captured: list[Captured] = field(default_factory=list)
    fired: set[str] = field(default_factory=set)  # paths of modules whose hooks ran

    def _pre(self, path: str):
        def hook(module, args, kwargs):
            call = self._calls.get(path, 0)
            self._calls[path] = call + 1
            if is_rotary(module):
                return  # x only carries the dtype; position_ids are in /inputs
            for slot, tensor in naming.input_slots(args, kwargs):
                self._add(naming.hook_key(path, slot, call), tensor, module)

        return hook

    def _post(self, path: str):
        def hook(module, args, kwargs, output):
            self.fired.add(path)
            call = self._calls[path] - 1
            layer_type = rotary_layer_type(module, args, kwargs)
            # Gemma-4 runs its rotary module once per layer type: the type, not a call index, names it.
            repeat = 0 if layer_type else call
            for slot, tensor in naming.output_slots(module, output, layer_type):
                self._add(naming.hook_key(path, slot, repeat), tensor, module)
            self._add_router_probs(path, module, output, repeat)

        return hook

    def _add_router_probs(self, path: str, module, output, repeat: int) -> None:
        """@router_probs on every router: the softmax over all experts, the tensor bugs hide in."""
        name = type(module).__name__
        if name.endswith("TopKRouter"):
            # OLMoE (transformers >= 5.6) returns logits; probabilities are HF's own next line:
            # softmax(router_logits, dtype=torch.float, dim=-1) in OlmoeTopKRouter.forward.
            probs = torch.nn.functional.softmax(output[0], dtype=torch.float, dim=-1)
            derived = "softmax(router_logits, dtype=float32, dim=-1), as OlmoeTopKRouter.forward"
            self._add(naming.hook_key(path, "router_probs", repeat), probs, module, derived)
        elif name.endswith("TextRouter"):
            # Gemma-4's router already returns the probabilities as element 0 (stored deduplicated).
            self._add(naming.hook_key(path, "router_probs", repeat), output[0], module)

    def _add(self, key: str, tensor: torch.Tensor, module, derived: str = "") -> None:
        clone = tensor.detach().to("cpu", copy=True)
        self.captured.append(Captured(key, clone, type(module).__name__, derived))


def is_rotary(module: torch.nn.Module) -> bool:
    return type(module).__name__.endswith(naming.ROTARY_SUFFIX)


def rotary_layer_type(module: torch.nn.Module, args: tuple, kwargs: dict) -> str:
    """The layer_type a rotary module was called for (Gemma-4 passes it third), or ""."""
    if not is_rotary(module):
        return ""
    value = kwargs.get("layer_type", args[2] if len(args) > 2 else None)
    return value if isinstance(value, str) else ""


def selected(path: str, model: torch.nn.Module, decoder_layers: DecoderLayers, layers: set[int] | None) -> bool:
    """Whether `path` is hooked: every module, except
    - modules inside a fused experts module (their act_fn runs once per active expert on a
      varying token subset; the experts call's inputs and output cover them), and
    - with `layers`, modules of decoder layers not listed (embeddings, final norm, head stay)."""
    parts = path.split(".")
    for depth in range(1, len(parts)):
        if type(model.get_submodule(".".join(parts[:depth]))).__name__.endswith("Experts"):
            return False
    index = decoder_layers.index(path)
    return layers is None or index is None or index in layers
