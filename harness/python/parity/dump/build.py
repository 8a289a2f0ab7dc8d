"""Builds the model to dump: a tiny random model from a config file, or a local checkpoint folder.

No network: checkpoints are read with local_files_only, configs are built with AutoConfig.for_model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

from .errors import DumpError
from .randomize import randomize_

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
EAGER = {"attn_implementation": "eager", "experts_implementation": "eager"}
# Written by save_pretrained, or config-level bookkeeping: not model math.
BOOKKEEPING_KEYS = {"transformers_version", "architectures", "dtype", "torch_dtype", "_name_or_path"}
# Accepted by a config class's constructor but absent from its to_dict(): Gemma-4 (>= 5.15) turns
# these into per_layer_config; rope_theta / rope_scaling are folded into rope_parameters.
CONSTRUCTOR_ONLY_KEYS = {"global_head_dim", "num_global_key_value_heads", "rope_theta", "rope_scaling"}


def config_from_file(path: str | Path) -> transformers.PretrainedConfig:
    """An HF config from a JSON file holding `model_type` and HF config keys (a config.json works).

    Keys the config class does not know are refused: transformers would keep a typo such as
    `norm_topk_probs` as an unused attribute and silently build the default model."""
    path = Path(path)
    try:
        fields = json.loads(path.read_text())
    except FileNotFoundError:
        raise DumpError(f"config file {path} does not exist") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DumpError(f"config file {path} is not a readable JSON file: {error}") from None
    if not isinstance(fields, dict) or not isinstance(fields.get("model_type"), str):
        raise DumpError(f"config file {path} is not a JSON object with a string \"model_type\"")
    model_type = fields.pop("model_type")
    for key in BOOKKEEPING_KEYS:
        fields.pop(key, None)
    if model_type not in transformers.CONFIG_MAPPING:
        raise DumpError(f"unknown model_type {model_type!r} in {path} (transformers {transformers.__version__})")
    known = set(transformers.CONFIG_MAPPING[model_type]().to_dict()) | CONSTRUCTOR_ONLY_KEYS
    unknown = sorted(set(fields) - known)
    if unknown:
        raise DumpError(f"config file {path}: keys unknown to {model_type} configs: {', '.join(unknown)}")
    try:
        return AutoConfig.for_model(model_type, **fields)
    except Exception as error:  # TypeError, ValueError, huggingface_hub's strict-dataclass validation
        first_line = (str(error).splitlines() or [""])[0]
        detail = " ".join(str(error).split())[:200]
        raise DumpError(f"config file {path}: {detail or first_line}") from None
        raise DumpError(f"config file {path}: {str(error).splitlines()[0]}") from None


def random_model(config_path: str | Path, seed: int, dtype: str = "float32") -> torch.nn.Module:
    """A causal LM built from a config file with every weight randomised by `seed` (randomize.py).

    Weights are drawn in float32, so fp32 and bf16 fixtures of one seed share them. A bf16 model is
    then built the way from_pretrained(dtype=bf16) builds one, and loaded with that state: a plain
    model.to(bf16) would also round the non-persistent inv_freq buffers that HF keeps in fp32."""
    config = config_from_file(config_path)
    try:
        model = AutoModelForCausalLM.from_config(config, **EAGER)
        randomize_(model, seed)
        if DTYPES[dtype] != torch.float32:
            state = model.state_dict()
            model = AutoModelForCausalLM.from_config(config, dtype=DTYPES[dtype], **EAGER)
            model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as error:
        raise DumpError(f"cannot build a causal LM for model_type {config.model_type!r}: {str(error).splitlines()[0]}") from None
    return model.eval()


def checkpoint_model(directory: str | Path, dtype: str = "float32") -> torch.nn.Module:
    """A causal LM from a local folder written by save_pretrained (config.json + safetensors).

    Fails when a weight the model needs is missing or has the wrong shape (HF would initialise it
    at random and only log a table); unexpected checkpoint keys, which HF drops, are reported."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DumpError(f"checkpoint folder {directory} does not exist")
    if not (directory / "config.json").is_file():
        raise DumpError(f"checkpoint folder {directory} has no config.json")
    if not any(directory.glob("*.safetensors")):
        raise DumpError(f"checkpoint folder {directory} has no *.safetensors weights")
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            directory, local_files_only=True, dtype=DTYPES[dtype], output_loading_info=True, **EAGER
        )
    except Exception as error:  # safetensors, JSON and config errors all mean a bad checkpoint
        if "ignore_mismatched_sizes" in str(error):  # from_pretrained refuses mis-shaped weights
            raise DumpError(f"checkpoint {directory} has weights whose shapes do not match its config.json") from None
        raise DumpError(f"cannot load checkpoint {directory}: {(str(error).splitlines() or [''])[0]}") from None
    missing = sorted(info.get("missing_keys", []))
    if missing:
        raise DumpError(f"checkpoint {directory} lacks {len(missing)} weights the model needs: {', '.join(missing[:5])}")
    unexpected = sorted(info.get("unexpected_keys", []))
    if unexpected:
        print(f"parity-dump: note: {len(unexpected)} checkpoint tensors unused by the model, e.g. {unexpected[0]}",
              file=sys.stderr)
    return model.eval()


def random_input_ids(seed: int, batch: int, seq_len: int, vocab_size: int) -> torch.Tensor:
    """Uniform ids from a generator seeded with seed + 1, so weights and inputs vary independently."""
    if batch < 1 or seq_len < 2:
        raise DumpError("batch must be >= 1 and seq_len >= 2")
    generator = torch.Generator().manual_seed(seed + 1)
    return torch.randint(0, vocab_size, (batch, seq_len), generator=generator)
