"""Fixtures the report tests share: a run of every golden case, and a logprob run whose catastrophic
token's text is markup."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import HOSTILE, REPO
from helpers import run_parity as parity
from parity.logprobs import LogprobRun, write_run


@pytest.fixture(scope="session")
def golden_reports(tmp_path_factory) -> Path:
    """`parity check cases/ --out DIR`: every golden case's reports and the index."""
    out = tmp_path_factory.mktemp("reports")
    result = parity("check", REPO / "cases", "--out", out)
    assert result.returncode == 0, result.stdout[-3000:]
    return out


@pytest.fixture(scope="session")
def hostile_logprobs(tmp_path_factory) -> Path:
    """A logprob run whose one catastrophic token decodes to a <script> element; its JSON and HTML."""
    from tokenizers import Tokenizer, models
    tmp = tmp_path_factory.mktemp("hostile")
    vocab = {"<unk>": 0, HOSTILE: 1, "ok": 2, '" onmouseover="alert(2)': 3}
    Tokenizer(models.WordLevel(vocab, unk_token="<unk>")).save(str(tmp / "tokenizer.json"))
    run = LogprobRun.from_sequences([[2, 3, 1, 2]], [[0, -1.0, -1.0, -1.0]], [[0, -1.0, -5.0, -1.0]],
                                    [[False, True, True, True]])
    path = write_run(tmp / "run.h5", run, train_source="trainer <b>", rollout_source="rollout <i>")
    result = parity("logprobs", path, "--tokenizer", tmp / "tokenizer.json", "--json", tmp / "hostile.json",
                    "--html", tmp / "hostile.html")
    assert result.returncode == 1, result.stdout + result.stderr  # |Δ| = 4 nats fails the default budget
    return tmp
