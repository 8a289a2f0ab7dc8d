"""Tests of parity/dump/naming.py: the hook-key rules of golden/README.md."""

import torch

from parity.dump import naming


class OlmoeTopKRouter(torch.nn.Module):  # the class-name suffix selects the slot names
    pass


class Gemma4TextRotaryEmbedding(torch.nn.Module):
    pass


def test_hook_key_adds_slot_and_repeat_call():
    assert naming.hook_key("model.layers.0.mlp") == "model.layers.0.mlp"
    assert naming.hook_key("model.layers.0.mlp", "in") == "model.layers.0.mlp@in"
    assert naming.hook_key("model.act", "in", call=2) == "model.act#2@in"


def test_input_slots_positional_then_keywords():
    x, y, mask = torch.zeros(2), torch.ones(2), torch.zeros(1)
    slots = naming.input_slots((x, "layer_type", y), {"attention_mask": mask, "flag": True})
    assert [name for name, _ in slots] == ["in", "in2", "in.attention_mask"]
    assert slots[1][1] is y


def test_input_slots_hidden_states_kwarg_is_the_primary_input():
    hidden, cos, sin = torch.zeros(3), torch.ones(3), torch.ones(3)
    slots = naming.input_slots((), {"hidden_states": hidden, "position_embeddings": (cos, sin), "cache": None})
    assert [name for name, _ in slots] == ["in", "in.position_embeddings.0", "in.position_embeddings.1"]
    assert slots[0][1] is hidden


def test_output_slots_named_for_routers_and_numbered_otherwise():
    logits, weights, index = torch.zeros(4, 8), torch.zeros(4, 2), torch.zeros(4, 2, dtype=torch.long)
    names = [n for n, _ in naming.output_slots(OlmoeTopKRouter(), (logits, weights, index))]
    assert names == ["", "top_k_weights", "top_k_index"]
    names = [n for n, _ in naming.output_slots(torch.nn.Identity(), (logits, weights, index))]
    assert names == ["", "out1", "out2"]


def test_output_slots_rotary_pair_is_qualified_by_layer_type():
    cos, sin = torch.zeros(1, 4, 8), torch.ones(1, 4, 8)
    slots = naming.output_slots(Gemma4TextRotaryEmbedding(), (cos, sin), "full_attention")
    assert [n for n, _ in slots] == ["full_attention.cos", "full_attention.sin"]


def test_output_slots_mapping_gives_one_key_per_field():
    out = {"last_hidden_state": torch.zeros(2), "past_key_values": None}
    assert [n for n, _ in naming.output_slots(torch.nn.Identity(), out)] == ["last_hidden_state"]


def test_input_slots_are_numbered_by_argument_position():
    x, y = torch.zeros(2), torch.ones(2)
    slots = naming.input_slots((x, None, (y, y)), {})
    assert [name for name, _ in slots] == ["in", "in2.0", "in2.1"]


class Twice(torch.nn.Module):
    """Calls one child twice, and holds an experts-like module whose grandchildren must not be hooked."""

    def __init__(self):
        super().__init__()
        self.act = torch.nn.Tanh()
        self.experts = ToyExperts()

    def forward(self, x):
        return self.experts(self.act(self.act(x)))


class ToyExperts(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = torch.nn.Sequential(torch.nn.ReLU())

    def forward(self, x):
        return self.inner(x)


def test_recorder_names_repeated_calls_and_skips_everything_inside_experts():
    from parity.dump.capture import Recorder

    model = Twice()
    recorder = Recorder()
    hooked = recorder.attach(model)
    assert "experts" in hooked and "experts.inner" not in hooked and "experts.inner.0" not in hooked
    model(torch.full((3,), 0.5))
    keys = [c.key for c in recorder.captured]
    assert keys == ["act@in", "act", "act#1@in", "act#1", "experts@in", "experts"]
    first, second = recorder.captured[1].tensor, recorder.captured[3].tensor
    assert torch.equal(second, torch.tanh(first))
