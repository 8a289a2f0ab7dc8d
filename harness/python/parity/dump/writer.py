"""Writes fixture format v1, or v2 with gradients (golden/README.md), with h5py.

Every dataset carries a `dtype` attribute naming the torch dtype HF produced. bfloat16, which
HDF5 has no type for, is stored losslessly as its uint16 bit pattern; bool as uint8. A tensor
whose bytes, dtype and shape equal one already written becomes an HDF5 soft link to it (tied
weights, the attention mask every layer receives), so the file stores each value once.
The file is written under a temporary name and renamed at the end: a crash never leaves a
truncated fixture under the final name.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h5py
import numpy as np
import torch

from .errors import DumpError

SCHEMA_VERSION = 1  # a forward fixture
GRAD_SCHEMA_VERSION = 2  # v1 plus gradients (golden/README.md "Gradients"); written only when there are some
GROUPS = ("meta", "inputs", "weights", "hooks", "outputs")
# Parameter gradients by HF name; module gradients by hook key; the loss (value, and its weights or labels).
GRAD_GROUPS = ("grads", "grad_hooks", "loss")


def dtype_name(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """The array stored for `tensor`: its own values, bf16 as uint16 bits, bool as uint8."""
    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(np.uint16)
    if tensor.dtype == torch.bool:
        return tensor.numpy().astype(np.uint8)
    return tensor.numpy()


class FixtureWriter:
    """Context manager: `with FixtureWriter(path) as w: w.meta(...); w.tensor("hooks", k, t)`."""

    def __init__(self, path: str | os.PathLike, *, gradients: bool = False):
        self.path = Path(path)
        self.schema_version = GRAD_SCHEMA_VERSION if gradients else SCHEMA_VERSION
        self.groups = GROUPS + (GRAD_GROUPS if gradients else ())
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._seen: dict[tuple, str] = {}

    def __enter__(self) -> "FixtureWriter":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = h5py.File(self._partial, "w", track_order=True)
        except OSError as error:
            raise DumpError(f"cannot write {self.path}: {error}") from None
        for group in self.groups:
            self._file.create_group(group, track_order=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._file.close()
        if exc_type is None:
            os.replace(self._partial, self.path)
        else:
            self._partial.unlink(missing_ok=True)

    def meta(self, attrs: dict, config_json: str) -> None:
        if "schema_version" in attrs:
            raise DumpError("meta may not set schema_version: the writer owns the format version")
        group = self._file["meta"]
        group.attrs["schema_version"] = np.int64(self.schema_version)
        for key, value in attrs.items():
            group.attrs[key] = np.int64(value) if isinstance(value, (bool, int)) else str(value)
        group.create_dataset("config", data=config_json)

    def tensor(self, group: str, key: str, tensor: torch.Tensor, **attrs: str) -> None:
        """Writes /<group>/<key>, or a soft link when an identical tensor was written before."""
        if key in self._file[group]:
            raise DumpError(f"two tensors for /{group}/{key}: the hook-key rules (naming.py) need a case for this module")
        array = to_numpy(tensor)
        identity = (dtype_name(tensor), array.shape, hashlib.blake2b(array.tobytes(), digest_size=16).digest())
        target = self._seen.get(identity)
        if target is not None:
            self._file[group][key] = h5py.SoftLink(target)
            return
        dataset = self._file[group].create_dataset(key, data=array)
        dataset.attrs["dtype"] = dtype_name(tensor)
        for name, value in attrs.items():
            if value:
                dataset.attrs[name] = value
        self._seen[identity] = f"/{group}/{key}"
