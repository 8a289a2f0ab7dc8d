"""The parity module fails closed on hostile input: every mistake of the caller raises TypeError or
parity.InputError (a ValueError) whose message names the argument, nothing crashes the interpreter
and nothing passes silently; parity.Error is left for failures that are not the caller's.

Calls that crashed the interpreter (a segfault, an out-of-memory kill) before the bindings checked
their arguments run in a fresh interpreter (`outcome`), so a regression fails its own test instead
of taking the whole session down."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import parity
from helpers import GOLDEN, REPO

OLMOE = GOLDEN / "olmoe_base.h5"
GEMMA = GOLDEN / "gemma4_full.h5"
RUN = GOLDEN / "logprob_runs" / "olmoe_base_fp32_vs_bf16.h5"
Q_PROJ = "model.layers.0.self_attn.q_proj"
ROUTER = "model.layers.0.mlp.gate"


@pytest.fixture(scope="module")
def fx():
    return parity.Fixture(str(OLMOE))


def name_of(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def outcome(code: str, memory_limit: int | None = None) -> tuple[str, str]:
    """Runs `code` in a fresh interpreter: ("returned", repr(result)) or (exception type, message).
    `fx` is the OLMoE golden fixture; `memory_limit` (bytes) caps the address space."""
    script = textwrap.dedent(f"""
        import json, resource, sys
        if {memory_limit!r}:
            resource.setrlimit(resource.RLIMIT_AS, ({memory_limit!r}, {memory_limit!r}))
        import numpy as np
        import parity
        fx = parity.Fixture({str(OLMOE)!r})
        scope = dict(np=np, parity=parity, fx=fx, result=None, __name__="__main__")
        try:
            exec({code!r}, scope)
        except Exception as e:
            print(json.dumps([type(e).__module__ + "." + type(e).__qualname__, str(e)]))
        else:
            print(json.dumps(["returned", repr(scope["result"])]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, f"the interpreter died (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return tuple(json.loads(proc.stdout.strip().splitlines()[-1]))


def raises_in_subprocess(code: str, cls: type, message: str, memory_limit: int | None = None) -> None:
    kind, text = outcome(code, memory_limit)
    assert kind == name_of(cls), (kind, text)
    assert re.search(message, text), (message, text)


# --- 1. replay / forward with a dict config (converted to JSON without the GIL: a segfault) ---------


def test_forward_with_a_dict_config_equals_forward_with_the_fixture():
    kind, text = outcome(
        "ids = fx.read('inputs', 'input_ids')\n"
        "ours = parity.forward(dict(fx.config), ids, fx)['/outputs/logits']\n"
        "result = bool(np.array_equal(ours, parity.forward(fx, ids, fx)['/outputs/logits']))")
    assert (kind, text) == ("returned", "True")


def test_replay_with_a_dict_config_equals_replay_with_the_fixture():
    kind, text = outcome(
        f"m = {Q_PROJ!r}\n"
        "inputs = {m + '@in': fx.read('hooks', m + '@in')}\n"
        "ours = parity.replay(dict(fx.config), m, inputs, fx)[m]\n"
        "result = bool(np.array_equal(ours, parity.replay(fx, m, inputs, fx)[m]))")
    assert (kind, text) == ("returned", "True")


def test_forward_still_releases_the_gil():
    """With a 100 s switch interval the main thread never hands the GIL over on its own: a second
    thread ticks only while forward() computes without it."""
    fixture = parity.Fixture(str(GEMMA))
    ids = fixture.read("inputs", "input_ids")
    ticks = []
    stop = threading.Event()

    def tick():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.0005)

    interval = sys.getswitchinterval()
    thread = threading.Thread(target=tick)
    thread.start()
    try:
        sys.setswitchinterval(100)
        before = len(ticks)
        for _ in range(3):
            parity.forward(fixture, ids, fixture)
        during = len(ticks) - before
    finally:
        sys.setswitchinterval(interval)
        stop.set()
        thread.join()
    assert during > 5


# --- 2. array-likes numpy cannot read (a null array dereferenced: a segfault) -----------------------

TORCH_CASES = {
    "compare_ref_bf16": ("import torch\nparity.compare_tensors(torch.zeros(3, dtype=torch.bfloat16), np.zeros(3))",
                         "ref: cannot read a torch.bfloat16 tensor as an array: convert it with .float() first"),
    "compare_hf_bf16": ("import torch\nparity.compare_tensors(np.zeros(3), torch.zeros(3, dtype=torch.bfloat16))",
                        "hf: cannot read a torch.bfloat16 tensor as an array: convert it with .float() first"),
    "compare_requires_grad": ("import torch\nparity.compare_tensors(torch.zeros(3, requires_grad=True), np.zeros(3))",
                              "ref: cannot read a torch.float32 tensor that requires grad as an array: "
                              "convert it with .detach() first"),
    "compare_meta_device": ("import torch\nparity.compare_tensors(torch.zeros(3, device='meta'), np.zeros(3))",
                            "ref: cannot read a torch.float32 tensor on meta as an array: convert it with .cpu() first"),
    "logprobs_train_bf16": ("import torch\nt = torch.zeros(2, 3, dtype=torch.bfloat16)\nparity.logprob_metrics(t, t)",
                            "train: cannot read a torch.bfloat16 tensor as an array: convert it with .float() first"),
    "logprobs_mask_bf16": ("import torch\nt = -np.ones((2, 3))\n"
                           "parity.logprob_metrics(t, t, torch.ones(2, 3, dtype=torch.bfloat16))",
                           "loss_mask: cannot read a torch.bfloat16 tensor as an array: convert it with .float() first"),
    "replay_input_bf16": ("import torch\nm = 'model.norm'\n"
                          "parity.replay(fx, m, {m + '@in': torch.zeros(1, 2, 64, dtype=torch.bfloat16)}, fx)",
                          'inputs["model.norm@in"]: cannot read a torch.bfloat16 tensor as an array: '
                          "convert it with .float() first"),
    "forward_ids_on_meta": ("import torch\nparity.forward(fx, torch.zeros(1, 3, dtype=torch.int64, device='meta'), fx)",
                            "input_ids: cannot read a torch.int64 tensor on meta as an array: convert it with .cpu() first"),
}


@pytest.mark.parametrize("case", TORCH_CASES, ids=str)
def test_a_tensor_numpy_cannot_read_is_a_type_error_with_the_fix(case):
    code, message = TORCH_CASES[case]
    raises_in_subprocess(code, TypeError, "^" + re.escape(message) + "$")


def test_a_failing_array_protocol_is_a_type_error_naming_the_argument():
    raises_in_subprocess(
        "class Broken:\n    def __array__(self, *args, **kwargs):\n        raise ValueError('no array here')\n"
        "parity.compare_tensors(np.zeros(3), Broken())",
        TypeError, re.escape("hf: cannot read a __main__.Broken as an array: no array here"))


@pytest.mark.parametrize("bad, message", [
    (np.array([1.0, None], dtype=object), "ref: expected float32 or float64, got object"),
    (["a", "b"], "ref: expected a numpy array or tensor, got <class 'list'>"),
    (np.array(["a", "b"]), "ref: expected float32 or float64, got <U1"),
    (None, "ref: expected a numpy array or tensor, got <class 'NoneType'>"),
], ids=["object_array", "list_of_str", "str_array", "none"])
def test_other_unreadable_arrays_are_type_errors_naming_the_argument(bad, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        parity.compare_tensors(bad, np.zeros(2))


def test_a_masked_array_with_masked_elements_is_refused():
    """Its masked elements hold whatever was there: comparing them would report a difference (or a
    pass) that is not in the data."""
    masked = np.ma.array([1.0, 2.0], mask=[False, True])
    with pytest.raises(TypeError, match=re.escape("ref: a masked array with 1 masked element(s)")):
        parity.compare_tensors(masked, np.array([1.0, 5.0]))
    assert parity.compare_tensors(np.ma.array([1.0, 2.0]), np.array([1.0, 2.0]))["max_abs"] == 0  # nothing masked


def test_a_uint64_value_beyond_int64_is_an_input_error_naming_it():
    raises_in_subprocess(
        "ids = fx.read('inputs', 'input_ids').astype(np.uint64)\nids[0, 1] = 2**64 - 1\nparity.forward(fx, ids, fx)",
        parity.InputError, "^" + re.escape("input_ids: 18446744073709551615 at [0, 1] does not fit int64") + "$")
    raises_in_subprocess(
        "t = -np.ones((2, 4))\nparity.logprob_metrics(t, t, token_ids=np.full((2, 4), 2**64 - 1, np.uint64))",
        parity.InputError, re.escape("token_ids: 18446744073709551615 at [0, 0] does not fit int64"))


# --- 3. the caller's mistakes are parity.InputError, not parity.Error -----------------------------


@pytest.mark.parametrize("config, message", [
    ({}, 'config: [config] required field "model_type" is missing'),
    ({"model_type": "llama"}, 'config: [config] model_type "llama" has no reference'),
    ("olmoe", "config: expected a dict (an HF config) or a parity.Fixture, got str"),
    (None, "config: expected a dict (an HF config) or a parity.Fixture, got NoneType"),
    ({"model_type": object()}, "config: not JSON (TypeError: Object of type object is not JSON serializable)"),
], ids=["empty", "unknown_model_type", "str", "none", "not_json"])
def test_a_bad_config_is_an_input_error_naming_config(config, message):
    with pytest.raises(parity.InputError, match="^" + re.escape(message)):
        parity.modules(config)


def test_a_nan_in_a_config_is_an_input_error(fx):
    config = dict(fx.config, rms_norm_eps=float("nan"))
    with pytest.raises(parity.InputError, match=re.escape("config: not JSON (ValueError: Out of range float")):
        parity.modules(config)


def test_a_config_error_of_forward_is_an_input_error():
    raises_in_subprocess(
        "config = dict(fx.config, num_experts_per_tok=99)\nparity.forward(config, fx.read('inputs', 'input_ids'), fx)",
        parity.InputError, "^config: .*num_experts_per_tok")


@pytest.mark.parametrize("token, at", [(128, "[0, 3]"), (-1, "[0, 3]"), (10**6, "[0, 3]")])
def test_a_token_id_outside_the_vocabulary_is_an_input_error_naming_input_ids(fx, token, at):
    ids = fx.read("inputs", "input_ids").copy()
    ids[0, 3] = token
    with pytest.raises(parity.InputError,
                       match="^" + re.escape(f"input_ids: token id {token} at {at} is outside the vocabulary 0..127")):
        parity.forward(fx, ids, fx)


def test_a_missing_weight_is_an_input_error_naming_it(fx):
    with pytest.raises(parity.InputError, match=re.escape('weights: no weight "model.embed_tokens.weight" was given')):
        parity.forward(fx, fx.read("inputs", "input_ids"), {})
    inputs = {f"{Q_PROJ}@in": fx.read("hooks", f"{Q_PROJ}@in")}
    with pytest.raises(parity.InputError, match=re.escape(f'weights: no weight "{Q_PROJ}.weight" was given')):
        parity.replay(fx, Q_PROJ, inputs, {})


def test_a_fixture_without_the_weight_is_an_input_error_naming_it(tmp_path, fx):
    import h5py

    stripped = tmp_path / "no_weights.h5"
    stripped.write_bytes(OLMOE.read_bytes())
    with h5py.File(stripped, "a") as f:
        del f[f"weights/{Q_PROJ}.weight"]
    fixture = parity.Fixture(str(stripped))
    inputs = {f"{Q_PROJ}@in": fx.read("hooks", f"{Q_PROJ}@in")}
    with pytest.raises(parity.InputError, match=re.escape(f'weights: the fixture {stripped} has no weight "{Q_PROJ}.weight"')):
        parity.replay(fixture, Q_PROJ, inputs, fixture)


def test_a_mis_shaped_weight_is_an_input_error_naming_it(fx):
    weights = {name: fx.read("weights", name) for name in fx.names("weights")}
    weights["model.norm.weight"] = np.ones(3, dtype=np.float32)
    with pytest.raises(parity.InputError, match=re.escape("forward: [weights] model.norm.weight has shape [3], "
                                                          "the config implies [64]")):
        parity.forward(fx, fx.read("inputs", "input_ids"), weights)


def test_an_unknown_module_is_an_input_error_naming_module(fx):
    with pytest.raises(parity.InputError, match=re.escape('module: "model.layers.99.mlp" is not a module of this '
                                                          "olmoe config (parity.modules(config) lists them)")):
        parity.replay(fx, "model.layers.99.mlp", {}, fx)


def test_bad_inputs_are_input_errors_naming_the_input(fx):
    router_in = fx.read("hooks", f"{ROUTER}@in")
    top_k = fx.read("hooks", f"{ROUTER}@top_k_index")
    with pytest.raises(parity.InputError, match=re.escape(f'inputs: {ROUTER} needs integer input "{ROUTER}@top_k_index"')):
        parity.replay(fx, ROUTER, {f"{ROUTER}@in": router_in}, fx)
    with pytest.raises(parity.InputError, match=re.escape(f'inputs["{ROUTER}@top_k_index"]: a float array, but '
                                                          f"{ROUTER} reads it as integer input")):
        parity.replay(fx, ROUTER, {f"{ROUTER}@in": router_in, f"{ROUTER}@top_k_index": top_k.astype(np.float64)}, fx)
    with pytest.raises(parity.InputError, match=re.escape(f"replay {ROUTER}: [router] expert index 999 at token 0")):
        parity.replay(fx, ROUTER, {f"{ROUTER}@in": router_in, f"{ROUTER}@top_k_index": np.full_like(top_k, 999)}, fx)
    with pytest.raises(parity.InputError, match=re.escape(f"replay {Q_PROJ}: [{Q_PROJ}] input [1, 2, 3] does not end")):
        parity.replay(fx, Q_PROJ, {f"{Q_PROJ}@in": np.zeros((1, 2, 3))}, fx)


@pytest.mark.parametrize("call, message", [
    (lambda fx: parity.replay(fx, "model.norm", {}, fx, "f16"), 'precision: expected "f64", "f32" or "bf16", got "f16"'),
    (lambda fx: parity.check(str(OLMOE), precision="fp32"), 'precision: expected "f64", "f32" or "bf16", got "fp32"'),
    (lambda fx: parity.check(str(OLMOE), ["nope"]), 'modes: expected "isolated", "chained", "grad.isolated" or "grad.chained", got "nope"'),
    (lambda fx: parity.check(str(OLMOE), []), 'modes is empty: name "isolated", "chained", "grad.isolated" or "grad.chained"'),
    (lambda fx: parity.check(str(OLMOE), ["isolated", "isolated"]), 'modes: "isolated" is listed twice'),
    (lambda fx: parity.Budget.builtin("float32").limit_for("nope", "x"), 'mode: expected "isolated", "chained", "compare", '
                                                                          '"grad.isolated", "grad.chained" or "grad.compare", '
                                                                          'got "nope"'),
], ids=["replay_precision", "check_precision", "check_mode", "check_no_modes", "check_mode_twice", "limit_for_mode"])
def test_bad_names_are_input_errors_naming_the_argument(fx, call, message):
    with pytest.raises(parity.InputError, match="^" + re.escape(message)):
        call(fx)


# --- 4. compare_tensors: nothing compared is not a pass; NaN/Inf are counted ----------------------


@pytest.mark.parametrize("shape", [(0,), (3, 0)], ids=str)
def test_an_empty_comparison_is_an_input_error(shape):
    with pytest.raises(parity.InputError, match=re.escape("empty comparison: ref and hf have no elements")):
        parity.compare_tensors(np.zeros(shape), np.zeros(shape))


def test_a_shape_mismatch_is_an_input_error_naming_both_shapes():
    with pytest.raises(parity.InputError, match=re.escape("shape mismatch: ref [3] vs hf [4]")):
        parity.compare_tensors(np.zeros(3), np.zeros(4))
    with pytest.raises(parity.InputError, match=re.escape("shape mismatch: ref [2, 3] vs hf [3, 2]")):
        parity.compare_tensors(np.zeros((2, 3)), np.zeros((3, 2)))


def test_nan_and_inf_are_counted_and_never_pass():
    result = parity.compare_tensors(np.array([np.nan, 1.0, np.inf, 2.0]), np.array([1.0, -np.inf, 1.0, np.nan]))
    assert result["nonfinite"] == {"ref_nan": 1, "ref_inf": 1, "hf_nan": 1, "hf_inf": 1}
    assert np.isnan(result["rel_l2"])
    assert not parity.Budget.builtin("float32").limit_for("isolated", "x").allows(result["rel_l2"])


def test_odd_layouts_are_read_by_value():
    """Non-contiguous, 0-d, unaligned and big-endian arrays are converted, never misread."""
    a = np.arange(12.0).reshape(3, 4)
    assert parity.compare_tensors(a.T, np.ascontiguousarray(a.T))["max_abs"] == 0
    assert parity.compare_tensors(np.float64(2.0), np.array(2.0))["count"] == 1
    raw = np.arange(9, dtype=np.float64).tobytes()
    unaligned = np.frombuffer(b"\0" + raw[8:] , dtype=np.float64, offset=1, count=8)
    assert not unaligned.flags.aligned
    assert parity.compare_tensors(unaligned, np.arange(1.0, 9.0))["max_abs"] == 0
    assert parity.compare_tensors(np.arange(4.0).astype(">f8"), np.arange(4.0))["max_abs"] == 0


# --- 5. logprob_metrics: masks of 0/1, consistent shapes and seq_lens -----------------------------


def mask_of(shape=(2, 4)):
    mask = np.ones(shape, dtype=np.int64)
    mask[:, 0] = 0
    return mask


@pytest.mark.parametrize("value", [2, -1])
def test_a_mask_value_other_than_0_or_1_is_named_with_its_position(value):
    lp = -np.ones((2, 4))
    mask = mask_of()
    mask[1, 2] = value
    message = f"loss_mask: {value} at [1, 2]; a mask holds only 0 and 1 (or bools)"
    with pytest.raises(parity.InputError, match="^" + re.escape(message) + "$"):
        parity.logprob_metrics(lp, lp, mask)
    with pytest.raises(parity.InputError, match="^" + re.escape(message) + "$"):
        parity.gate_logprobs(lp, lp, mask)


def test_a_bool_mask_is_read_as_0_and_1():
    lp = -np.ones((2, 4))
    assert parity.logprob_metrics(lp, lp, mask_of().astype(bool))["scored_tokens"] == 6


def test_mismatched_shapes_are_input_errors_naming_both():
    lp = -np.ones((2, 4))
    with pytest.raises(parity.InputError, match=re.escape("train [2, 4] and rollout [4, 2] differ in shape")):
        parity.logprob_metrics(lp, -np.ones((4, 2)))
    with pytest.raises(parity.InputError, match=re.escape("loss_mask [4, 2] differs from train [2, 4]")):
        parity.logprob_metrics(lp, lp, np.ones((4, 2), dtype=np.int64))
    with pytest.raises(parity.InputError, match=re.escape("token_ids [3] differs from train [2, 4]")):
        parity.logprob_metrics(lp, lp, token_ids=np.zeros(3, dtype=np.int64))
    with pytest.raises(parity.InputError, match=re.escape("train and rollout must be [B, S] or packed [N], got []")):
        parity.logprob_metrics(np.float64(-1.0), np.float64(-1.0))


@pytest.mark.parametrize("seq_lens, message", [
    (np.array([3.0, np.nan]), "seq_lens: nan at [1]: a length must be a finite integer"),
    (np.array([3.0, np.inf]), "seq_lens: inf at [1]: a length must be a finite integer"),
    (np.array([3, -3, 6]), "seq_lens: -3 at [1]: every sequence holds at least one token"),
    (np.array([3, 0, 3]), "seq_lens: 0 at [1]: every sequence holds at least one token"),
    (np.array([3, 4]), "seq_lens: 4 at [1] brings the total past the 6 packed tokens of train"),
    (np.array([2, 2]), "seq_lens: the lengths add up to 4, train and rollout hold 6 tokens"),
    (np.array([[3], [3]]), "seq_lens: expected a 1-D array [B], got shape [2, 1]"),
    (np.array([3.0, 3.0]), None),  # finite floats: a TypeError (below)
], ids=["nan", "inf", "negative", "zero", "past_the_end", "short", "2d", "float"])
def test_bad_seq_lens_are_input_errors_naming_the_length(seq_lens, message):
    lp = -np.ones(6)
    if message is None:
        with pytest.raises(TypeError, match=re.escape("seq_lens: expected an integer array, got float64")):
            parity.logprob_metrics(lp, lp, seq_lens=seq_lens)
        return
    with pytest.raises(parity.InputError, match="^" + re.escape(message) + "$"):
        parity.logprob_metrics(lp, lp, seq_lens=seq_lens)


def test_seq_lens_whose_sum_overflows_are_refused():
    """The lengths used to be summed unchecked: 2**62 * 4 wraps to 0 and the default mask was then
    written far outside the run (a segfault)."""
    raises_in_subprocess(
        "lp = -np.ones(6)\nparity.logprob_metrics(lp, lp, seq_lens=np.array([2**62, 2**62, 2**62, 2**62, 6]))",
        parity.InputError, re.escape("seq_lens: 4611686018427387904 at [0] brings the total past the 6 packed tokens"))
    raises_in_subprocess(
        "lp = -np.ones(6)\nparity.logprob_metrics(lp, lp, seq_lens=np.array([2**64 - 1, 7], np.uint64))",
        parity.InputError, re.escape("seq_lens: 18446744073709551615 at [0] does not fit int64"))


# --- the rest of the API under hostile input ------------------------------------------------------


@pytest.mark.parametrize("call, message", [
    (lambda: parity.Fixture(None), "path: expected a path (str or os.PathLike), got NoneType"),
    (lambda: parity.check(None), "fixture: expected a path (str or os.PathLike), got NoneType"),
    (lambda: parity.check(str(OLMOE), "isolated"), "modes: expected a list of str, got str"),
    (lambda: parity.check(str(OLMOE), [None]), "modes[0]: expected a str, got NoneType"),
    (lambda: parity.check(str(OLMOE), hooks=None), "hooks: expected a str, got NoneType"),
    (lambda: parity.compare(str(OLMOE), 3), "target: expected a path (str or os.PathLike), got int"),
    (lambda: parity.diagnose(1.5), "target: expected a path (str or os.PathLike), got float"),
    (lambda: parity.Budget.builtin(None), "run_dtype: expected a str, got NoneType"),
    (lambda: parity.Budget.parse(None), "toml_text: expected a str, got NoneType"),
    (lambda: parity.Budget.builtin("float32").limit_for("isolated", None), "hook: expected a str, got NoneType"),
    (lambda: parity.Fixture(str(OLMOE)).read(None, "x"), "group: expected a str, got NoneType"),
    (lambda: parity.Fixture(str(OLMOE)).has("hooks", 7), "name: expected a str, got int"),
    (lambda: parity.replay(parity.Fixture(str(OLMOE)), None, {}, {}), "module: expected a str, got NoneType"),
    (lambda: parity.replay(parity.Fixture(str(OLMOE)), "model.norm", None, {}),
     "inputs: expected a dict {hook key: array}, got NoneType"),
    (lambda: parity.replay(parity.Fixture(str(OLMOE)), "model.norm", {1: np.zeros(3)}, {}),
     "inputs: keys are hook keys (str), got int"),
    (lambda: parity.replay(parity.Fixture(str(OLMOE)), "model.norm", {}, [1, 2]),
     "weights: expected a dict {HF name: float32 array} or a parity.Fixture, got list"),
    (lambda: parity.replay(parity.Fixture(str(OLMOE)), "model.norm", {}, {"model.norm.weight": np.ones(64)}),
     'weights["model.norm.weight"]: expected float32 (widen bfloat16 with .float()), got float64'),
    (lambda: parity.forward(parity.Fixture(str(OLMOE)), np.ones((1, 3), dtype=bool), {}),
     "input_ids: expected an integer array, got bool"),
    (lambda: parity.logprob_metrics(None, None), "train: expected a numpy array or tensor, got <class 'NoneType'>"),
], ids=["fixture_none", "check_none", "modes_str", "mode_none", "hooks_none", "compare_int", "diagnose_float",
        "builtin_none", "parse_none", "limit_for_none", "read_none", "has_int", "module_none", "inputs_none",
        "inputs_int_key", "weights_list", "weights_float64", "input_ids_bool", "train_none"])
def test_wrong_python_types_are_type_errors_naming_the_argument(call, message):
    with pytest.raises(TypeError, match="^" + re.escape(message)):
        call()


@pytest.mark.parametrize("call, message", [
    (lambda d: parity.Fixture(str(d)), "path: {d} is a directory, not a file"),
    (lambda d: parity.check(str(d)), "fixture: {d} is a directory, not a file"),
    (lambda d: parity.check(str(OLMOE), budget=str(d)), "budget: {d} is a directory, not a file"),
    (lambda d: parity.check(str(OLMOE), baseline=str(d)), "baseline: {d} is a directory, not a file"),
    (lambda d: parity.Budget.load(str(d)), "path: {d} is a directory, not a file"),
    (lambda d: parity.check_case(str(d)), "case: {d} is a directory, not a file"),
    (lambda d: parity.compare(str(OLMOE), str(d)), "target: {d} is a directory, not a file"),
    (lambda d: parity.diagnose(str(d)), "target: {d} is a directory, not a file"),
    (lambda d: parity.logprobs_report(str(d)), "run: {d} is a directory, not a file"),
    (lambda d: parity.gate_logprobs(-np.ones((2, 4)), -np.ones((2, 4)), budget=str(d)),
     "budget: {d} is a directory, not a file"),
], ids=["fixture", "check", "check_budget", "check_baseline", "budget_load", "check_case", "compare", "diagnose",
        "logprobs_report", "gate_logprobs_budget"])
def test_a_directory_given_as_a_file_is_an_input_error_naming_the_argument(tmp_path, call, message):
    """A directory used to read as an empty budget: check(budget=DIR) ran on the built-in budget."""
    with pytest.raises(parity.InputError, match="^" + re.escape(message.format(d=tmp_path)) + "$"):
        call(tmp_path)


@pytest.mark.parametrize("call, message", [
    (lambda: parity.Fixture("/nonexistent/x.h5"), "fixture /nonexistent/x.h5: no such file"),
    (lambda: parity.check("/nonexistent/x.h5"), "fixture /nonexistent/x.h5: no such file"),
    (lambda: parity.check(str(OLMOE), budget="/nonexistent/b.toml"), "[budget /nonexistent/b.toml] cannot open"),
    (lambda: parity.check(str(OLMOE), weights="/nonexistent/ckpt"), "checkpoint /nonexistent/ckpt: no such folder"),
    (lambda: parity.logprobs_report("/nonexistent/r.h5"), "logprob run /nonexistent/r.h5: no such file"),
    (lambda: parity.Fixture(""), "path: the path is empty"),
    (lambda: parity.check(str(OLMOE) + "\0.bak"), f'fixture: "{OLMOE}\\0..." holds a NUL character'),
    (lambda: parity.Fixture(str(OLMOE)).has("hooks", "model.norm@in\0x"), 'name: "model.norm@in\\0..." holds a NUL'),
], ids=["fixture", "check", "budget", "weights", "logprob_run", "empty", "nul_in_path", "nul_in_name"])
def test_paths_and_names_that_name_nothing_are_input_errors(call, message):
    """A NUL used to cut the name short: has("hooks", "model.norm@in\\0x") answered for another key."""
    with pytest.raises(parity.InputError, match="^" + re.escape(message)):
        call()


def test_forward_refuses_an_empty_batch_and_bad_masks_and_positions(fx):
    ids = fx.read("inputs", "input_ids")
    for shape in [(0, 3), (1, 1), (1, 0)]:
        with pytest.raises(parity.InputError, match=re.escape(f"input_ids {list(shape)}: the forward needs a batch")):
            parity.forward(fx, np.zeros(shape, dtype=np.int64), fx)
    with pytest.raises(parity.InputError, match=re.escape("input_ids must be [B, S], got [3]")):
        parity.forward(fx, np.zeros(3, dtype=np.int64), fx)
    with pytest.raises(parity.InputError, match=re.escape("attention_mask: 2 at [0, 0]; a mask holds only 0 and 1")):
        parity.forward(fx, ids, fx, attention_mask=np.full(ids.shape, 2))
    with pytest.raises(parity.InputError, match=re.escape("attention_mask [1, 1] must be shaped like input_ids [2, 12]")):
        parity.forward(fx, ids, fx, attention_mask=np.ones((1, 1), dtype=np.int64))
    with pytest.raises(parity.InputError, match=re.escape("position_ids: -1 at [0, 0]; positions are >= 0")):
        parity.forward(fx, ids, fx, position_ids=-np.ones(ids.shape, dtype=np.int64))
    bools = parity.forward(fx, ids, fx, attention_mask=np.ones(ids.shape, dtype=bool))["/outputs/logits"]
    assert np.array_equal(bools, parity.forward(fx, ids, fx)["/outputs/logits"])


@pytest.mark.parametrize("field, value", [("hidden_size", -64), ("vocab_size", -1), ("intermediate_size", 0)])
def test_sizes_the_reference_took_on_trust_are_refused(field, value):
    """OlmoeConfig checked head counts but not these: forward() with them used to segfault. (The
    bindings refuse them, and the reference's config reader may too: either message names the field.)"""
    code = f"config = dict(fx.config, {field}={value}, head_dim=None)\nparity.forward(config, fx.read('inputs', 'input_ids'), fx)"
    raises_in_subprocess(code, parity.InputError, f'^config: .*"{field}"[^0-9-]*{value}\\b')


def test_a_layer_count_no_model_has_is_refused_before_it_exhausts_memory():
    """modules() lists every module of every layer: 10^7 layers used to be an out-of-memory kill."""
    raises_in_subprocess(
        "config = dict(fx.config, num_hidden_layers=10**7)\nresult = len(parity.modules(config))",
        parity.InputError, '^config: .*"num_hidden_layers"[^0-9]*10000000\\b', memory_limit=3 << 30)


def test_html_report_refuses_what_is_not_a_result_dict():
    with pytest.raises(parity.InputError, match=re.escape("result: expected a dict, got NoneType")):
        parity.html_report(None)
    with pytest.raises(parity.InputError, match=re.escape("result: not JSON (ValueError: Out of range float values")):
        parity.html_report({"schema": "parity-check/1", "x": float("nan")})
    with pytest.raises(parity.InputError, match=re.escape("result: not JSON (TypeError: Object of type object")):
        parity.html_report({"schema": "parity-check/1", "x": object()})


def test_input_errors_are_not_parity_errors():
    """`except parity.Error` catches failures that are not the caller's, never a bad argument."""
    assert issubclass(parity.InputError, ValueError) and not issubclass(parity.InputError, parity.Error)
    with pytest.raises(parity.InputError) as caught:
        parity.modules({"model_type": "llama"})
    assert not isinstance(caught.value, parity.Error)


def test_a_run_dtype_that_is_no_float_dtype_is_an_input_error():
    # "f32" is a precision name, not a run dtype: laid over nothing it would silently drop the built-in limits.
    with pytest.raises(parity.InputError, match='run dtype "f32"'):
        parity.Budget.parse("", run_dtype="f32")
