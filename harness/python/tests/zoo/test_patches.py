"""Tests of the bug zoo (parity/zoo/patches.py, parity/zoo/golden.py) on tiny random models.

Every patch plants its bug only inside its `with` block, leaves the dumped weights and
/meta/config the model's true ones, and calls each module once (a patched dump has the clean
dump's hook keys); every bug of the registry (references/models/known_bugs.toml) has its own
zoo fixture, and each regenerates.
"""

from __future__ import annotations

import functools
import json

import h5py
import numpy as np
import pytest
import torch
from transformers.models.gemma4 import modeling_gemma4 as g4

from helpers import GOLDEN, REGEN_NEAR_TIE_REL_BY_RUN_DTYPE, REGEN_REL_L2_BY_RUN_DTYPE, tiny_config, zoo_family
from parity.dump import dump
from parity.dump.build import random_input_ids, random_model
from parity.dump.fixture_diff import diff
from parity.zoo import BUGS
from parity.zoo.golden import load_zoo, main, make_zoo
from parity.zoo.patches import _attributes, _gemma4_attention_forward, _gemma4_layer_forward, _hf_rope, _Wiring

SEED = 5  # not the fixtures' seeds: the patches must plant their bug in any model of the family
CONFIGS = {"gemma4": GOLDEN / "configs" / "gemma4_zoo.json", "olmoe": GOLDEN / "configs" / "olmoe_zoo.json"}
ZOO_DIR = GOLDEN / "zoo"

# The only documented differences between a patched dump's /hooks and the clean one's: none in
# the key set; in the order, the wiring bugs run pre_feedforward_layernorm_2 earlier (before the
# router, resp. before the MLP), so its keys move. (Gemma-4's two rotary calls follow Python's
# set iteration, golden/README.md, so their keys may swap in any two dumps.)
MOVED = {
    "gemma4_router_on_normed_input": ("pre_feedforward_layernorm_2@in", "pre_feedforward_layernorm_2"),
    "gemma4_mlp_on_pre_feedforward_layernorm_2": ("pre_feedforward_layernorm_2@in", "pre_feedforward_layernorm_2"),
}


def model_of(family: str, dtype: str = "float32") -> torch.nn.Module:
    return random_model(CONFIGS[family], SEED, dtype)


def as_stored(tensor: torch.Tensor) -> np.ndarray:
    """A tensor as the dumper stores it (bf16 as its raw uint16 bits: numpy has no bfloat16)."""
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(np.uint16)
    return tensor.numpy()


def ids_of(model) -> torch.Tensor:
    return random_input_ids(SEED, 2, 8, model.config.vocab_size)


def logits(model, ids) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False).logits


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """Per (family, run dtype of a zoo fixture): the clean model's logits and dump."""
    out = {}
    for family, dtype in sorted({(zoo_family(bug), bug.fixture["dtype"]) for bug in BUGS.values()}):
        model = model_of(family, dtype)
        path = tmp_path_factory.mktemp(f"{family}_{dtype}") / "clean.h5"
        dump(model, ids_of(model), path, progress=False)
        out[family, dtype] = (logits(model, ids_of(model)), path)
    return out


def hook_keys(path) -> list[str]:
    with h5py.File(path) as f:
        return list(f["hooks"])


def without(keys: list[str], bug: str) -> list[str]:
    moved = MOVED.get(bug, ())
    return [k for k in keys if not k.startswith("model.rotary_emb@") and not k.endswith(tuple(f".{m}" for m in moved))]


@pytest.mark.parametrize("name", BUGS)
def test_a_patch_plants_its_bug_only_inside_the_with_block(tmp_path, clean, name):
    bug = BUGS[name]
    # A bf16 cast-point bug changes only where a bf16 run rounds: planted into the model in bf16.
    model = model_of(zoo_family(bug), bug.fixture["dtype"])
    ids = ids_of(model)
    clean_logits, clean_path = clean[zoo_family(bug), bug.fixture["dtype"]]
    assert torch.equal(logits(model, ids), clean_logits)
    with bug.patch(model):
        buggy = logits(model, ids)
        dump(model, ids, tmp_path / "buggy.h5", progress=False)
    assert not torch.allclose(buggy, clean_logits, rtol=1e-4, atol=1e-4), f"{name} changed nothing"
    assert torch.equal(logits(model, ids), clean_logits), f"{name} not restored"
    assert not any("forward" in m.__dict__ for m in model.modules()), "an instance forward was left behind"
    assert all(getattr(m, "scaling", 1.0) == 1.0 for m in model.modules() if isinstance(m, g4.Gemma4TextAttention))

    with h5py.File(tmp_path / "buggy.h5") as buggy_file, h5py.File(clean_path) as clean_file:
        # The checkpoint is the model's true one: weights (layer_scalar, router, ...) and config.
        assert buggy_file["meta/config"][()] == clean_file["meta/config"][()]
        assert json.loads(buggy_file["meta/config"][()]) == json.loads(model.config.to_json_string(use_diff=False))
        assert list(buggy_file["weights"]) == list(model.state_dict())
        for key, tensor in model.state_dict().items():
            assert np.array_equal(buggy_file["weights"][key][()], as_stored(tensor)), key
        assert np.array_equal(buggy_file["outputs/logits"][()], as_stored(buggy))
    # Each module ran once: no repeated-call keys (`path#1@...`), the clean dump's key set.
    keys, clean_keys = hook_keys(tmp_path / "buggy.h5"), hook_keys(clean_path)
    assert not any("#" in k for k in keys)
    assert len(keys) == len(set(keys)) and set(keys) == set(clean_keys)
    assert without(keys, name) == without(clean_keys, name)


