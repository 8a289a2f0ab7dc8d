"""parity.dump: run any transformers causal-LM with hooks on every module and write an HDF5 fixture.

    from parity.dump import dump
    dump(model, input_ids, "out.h5")            # a patched, converted or engine-side model works too

The fixture format is documented in golden/README.md.
"""

from __future__ import annotations

import datetime
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
import transformers
from tqdm import tqdm

from .capture import DecoderLayers, Recorder
from .errors import DumpError
from .grad import (LOSSES, GradRecorder, check_no_aux_loss, checked_loss_weights, labels_for, logprob_sum, module_gradients,
                   parameter_gradients, training_mode_without_dropout)
from .writer import FixtureWriter

PRODUCER = "parity.dump 1"
WEIGHT_MODES = ("auto", "all", "hooked", "none")


@dataclass
class DumpResult:
    path: Path
    hooks: int
    weights: int
    hooked_layers: list[int]
    gradients: int = 0  # /grad_hooks + /grads tensors (a gradient dump)


def dump(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    path: str | Path,
    *,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    layers: Iterable[int] | None = None,
    weights: str = "auto",
    meta: dict | None = None,
    progress: bool | None = None,
    grad: str | None = None,
    loss_weights: torch.Tensor | None = None,
) -> DumpResult:
    """Runs `model` once on `input_ids` [B, S] and writes every hooked tensor to `path`.

    Args:
        model: any transformers causal LM (its forward must return `.logits`). Eager attention and
            eager experts are forced, since only they expose attention probabilities and the
            per-expert rounding HF documents; the model is put in eval mode.
        input_ids: int64 [B, S], every id inside the vocabulary.
        attention_mask: [B, S]; default all ones. position_ids: [B, S]; default arange(S).
        layers: decoder-layer indices to hook; None hooks all. Embeddings, the final norm and the
            head are always hooked.
        weights: "all" (whole state_dict), "hooked" (entries of modules whose hooks ran: the hooked
            layers and the modules outside them that the forward used), "none" (activation-only
            fixture), "auto" (all, or hooked with layers).
        meta: extra /meta attributes (seed, source, your own keys); keys the dumper records from
            the run (dtype, versions, ...) are refused.
        progress: show a progress bar; default when stderr is a terminal.
        grad: None (a forward fixture, format v1), or a loss (grad.LOSSES: "logprob_sum", "ce_mean"):
            the forward runs in training mode with dropout off, a backward from that loss follows,
            and the fixture (format v2) also stores every parameter's gradient (/grads) and each
            hooked module's output and input gradients (/grad_hooks), the loss and its inputs.
        loss_weights: logprob_sum only: [B, S-1] float weights per scored next token (advantages,
            a mask); default: the next token's attention mask.
    """
    _check_output_path(Path(path))
    input_ids, attention_mask, position_ids = _checked_inputs(model, input_ids, attention_mask, position_ids)
    layer_set = _checked_layers(model, layers)
    if weights not in WEIGHT_MODES:
        raise DumpError(f"weights must be one of {', '.join(WEIGHT_MODES)}, got {weights!r}")
    _check_meta(meta or {})
    if grad is not None:
        loss_weights = checked_loss_weights(grad, loss_weights, input_ids, attention_mask)
        check_no_aux_loss(model)
    elif loss_weights is not None:
        raise DumpError("loss_weights need grad=\"logprob_sum\"")
    implementations = _force_eager(model)
    model.eval()
    recorder = Recorder()
    labels = labels_for(input_ids, attention_mask) if grad == "ce_mean" else None
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False,
                  **({"labels": labels} if labels is not None else {}))
    with _full_fp32_precision(), recorder.attached(model, layer_set):
        # The forward (and, for a gradient dump, HF's training backward, untouched by any hook: the
        # recorder only copies tensors out).
        with (training_mode_without_dropout(model) if grad else torch.no_grad()), _layer_progress(model, progress):
            output = model(**inputs)
        if grad:
            loss = _loss(grad, output, input_ids, loss_weights)
            parameters = list(model.named_parameters(remove_duplicate=False))
            param_grads = parameter_gradients(loss, parameters)
    if grad:
        hook_grads, grad_recorder = _module_gradients(model, layer_set, inputs, grad, input_ids, loss_weights, loss)
    logits = output.logits.detach()
    logprobs = torch.log_softmax(logits.float(), dim=-1)[:, :-1].gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    weight_mode = weights if weights != "auto" else ("all" if layer_set is None else "hooked")
    stored_weights = _selected_weights(model, weight_mode, recorder.fired)
    hooked_layers = sorted(layer_set) if layer_set is not None else list(range(_layer_count(model)))
    attrs = {
        "model_type": model.config.model_type,
        "model_class": type(model).__name__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "dtype": str(logits.dtype).removeprefix("torch."),
        **implementations,
        "seed": -1,
        "producer": PRODUCER,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": "api",
        "hooked_layers": "all" if layer_set is None else ",".join(map(str, hooked_layers)),
        "weights": weight_mode,
        "batch": int(input_ids.shape[0]),
        "seq_len": int(input_ids.shape[1]),
        **({"grad_loss": grad, "grad_loss_definition": LOSSES[grad], "grad_mode": "train, dropout off"} if grad else {}),
        **(meta or {}),
    }
    with FixtureWriter(path, gradients=bool(grad)) as writer:
        writer.meta(attrs, model.config.to_json_string(use_diff=False))
        writer.tensor("inputs", "input_ids", input_ids)
        writer.tensor("inputs", "attention_mask", attention_mask)
        writer.tensor("inputs", "position_ids", position_ids)
        for name, tensor in stored_weights:
            writer.tensor("weights", name, tensor)
        for item in tqdm(recorder.captured, desc="writing", unit="tensor", disable=not _want_progress(progress)):
            writer.tensor("hooks", item.key, item.tensor, module=item.module_class, derived=item.derived)
        writer.tensor("outputs", "logits", logits)
        writer.tensor("outputs", "logprobs", logprobs)
        if grad:
            _write_gradients(writer, grad, loss, loss_weights, labels, hook_grads, grad_recorder.kept, param_grads)
    return DumpResult(Path(path), len(recorder.captured), len(stored_weights), hooked_layers,
                      sum(g is not None for g in hook_grads) + sum(g is not None for _, g in param_grads) if grad else 0)


