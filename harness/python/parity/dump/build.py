"""Builds the model to dump: a tiny random model from a config file, or a local checkpoint folder.

No network: checkpoints are read with local_files_only, configs are built with AutoConfig.for_model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

from . import DumpError
from .randomize import randomize_

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
EAGER = {"attn_implementation": "eager", "experts_implementation": "eager"}


def config_from_file(path: str | Path) -> transformers.PretrainedConfig:
    """An HF config from a JSON file holding `model_type` and HF config keys (a config.json works)."""
    path = Path(path)
    try:
        fields = json.loads(path.read_text())
    except FileNotFoundError:
        raise DumpError(f"config file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DumpError(f"config file {path} is not valid JSON: {error}") from None
    if not isinstance(fields, dict) or "model_type" not in fields:
        raise DumpError(f"config file {path} has no \"model_type\" key")
    model_type = fields.pop("model_type")
    for key in ("transformers_version", "architectures", "dtype", "torch_dtype"):
        fields.pop(key, None)  # written by save_pretrained; not model math
    try:
        return AutoConfig.for_model(model_type, **fields)
    except ValueError as error:
        if "Unrecognized model" in str(error):
            raise DumpError(
                f"unknown model_type {model_type!r} in {path} (transformers {transformers.__version__})"
            ) from None
        raise DumpError(f"config file {path}: {error}") from None


def random_model(config_path: str | Path, seed: int, dtype: str = "float32") -> torch.nn.Module:
    """A causal LM built from a config file with every weight randomised by `seed` (randomize.py)."""
    config = config_from_file(config_path)
    try:
        model = AutoModelForCausalLM.from_config(config, **EAGER)
    except ValueError as error:
        raise DumpError(f"cannot build a causal LM for model_type {config.model_type!r}: {error}") from None
    randomize_(model, seed)  # in float32, so fp32 and bf16 fixtures of one seed share their weights
    return model.to(DTYPES[dtype]).eval()


def checkpoint_model(directory: str | Path, dtype: str = "float32") -> torch.nn.Module:
    """A causal LM from a local folder written by save_pretrained (config.json + safetensors)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DumpError(f"checkpoint folder {directory} does not exist")
    if not (directory / "config.json").is_file():
        raise DumpError(f"checkpoint folder {directory} has no config.json")
    if not any(directory.glob("*.safetensors")):
        raise DumpError(f"checkpoint folder {directory} has no *.safetensors weights")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            directory, local_files_only=True, dtype=DTYPES[dtype], **EAGER
        )
    except (OSError, ValueError) as error:
        raise DumpError(f"cannot load checkpoint {directory}: {str(error).splitlines()[0]}") from None
    return model.eval()


def random_input_ids(seed: int, batch: int, seq_len: int, vocab_size: int) -> torch.Tensor:
    """Uniform ids from a generator seeded with seed + 1, so weights and inputs vary independently."""
    if batch < 1 or seq_len < 2:
        raise DumpError("batch must be >= 1 and seq_len >= 2")
    generator = torch.Generator().manual_seed(seed + 1)
    return torch.randint(0, vocab_size, (batch, seq_len), generator=generator)
