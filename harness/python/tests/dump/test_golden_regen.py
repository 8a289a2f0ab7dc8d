"""Regenerates every golden fixture (golden/fixtures.toml) and compares it with the committed one.

This is how an upgrade of transformers or torch that changes numerics gets caught.
Key sets, soft links (which tensor feeds which module), dtypes, shapes and integer tensors (ids,
top-k indices) must match exactly. Float tensors may move by a relative L2 of at most:

  fp32 runs: 5e-5.  bf16 runs: 0.1.

Evidence (ci/measure_regen_spread, 2026-11-22, this project's x86-64 CI machine kind): regeneration
is bit-exact with the same kernels; forcing torch onto other CPU code paths, as another machine
would, moves tensors by at most
  ATEN_CPU_CAPABILITY=default: fp32 runs 5.7e-6 (gemma4_full layer 5), bf16 runs 0.030
                               (gemma4_full_bf16 layer 4-5: last-bit differences flip bf16
                               roundings that compound over six layers)
  OMP_NUM_THREADS=1:           fp32 runs 1.4e-6, bf16 runs 0
  MKL_ENABLE_INSTRUCTIONS=SSE4_2: 0
and no variant changed a key, link or integer tensor. The limits are about 9x (fp32) and 3x (bf16)
the worst measured spread. A bf16 fixture therefore guards structure and gross changes; the tight
numerics check of the same model and inputs is its fp32 twin.
"""

import h5py
import pytest

from helpers import GOLDEN
from parity.dump.fixture_diff import diff
from parity.dump.golden import load_manifest, make, main

REL_L2_BY_RUN_DTYPE = {"float32": 5e-5, "bfloat16": 0.1}


@pytest.mark.parametrize("entry", load_manifest(GOLDEN / "fixtures.toml"), ids=lambda e: e.file)
def test_golden_fixture_regenerates_within_measured_spread(tmp_path, entry):
    fresh_path = make(entry, tmp_path, GOLDEN)
    with h5py.File(GOLDEN / entry.file) as committed, h5py.File(fresh_path) as fresh:
        versions = {k: (committed["meta"].attrs[k], fresh["meta"].attrs[k]) for k in ("transformers_version", "torch_version")}
        problems = diff(committed, fresh).over(REL_L2_BY_RUN_DTYPE[entry.dtype])
    assert not problems, f"{entry.file} moved (versions committed vs now: {versions}):\n" + "\n".join(problems[:20])


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
