"""Gradient dumps (parity/dump/grad.py, format v2): what each stored gradient is, checked against
things the dumper did not compute: a hook-free backward of the same model, the closed forms of the
losses' logit gradients and of a linear layer's input gradient, the masking an in-place clamp
makes, and HF's own labels loss."""

from __future__ import annotations

import copy

import h5py
import numpy as np
import pytest
import torch

from helpers import GOLDEN, run_parity, tiny_config
from parity.dump import DumpError, dump
from parity.dump.build import random_input_ids, random_model
from parity.dump.cli import main
from parity.dump.grad import labels_for

CONFIGS = ["olmoe_base", "olmoe_clip_qkv", "gemma4_full", "gemma4_dense"]


def model_and_ids(config: str, dtype: str = "float32", seed: int = 5):
    model = random_model(GOLDEN / "configs" / f"{config}.json", seed=seed, dtype=dtype)
    ids = random_input_ids(seed + 1, 2, 7, model.config.get_text_config().vocab_size)
    return model, ids


def read(f: h5py.File, path: str) -> np.ndarray:
    ds = f[path]
    data = ds[()]
    if ds.attrs["dtype"] == "bfloat16":
        return torch.from_numpy(data.view(np.int16)).view(torch.bfloat16).double().numpy()
    return data.astype(np.float64)