def _loss(grad: str, output, input_ids: torch.Tensor, loss_weights: torch.Tensor | None) -> torch.Tensor:
    return output.loss if grad == "ce_mean" else logprob_sum(output.logits, input_ids, loss_weights)


def _module_gradients(model, layer_set, inputs: dict, grad: str, input_ids, loss_weights, loss: torch.Tensor):
    """A second forward and backward with the module gradients kept (grad.py): the same values (a
    clone is exact; checked on the loss), a backward whose sums over a tensor's several consumers
    may accumulate in another order than the first one's."""
    grad_recorder = GradRecorder()
    with _full_fp32_precision(), grad_recorder.attached(model, layer_set), training_mode_without_dropout(model):
        again = _loss(grad, model(**inputs), input_ids, loss_weights)
        if not torch.equal(again.detach(), loss.detach()):
            raise DumpError(f"the model is not deterministic: two identical training forwards gave losses "
                            f"{float(loss):.9g} and {float(again):.9g}")
        return module_gradients(again, grad_recorder.kept), grad_recorder


def _write_gradients(writer, grad, loss, loss_weights, labels, hook_grads, kept, param_grads) -> None:
    """The loss, its inputs, and every gradient that flowed (none is stored where none flows: an
    unused output such as attn_weights, a frozen parameter)."""
    writer.tensor("loss", "value", loss.detach())
    if loss_weights is not None:
        writer.tensor("loss", "weights", loss_weights)
    if labels is not None:
        writer.tensor("loss", "labels", labels)
    for item, g in zip(kept, hook_grads):
        if g is not None:
            writer.tensor("grad_hooks", item.key, g, module=item.module_class)
    for name, g in param_grads:
        if g is not None:
            writer.tensor("grads", name, g)


# Facts the dumper records itself; a caller may add keys and set seed / source, never rewrite these.
RECORDED_META = {"schema_version", "model_type", "model_class", "transformers_version", "torch_version", "dtype",
                 "attn_implementation", "experts_implementation", "producer", "created_utc", "hooked_layers",
                 "weights", "batch", "seq_len", "grad_loss", "grad_loss_definition", "grad_mode"}


