"""Tensor-by-tensor comparison of two fixtures of the same model and inputs (h5py, float64 math).

Used by the golden regeneration test and by ci/measure_regen_spread, which measures how far
regeneration moves under other CPU kernels: the evidence for the test's tolerances.

    python -m parity.dump.fixture_diff COMMITTED_DIR FRESH_DIR     # prints the spread per dtype
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

GROUPS = ("inputs", "weights", "hooks", "outputs")
GRAD_GROUPS = ("grads", "grad_hooks", "loss")  # format v2 (golden/README.md "Gradients"), when either file has them
FLOAT_DTYPES = ("float32", "bfloat16", "float16", "float64")


def as_float64(data: h5py.Dataset) -> np.ndarray:
    array = data[()]
    if data.attrs["dtype"] == "bfloat16":
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16).double().numpy()
    return np.asarray(array, dtype=np.float64)


def rel_l2(reference: np.ndarray, value: np.ndarray) -> float:
    """‖value − reference‖₂ / ‖reference‖₂; a zero reference counts any difference as 1; NaN stays NaN."""
    norm = np.linalg.norm(reference)
    if norm == 0:
        return float(np.any(value != reference))
    return float(np.linalg.norm(value - reference) / norm)


def links(group: h5py.Group) -> dict:
    return {k: getattr(group.get(k, getlink=True), "path", None) for k in group}


@dataclass
class FixtureDiff:
    structural: list[str] = field(default_factory=list)  # keys, links, dtypes, shapes, integers
    float_rel_l2: dict[str, float] = field(default_factory=dict)  # "/hooks/x" -> rel_l2, float tensors
    dtypes: dict[str, str] = field(default_factory=dict)  # "/hooks/x" -> dtype name

    def over(self, tolerance: float) -> list[str]:
        """Structural problems, then float tensors whose rel_l2 is above (or NaN against) `tolerance`."""
        moved = [f"{key}: rel_l2 {value:.3g} > {tolerance:.3g}"
                 for key, value in self.float_rel_l2.items() if not value <= tolerance]
        return self.structural + moved

    def spread(self) -> dict[str, float]:
        """The largest rel_l2 per dtype."""
        worst: dict[str, float] = {}
        for key, value in self.float_rel_l2.items():
            worst[self.dtypes[key]] = max(worst.get(self.dtypes[key], 0.0), value)
        return worst


def diff(committed: h5py.File, fresh: h5py.File) -> FixtureDiff:
    result = FixtureDiff()
    for group in GROUPS + tuple(g for g in GRAD_GROUPS if g in committed or g in fresh):
        if group not in committed or group not in fresh:
            result.structural.append(f"/{group}: in one file only (a gradient fixture against a forward one)")
            continue
        # Sets, not order: HF runs Gemma-4's rotary module once per layer type iterating a set,
        # so the order of those two calls follows Python's hash seed.
        if set(committed[group]) != set(fresh[group]):
            added = sorted(set(fresh[group]) - set(committed[group]))[:5]
            gone = sorted(set(committed[group]) - set(fresh[group]))[:5]
            result.structural.append(f"/{group}: keys changed (new {added}, gone {gone})")
            continue
        if links(committed[group]) != links(fresh[group]):
            result.structural.append(f"/{group}: soft links changed (data flow between modules differs)")
        for key in committed[group]:
            _diff_dataset(f"/{group}/{key}", committed[group][key], fresh[group][key], result)
    return result


def _diff_dataset(where: str, a: h5py.Dataset, b: h5py.Dataset, result: FixtureDiff) -> None:
    dtype = a.attrs["dtype"]
    if dtype != b.attrs["dtype"] or a.shape != b.shape:
        result.structural.append(f"{where}: {dtype}{a.shape} became {b.attrs['dtype']}{b.shape}")
    elif dtype in FLOAT_DTYPES:
        result.float_rel_l2[where] = rel_l2(as_float64(a), as_float64(b))
        result.dtypes[where] = dtype
    elif not np.array_equal(a[()], b[()]):
        result.structural.append(f"{where}: integer values differ")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m parity.dump.fixture_diff COMMITTED_DIR FRESH_DIR", file=sys.stderr)
        return 2
    committed_dir, fresh_dir = map(Path, argv)
    for path in sorted(committed_dir.glob("*.h5")):
        with h5py.File(path) as committed, h5py.File(fresh_dir / path.name) as fresh:
            result = diff(committed, fresh)
        spread = ", ".join(f"{d} max rel_l2 {v:.3g}" for d, v in sorted(result.spread().items()))
        print(f"{path.name}: {len(result.structural)} structural differences; {spread}")
        for problem in result.structural[:5]:
            print(f"  {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
