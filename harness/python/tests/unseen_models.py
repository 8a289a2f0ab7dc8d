"""Models the repo has never seen, for the end-to-end zoo tests (cli_diagnose_test, cli_compare_zoo_test):
an unseen config per family and its HF dump, clean or with a zoo bug planted at dump time."""

from __future__ import annotations

import json
from pathlib import Path

from parity.dump import dump
from parity.dump.build import random_input_ids, random_model
from parity.zoo.patches import BUGS

# Unseen: sizes, head dims, rotary fractions, layer patterns, expert counts and softcap differ from
# every config in golden/configs/.
UNSEEN_GEMMA4 = {
    "model_type": "gemma4_text", "vocab_size": 96, "hidden_size": 24, "intermediate_size": 40,
    "num_hidden_layers": 3, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 12,
    "global_head_dim": 24, "num_global_key_value_heads": 1, "attention_k_eq_v": True,
    "layer_types": ["sliding_attention", "full_attention", "full_attention"], "sliding_window": 3,
    "rope_parameters": {
        "sliding_attention": {"rope_type": "default", "rope_theta": 5000.0},
        "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.5, "rope_theta": 200000.0},
    },
    "enable_moe_block": True, "num_experts": 6, "top_k_experts": 3, "moe_intermediate_size": 12,
    "hidden_size_per_layer_input": 4, "vocab_size_per_layer_input": 96, "num_kv_shared_layers": 0,
    "final_logit_softcapping": 30.0, "rms_norm_eps": 1e-06, "tie_word_embeddings": True,
    "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 1,
}
UNSEEN_OLMOE = {
    "model_type": "olmoe", "vocab_size": 80, "hidden_size": 48, "intermediate_size": 24,
    "num_hidden_layers": 3, "num_attention_heads": 6, "num_key_value_heads": 3, "num_experts": 6,
    "num_experts_per_tok": 3, "rms_norm_eps": 1e-05, "rope_parameters": {"rope_type": "default", "rope_theta": 20000.0},
    "tie_word_embeddings": False, "pad_token_id": 1, "bos_token_id": None, "eos_token_id": 2, "norm_topk_prob": False,
}
CONFIGS = {"gemma4": UNSEEN_GEMMA4, "olmoe": UNSEEN_OLMOE}

def unseen_dump(tmp_path: Path, family: str, bug: str | None, dtype: str | None = None) -> Path:
    """A dump of the unseen model of `family`, with `bug` planted, in `dtype` (default: the run dtype
    of the bug's zoo fixture, so a bf16 cast-point bug is dumped in bf16; float32 when clean)."""
    config = tmp_path / f"unseen_{family}.json"
    config.write_text(json.dumps(CONFIGS[family]))
    dtype = dtype or (BUGS[bug].fixture["dtype"] if bug else "float32")
    model = random_model(config, seed=37, dtype=dtype)
    ids = random_input_ids(38, 2, 9, CONFIGS[family]["vocab_size"])
    out = tmp_path / f"{bug or 'clean'}.h5"
    if bug:
        with BUGS[bug].patch(model):
            dump(model, ids, out, progress=False)
    else:
        dump(model, ids, out, progress=False)
    return out


# Gradient checks (harness/cli/cli_grad_test.py): the unseen models above, and two more the
# backward must meet: OLMoE renormalising its top-k with clip_qkv, and a dense Gemma-4 with
# per-layer inputs whose last two layers read shared K/V.
GRADIENT_CONFIGS = {
    **CONFIGS,
    "olmoe_norm_topk_clip_qkv": {**UNSEEN_OLMOE, "norm_topk_prob": True, "clip_qkv": 0.6, "num_hidden_layers": 2},
    "gemma4_dense_ple_kv_shared": {
        **UNSEEN_GEMMA4, "enable_moe_block": False, "attention_k_eq_v": False, "num_hidden_layers": 4,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
        "num_kv_shared_layers": 2, "final_logit_softcapping": None, "tie_word_embeddings": False,
    },
}


def unseen_gradient_dump(tmp_path: Path, name: str, loss: str, dtype: str = "float32", patch=None) -> Path:
    """A gradient dump (format v2) of GRADIENT_CONFIGS[name] with `loss`; patch(model), when given,
    is a context manager planting a bug in the HF model for the dump."""
    config = tmp_path / f"{name}.json"
    config.write_text(json.dumps(GRADIENT_CONFIGS[name]))
    model = random_model(config, seed=41, dtype=dtype)
    ids = random_input_ids(42, 2, 9, GRADIENT_CONFIGS[name]["vocab_size"])
    out = tmp_path / f"{name}_{dtype}_{loss}.h5"
    if patch:
        with patch(model):
            dump(model, ids, out, grad=loss, progress=False)
    else:
        dump(model, ids, out, grad=loss, progress=False)
    return out
