"""End-to-end tests of the `parity` CLI (main.cpp): inspect on every golden fixture, and every
kind of bad input getting a one-line error naming the file and exit code 2."""

import shutil
import subprocess

import h5py
import numpy as np
import pytest

from helpers import GOLDEN, PARITY

GOLDEN_FIXTURES = sorted(GOLDEN.glob("*.h5"))


def parity(*args: str) -> subprocess.CompletedProcess:
    if not PARITY.exists():
        pytest.fail(f"{PARITY} is missing: run ci/setup first")
    return subprocess.run([str(PARITY), *args], capture_output=True, text=True, timeout=60)


def listed(stdout: str, group: str) -> list[str]:
    """Entry names of one group in `parity inspect` output: "  dtype  [shape]  name  [-> target]"."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{group} ("))
    names = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        names.append(line.split("]", 1)[1].split("  -> ")[0].split("  (derived")[0].strip())
    return names


@pytest.mark.parametrize("fixture", GOLDEN_FIXTURES, ids=lambda p: p.name)
def test_inspect_lists_every_weight_and_hook_of_each_golden_fixture(fixture):
    result = parity("inspect", str(fixture))
    assert result.returncode == 0, result.stderr
    with h5py.File(fixture) as f:
        for group in ("inputs", "weights", "hooks", "outputs"):
            assert listed(result.stdout, group) == list(f[group]), group  # every entry, in file order
        assert f"model_type             {f['meta'].attrs['model_type']}" in result.stdout


def broken_copy(tmp_path, edit) -> str:
    """A copy of a golden fixture with `edit(h5py.File)` applied."""
    path = tmp_path / "broken.h5"
    shutil.copy(GOLDEN / "olmoe_base.h5", path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return str(path)


def set_attr(path, key, value):
    return lambda f: f[path].attrs.__setitem__(key, value)


def replace_dataset(path, data, dtype_attr=None):
    def edit(f):
        if path in f:
            del f[path]
        f[path] = data
        if dtype_attr is not None:
            f[path].attrs["dtype"] = dtype_attr
    return edit


def external_link(f):
    f["hooks/model.bad"] = h5py.ExternalLink(str(GOLDEN / "olmoe_base.h5"), "/hooks/model.norm")


BAD_FIXTURES = {
    "wrong schema version": (set_attr("meta", "schema_version", np.int64(7)), "schema_version 7, this build reads 1 and 2"),
    "v2 without its gradient groups": (set_attr("meta", "schema_version", np.int64(2)),
                                       "/grads: missing group of a gradient fixture (schema_version 2)"),
    "v2 without a loss": (lambda f: (set_attr("meta", "schema_version", np.int64(2))(f), f.create_group("grads"),
                                     f.create_group("grad_hooks"), f.create_group("loss"),
                                     f["meta"].attrs.__setitem__("grad_loss", "ce_mean")),
                          "/loss/value: missing dataset of a gradient fixture"),
    "v2 with an unknown loss": (lambda f: (set_attr("meta", "schema_version", np.int64(2))(f), f.create_group("grads"),
                                          f.create_group("grad_hooks"), f.create_group("loss"),
                                          f["loss"].create_dataset("value", data=np.float32(1)),
                                          f["loss/value"].attrs.__setitem__("dtype", "float32"),
                                          f["meta"].attrs.__setitem__("grad_loss", "mse")),
                                "grad_loss \"mse\" is not a known loss"),
    "v2 with a non-scalar loss": (lambda f: (set_attr("meta", "schema_version", np.int64(2))(f), f.create_group("grads"),
                                            f.create_group("grad_hooks"), f.create_group("loss"),
                                            f["loss"].create_dataset("value", data=np.zeros(4, np.float32)),
                                            f["loss/value"].attrs.__setitem__("dtype", "float32"),
                                            f["meta"].attrs.__setitem__("grad_loss", "ce_mean")),
                                  "/loss/value: is [4], not a scalar"),
    "schema version array": (set_attr("meta", "schema_version", np.array([1, 1], np.int64)), "no integer schema_version"),
    "schema version string": (set_attr("meta", "schema_version", "1"), "no integer schema_version"),
    "model_type string array": (set_attr("meta", "model_type", np.array([b"olmoe", b"x"])), "missing string attribute model_type"),
    "config string array": (replace_dataset("meta/config", np.array([b"{}", b"{}"])), "/meta/config: missing or not a string"),
    "config vlen string array": (replace_dataset("meta/config", np.array(["{}", "{}"], dtype=h5py.string_dtype())), "/meta/config: missing or not a string"),
    "missing group": (lambda f: f.__delitem__("hooks"), "/hooks: missing group"),
    "missing meta key": (lambda f: f["meta"].attrs.__delitem__("model_type"), "/meta: missing string attribute model_type"),
    "config not JSON": (replace_dataset("meta/config", "{not json"), "/meta/config: not a JSON object"),
    "missing input ids": (lambda f: f.__delitem__("inputs/input_ids"), "/inputs/input_ids: missing dataset"),
}

# Each adds /hooks/model.bad, which the error must name.
BAD_DATASETS = {
    "complex dtype": (replace_dataset("hooks/model.bad", np.zeros(3, np.complex64)), "unsupported HDF5 type (compound of 8 bytes)"),
    "unknown dtype attribute": (replace_dataset("hooks/model.bad", np.zeros(3, np.uint8), "float8_e4m3fn"), "unsupported dtype 'float8_e4m3fn'"),
    "dtype attribute contradicts storage": (replace_dataset("hooks/model.bad", np.zeros(3, np.float32), "bfloat16"), "dtype attribute says bfloat16 but the data is stored as float of 4 bytes"),
    "signed int8 as bool": (replace_dataset("hooks/model.bad", np.array([-1, 0], np.int8), "bool"), "dtype attribute says bool but the data is stored as integer of 1 bytes"),
    "dtype attribute not a string": (replace_dataset("hooks/model.bad", np.zeros(3, np.float32), np.int64(5)), "attribute dtype is not a single string"),
    "dtype attribute string array": (replace_dataset("hooks/model.bad", np.zeros(3, np.float32), np.array([b"float32", b"x"])), "attribute dtype is not a single string"),
    "string tensor": (replace_dataset("hooks/model.bad", np.array([b"a", b"b"])), "unsupported HDF5 type (string"),
    "null dataspace": (replace_dataset("hooks/model.bad", h5py.Empty("f4"), "float32"), "empty (null) dataspace holds no tensor"),
    "nested group": (lambda f: f["hooks"].create_group("model.bad"), "cannot open dataset"),
    "dangling soft link": (lambda f: f["hooks"].__setitem__("model.bad", h5py.SoftLink("/hooks/gone")), "dangling soft link to /hooks/gone"),
    "external link": (external_link, "external link to another file"),
}


def huge_shape(f):
    f["hooks"].create_dataset("model.bad", shape=(2**31, 2**31, 2**20), dtype="f4", chunks=(1, 1, 16))
    f["hooks/model.bad"].attrs["dtype"] = "float32"


BAD_DATASETS["shape past 2^40 elements"] = (huge_shape, "shape [2147483648, 2147483648, 1048576] is too large")


@pytest.mark.parametrize("case", list(BAD_FIXTURES) + list(BAD_DATASETS))
def test_bad_fixture_is_one_line_exit_2_naming_file_and_dataset(tmp_path, case):
    edit, message = {**BAD_FIXTURES, **BAD_DATASETS}[case]
    path = broken_copy(tmp_path, edit)
    result = parity("inspect", path)
    assert result.returncode == 2
    assert result.stdout == ""  # never a partial report
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"parity: error: fixture {path}: ")
    assert message in result.stderr
    if case in BAD_DATASETS:
        assert ": /hooks/model.bad: " in result.stderr


def test_truncated_and_non_hdf5_files(tmp_path):
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes((GOLDEN / "gemma4_full.h5").read_bytes()[:100_000])
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5\n")
    for path, message in ((truncated, "truncated file"), (text, "not an HDF5 file"), (tmp_path / "none.h5", "no such file")):
        result = parity("inspect", str(path))
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and str(path) in result.stderr and message in result.stderr


@pytest.mark.parametrize("args", [[], ["inspect"], ["frobnicate"], ["inspect", "a.h5", "b.h5"], ["--bogus"]])
def test_bad_usage_is_exit_2(args):
    result = parity(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("parity: error: ") and result.stderr.count("\n") == 1


def test_help_and_version_are_exit_0():
    assert parity("--help").returncode == 0
    assert parity("--version").stdout.strip() == "parity 0.1.0"
