"""The parity Python module (parity._parity): results equal the CLI's, bad arrays are refused,
errors are Python exceptions with the CLI's messages, and the README's RL-step example runs."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest

import parity
from helpers import GOLDEN, REPO, run_parity
from parity.logprobs.numpy_metrics import logprob_metrics as numpy_logprob_metrics
from parity.logprobs.run_file import LogprobRun

RUN = GOLDEN / "logprob_runs" / "olmoe_base_fp32_vs_bf16.h5"


def cli_json(tmp_path: Path, *args) -> dict:
    out = tmp_path / "cli.json"
    result = run_parity(*args, "--json", out)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("fixture", sorted(GOLDEN.glob("*.h5")), ids=lambda p: p.name)
def test_check_equals_the_cli_on_every_golden_fixture(tmp_path, fixture):
    ours = parity.check(str(fixture), ["isolated", "chained"])
    theirs = cli_json(tmp_path, "check", fixture, "--mode", "isolated")
    theirs_chained = cli_json(tmp_path, "check", fixture, "--mode", "chained")
    assert ours["verdict"] == "pass"
    assert ours["hooks"] == theirs["hooks"] + theirs_chained["hooks"]


CASES = sorted((REPO / "cases").rglob("*.toml"))


@pytest.mark.parametrize("case", CASES, ids=lambda p: str(p.relative_to(REPO / "cases")))
def test_check_case_equals_the_cli_on_every_case(tmp_path, case):
    """parity.check_case and `parity check|logprobs --case FILE --json` share one run path: the same
    dict for every shipped case (zoo cases with their [expect], baselines, logprob cases)."""
    verb = "logprobs" if "[logprobs]" in case.read_text() else "check"
    expected = cli_json(tmp_path, verb, "--case", case)
    assert parity.check_case(case) == expected


def test_compare_and_diagnose_equal_the_cli(tmp_path):
    zoo = GOLDEN / "zoo" / "gemma4_layer_scalar_ignored.h5"
    assert parity.diagnose(str(zoo)) == cli_json(tmp_path, "diagnose", zoo)
    base, target = GOLDEN / "zoo" / "gemma4_router_on_normed_input.h5", zoo
    assert parity.compare(str(base), str(target)) == cli_json(tmp_path, "compare", base, target)


def test_logprobs_report_equals_the_cli(tmp_path):
    ours = parity.logprobs_report(str(RUN))
    theirs = cli_json(tmp_path, "logprobs", RUN)
    assert ours["metrics"] == theirs["metrics"] and ours["verdict"] == theirs["verdict"]


def test_logprob_metrics_of_arrays_equal_the_numpy_baseline():
    rng = np.random.default_rng(5)
    train = -rng.exponential(2.0, size=(6, 40)).astype(np.float32)
    rollout = np.minimum(train + rng.normal(0, 0.05, size=train.shape), 0).astype(np.float32)
    rollout[2, 7] -= 3.0  # one catastrophic token
    mask = np.ones_like(train, dtype=np.int64)
    mask[:, 0] = 0
    ours = parity.logprob_metrics(train, rollout, mask)
    packed = LogprobRun(np.zeros(train.size, dtype=np.int64), np.arange(0, train.size + 1, 40),
                        mask.reshape(-1).astype(np.uint8), train.reshape(-1).astype(np.float64),
                        rollout.reshape(-1).astype(np.float64))
    baseline = numpy_logprob_metrics(packed)
    for name, value in baseline.items():
        assert ours["metrics"][name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert ours["catastrophic_count"] == 1
    assert (ours["catastrophic"][0]["sequence"], ours["catastrophic"][0]["position"]) == (2, 7)


def test_packed_tensors_with_seq_lens_give_the_same_metrics():
    rng = np.random.default_rng(6)
    train = -rng.exponential(1.0, size=(3, 10))
    rollout = np.minimum(train + rng.normal(0, 0.01, size=train.shape), 0)
    padded = parity.logprob_metrics(train, rollout)
    packed = parity.logprob_metrics(train.reshape(-1), rollout.reshape(-1), seq_lens=np.array([10, 10, 10]))
    assert padded["metrics"] == packed["metrics"]


def test_compare_tensors_equals_check_on_a_hook():
    fixture = parity.Fixture(str(GOLDEN / "olmoe_base.h5"))
    hook = module = "model.layers.0.self_attn.q_proj"
    out = parity.replay(fixture, module, {f"{module}@in": fixture.read("hooks", f"{module}@in")}, fixture)
    ours = parity.compare_tensors(out[hook], fixture.read("hooks", hook))
    report = parity.check(str(GOLDEN / "olmoe_base.h5"), hooks=hook)
    (theirs,) = [h for h in report["hooks"] if h["hook"] == hook]
    assert ours["rel_l2"] == theirs["rel_l2"] and ours["max_abs"] == theirs["max_abs"]


def test_a_module_input_the_caller_omits_is_named():
    fixture = parity.Fixture(str(GOLDEN / "olmoe_base.h5"))
    router = "model.layers.0.mlp.gate"  # replays HF's routing: needs its top-k index too
    with pytest.raises(parity.InputError, match=re.escape(f'needs integer input "{router}@top_k_index"')):
        parity.replay(fixture, router, {f"{router}@in": fixture.read("hooks", f"{router}@in")}, fixture)


def test_forward_reproduces_the_fixture_logits():
    fixture = parity.Fixture(str(GOLDEN / "olmoe_base.h5"))
    out = parity.forward(fixture, fixture.read("inputs", "input_ids"), fixture)
    assert parity.compare_tensors(out["/outputs/logits"], fixture.read("outputs", "logits"))["rel_l2"] < 1e-5
    assert "model.layers.0.mlp.gate" in parity.modules(fixture)


def test_a_float64_array_is_read_in_place_and_float32_exactly():
    a = np.linspace(-1, 1, 12)
    assert parity.compare_tensors(a, a)["rel_l2"] == 0
    b = a.astype(np.float32)
    assert parity.compare_tensors(b, b.astype(np.float64))["rel_l2"] == 0  # widened exactly
    strided = np.arange(20, dtype=np.float64)[::2]  # non-contiguous: copied to contiguous, not misread
    assert parity.compare_tensors(strided, np.arange(0, 20, 2, dtype=np.float64))["max_abs"] == 0


@pytest.mark.parametrize("bad, message", [
    (np.ones(4, dtype=np.int32), "ref: expected float32 or float64, got int32"),
    (np.ones(4, dtype=np.float16), "ref: expected float32 or float64, got float16"),
    (np.ones(4, dtype=np.complex128), "ref: expected float32 or float64, got complex128"),
    ([1.0, 2.0, 3.0, 4.0], "ref: expected a numpy array or tensor, got <class 'list'>"),
])
def test_bad_arrays_are_refused_naming_the_argument(bad, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        parity.compare_tensors(bad, np.ones(4))


def test_shape_mismatch_and_bad_runs_raise_value_errors():
    with pytest.raises(ValueError, match=re.escape("shape mismatch: ref [4] vs hf [2, 2]")):
        parity.compare_tensors(np.ones(4), np.ones((2, 2)))
    train = -np.ones((2, 5))
    with pytest.raises(parity.InputError, match="first token"):  # the CLI's message: position 0 has no logprob
        parity.logprob_metrics(train, train, np.ones((2, 5), dtype=np.int64))
    with pytest.raises(ValueError, match="packed \\[N\\] tensors need seq_lens"):
        parity.logprob_metrics(train.reshape(-1), train.reshape(-1))
    with pytest.raises(TypeError, match=re.escape('weights["w"]: expected float32')):
        parity.replay({"model_type": "olmoe"}, "x", {}, {"w": np.ones(2)})


def test_input_errors_carry_the_cli_message(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(parity.InputError) as caught:
        parity.Fixture(str(bad))
    cli = run_parity("inspect", bad)
    assert cli.returncode == 2 and str(caught.value) in cli.stderr
    assert issubclass(parity.InputError, ValueError) and issubclass(parity.Error, RuntimeError)


def test_long_computations_release_the_gil():
    """A second Python thread runs while check() computes (it would not, holding the GIL)."""
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.001)

    thread = threading.Thread(target=tick)
    thread.start()
    before = len(ticks)
    parity.check(str(GOLDEN / "gemma4_full.h5"), ["isolated", "chained"])
    during = len(ticks) - before
    stop.set()
    thread.join()
    assert during > 5


def test_html_report_renders_a_result_dict():
    page = parity.html_report(parity.check(str(GOLDEN / "olmoe_base.h5")))
    assert page.startswith("<!DOCTYPE html>") and "parity check" in page


def test_the_readme_example_runs():
    readme = (REPO / "README.md").read_text()
    (example,) = re.findall(r"```python\n(# RL step: .*?)```", readme, re.S)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102 (the documented example)
    assert namespace["logged"] and set(namespace["logged"][0]) >= {"abs_diff_seq_mean", "ess_seq_mean"}


def test_known_bugs_are_the_variants_the_cli_lists():
    listing = run_parity("diagnose", "--list").stdout
    bugs = parity.known_bugs()
    assert bugs and [b["name"] for b in bugs] == re.findall(r"^(\w+) \(\w+\): ", listing, re.M)
    for bug in bugs:
        assert f"{bug['name']} ({bug['family']}): {bug['title']}\n  lives in: {bug['lives_in']}\n  {bug['story']}\n" in listing
