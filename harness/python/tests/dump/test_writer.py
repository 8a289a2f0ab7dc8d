"""Tests of parity/dump/writer.py: dtypes, bf16 bits, soft-link dedupe, no partial files."""

import h5py
import numpy as np
import pytest
import torch

from parity.dump.writer import SCHEMA_VERSION, FixtureWriter


def test_bf16_is_stored_as_its_bits_and_round_trips(tmp_path):
    values = torch.tensor([1.0, -3.0, 0.1, 65504.0]).to(torch.bfloat16)
    with FixtureWriter(tmp_path / "f.h5") as writer:
        writer.meta({"model_type": "x"}, "{}")
        writer.tensor("hooks", "t", values)
    with h5py.File(tmp_path / "f.h5") as f:
        data = f["hooks/t"]
        assert data.dtype == np.uint16 and data.attrs["dtype"] == "bfloat16"
        back = torch.from_numpy(data[()].view(np.int16)).view(torch.bfloat16)
        assert torch.equal(back, values)
        assert f["meta"].attrs["schema_version"] == SCHEMA_VERSION


def test_identical_tensors_become_soft_links_and_different_ones_do_not(tmp_path):
    a = torch.arange(6.0).reshape(2, 3)
    with FixtureWriter(tmp_path / "f.h5") as writer:
        writer.tensor("weights", "embed", a)
        writer.tensor("weights", "head", a.clone())       # same values: linked
        writer.tensor("weights", "flat", a.reshape(6))     # same bytes, other shape: stored
        writer.tensor("weights", "half", a.to(torch.float64))  # other dtype: stored
    with h5py.File(tmp_path / "f.h5") as f:
        link = f["weights"].get("head", getlink=True)
        assert isinstance(link, h5py.SoftLink) and link.path == "/weights/embed"
        for name in ("flat", "half"):
            assert isinstance(f["weights"].get(name, getlink=True), h5py.HardLink)


def test_failure_mid_write_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError):
        with FixtureWriter(tmp_path / "f.h5") as writer:
            writer.tensor("hooks", "t", torch.zeros(2))
            raise RuntimeError("dumper crashed")
    assert list(tmp_path.iterdir()) == []


def test_a_key_written_twice_and_a_forged_schema_version_are_refused(tmp_path):
    from parity.dump.errors import DumpError

    with pytest.raises(DumpError, match="two tensors for /hooks/t"):
        with FixtureWriter(tmp_path / "f.h5") as writer:
            writer.tensor("hooks", "t", torch.zeros(2))
            writer.tensor("hooks", "t", torch.ones(2))
    with pytest.raises(DumpError, match="schema_version"):
        with FixtureWriter(tmp_path / "g.h5") as writer:
            writer.meta({"schema_version": 2}, "{}")
    assert list(tmp_path.iterdir()) == []
