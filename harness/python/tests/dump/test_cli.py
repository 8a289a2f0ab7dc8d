"""Tests of parity-dump (parity/dump/cli.py): config and checkpoint sources, and its errors."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import transformers

from helpers import GOLDEN, tiny_config
from parity.dump.build import random_model
from parity.dump.cli import main

# Configs the repo has never seen: other sizes, GQA ratios, expert counts, top-k, rope, windows.
UNSEEN = {
    "olmoe": dict(hidden_size=96, num_attention_heads=6, num_key_value_heads=3, num_hidden_layers=3,
                  intermediate_size=24, num_experts=12, num_experts_per_tok=3, norm_topk_prob=True,
                  clip_qkv=2.0, vocab_size=101),
    "gemma4_full": dict(hidden_size=40, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                        global_head_dim=24, num_global_key_value_heads=1, num_hidden_layers=5,
                        layer_types=["sliding_attention", "full_attention", "sliding_attention",
                                     "sliding_attention", "full_attention"],
                        sliding_window=5, num_experts=6, top_k_experts=3, moe_intermediate_size=20,
                        num_kv_shared_layers=2, hidden_size_per_layer_input=4, vocab_size=97,
                        vocab_size_per_layer_input=97, final_logit_softcapping=3.0,
                        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 500.0},
                                         "full_attention": {"rope_type": "proportional",
                                                            "partial_rotary_factor": 0.5, "rope_theta": 1e5}}),
}


@pytest.mark.parametrize("base, overrides", [("olmoe_base", UNSEEN["olmoe"]), ("gemma4_full", UNSEEN["gemma4_full"])])
def test_checkpoint_folder_of_an_unseen_config_dumps_correctly(tmp_path, base, overrides):
    model = random_model(tiny_config(tmp_path, base, **overrides), seed=11)
    model.save_pretrained(tmp_path / "checkpoint")
    out = tmp_path / "f.h5"
    # The installed console script, as a user runs it.
    script = subprocess.run(
        [sys.executable, "-m", "parity.dump.cli", "--model", str(tmp_path / "checkpoint"), "--out", str(out),
         "--batch", "3", "--seq-len", "11", "--seed", "9", "--quiet"],
        capture_output=True, text=True,
    )
    assert script.returncode == 0, script.stderr
    with h5py.File(out) as f:
        assert f["meta"].attrs["source"] == f"checkpoint:{tmp_path / 'checkpoint'}"
        state = model.state_dict()
        assert sorted(f["weights"]) == sorted(state)
        for name, tensor in state.items():
            assert np.array_equal(f["weights"][name][()], tensor.numpy()), name
        ids = torch.from_numpy(f["inputs/input_ids"][()])
        assert tuple(ids.shape) == (3, 11)
        with torch.no_grad():
            logits = model(ids, use_cache=False).logits
        assert np.array_equal(f["outputs/logits"][()], logits.numpy())
        layers = model.config.num_hidden_layers
        assert f"model.layers.{layers - 1}.self_attn@attn_weights" in f["hooks"]


def test_config_source_with_explicit_ids_and_layers(tmp_path, capsys):
    out = tmp_path / "f.h5"
    code = main(["--config", str(GOLDEN / "configs" / "olmoe_base.json"), "--out", str(out),
                 "--ids", "[[5, 6, 7], [8, 9, 10]]", "--layers", "1", "--quiet"])
    assert code == 0
    assert "layers [1]" in capsys.readouterr().out
    with h5py.File(out) as f:
        assert f["inputs/input_ids"][()].tolist() == [[5, 6, 7], [8, 9, 10]]
        assert "model.layers.0.mlp" not in f["hooks"] and "model.layers.1.mlp" in f["hooks"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "/nonexistent/ckpt"], "checkpoint folder /nonexistent/ckpt does not exist"),
        (["--config", "/nonexistent.json"], "config file /nonexistent.json does not exist"),
        (["--config", "{unknown}"], "unknown model_type 'llama9'"),
        (["--config", "{olmoe}", "--ids", "[[1, 2, 128]]"], "input id 128 at [0, 2] is outside the vocabulary [0, 128)"),
        (["--config", "{olmoe}", "--ids", "[[1, 2], [3]]"], "--ids must be a JSON list of equal-length lists"),
        (["--config", "{olmoe}", "--ids", "[[1.7, 2.2, 3.9]]"], "--ids must be a JSON list of equal-length lists"),
        (["--config", "{olmoe}", "--ids", "[[true, false]]"], "--ids must be a JSON list of equal-length lists"),
        (["--config", "{olmoe}", "--layers", "0,x"], "--layers must be comma-separated integers"),
        (["--config", "{olmoe}", "--layers", "2"], "layers [2] not in the model's 2 decoder layers"),
        (["--config", "{olmoe}", "--seq-len", "1"], "seq_len >= 2"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"model_type": "llama9"}))
    args = [a.format(unknown=unknown, olmoe=GOLDEN / "configs" / "olmoe_base.json") for a in args]
    assert main(args + ["--out", str(tmp_path / "f.h5"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("parity-dump: error: ")
    assert message in err
    assert not (tmp_path / "f.h5").exists()


@pytest.mark.parametrize("args", [["--out", "x.h5"], ["--config", "c.json", "--out", "x.h5", "--seed", "-1"],
                                  ["--config", "c.json", "--out", "x.h5", "--dtype", "fp8"]])
def test_usage_errors_are_one_line_and_exit_2(capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("parity-dump: error: ")


def test_output_path_that_is_a_directory_is_refused_before_the_forward(tmp_path, capsys):
    assert main(["--config", str(GOLDEN / "configs" / "olmoe_base.json"), "--out", str(tmp_path), "--quiet"]) == 2
    assert f"--out {tmp_path} is a directory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_multimodal_gemma4_checkpoint_hooks_only_text_decoder_layers(tmp_path):
    """Released Gemma-4 checkpoints are Gemma4ForConditionalGeneration: text modules live under
    model.language_model., and the vision encoder has `layers` of its own that --layers must not pick."""
    text = json.loads((GOLDEN / "configs" / "gemma4_dense.json").read_text())
    text.pop("model_type")
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=2, head_dim=16, patch_size=4, image_size=16)
    config = transformers.AutoConfig.for_model("gemma4", text_config=text, vision_config=vision, audio_config=None)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(tmp_path / "checkpoint")
    out = tmp_path / "f.h5"
    assert main(["--model", str(tmp_path / "checkpoint"), "--out", str(out), "--layers", "1", "--quiet"]) == 0
    with h5py.File(out) as f:
        assert f["meta"].attrs["model_class"] == "Gemma4ForConditionalGeneration"
        assert f["meta"].attrs["hooked_layers"] == "1" and f["meta"].attrs["weights"] == "hooked"
        assert "model.language_model.layers.1.self_attn@attn_weights" in f["hooks"]
        assert not any("layers.0." in k or "vision" in k for k in list(f["hooks"]) + list(f["weights"]))
        assert "model.language_model.layers.1.layer_scalar" in f["weights"]
        assert f["weights"].get("lm_head.weight", getlink=True).path == "/weights/model.language_model.embed_tokens.weight"
