"""Tests of parity.dump.dump (parity/dump/__init__.py) on tiny random models."""

import re

import h5py
import numpy as np
import pytest
import torch

from helpers import GOLDEN
from parity.dump import DumpError, dump
from parity.dump.build import random_input_ids, random_model


def read(f: h5py.File, path: str) -> torch.Tensor:
    data = f[path]
    array = data[()]
    if data.attrs["dtype"] == "bfloat16":
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.asarray(array))


def dumped(tmp_path, config: str, seed: int = 0, **kwargs):
    model = random_model(GOLDEN / "configs" / f"{config}.json", seed, kwargs.pop("dtype", "float32"))
    ids = random_input_ids(seed, 2, 10, model.config.vocab_size)
    dump(model, ids, tmp_path / "f.h5", progress=False, **kwargs)
    return model, ids, h5py.File(tmp_path / "f.h5")


@pytest.mark.parametrize("config", ["gemma4_full", "olmoe_base"])
def test_every_called_module_is_hooked_and_outputs_match_the_model(tmp_path, config):
    model, ids, f = dumped(tmp_path, config)
    keys = list(f["hooks"])
    for path, module in model.named_modules():
        container = isinstance(module, (torch.nn.ModuleList, torch.nn.ModuleDict))
        inside_experts = path.rpartition(".")[0].endswith("experts")
        if path and not container and not inside_experts:
            assert any(k == path or k.startswith(path + "@") for k in keys), f"no hook for {path}"
    with torch.no_grad():
        logits = model(ids, use_cache=False).logits
    assert torch.equal(read(f, "outputs/logits"), logits)
    expected = torch.log_softmax(logits, -1)[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
    assert torch.allclose(read(f, "outputs/logprobs"), expected, rtol=0, atol=0)
    assert f["meta"].attrs["attn_implementation"] == "eager"
    assert f["meta"].attrs["experts_implementation"] == "eager"


def test_decoder_layer_output_is_the_next_layers_input(tmp_path):
    _, _, f = dumped(tmp_path, "gemma4_full")
    for i in range(5):  # layer_scalar is applied in place: the stored output must include it
        assert torch.equal(read(f, f"hooks/model.layers.{i}"), read(f, f"hooks/model.layers.{i + 1}@in"))


def test_clip_qkv_clamp_in_place_does_not_reach_the_stored_q_norm_output(tmp_path):
    model, _, f = dumped(tmp_path, "olmoe_clip_qkv")
    attn = model.model.layers[0].self_attn
    q_proj = read(f, "hooks/model.layers.0.self_attn.q_proj")
    q_norm = read(f, "hooks/model.layers.0.self_attn.q_norm")
    with torch.no_grad():
        assert torch.equal(q_norm, attn.q_norm(q_proj))  # what q_norm returned, before the clamp
    assert q_norm.abs().max() > model.config.clip_qkv


def test_router_hooks_hold_probabilities_weights_and_indices(tmp_path):
    _, _, f = dumped(tmp_path, "olmoe_norm_topk")
    probs = read(f, "hooks/model.layers.0.mlp.gate@router_probs")
    logits = read(f, "hooks/model.layers.0.mlp.gate")
    assert torch.allclose(probs.sum(-1), torch.ones(probs.shape[0]))
    assert torch.equal(probs, torch.softmax(logits, -1, dtype=torch.float32))
    assert f["hooks/model.layers.0.mlp.gate@router_probs"].attrs["derived"]
    index = read(f, "hooks/model.layers.0.mlp.gate@top_k_index")
    assert torch.equal(index, probs.topk(2, -1).indices)


def test_layers_and_weights_selection(tmp_path):
    _, _, f = dumped(tmp_path, "gemma4_dense", layers=[1])
    hooks, weights = list(f["hooks"]), list(f["weights"])
    assert not any(".layers.0." in k or k.startswith("model.layers.0@") for k in hooks + weights)
    assert "model.layers.1.mlp" in hooks and "model.layers.1.mlp.up_proj.weight" in weights
    assert "lm_head" in hooks and "model.embed_tokens.weight" in weights and "model.norm.weight" in weights
    assert f["meta"].attrs["hooked_layers"] == "1" and f["meta"].attrs["weights"] == "hooked"
    _, _, g = dumped(tmp_path / "none", "gemma4_dense", weights="none")
    assert len(g["weights"]) == 0 and len(g["hooks"]) > 0


def test_bfloat16_run_keeps_bf16_tensors(tmp_path):
    _, _, f = dumped(tmp_path, "olmoe_base", dtype="bfloat16")
    assert f["meta"].attrs["dtype"] == "bfloat16"
    assert f["outputs/logits"].attrs["dtype"] == "bfloat16" and f["outputs/logits"].dtype == np.uint16
    assert f["outputs/logprobs"].attrs["dtype"] == "float32"  # log-softmax is taken in fp32


@pytest.mark.parametrize(
    "ids, layers, message",
    [
        (torch.tensor([[1, 2, 500]]), None, "input id 500 at [0, 2] is outside the vocabulary [0, 128)"),
        (torch.tensor([[1]]), None, "at least 2 tokens"),
        (torch.tensor([1, 2, 3]), None, "shape [batch, seq_len]"),
        (torch.tensor([[1, 2, 3]]), [7], "layers [7] not in the model's 4 decoder layers"),
    ],
)
def test_bad_inputs_raise_dump_error(tmp_path, ids, layers, message):
    model = random_model(GOLDEN / "configs" / "gemma4_dense.json", 0)
    with pytest.raises(DumpError, match=re.escape(message)):
        dump(model, ids, tmp_path / "f.h5", layers=layers, progress=False)
    assert not (tmp_path / "f.h5").exists()


def test_meta_cannot_rewrite_what_the_dumper_records(tmp_path):
    model = random_model(GOLDEN / "configs" / "gemma4_dense.json", 0)
    with pytest.raises(DumpError, match="meta may not set dtype, torch_version"):
        dump(model, torch.tensor([[1, 2, 3]]), tmp_path / "f.h5", meta={"dtype": "float32", "torch_version": "x"})
    dump(model, torch.tensor([[1, 2, 3]]), tmp_path / "g.h5", meta={"seed": 4, "engine": "sglang"}, progress=False)
    with h5py.File(tmp_path / "g.h5") as f:
        assert f["meta"].attrs["seed"] == 4 and f["meta"].attrs["engine"] == "sglang"
