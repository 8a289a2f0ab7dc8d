"""Regenerates every golden fixture (golden/fixtures.toml) and compares it with the committed one.

This is how an upgrade of transformers or torch that changes numerics gets caught.
Tolerance (per tensor, relative L2 against the committed tensor):
  float32 tensors:  1e-6. Regeneration is bit-exact on the machine that made the fixtures; the
                    margin (~16 x fp32 unit round-off 6e-8) admits other CPUs' matmul kernels,
                    which sum in another order.
  bfloat16 tensors: 2^-8, one bf16 ulp: a last-bit fp32 difference can flip a bf16 rounding.
  integer tensors (ids, top-k indices): exact.
Key sets, dtypes, shapes and soft links (which tensor feeds which module) must match exactly.
"""

import h5py
import numpy as np
import pytest
import torch

from parity.dump.golden import GOLDEN_DIR, load_manifest, make

REL_L2 = {"float32": 1e-6, "bfloat16": 2.0**-8, "float64": 1e-12, "float16": 2.0**-11}


def as_float64(data: h5py.Dataset) -> np.ndarray:
    array = data[()]
    if data.attrs["dtype"] == "bfloat16":
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16).double().numpy()
    return np.asarray(array, dtype=np.float64)


def links(group: h5py.Group) -> dict:
    return {k: getattr(group.get(k, getlink=True), "path", None) for k in group}


def differences(committed: h5py.File, fresh: h5py.File) -> list[str]:
    problems = []
    for group in ("inputs", "weights", "hooks", "outputs"):
        # Sets, not order: HF runs Gemma-4's rotary module once per layer type iterating a set,
        # so the order of those two calls follows Python's hash seed.
        if set(committed[group]) != set(fresh[group]):
            added = sorted(set(fresh[group]) - set(committed[group]))[:5]
            gone = sorted(set(committed[group]) - set(fresh[group]))[:5]
            problems.append(f"/{group}: keys changed (new {added}, gone {gone})")
            continue
        if links(committed[group]) != links(fresh[group]):
            problems.append(f"/{group}: soft links changed (data flow between modules differs)")
        for key in committed[group]:
            a, b = committed[group][key], fresh[group][key]
            where = f"/{group}/{key}"
            if a.attrs["dtype"] != b.attrs["dtype"] or a.shape != b.shape:
                problems.append(f"{where}: {a.attrs['dtype']}{a.shape} became {b.attrs['dtype']}{b.shape}")
            elif a.attrs["dtype"] in REL_L2:
                ref, new = as_float64(a), as_float64(b)
                norm = np.linalg.norm(ref)
                rel = np.linalg.norm(new - ref) / norm if norm > 0 else float(np.any(new != ref))
                if not rel <= REL_L2[a.attrs["dtype"]]:  # also catches NaN
                    problems.append(f"{where}: rel_l2 {rel:.3g} > {REL_L2[a.attrs['dtype']]:.3g}")
            elif not np.array_equal(a[()], b[()]):
                problems.append(f"{where}: integer values differ")
    return problems


@pytest.mark.parametrize("entry", load_manifest(), ids=lambda e: e.file)
def test_golden_fixture_regenerates_within_round_off(tmp_path, entry):
    fresh_path = make(entry, tmp_path)
    with h5py.File(GOLDEN_DIR / entry.file) as committed, h5py.File(fresh_path) as fresh:
        versions = {k: (committed["meta"].attrs[k], fresh["meta"].attrs[k]) for k in ("transformers_version", "torch_version")}
        problems = differences(committed, fresh)
        assert not problems, f"{entry.file} moved (versions committed vs now: {versions}):\n" + "\n".join(problems[:20])


def test_comparison_detects_a_moved_tensor(tmp_path):
    entry = load_manifest()[0]
    fresh_path = make(entry, tmp_path)
    target = "/hooks/model.layers.0.mlp.down_proj"
    with h5py.File(fresh_path, "r+") as fresh:
        fresh[target][0, 0, 0] += 1e-3
        # Every soft link to the tensor reads the moved value too, and must be reported with it.
        aliases = {f"/hooks/{k}" for k, path in links(fresh["hooks"]).items() if path == target}
        with h5py.File(GOLDEN_DIR / entry.file) as committed:
            problems = differences(committed, fresh)
    assert aliases  # model.layers.0.mlp returns down_proj's output
    assert {p.split(": rel_l2")[0] for p in problems} == {target} | aliases
