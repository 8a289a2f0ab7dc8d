"""Tensor-by-tensor comparison of two fixtures of the same model and inputs (h5py, float64 math).

Used by the golden regeneration test and by ci/measure_regen_spread, which measures how far
regeneration moves under other CPU kernels: the evidence for the test's tolerances.

A bf16 run's router may break a near-tie the other way on another CPU: its scores are rounded to
bf16 (an ulp of 2^-8 relative) and every layer of the golden models has tokens whose k-th and
(k+1)-th expert lie closer than that (gemma4_embed_scale_not_bf16: down to 4.9e-4 relative at
layer 5; CI's x86-64 machine of 2026-12-03 chose the other expert there, with every tensor before
it within 2e-3). With `near_tie_rel`, such a flip is listed, not failed, and everything the forward
computes after it (and every gradient) is compared for structure only: a token routed to another
expert legitimately moves all that follows, as `parity check`'s chained mode knows.

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
    near_tie_flips: list[str] = field(default_factory=list)  # "/hooks/r@top_k_index token 1: {2, 7} -> {7, 3} ..."
    structure_only: int = 0  # tensors after the first near-tie flip, compared for dtype and shape only

    def over(self, tolerance: float, grad_tolerance: float | None = None) -> list[str]:
        """Structural problems, then float tensors whose rel_l2 is above (or NaN against) `tolerance`
        (a gradient group's, `grad_tolerance` when given: a backward's sums move further)."""
        def limit(key: str) -> float:
            return grad_tolerance if grad_tolerance is not None and key.split("/")[1] in GRAD_GROUPS else tolerance
        moved = [f"{key}: rel_l2 {value:.3g} > {limit(key):.3g}"
                 for key, value in self.float_rel_l2.items() if not value <= limit(key)]
        return self.structural + moved

    def spread(self) -> dict[str, float]:
        """The largest rel_l2 per dtype."""
        worst: dict[str, float] = {}
        for key, value in self.float_rel_l2.items():
            worst[self.dtypes[key]] = max(worst.get(self.dtypes[key], 0.0), value)
        return worst


def near_tie_flip(committed: h5py.File, fresh: h5py.File, key: str, near_tie_rel: float) -> list[str] | None:
    """The tokens whose expert set /hooks/`key` (a router's top-k indices) changed, if every one
    swapped experts whose committed scores (<router>@router_probs) lie within near_tie_rel of each
    other, relative to the larger; None otherwise (or without scores)."""
    scores_key = key[: -len("@top_k_index")] + "@router_probs"
    a, b = committed["hooks"][key][()], fresh["hooks"][key][()]
    if scores_key not in committed["hooks"] or a.ndim != 2 or a.shape != b.shape:
        return None
    scores = as_float64(committed["hooks"][scores_key])
    if scores.shape[0] != a.shape[0]:
        return None
    flips = []
    for token in np.nonzero((np.sort(a, axis=1) != np.sort(b, axis=1)).any(axis=1))[0]:
        was, now = set(a[token].tolist()), set(b[token].tolist())
        swapped = [scores[token, e] for e in was ^ now]
        if max(swapped) - min(swapped) > near_tie_rel * max(swapped):
            return None
        flips.append(f"token {token}: {sorted(was)} -> {sorted(now)} (scores {', '.join(f'{v:.6g}' for v in swapped)})")
    return flips


def first_near_tie_flip(committed: h5py.File, fresh: h5py.File, near_tie_rel: float | None) -> int | None:
    """The forward position (index in the committed /hooks) from which a near-tie flip moves things:
    the first output key of the first router whose choice flipped at near-ties only."""
    if near_tie_rel is None or "hooks" not in committed or "hooks" not in fresh:
        return None
    keys = list(committed["hooks"])
    for key in keys:
        if not key.endswith("@top_k_index") or key not in fresh["hooks"]:
            continue
        if np.array_equal(committed["hooks"][key][()], fresh["hooks"][key][()]):
            continue
        if near_tie_flip(committed, fresh, key, near_tie_rel) is None:
            return None  # a real change: reported as one
        router = key[: -len("@top_k_index")]
        return next(i for i, k in enumerate(keys) if k == router or (k.startswith(router + "@") and "@in" not in k))
    return None


def diff(committed: h5py.File, fresh: h5py.File, near_tie_rel: float | None = None) -> FixtureDiff:
    """Every difference; near_tie_rel: a router flip at near-ties by that relative gap is allowed
    (see the module doc), from there on structure only."""
    result = FixtureDiff()
    cut = first_near_tie_flip(committed, fresh, near_tie_rel)
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
        for position, key in enumerate(committed[group]):
            after = cut is not None and (group not in ("inputs", "weights", "hooks") or position >= cut)
            if after and group == "hooks" and key.endswith("@top_k_index"):
                flips = near_tie_flip(committed, fresh, key, near_tie_rel)
                if flips:
                    result.near_tie_flips.append(f"/hooks/{key} " + "; ".join(flips))
            _diff_dataset(f"/{group}/{key}", committed[group][key], fresh[group][key], result, structure_only=after)
    return result


def _diff_dataset(where: str, a: h5py.Dataset, b: h5py.Dataset, result: FixtureDiff, structure_only=False) -> None:
    dtype = a.attrs["dtype"]
    if dtype != b.attrs["dtype"] or a.shape != b.shape:
        result.structural.append(f"{where}: {dtype}{a.shape} became {b.attrs['dtype']}{b.shape}")
    elif structure_only:
        result.structure_only += 1
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
