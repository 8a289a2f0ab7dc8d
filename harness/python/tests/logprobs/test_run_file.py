"""parity.logprobs.run_file: the run writer and reader round-trip, and from_sequences checks lengths."""

import h5py
import numpy as np
import pytest

from parity.logprobs import LogprobRun, read_run, write_run


def test_a_run_round_trips_with_top_k_and_a_relative_tokenizer_path(tmp_path):
    run = LogprobRun.from_sequences([[2, 5, 6], [2, 7]], [[0, -1.0, -2.0], [0, -3.0]], [[0, -1.5, -2.0], [0, -3.0]],
                                    [[False, True, True], [False, True]])
    run.train_top_k = (np.array([[1, 2]] * 5), np.full((5, 2), -0.5, dtype=np.float32))
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer.json").write_text("{}")
    (tmp_path / "runs").mkdir()
    path = write_run(tmp_path / "runs" / "r.h5", run, train_source="t", rollout_source="r",
                     tokenizer=tmp_path / "tok" / "tokenizer.json", meta={"step": 3})
    back, meta = read_run(path)
    assert back.seq_offsets.tolist() == [0, 3, 5]
    assert back.loss_mask.tolist() == [False, True, True, False, True]
    assert back.rollout.tolist() == [0, -1.5, -2.0, 0, -3.0]
    assert back.train_top_k[0].shape == (5, 2) and back.rollout_top_k is None
    assert back.sequence_of_token.tolist() == [0, 0, 0, 1, 1]
    assert meta["tokenizer"] == "../tok/tokenizer.json" and meta["step"] == 3 and meta["schema_version"] == 1
    with h5py.File(path) as f:  # every dataset says its dtype, as the C++ reader wants
        assert f["tokens/loss_mask"].attrs["dtype"] == "bool" and f["tokens/loss_mask"].dtype == np.uint8
        assert f["logprobs/train"].attrs["dtype"] == "float64"


def test_from_sequences_wants_one_value_per_token():
    with pytest.raises(ValueError, match="rollout"):
        LogprobRun.from_sequences([[1, 2]], [[0, -1.0]], [[0]], [[False, True]])


def test_a_fixture_is_not_read_as_a_run(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f.create_group("meta").attrs["schema_version"] = 1
    with pytest.raises(ValueError, match="not a logprob run"):
        read_run(path)
