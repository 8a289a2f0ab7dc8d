"""Shared test helpers: the repo layout and config variants of the golden configs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# `parity logprobs --tokenizer` and parity.check_case decode token texts with a Python that has the
# parity package (harness/logprobs/token_text.cpp): the one running the tests, unless told otherwise.
os.environ.setdefault("PARITY_PYTHON", sys.executable)
GOLDEN = REPO / "golden"

# How far a regenerated golden or zoo fixture may move from the committed one, by run dtype
# (evidence: dump/test_golden_regen.py's docstring), and the router near-ties a bf16 run may break
# the other way on another CPU (parity/dump/fixture_diff.py): the built-in bf16 budget's
# near_tie_rel, one bf16 ulp of a router logit near 2. fp32 runs allow no flip: none was seen.
REGEN_REL_L2_BY_RUN_DTYPE = {"float32": 5e-5, "bfloat16": 0.1}
REGEN_GRAD_REL_L2_BY_RUN_DTYPE = {"float32": 5e-4, "bfloat16": 0.1}  # /grads, /grad_hooks, /loss
REGEN_NEAR_TIE_REL_BY_RUN_DTYPE = {"float32": None, "bfloat16": 1e-2}


def tiny_config(tmp_path: Path, base: str, **overrides) -> Path:
    """A config file: golden/configs/<base>.json with `overrides` applied."""
    fields = json.loads((GOLDEN / "configs" / f"{base}.json").read_text())
    fields.update(overrides)
    path = tmp_path / f"{base}_variant.json"
    path.write_text(json.dumps(fields))
    return path


# The model family of each model_type the golden configs use.
FAMILY_OF_MODEL_TYPE = {"olmoe": "olmoe", "gemma4_text": "gemma4", "gemma4": "gemma4"}


def zoo_family(bug) -> str:
    """The model family of a parity.zoo Bug's zoo fixture (its config's model_type): the bug's own
    family, or for a bug of any family ("any") the one its fixture and lives_at were made with."""
    return FAMILY_OF_MODEL_TYPE[json.loads((GOLDEN / bug.fixture["config"]).read_text())["model_type"]]


# $PARITY_BIN: another build of the CLI (e.g. build-x/parity, for a build folder of one's own).
PARITY = Path(os.environ.get("PARITY_BIN", REPO / "build" / "parity"))

# A token text that is markup: reports must show it as text (reports/html_test.py, browser_test.py).
HOSTILE = "<script>alert(1)</script>"


def run_parity(*args, **kwargs):
    """build/parity with `args`; fails the test (not an error) when the binary was never built."""
    import subprocess

    import pytest
    if not PARITY.exists():
        pytest.fail(f"{PARITY} is missing: run ci/setup first")
    import sys

    # Token texts are decoded by a Python with the parity package: this one, unless told otherwise.
    kwargs.setdefault("env", {**os.environ, "PARITY_PYTHON": os.environ.get("PARITY_PYTHON", sys.executable)})
    kwargs.setdefault("timeout", 600)
    return subprocess.run([str(PARITY), *map(str, args)], capture_output=True, text=True, **kwargs)
