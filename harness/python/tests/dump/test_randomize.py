"""Tests of parity/dump/randomize.py: every weight random, ties kept, seeded."""

import torch

from parity.dump.build import config_from_file
from parity.dump.randomize import persistent_tensors, randomize_
from transformers import AutoModelForCausalLM

from helpers import GOLDEN


def gemma4_full():
    return AutoModelForCausalLM.from_config(config_from_file(GOLDEN / "configs" / "gemma4_full.json"))


def test_no_persistent_tensor_is_constant_after_randomisation():
    model = gemma4_full()
    randomize_(model, seed=7)
    tensors = persistent_tensors(model)
    names = {name for name, _ in tensors}
    # The tensors whose default value (1) hides classic bugs are all covered.
    for must in ("model.layers.0.layer_scalar", "model.layers.0.router.scale", "model.layers.0.router.per_expert_scale",
                 "model.layers.0.input_layernorm.weight", "model.norm.weight"):
        assert must in names
    for name, tensor in tensors:
        if tensor.numel() > 1:
            assert tensor.std() > 0, name
        assert not torch.all(tensor == 1), name


def test_tied_weights_stay_tied_and_nonpersistent_buffers_untouched():
    model = gemma4_full()
    inv_freq = model.model.rotary_emb.full_attention_inv_freq.clone()
    randomize_(model, seed=7)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert torch.equal(model.model.rotary_emb.full_attention_inv_freq, inv_freq)


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = gemma4_full(), gemma4_full(), gemma4_full()
    randomize_(a, 3)
    randomize_(b, 3)
    randomize_(c, 4)
    for (name, ta), (_, tb), (_, tc) in zip(persistent_tensors(a), persistent_tensors(b), persistent_tensors(c)):
        assert torch.equal(ta, tb), name
        assert not torch.equal(ta, tc), name