def hook_free_gradients(model, ids, loss: str, weights=None) -> tuple[float, dict[str, torch.Tensor]]:
    """The same model's backward without any hook: what training computes."""
    model = copy.deepcopy(model)
    model.set_attn_implementation("eager")
    if any(type(m).__name__.endswith("Experts") for m in model.modules()):
        model.set_experts_implementation("eager")
    model.train()
    mask = torch.ones_like(ids)
    if loss == "ce_mean":
        value = model(input_ids=ids, attention_mask=mask, labels=labels_for(ids, mask), use_cache=False).loss
    else:
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        lp = torch.log_softmax(logits.float(), dim=-1)[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
        value = ((weights if weights is not None else mask[:, 1:].float()) * lp).sum()
    value.backward()
    return float(value), {n: p.grad for n, p in model.named_parameters(remove_duplicate=False)}


@pytest.mark.parametrize("loss", ["logprob_sum", "ce_mean"])
@pytest.mark.parametrize("config", CONFIGS)
def test_parameter_gradients_are_the_hook_free_backward_bit_for_bit(tmp_path, config, loss):
    model, ids = model_and_ids(config)
    out = tmp_path / "g.h5"
    result = dump(model, ids, out, grad=loss, progress=False)
    value, expected = hook_free_gradients(model, ids, loss)
    with h5py.File(out) as f:
        assert f["meta"].attrs["schema_version"] == 2 and f["meta"].attrs["grad_loss"] == loss
        assert float(f["loss/value"][()]) == value
        assert set(f["grads"]) == set(expected)  # every parameter, tied names included
        for name, grad in expected.items():
            assert np.array_equal(f["grads"][name][()], grad.numpy()), name
        assert result.gradients == len(f["grads"]) + len(f["grad_hooks"])
        # Every module gradient is the gradient of a stored forward tensor, of its shape.
        for key in f["grad_hooks"]:
            assert f["grad_hooks"][key].shape == f["hooks"][key].shape, key


def logit_gradient_closed_form(logits: np.ndarray, ids: np.ndarray, loss: str, weights: np.ndarray) -> np.ndarray:
    """d loss / d logits: w (onehot - softmax) for logprob_sum, (softmax - onehot) / N for ce_mean."""
    z = logits - logits.max(-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    onehot = np.zeros_like(p)
    b, s = np.meshgrid(np.arange(ids.shape[0]), np.arange(ids.shape[1] - 1), indexing="ij")
    onehot[b, s, ids[:, 1:]] = 1
    g = np.zeros_like(p)
    if loss == "logprob_sum":
        g[:, :-1] = weights[..., None] * (onehot - p)[:, :-1]
    else:
        g[:, :-1] = (p - onehot)[:, :-1] / (ids.shape[0] * (ids.shape[1] - 1))
    return g


@pytest.mark.parametrize("loss", ["logprob_sum", "ce_mean"])
def test_the_head_output_gradient_is_the_losses_closed_form(tmp_path, loss):
    model, ids = model_and_ids("olmoe_base")  # no final softcap: lm_head's output is the logits
    weights = torch.linspace(-1.5, 2.0, 12).reshape(2, 6) if loss == "logprob_sum" else None
    out = tmp_path / "g.h5"
    dump(model, ids, out, grad=loss, loss_weights=weights, progress=False)
    with h5py.File(out) as f:
        expected = logit_gradient_closed_form(read(f, "outputs/logits"), ids.numpy(), loss,
                                              weights.numpy() if weights is not None else None)
        got = read(f, "grad_hooks/lm_head")
        assert np.abs(got - expected).max() <= 1e-6 * np.abs(expected).max()
        if loss == "logprob_sum":
            assert np.array_equal(f["loss/weights"][()], weights.numpy())
            assert float(f["loss/value"][()]) == pytest.approx(float((weights.numpy() * read(f, "outputs/logprobs")).sum()),
                                                               rel=1e-6)
        else:
            assert np.array_equal(f["loss/labels"][()], ids.numpy()) and "weights" not in f["loss"]


def test_a_module_input_gradient_is_that_modules_own_vector_jacobian_product(tmp_path):
    model, ids = model_and_ids("olmoe_base")
    out = tmp_path / "g.h5"
    dump(model, ids, out, grad="logprob_sum", progress=False)
    with h5py.File(out) as f:
        # A linear without bias: d/dx (x Wᵀ) applied to g is g W.
        q = "model.layers.0.self_attn.q_proj"
        expected = read(f, f"grad_hooks/{q}") @ read(f, f"weights/{q}.weight")
        got = read(f, f"grad_hooks/{q}@in")
        assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
        # The layer's input feeds its norm and the residual: the layer's own VJP has the residual's
        # share, its norm's input gradient does not (not the total gradient of the shared tensor).
        layer, norm = read(f, "grad_hooks/model.layers.1@in"), read(f, "grad_hooks/model.layers.1.input_layernorm@in")
        after = read(f, "grad_hooks/model.layers.1")  # the residual passes the layer output's gradient through
        assert not np.allclose(layer, norm)
        assert np.abs((layer - norm) - after).max() > 0  # the attention path adds the rest
        assert np.linalg.norm(layer - after) < np.linalg.norm(layer)


def test_an_in_place_clamp_after_the_module_masks_its_output_gradient(tmp_path):
    """OLMoE clip_qkv clamps q_norm's and v_proj's outputs in place after the call: the stored
    gradient is that of the module's own output, zero exactly where the clamp cut it."""
    model, ids = model_and_ids("olmoe_clip_qkv")
    out = tmp_path / "g.h5"
    dump(model, ids, out, grad="logprob_sum", progress=False)
    clip = model.config.clip_qkv
    for module in ("model.layers.0.self_attn.q_norm", "model.layers.0.self_attn.v_proj"):
        with h5py.File(out) as f:
            value, g = read(f, f"hooks/{module}"), read(f, f"grad_hooks/{module}")
        clamped = np.abs(value) > clip
        assert clamped.any() and (~clamped).any(), module
        # Elsewhere most elements get gradient (the last token's row gets none: its logprob is not
        # scored, and no later query reads its key or value).
        assert np.all(g[clamped] == 0) and np.count_nonzero(g[~clamped]) > 0.7 * (~clamped).sum(), module


def test_a_bfloat16_gradient_dump_stores_bfloat16_gradients(tmp_path):
    model, ids = model_and_ids("gemma4_full", "bfloat16")
    out = tmp_path / "g.h5"
    dump(model, ids, out, grad="ce_mean", progress=False)
    value, expected = hook_free_gradients(model, ids, "ce_mean")
    with h5py.File(out) as f:
        assert f["meta"].attrs["dtype"] == "bfloat16" and float(f["loss/value"][()]) == value
        assert {f["grads"][n].attrs["dtype"] for n in f["grads"]} == {"bfloat16"}
        name = "model.layers.0.router.proj.weight"
        assert np.array_equal(read(f, f"grads/{name}"), expected[name].double().numpy())


def test_a_forward_dump_stays_format_v1(tmp_path):
    model, ids = model_and_ids("olmoe_base")
    dump(model, ids, tmp_path / "f.h5", progress=False)
    with h5py.File(tmp_path / "f.h5") as f:
        assert f["meta"].attrs["schema_version"] == 1 and not {"grads", "grad_hooks", "loss"} & set(f)
        assert "grad_loss" not in f["meta"].attrs


def test_the_cli_dumps_gradients_and_check_says_it_gates_the_forward_only(tmp_path):
    weights = tmp_path / "w.npy"
    np.save(weights, np.full((2, 7), 0.5, dtype=np.float32))
    out = tmp_path / "g.h5"
    assert main(["--config", str(GOLDEN / "configs" / "olmoe_base.json"), "--seq-len", "8", "--out", str(out),
                 "--grad", "logprob_sum", "--loss-weights", str(weights), "--quiet"]) == 0
    with h5py.File(out) as f:
        assert np.all(f["loss/weights"][()] == 0.5)
    result = run_parity("check", out, "--mode", "chained")
    assert result.returncode == 0, result.stdout
    assert "note: gradients: the fixture holds" in result.stdout and "gates the forward pass only" in result.stdout
    shown = run_parity("inspect", out).stdout
    with h5py.File(out) as f:
        for group in ("grads", "grad_hooks", "loss"):
            assert f"\n{group} ({len(f[group])})\n" in shown


@pytest.mark.parametrize("kwargs, message", [
    (dict(grad="mse"), "grad must be one of logprob_sum, ce_mean"),
    (dict(grad="logprob_sum", loss_weights=torch.ones(2, 7)), "loss_weights must be a float tensor of shape (2, 6)"),
    (dict(grad="logprob_sum", loss_weights=torch.ones(2, 6, dtype=torch.int64)), "loss_weights must be a float tensor"),
    (dict(grad="logprob_sum", loss_weights=torch.tensor([[float("nan")] * 6] * 2)), "loss_weights holds NaN or Inf"),
    (dict(grad="ce_mean", loss_weights=torch.ones(2, 6)), "loss_weights belong to the logprob_sum loss"),
    (dict(loss_weights=torch.ones(2, 6)), "loss_weights need grad"),
])
def test_bad_gradient_requests_are_refused_before_the_forward(tmp_path, kwargs, message):
    model, ids = model_and_ids("olmoe_base")
    with pytest.raises(DumpError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dump(model, ids, tmp_path / "g.h5", progress=False, **kwargs)
    assert not (tmp_path / "g.h5").exists()


def test_a_config_whose_loss_would_carry_the_router_aux_loss_is_refused(tmp_path):
    model, ids = model_and_ids("olmoe_base")
    model.config.output_router_logits = True
    with pytest.raises(DumpError, match="output_router_logits"):
        dump(model, ids, tmp_path / "g.h5", grad="ce_mean", progress=False)


def test_frozen_parameters_are_refused_with_a_plain_message(tmp_path):
    model, ids = model_and_ids("olmoe_base")
    model.requires_grad_(False)
    with pytest.raises(DumpError, match="does not depend on any parameter"):
        dump(model, ids, tmp_path / "g.h5", grad="logprob_sum", progress=False)


@pytest.mark.parametrize("args, message", [
    (["--grad", "mse"], "invalid choice: 'mse'"),
    (["--grad", "logprob_sum", "--loss-weights", "/nonexistent.npy"], "not a readable .npy file"),
])
def test_bad_gradient_cli_use_is_exit_2_with_one_line(tmp_path, capsys, args, message):
    code = None
    try:
        code = main(["--config", str(GOLDEN / "configs" / "olmoe_base.json"), "--out", str(tmp_path / "g.h5"), *args])
    except SystemExit as exit:
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
