"""End-to-end tests of `parity logprobs` (harness/logprobs/*.cpp, harness/cli/cli_logprobs.cpp): every
metric against the plain numpy definitions (parity.logprobs.numpy_metrics) on the golden runs and
on random runs, a planted 10-nat error ranked first with its text and context, fixtures and the
C++ reference as sides, and bad input (exit 2, one line)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import GOLDEN, PARITY, REPO
from parity.logprobs import LogprobRun, read_run, write_run
from parity.logprobs.numpy_metrics import logprob_metrics

TOKENIZER = GOLDEN / "tokenizer" / "tokenizer.json"
GOLDEN_RUNS = sorted((GOLDEN / "logprob_runs").glob("*.h5"))


def parity(*args) -> subprocess.CompletedProcess:
    if not PARITY.exists():
        pytest.fail(f"{PARITY} is missing: run ci/setup first")
    return subprocess.run([str(PARITY), "logprobs", *map(str, args)], capture_output=True, text=True, timeout=300)


def report(tmp_path: Path, *args) -> tuple[int, dict, str]:
    out = tmp_path / "report.json"
    result = parity(*args, "--json", out)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(out.read_text()), result.stdout


def input_error(*args) -> str:
    result = parity(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("parity: error: "), result.stderr
    return result.stderr


def assert_metrics_match_numpy(measured: dict, run: LogprobRun, rel: float = 1e-9, **options) -> None:
    expected = logprob_metrics(run, **options)
    got = {m["name"]: m["value"] for m in measured["metrics"]}
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] is not None, name
        assert math.isclose(got[name], value, rel_tol=rel, abs_tol=0), f"{name}: C++ {got[name]!r}, numpy {value!r}"


# --- the "done when" -------------------------------------------------------------------

@pytest.mark.parametrize("run_file", GOLDEN_RUNS, ids=lambda p: p.stem)
def test_every_metric_of_a_golden_run_matches_numpy_to_1e_9(tmp_path, run_file):
    code, measured, _ = report(tmp_path, run_file)
    run, _ = read_run(run_file)
    assert_metrics_match_numpy(measured, run)
    assert measured["run"]["tokenizer"] is not None  # the run names golden/tokenizer/tokenizer.json


def random_run(seed: int, sequences: int = 60, nonfinite: int = 0) -> LogprobRun:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 90, sequences)
    tokens, train, rollout, masks = [], [], [], []
    for n in lengths:
        tokens.append(rng.integers(0, 128, n))
        lp = -rng.exponential(3.0, n)
        train.append(lp)
        rollout.append(np.minimum(lp + rng.normal(0, 0.05, n) * rng.choice([1, 1, 1, 30], n), 0))  # heavy tails
        prompt = rng.integers(1, n)
        masks.append(np.arange(n) >= prompt)
    masks[3][:] = False  # a sequence with nothing scored
    run = LogprobRun.from_sequences(tokens, train, rollout, masks)
    scored = np.flatnonzero(run.loss_mask)
    run.rollout[rng.choice(scored, nonfinite, replace=False)] = rng.choice([np.nan, np.inf, -np.inf], nonfinite)
    return run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_metric_of_a_random_run_matches_numpy(tmp_path, seed):
    run = random_run(seed)
    path = write_run(tmp_path / "run.h5", run, train_source="random", rollout_source="random + noise")
    _, measured, _ = report(tmp_path, path, "--is-threshold", "1.5", "--veto-threshold", "1e-3",
                            "--catastrophic-threshold", "0.5")
    assert_metrics_match_numpy(measured, run, is_threshold=1.5, veto_threshold=1e-3, catastrophic_threshold=0.5)
    assert measured["run"]["sequences_scored"] == measured["run"]["sequences"] - 1


def test_non_finite_logprobs_are_counted_listed_and_fail_the_gate(tmp_path):
    run = random_run(5, nonfinite=3)
    path = write_run(tmp_path / "run.h5", run, train_source="a", rollout_source="b")
    code, measured, stdout = report(tmp_path, path)
    assert code == 1 and measured["verdict"] == "fail"
    assert measured["nonfinite"]["count"] == 3 and len(measured["nonfinite"]["tokens"]) == 3
    assert_metrics_match_numpy(measured, run)  # the finite tokens' metrics, nonfinite_tokens = 3
    assert "non-finite logprobs: 3" in stdout and "problem: 3 scored token(s)" in stdout


def test_a_planted_10_nat_error_ranks_first_with_its_text_and_context(tmp_path):
    run, meta = read_run(GOLDEN / "logprob_runs" / "olmoe_base_fp32_vs_bf16.h5")
    seq = 7
    begin, end = run.seq_offsets[seq], run.seq_offsets[seq + 1]
    target = begin + int(np.flatnonzero(run.loss_mask[begin:end])[2])
    run.rollout[target] -= 10.0
    planted = write_run(tmp_path / "planted.h5", run, train_source="trainer", rollout_source="rollout with a bug",
                        tokenizer=TOKENIZER)
    budget = tmp_path / "budget.toml"
    budget.write_text("[logprobs]\ncatastrophic_tokens = { max = 0 }\nabs_diff_seq_mean = { max = 0.03 }\n")
    code, measured, stdout = report(tmp_path, planted, "--budget", budget, "--context", "4")
    assert code == 1
    first = measured["catastrophic"]["tokens"][0]
    assert (first["sequence"], first["position"], first["index"]) == (seq, target - begin, target)
    assert first["diff"] == pytest.approx(10.0, abs=0.3)
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    assert first["text"] == tokenizer.decode([int(run.input_ids[target])])
    assert [t["id"] for t in first["context_before"]] == run.input_ids[target - 4:target].tolist()
    assert [t["text"] for t in first["context_after"]] == [tokenizer.decode([int(i)])
                                                          for i in run.input_ids[target + 1:min(end, target + 5)]]
    assert len(first["train_top_k"]) == 5 and first["train_top_k"][0]["text"] is not None
    assert f"[[{json.dumps(first['text'])}]]" in stdout
    assert "catastrophic_tokens" in measured["failed_metrics"]


# --- sides: fixtures and the reference ----------------------------------------------------------

def test_two_fixtures_of_the_same_inputs_make_a_run_with_top_k_from_their_logits(tmp_path):
    code, measured, _ = report(tmp_path, "--train", GOLDEN / "olmoe_base.h5", "--rollout", GOLDEN / "olmoe_base_bf16.h5",
                               "--catastrophic-threshold", "0.05", "--top-k", "3")
    assert code == 0
    with h5py.File(GOLDEN / "olmoe_base.h5") as f:
        batch, seq = f["inputs/input_ids"].shape
        train = f["outputs/logprobs"][()]
    with h5py.File(GOLDEN / "olmoe_base_bf16.h5") as f:
        rollout = f["outputs/logprobs"][()]
    assert measured["run"]["scored_tokens"] == batch * (seq - 1)
    d = np.abs(train.astype(np.float64) - rollout.astype(np.float64))
    got = {m["name"]: m["value"] for m in measured["metrics"]}
    assert got["abs_diff_token_mean"] == pytest.approx(d.mean(), rel=1e-12)
    assert got["abs_diff_max"] == pytest.approx(d.max(), rel=1e-12)
    token = measured["catastrophic"]["tokens"][0]
    assert len(token["train_top_k"]) == 3 and len(token["rollout_top_k"]) == 3


def test_the_reference_as_rollout_engine_matches_hf_fp32_to_a_few_ulps(tmp_path):
    code, measured, _ = report(tmp_path, "--train", GOLDEN / "gemma4_full.h5", "--rollout", "reference")
    got = {m["name"]: m["value"] for m in measured["metrics"]}
    assert code == 0 and got["abs_diff_max"] < 1e-5
    assert "C++ reference" in measured["run"]["rollout"]


def test_fixtures_of_different_inputs_are_refused(tmp_path):
    other = tmp_path / "other.h5"
    shutil.copy(GOLDEN / "olmoe_base_bf16.h5", other)
    with h5py.File(other, "r+") as f:
        f["inputs/input_ids"][0, 3] = (f["inputs/input_ids"][0, 3] + 1) % 128
    assert "score different tokens: /inputs/input_ids differ at flat index 3" in input_error(
        "--train", GOLDEN / "olmoe_base.h5", "--rollout", other)


# --- bad input and bad use ---------------------------------------------------------------------

def damaged_run(tmp_path: Path, edit) -> Path:
    path = tmp_path / "damaged.h5"
    shutil.copy(GOLDEN_RUNS[0], path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


def resize(f: h5py.File, name: str, values, attrs: bool = True) -> None:
    """Replaces dataset `name` by `values`, keeping its attributes (its dtype) unless told not to."""
    kept = dict(f[name].attrs) if attrs else {}
    del f[name]
    f[name] = values
    f[name].attrs.update(kept)


@pytest.mark.parametrize("edit, expected", [
    (lambda f: resize(f, "logprobs/rollout", f["logprobs/rollout"][:-1]), "rollout logprobs has"),
    (lambda f: resize(f, "tokens/loss_mask", np.zeros_like(f["tokens/loss_mask"][()])), "selects no token"),
    (lambda f: f["tokens/loss_mask"].__setitem__(0, 1), "first token of sequence 0"),
    (lambda f: f["meta"].attrs.__setitem__("schema", "other"), "not a logprob run"),
    (lambda f: f["meta"].attrs.__setitem__("schema_version", 7), "schema_version 7"),
    (lambda f: resize(f, "tokens/seq_offsets", np.flip(f["tokens/seq_offsets"][()])), "seq_offsets"),
    (lambda f: f["tokens"].__delitem__("input_ids"), "/tokens/input_ids: missing dataset"),
    (lambda f: resize(f, "logprobs/train", f["logprobs/train"][()].astype(np.int64), attrs=False),
     "want float values"),
    (lambda f: resize(f, "logprobs/train", f["logprobs/train"][()].astype(np.int64)), "dtype attribute says float32"),
    (lambda f: resize(f, "top_k/train/logprobs", f["top_k/train/logprobs"][()].T.copy()), "differs from /top_k/train/ids"),
    (lambda f: resize(f, "top_k/rollout/ids", np.zeros((f["tokens/input_ids"].shape[0], 2000), np.int64)),
     "1 <= K <= 1024"),
    (lambda f: f["logprobs/train"].__setitem__(int(np.flatnonzero(f["tokens/loss_mask"][()])[0]), 0.5),
     "is positive: a logprob is <= 0"),
    (lambda f: resize(f, "tokens/loss_mask", np.where(f["tokens/loss_mask"][()] == 1, -1, 0).astype(np.int64),
                      attrs=False), "holds -1 at token"),
])
def test_a_malformed_run_is_an_input_error_naming_the_problem(tmp_path, edit, expected):
    assert expected in input_error(damaged_run(tmp_path, edit))


def test_a_truncated_or_foreign_file_is_an_input_error(tmp_path):
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(GOLDEN_RUNS[0].read_bytes()[:5000])
    assert "truncated.h5" in input_error(truncated)
    assert "not a logprob run" in input_error(GOLDEN / "olmoe_base.h5")  # a model fixture is not a run


def test_token_ids_outside_the_tokenizer_are_an_input_error(tmp_path):
    run, _ = read_run(GOLDEN_RUNS[0])
    run.input_ids[5] = 4000
    path = write_run(tmp_path / "run.h5", run, train_source="a", rollout_source="b")
    assert "token id 4000 is outside its vocabulary of 128" in input_error(path, "--tokenizer", TOKENIZER)
    run, _ = read_run(GOLDEN_RUNS[0])
    scored = int(np.flatnonzero(run.loss_mask)[3])
    run.rollout_top_k[0][scored, 4] = 5000  # an alternative no report lists: still another vocabulary
    path = write_run(tmp_path / "top_k.h5", run, train_source="a", rollout_source="b")
    assert "token id 5000 is outside its vocabulary of 128" in input_error(path, "--tokenizer", TOKENIZER)
    moved = tmp_path / "moved.h5"
    shutil.copy(GOLDEN_RUNS[0], moved)  # its tokenizer path is relative to golden/logprob_runs
    assert "which is not a file; pass --tokenizer" in input_error(moved)


@pytest.mark.parametrize("args, expected", [
    ((), "exactly one"),
    (("--train", "a.h5"), "train and rollout come together"),
    (("--train", "reference", "--rollout", "reference"), "at most one side"),
    (("x.h5", "--train", "a.h5", "--rollout", "b.h5"), "not both"),
    (("--case", "c.toml", "--train", "a.h5"), "exactly one"),
    (("x.h5", "--weights", "ckpt"), "apply to a reference side"),
    (("x.h5", "--budget", REPO / "cases" / "logprobs" / "olmoe_base_vs_reference.toml"), "is a case file"),
])
def test_bad_cli_use_is_exit_2(tmp_path, args, expected):
    if args and args[0] == "x.h5":
        args = (GOLDEN_RUNS[0], *args[1:])
    assert expected in input_error(*args)


# --- reports -----------------------------------------------------------------------------------

def test_junit_has_a_testcase_per_gated_metric_and_one_for_finite_logprobs(tmp_path):
    junit = tmp_path / "r.xml"
    result = parity("--case", REPO / "cases" / "logprobs" / "olmoe_base_fp32_vs_bf16.toml", "--junit", junit)
    assert result.returncode == 0, result.stderr
    import xml.etree.ElementTree as ET
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert [s.get("name").split()[0] for s in suites] == ["logprobs", "baseline"]  # the case names its baseline
    cases = suites[0].findall("testcase")
    assert len(suites[1].findall("testcase")) == 30  # every metric
    assert [c.get("name") for c in cases] == ["abs_diff_seq_mean", "abs_diff_max", "ess_seq_mean", "ess_batch",
                                              "kl_k3", "catastrophic_tokens", "nonfinite_tokens", "finite logprobs"]
    assert not ET.parse(junit).getroot().findall(".//failure")


def test_hostile_token_texts_are_escaped_in_the_terminal(tmp_path):
    from tokenizers import Tokenizer, models
    vocab = {"<unk>": 0, "\x1b[2J<script>alert(1)</script>": 1, "ok": 2}
    Tokenizer(models.WordLevel(vocab, unk_token="<unk>")).save(str(tmp_path / "tokenizer.json"))
    run = LogprobRun.from_sequences([[2, 1, 2]], [[0, -1.0, -1.0]], [[0, -5.0, -1.0]], [[False, True, True]])
    path = write_run(tmp_path / "run.h5", run, train_source="a", rollout_source="b")
    code, measured, stdout = report(tmp_path, path, "--tokenizer", tmp_path / "tokenizer.json")
    assert measured["catastrophic"]["tokens"][0]["text"] == "\x1b[2J<script>alert(1)</script>"
    assert "\x1b[2J" not in stdout and "\\u001b[2J<script>" in stdout
