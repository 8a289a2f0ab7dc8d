"""Regenerates every golden fixture (golden/fixtures.toml) and compares it with the committed one.

This is how an upgrade of transformers or torch that changes numerics gets caught.
Key sets, soft links (which tensor feeds which module), dtypes, shapes and integer tensors (ids,
top-k indices) must match exactly. Float tensors may move by a relative L2 of at most:

  fp32 runs: 5e-5, their gradients 5e-4.  bf16 runs: 0.1 (helpers.REGEN_*_BY_RUN_DTYPE).

A bf16 run may also break a router near-tie the other way (bf16 router scores lie within an ulp
of each other in every layer of these models): such a flip is listed, and what follows it is
compared for structure only (parity/dump/fixture_diff.py, tested below). Seen on CI's x86-64
machine on 2026-12-03 for golden/zoo/gemma4_embed_scale_not_bf16.h5 at layer 5, whose committed
scores there differ by 4.9e-4 relative.

Evidence (ci/measure_regen_spread, 2026-11-22, this project's x86-64 CI machine kind): regeneration
is bit-exact with the same kernels; forcing torch onto other CPU code paths, as another machine
would, moves tensors by at most
  ATEN_CPU_CAPABILITY=default: fp32 runs 5.7e-6 (gemma4_full layer 5), bf16 runs 0.030
                               (gemma4_full_bf16 layer 4-5: last-bit differences flip bf16
                               roundings that compound over six layers)
  OMP_NUM_THREADS=1:           fp32 runs 1.4e-6, bf16 runs 0
  MKL_ENABLE_INSTRUCTIONS=SSE4_2: 0
and no variant changed a key, link or integer tensor. The limits are about 9x (fp32) and 3x (bf16)
the worst measured spread. Gradients (measured the same way on 2026-12-04, AMD EPYC): a backward
sums over every token, so its fp32 gradients move further: up to 5.6e-5 (gemma4_full_grad's
layer-4 router.per_expert_scale under ATEN_CPU_CAPABILITY=default; olmoe_base_grad 1.5e-6), bf16
ones up to 8.0e-3 (olmoe_base_bf16_grad); 5e-4 is again 9x the fp32 spread. A bf16 fixture therefore guards structure and gross changes; the tight
numerics check of the same model and inputs is its fp32 twin.
"""

import shutil

import h5py
import numpy as np
import pytest

from helpers import (GOLDEN, REGEN_GRAD_REL_L2_BY_RUN_DTYPE, REGEN_NEAR_TIE_REL_BY_RUN_DTYPE,
                     REGEN_REL_L2_BY_RUN_DTYPE as REL_L2_BY_RUN_DTYPE)
from parity.dump.fixture_diff import as_float64, diff
from parity.dump.golden import load_manifest, make, main


@pytest.mark.parametrize("entry", load_manifest(GOLDEN / "fixtures.toml"), ids=lambda e: e.file)
def test_golden_fixture_regenerates_within_measured_spread(tmp_path, entry):
    fresh_path = make(entry, tmp_path, GOLDEN)
    with h5py.File(GOLDEN / entry.file) as committed, h5py.File(fresh_path) as fresh:
        versions = {k: (committed["meta"].attrs[k], fresh["meta"].attrs[k]) for k in ("transformers_version", "torch_version")}
        found = diff(committed, fresh, REGEN_NEAR_TIE_REL_BY_RUN_DTYPE[entry.dtype])
        problems = found.over(REL_L2_BY_RUN_DTYPE[entry.dtype], REGEN_GRAD_REL_L2_BY_RUN_DTYPE[entry.dtype])
    assert not problems, f"{entry.file} moved (versions committed vs now: {versions}):\n" + "\n".join(problems[:20])
    if found.near_tie_flips:
        print(f"{entry.file}: near-tie flips {found.near_tie_flips}; {found.structure_only} tensors after them "
              "compared for structure only")


def test_comparison_flags_a_moved_tensor_and_every_alias(tmp_path):
    entry = load_manifest(GOLDEN / "fixtures.toml")[0]
    fresh_path = make(entry, tmp_path, GOLDEN)
    target = "/hooks/model.layers.0.mlp.down_proj"
    with h5py.File(fresh_path, "r+") as fresh:
        fresh[target][0, 0, 0] += 1e-2
        # Every soft link to the tensor reads the moved value too, and must be reported with it.
        aliases = {path for path, link in ((f"/hooks/{k}", fresh["hooks"].get(k, getlink=True)) for k in fresh["hooks"])
                   if getattr(link, "path", None) == target}
        with h5py.File(GOLDEN / entry.file) as committed:
            problems = diff(committed, fresh).over(REL_L2_BY_RUN_DTYPE["float32"])
    assert aliases  # model.layers.0.mlp returns down_proj's output
    assert {p.split(": rel_l2")[0] for p in problems} == {target} | aliases


def test_comparison_flags_changed_integers_and_links(tmp_path):
    entry = load_manifest(GOLDEN / "fixtures.toml")[0]
    fresh_path = make(entry, tmp_path, GOLDEN)
    with h5py.File(fresh_path, "r+") as fresh:
        fresh["hooks/model.layers.0.router@top_k_index"][0, 0] += 1
        del fresh["hooks/model.layers.0.experts@in"]  # a soft link to pre_feedforward_layernorm_2
        fresh["hooks/model.layers.0.experts@in"] = h5py.SoftLink("/hooks/model.layers.0.router@in")
        with h5py.File(GOLDEN / entry.file) as committed:
            problems = diff(committed, fresh).over(1.0)
    assert "/hooks: soft links changed (data flow between modules differs)" in problems
    assert "/hooks/model.layers.0.router@top_k_index: integer values differ" in problems


