"""The logprob-run HDF5 file (golden/README.md "Logprob run format"): writer and reader.

Tokens are packed: sequence i is tokens[seq_offsets[i]:seq_offsets[i + 1]]. logprob t is
log p(token t | the tokens before it in its sequence), so the first token of a sequence has none
and must not be scored (loss_mask 0). Top-k tables, when present, hold each side's K most likely
tokens at every position (the distribution token t was drawn from), descending.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

SCHEMA = "parity.logprob_run"
SCHEMA_VERSION = 1
PRODUCER = "parity.logprobs 1"


@dataclass
class LogprobRun:
    input_ids: np.ndarray    # [N] int64
    seq_offsets: np.ndarray  # [B + 1] int64: 0, ..., N
    loss_mask: np.ndarray    # [N] bool
    train: np.ndarray        # [N] float: the training engine's logprob of each token
    rollout: np.ndarray      # [N] float: the rollout engine's
    train_top_k: tuple[np.ndarray, np.ndarray] | None = None    # ids [N, K] int64, logprobs [N, K]
    rollout_top_k: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_sequences(cls, token_ids: Sequence[Sequence[int]], train: Sequence[Sequence[float]],
                       rollout: Sequence[Sequence[float]], loss_masks: Sequence[Sequence[bool]]) -> "LogprobRun":
        """One entry per sequence, each a per-token list (entry 0 of a sequence is never scored)."""
        lengths = [len(t) for t in token_ids]
        for name, rows in (("train", train), ("rollout", rollout), ("loss_masks", loss_masks)):
            if [len(r) for r in rows] != lengths:
                raise ValueError(f"{name} must have one value per token of every sequence")
        return cls(input_ids=np.concatenate([np.asarray(t, dtype=np.int64) for t in token_ids]),
                   seq_offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   loss_mask=np.concatenate([np.asarray(m, dtype=bool) for m in loss_masks]),
                   train=np.concatenate([np.asarray(x, dtype=np.float64) for x in train]),
                   rollout=np.concatenate([np.asarray(x, dtype=np.float64) for x in rollout]))

    @property
    def sequence_of_token(self) -> np.ndarray:
        """[N]: the sequence each token belongs to."""
        return np.repeat(np.arange(len(self.seq_offsets) - 1), np.diff(self.seq_offsets))


def _dataset(group: h5py.Group, name: str, array: np.ndarray) -> None:
    if array.dtype == np.bool_:
        dataset = group.create_dataset(name, data=array.astype(np.uint8))
        dataset.attrs["dtype"] = "bool"
        return
    dataset = group.create_dataset(name, data=array)
    dataset.attrs["dtype"] = str(array.dtype)  # float32, float64, int64


def write_run(path: str | os.PathLike, run: LogprobRun, *, train_source: str, rollout_source: str,
              tokenizer: str | os.PathLike | None = None, meta: dict | None = None) -> Path:
    """Writes `run`; `tokenizer`, if given, is stored relative to the run file's folder."""
    path = Path(path)
    with h5py.File(path, "w") as f:
        g = f.create_group("meta")
        g.attrs.update({"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "producer": PRODUCER,
                        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                        "train_source": train_source, "rollout_source": rollout_source})
        if tokenizer is not None:
            g.attrs["tokenizer"] = os.path.relpath(Path(tokenizer).resolve(), path.resolve().parent)
        for key, value in (meta or {}).items():
            g.attrs[key] = value
        tokens = f.create_group("tokens")
        _dataset(tokens, "input_ids", np.asarray(run.input_ids, dtype=np.int64))
        _dataset(tokens, "seq_offsets", np.asarray(run.seq_offsets, dtype=np.int64))
        _dataset(tokens, "loss_mask", np.asarray(run.loss_mask, dtype=bool))
        logprobs = f.create_group("logprobs")
        _dataset(logprobs, "train", np.asarray(run.train))
        _dataset(logprobs, "rollout", np.asarray(run.rollout))
        for side, table in (("train", run.train_top_k), ("rollout", run.rollout_top_k)):
            if table is not None:
                group = f.create_group(f"top_k/{side}")
                _dataset(group, "ids", np.asarray(table[0], dtype=np.int64))
                _dataset(group, "logprobs", np.asarray(table[1]))
    return path


def read_run(path: str | os.PathLike) -> tuple[LogprobRun, dict]:
    """The run and its /meta attributes (values as h5py returns them)."""
    with h5py.File(path, "r") as f:
        meta = dict(f["meta"].attrs)
        if meta.get("schema") != SCHEMA:
            raise ValueError(f"{path}: not a logprob run (schema {meta.get('schema')!r})")
        top_k = {side: (f[f"top_k/{side}/ids"][()], f[f"top_k/{side}/logprobs"][()])
                 for side in ("train", "rollout") if f"top_k/{side}" in f}
        run = LogprobRun(input_ids=f["tokens/input_ids"][()], seq_offsets=f["tokens/seq_offsets"][()],
                         loss_mask=f["tokens/loss_mask"][()].astype(bool), train=f["logprobs/train"][()],
                         rollout=f["logprobs/rollout"][()], train_top_k=top_k.get("train"),
                         rollout_top_k=top_k.get("rollout"))
    return run, meta
