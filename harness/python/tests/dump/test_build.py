"""Tests of parity/dump/build.py: config files, random models, checkpoint loading."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from helpers import GOLDEN, tiny_config
from parity.dump.build import EAGER, checkpoint_model, config_from_file, random_input_ids, random_model
from parity.dump.errors import DumpError


def test_config_key_typo_is_refused_not_silently_ignored(tmp_path):
    with pytest.raises(DumpError, match="keys unknown to olmoe configs: norm_topk_probs"):
        config_from_file(tiny_config(tmp_path, "olmoe_base", norm_topk_probs=True))


def test_gemma4_constructor_only_keys_are_accepted(tmp_path):
    config = config_from_file(GOLDEN / "configs" / "gemma4_full.json")  # global_head_dim, num_global_key_value_heads
    assert config.per_layer_config[2].head_dim == 32


@pytest.mark.parametrize("base", ["gemma4_full", "olmoe_base"])
def test_bf16_random_model_equals_its_save_and_from_pretrained_reload(tmp_path, base):
    """The fixture must show what HF computes for such a checkpoint: inv_freq stays fp32."""
    model = random_model(GOLDEN / "configs" / f"{base}.json", 5, "bfloat16")
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16, **EAGER).eval()
    assert {n: b.dtype for n, b in model.named_buffers()} == {n: b.dtype for n, b in reloaded.named_buffers()}
    ids = random_input_ids(5, 2, 9, model.config.vocab_size)
    with torch.no_grad():
        assert torch.equal(model(ids, use_cache=False).logits, reloaded(ids, use_cache=False).logits)


def test_bf16_and_fp32_random_models_share_weights_up_to_rounding():
    fp32 = random_model(GOLDEN / "configs" / "olmoe_base.json", 5, "float32")
    bf16 = random_model(GOLDEN / "configs" / "olmoe_base.json", 5, "bfloat16")
    for (name, a), (_, b) in zip(fp32.state_dict().items(), bf16.state_dict().items()):
        assert torch.equal(a.to(torch.bfloat16), b), name


def test_checkpoint_missing_a_weight_is_refused(tmp_path):
    random_model(GOLDEN / "configs" / "olmoe_base.json", 0).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["model.norm.weight"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(DumpError, match="lacks 1 weights the model needs: model.norm.weight"):
        checkpoint_model(tmp_path)


def test_checkpoint_with_a_mis_shaped_weight_is_refused(tmp_path):
    random_model(GOLDEN / "configs" / "olmoe_base.json", 0).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    weights["model.norm.weight"] = torch.ones(3)
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(DumpError, match="shapes do not match its config.json"):
        checkpoint_model(tmp_path)


@pytest.mark.parametrize("content, message", [
    ('{"model_type": ["olmoe"]}', "not a JSON object with a string"),
    ('[1, 2]', "not a JSON object with a string"),
    ('{"model_type": "olmoe", "hidden_size": "abc"}', "hidden_size"),
    ('{"model_type": "olmoe"', "not a readable JSON file"),
])
def test_malformed_config_files(tmp_path, content, message):
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(DumpError, match=message):
        config_from_file(path)