def test_the_golden_folder_is_an_argument_not_guessed(tmp_path):
    """python -m parity.dump.golden reads the manifest and configs of the --golden it is given, and
    writes there; without --golden it refuses (an installed package cannot know the checkout)."""
    entry = load_manifest(GOLDEN / "fixtures.toml")[0]
    with pytest.raises(SystemExit) as refused:
        main(["--only", entry.file])
    assert refused.value.code == 2
    elsewhere = tmp_path / "golden"
    (elsewhere / entry.config).parent.mkdir(parents=True)
    (elsewhere / entry.config).write_bytes((GOLDEN / entry.config).read_bytes())
    (elsewhere / "fixtures.toml").write_text(
        f'[[fixture]]\nfile = "{entry.file}"\nconfig = "{entry.config}"\nseed = {entry.seed}\n'
        f'batch = {entry.batch}\nseq_len = {entry.seq_len}\ndtype = "{entry.dtype}"\n')
    assert main(["--golden", str(elsewhere)]) == 0
    assert [p.name for p in elsewhere.glob("*.h5")] == [entry.file]
    assert main(["--golden", str(elsewhere), "--only", "no_such.h5"]) == 2


NEAR_TIE_FIXTURE = GOLDEN / "zoo" / "gemma4_embed_scale_not_bf16.h5"  # bf16; layer 5 has a near-tie


def flip_expert(path, layer: int, smallest_gap: bool) -> int:
    """Swaps, at the token of `layer` whose k-th and (k+1)-th expert lie closest (or farthest), the
    k-th expert for the (k+1)-th in the router's top-k indices; returns the token."""
    with h5py.File(path, "r+") as f:
        scores = as_float64(f[f"hooks/model.layers.{layer}.router@router_probs"])
        index = f[f"hooks/model.layers.{layer}.router@top_k_index"]
        k = index.shape[1]
        order = np.argsort(-scores, axis=1)
        ranked = np.take_along_axis(scores, order, axis=1)
        gap = (ranked[:, k - 1] - ranked[:, k]) / ranked[:, k - 1]
        token = int(np.argmin(gap) if smallest_gap else np.argmax(gap))
        row = index[token]
        row[row == order[token, k - 1]] = order[token, k]
        index[token] = row
        return token


def test_a_bf16_router_near_tie_flip_is_listed_and_what_follows_compared_for_structure(tmp_path):
    fresh = tmp_path / "fresh.h5"
    shutil.copy(NEAR_TIE_FIXTURE, fresh)
    token = flip_expert(fresh, 5, smallest_gap=True)
    with h5py.File(fresh, "r+") as f:
        f["outputs/logits"][...] = f["outputs/logits"][()] ^ 0x0100  # a flipped token moves all that follows
    with h5py.File(NEAR_TIE_FIXTURE) as committed, h5py.File(fresh) as regenerated:
        allowed = diff(committed, regenerated, REGEN_NEAR_TIE_REL_BY_RUN_DTYPE["bfloat16"])
        strict = diff(committed, regenerated)
    assert allowed.over(REL_L2_BY_RUN_DTYPE["bfloat16"]) == []
    assert len(allowed.near_tie_flips) == 1 and f"layers.5.router@top_k_index token {token}:" in allowed.near_tie_flips[0]
    assert allowed.structure_only > 0
    assert "/hooks/model.layers.5.router@top_k_index: integer values differ" in strict.over(0.1)
    assert any(p.startswith("/outputs/logits: rel_l2") for p in strict.over(0.1))


def test_a_flip_that_is_no_near_tie_or_a_move_before_the_flip_still_fails(tmp_path):
    fresh = tmp_path / "fresh.h5"
    shutil.copy(NEAR_TIE_FIXTURE, fresh)
    flip_expert(fresh, 5, smallest_gap=False)
    with h5py.File(NEAR_TIE_FIXTURE) as committed, h5py.File(fresh) as regenerated:
        problems = diff(committed, regenerated, REGEN_NEAR_TIE_REL_BY_RUN_DTYPE["bfloat16"]).over(0.1)
    assert "/hooks/model.layers.5.router@top_k_index: integer values differ" in problems
    shutil.copy(NEAR_TIE_FIXTURE, fresh)
    flip_expert(fresh, 5, smallest_gap=True)
    with h5py.File(fresh, "r+") as f:  # before the flip in the forward: still compared
        f["hooks/model.layers.4.mlp.down_proj"][...] = f["hooks/model.layers.4.mlp.down_proj"][()] ^ 0x0400
    with h5py.File(NEAR_TIE_FIXTURE) as committed, h5py.File(fresh) as regenerated:
        problems = diff(committed, regenerated, REGEN_NEAR_TIE_REL_BY_RUN_DTYPE["bfloat16"]).over(0.1)
    assert any(p.startswith("/hooks/model.layers.4.mlp.down_proj: rel_l2") for p in problems)


def test_gradient_groups_have_their_own_limit():
    from parity.dump.fixture_diff import FixtureDiff
    moved = FixtureDiff(float_rel_l2={"/grads/w": 1e-4, "/grad_hooks/m": 6e-4, "/hooks/m": 1e-4, "/loss/value": 1e-4})
    assert moved.over(5e-5, 5e-4) == ["/grad_hooks/m: rel_l2 0.0006 > 0.0005", "/hooks/m: rel_l2 0.0001 > 5e-05"]
    assert len(moved.over(5e-5)) == 4