def test_the_rewritten_gemma4_forwards_are_hfs_own_with_the_switches_off():
    """The layer and attention forwards the patches switch bugs into equal HF's bit for bit."""
    model = random_model(GOLDEN / "configs" / "gemma4_full.json", SEED)  # PLE, KV sharing, double-wide MLP
    ids = random_input_ids(SEED, 2, 8, 128)
    expected = logits(model, ids)
    changes = []
    for layer in model.model.layers:
        changes.append((layer, "forward", functools.partial(_gemma4_layer_forward, layer, _Wiring())))
        changes.append((layer.self_attn, "forward",
                        functools.partial(_gemma4_attention_forward, layer.self_attn, _hf_rope, False)))
    with _attributes(changes):
        assert torch.equal(logits(model, ids), expected)


@pytest.mark.parametrize("name, family, overrides", [
    ("olmoe_router_topk_softmax", "gemma4", {}),
    ("gemma4_layer_scalar_ignored", "olmoe", {}),
    ("gemma4_router_on_normed_input", "gemma4", {"enable_moe_block": False}),
    ("gemma4_no_final_softcap", "gemma4", {"final_logit_softcapping": None}),
    ("gemma4_k_eq_v_after_norm_and_rope", "gemma4", {"attention_k_eq_v": False}),
    ("gemma4_rope_contiguous_partial", "gemma4", {"rope_parameters": {
        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 1.0, "rope_theta": 1e6}}}),
])
def test_a_patch_that_would_plant_nothing_is_refused(tmp_path, name, family, overrides):
    model = random_model(tiny_config(tmp_path, f"{family}_zoo", **overrides), SEED)
    with pytest.raises(ValueError, match=name):
        with BUGS[name].patch(model):
            pass
    assert not any("forward" in m.__dict__ for m in model.modules())


def test_every_bug_has_one_zoo_fixture_of_its_own_and_its_family():
    entries = load_zoo()
    assert [e.bug for e in entries] == list(BUGS)
    assert len({e.file for e in entries}) == len(entries)
    for entry in entries:
        assert (ZOO_DIR / entry.file).is_file(), entry.file
        # The family's zoo model, or (a bug the zoo model cannot show, its entry says why) a golden
        # fixture's model of the same family.
        family = zoo_family(BUGS[entry.bug])
        config = json.loads((GOLDEN / entry.config).read_text())
        assert CONFIGS[family] == GOLDEN / entry.config or config["model_type"].startswith(family), entry.config
        assert BUGS[entry.bug].family in (zoo_family(BUGS[entry.bug]), "any")
    # The committed zoo is exactly the registry's: no fixture of a bug that is gone.
    assert sorted(p.name for p in ZOO_DIR.glob("*.h5")) == sorted(e.file for e in entries)


@pytest.mark.parametrize("entry", load_zoo(), ids=lambda e: e.bug)
def test_a_zoo_fixture_regenerates_with_its_bug_in_meta(tmp_path, entry):
    """As test_golden_regen.py does for golden/fixtures.toml (its limits by run dtype, its evidence)."""
    fresh = make_zoo(entry, tmp_path, GOLDEN)
    with h5py.File(ZOO_DIR / entry.file) as committed, h5py.File(fresh) as regenerated:
        meta = committed["meta"].attrs
        assert (meta["bug"], meta["seed"], meta["source"]) == (entry.bug, entry.seed, f"random:golden/{entry.config}")
        found = diff(committed, regenerated, REGEN_NEAR_TIE_REL_BY_RUN_DTYPE[entry.dtype])
        problems = found.over(REGEN_REL_L2_BY_RUN_DTYPE[entry.dtype])
    assert not problems, "\n".join(problems[:20])


def test_the_generator_takes_the_golden_folder_and_one_bug_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--only", "gemma4_no_final_softcap"])  # --golden is required: nothing is guessed
    assert main(["--golden", str(GOLDEN), "--only", "zoo/gemma4_no_final_softcap.h5", "--out", str(tmp_path)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["gemma4_no_final_softcap.h5"]
    assert main(["--golden", str(GOLDEN), "--only", "no_such_bug", "--out", str(tmp_path)]) == 2
    assert "no zoo fixture or bug named 'no_such_bug'" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(n for n, bug in BUGS.items() if bug.fixture["dtype"] == "bfloat16"))
def test_a_bf16_cast_point_patch_refuses_a_float32_model(tmp_path, name):
    """In float32 the cast-point bugs compute HF's math: a "buggy" float32 dump would be clean."""
    model = random_model(tiny_config(tmp_path, "gemma4_zoo"), SEED)
    with pytest.raises(ValueError, match=f"{name}: a torch.float32 model computes the same as HF"):
        with BUGS[name].patch(model):
            pass


def test_the_embedding_scale_patch_refuses_a_bf16_model_whose_scales_are_bf16_values(tmp_path):
    # sqrt(64) = 8 and sqrt(4) = 2 round to themselves: nothing to plant.
    config = tiny_config(tmp_path, "gemma4_zoo", hidden_size=64, hidden_size_per_layer_input=4,
                         vocab_size_per_layer_input=128)
    model = random_model(config, SEED, "bfloat16")
    with pytest.raises(ValueError, match="gemma4_embed_scale_not_bf16: every embed_scale is a torch.bfloat16 value"):
        with BUGS["gemma4_embed_scale_not_bf16"].patch(model):
            pass
    assert not any("forward" in m.__dict__ for m in model.modules())