def _check_meta(meta: dict) -> None:
    forged = sorted(RECORDED_META & set(meta))
    if forged:
        raise DumpError(f"meta may not set {', '.join(forged)}: the dumper records them from the run")


def _check_output_path(path: Path) -> None:
    """Before the forward, which may take long on a real checkpoint."""
    if path.is_dir():
        raise DumpError(f"--out {path} is a directory")
    folder = next((p for p in path.absolute().parents if p.exists()), Path("/"))
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise DumpError(f"cannot write {path}: {folder} is not a writable directory")


def _checked_inputs(model, input_ids, attention_mask, position_ids):
    if not torch.is_tensor(input_ids) or input_ids.dim() != 2 or input_ids.dtype not in (torch.int64, torch.int32):
        raise DumpError("input_ids must be an integer tensor of shape [batch, seq_len]")
    if input_ids.shape[1] < 2:
        raise DumpError("input_ids needs at least 2 tokens per sequence (logprobs score the next token)")
    vocab = model.config.get_text_config().vocab_size
    bad = (input_ids < 0) | (input_ids >= vocab)
    if bad.any():
        b, s = (int(i) for i in bad.nonzero()[0])
        raise DumpError(f"input id {int(input_ids[b, s])} at [{b}, {s}] is outside the vocabulary [0, {vocab})")
    device = next(model.parameters()).device
    input_ids = input_ids.to(device=device, dtype=torch.int64)
    batch, seq_len = input_ids.shape
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if position_ids is None:
        position_ids = torch.arange(seq_len, device=device).expand(batch, seq_len).contiguous()
    for name, tensor in (("attention_mask", attention_mask), ("position_ids", position_ids)):
        if tuple(tensor.shape) != (batch, seq_len):
            raise DumpError(f"{name} has shape {tuple(tensor.shape)}, expected {(batch, seq_len)}")
    return input_ids, attention_mask.to(device=device, dtype=torch.int64), position_ids.to(device=device, dtype=torch.int64)


def _layer_count(model) -> int:
    return model.config.get_text_config().num_hidden_layers


def _checked_layers(model, layers) -> set[int] | None:
    if layers is None:
        return None
    count = _layer_count(model)
    layer_set = set(int(i) for i in layers)
    outside = sorted(i for i in layer_set if not 0 <= i < count)
    if outside or not layer_set:
        raise DumpError(f"layers {outside or '[]'} not in the model's {count} decoder layers (0..{count - 1})")
    return layer_set


def _force_eager(model) -> dict:
    """Eager attention (exposes attention probabilities) and eager experts (HF's documented rounding)."""
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    has_experts = any(type(m).__name__.endswith("Experts") for m in model.modules())
    if has_experts and hasattr(model, "set_experts_implementation"):
        model.set_experts_implementation("eager")
    return {
        "attn_implementation": str(getattr(model.config, "_attn_implementation", "unknown")),
        "experts_implementation": str(getattr(model.config, "_experts_implementation", None)) if has_experts else "none",
    }


@contextmanager
def _full_fp32_precision():
    """TF32 would degrade fp32 matmuls and the RoPE angle product on GPUs."""
    saved = (torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[1], saved[2]


def _want_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


@contextmanager
def _layer_progress(model, progress: bool | None):
    decoder_layers = DecoderLayers.of(model)
    layers = [m for p, m in model.named_modules() if decoder_layers.index(p) is not None and p.split(".")[-1].isdigit()]
    bar = tqdm(total=len(layers), desc="forward", unit="layer", disable=not _want_progress(progress))
    handles = [m.register_forward_hook(lambda *_: bar.update(1)) for m in layers]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        bar.close()


def _selected_weights(model, mode: str, fired: set[str]) -> list[tuple[str, torch.Tensor]]:
    """state_dict entries (parameters and persistent buffers) for mode all, hooked or none.
    hooked: entries owned by a module whose hooks ran, so with --layers only those layers, and
    never a multimodal checkpoint's vision tower on a text-only forward."""
    if mode == "none":
        return []
    state = model.state_dict()
    if mode == "all":
        return list(state.items())
    return [(name, tensor) for name, tensor in state.items() if name.rpartition(".")[0] in fired]
