"""The fuzz targets on real inputs: every seed make_seeds.py writes from the golden files must be
read without a refusal (PARITY_FUZZ_EXPECT_VALID=1), so a reader that refused everything could not
make a fuzzer look clean, and the targets themselves are shown to find what they should.

$PARITY_FUZZ_BIN: the folder of the parity_fuzz_* replay drivers (default build/fuzz; ci/test_asan
points it at build-asan/fuzz)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import PARITY, REPO

FUZZ_BIN = Path(os.environ.get("PARITY_FUZZ_BIN", REPO / "build" / "fuzz"))
TARGETS = ["fixture", "checkpoint", "case", "logprob_run", "html_report"]


def replay(target: str, *inputs: Path, expect_valid: bool) -> subprocess.CompletedProcess:
    driver = FUZZ_BIN / f"parity_fuzz_{target}"
    if not driver.exists():
        pytest.fail(f"{driver} is missing: run ci/setup first")
    env = {**os.environ, "PARITY_FUZZ_EXPECT_VALID": "1" if expect_valid else "0"}
    return subprocess.run([str(driver), *map(str, inputs)], capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seeds")
    subprocess.run([sys.executable, str(REPO / "harness" / "fuzz" / "make_seeds.py"), str(out), "--parity", str(PARITY)],
                   check=True, capture_output=True, text=True, timeout=900)
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_every_seed_is_read_without_a_refusal(seeds, target):
    count = len(list((seeds / target).iterdir()))
    assert count > 0
    result = replay(target, seeds / target, expect_valid=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"replayed {count} inputs, no finding" in result.stderr


# A case file cut in half can still be a valid case (its second half may be comments), so only the
# formats that record their own length are expected to refuse a truncated copy.
@pytest.mark.parametrize("target", ["fixture", "checkpoint", "logprob_run", "html_report"])
def test_a_truncated_seed_is_refused_not_crashed(seeds, target, tmp_path):
    # Cut every seed in half: refused (a refusal under EXPECT_VALID aborts, so the refusal is seen)
    # and never a crash (without EXPECT_VALID the driver must exit 0).
    for seed in sorted((seeds / target).iterdir()):
        cut = tmp_path / seed.name
        data = seed.read_bytes()
        cut.write_bytes(data[: len(data) // 2])
        assert replay(target, cut, expect_valid=False).returncode == 0, seed.name
        refused = replay(target, cut, expect_valid=True)
        assert refused.returncode != 0 and "a valid input was refused" in refused.stderr, seed.name


def test_truncated_case_files_never_crash(seeds, tmp_path):
    for seed in sorted((seeds / "case").iterdir()):
        cut = tmp_path / seed.name
        data = seed.read_bytes()
        cut.write_bytes(data[: len(data) // 2])
        assert replay("case", cut, expect_valid=False).returncode == 0, seed.name


def test_an_empty_replay_is_an_error_not_a_pass(tmp_path):
    result = replay("case", tmp_path, expect_valid=False)
    assert result.returncode == 2 and "no inputs to replay" in result.stderr
