"""parity compare against real bugs, on model configs the repo has never seen: HF clean as the base,
HF with a zoo bug planted at dump time as the target. The compare budget gates against the compare
noise floor (run/compare_floor.h: the reference at the base's precision against its second opinion
at the target's, each routed as its dump), which forgives the drift two correct implementations
make, a cascade of router near-ties included. It must not forgive a bug: each fails first where it
lives, against a base in its own dtype and, for a bf16 cast-point bug, against a float32 base too;
the clean pairs pass."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import run_parity, zoo_family
from parity.zoo.patches import BUGS
from unseen_models import CONFIGS, unseen_dump


def compare_json(tmp_path: Path, base: Path, target: Path) -> tuple[int, dict]:
    out = tmp_path / "compare.json"
    result = run_parity("compare", base, target, "--json", out)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(out.read_text())


def dump_in(tmp_path: Path, name: str, family: str, bug: str | None, dtype: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return unseen_dump(folder, family, bug, dtype)


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_compare_fails_a_planted_bug_first_where_it_lives(tmp_path, bug):
    family, dtype = zoo_family(BUGS[bug]), BUGS[bug].fixture["dtype"]
    target = dump_in(tmp_path, "bug", family, bug, dtype)
    bases = {dtype} | ({"float32"} if dtype == "bfloat16" else set())
    for base_dtype in sorted(bases):
        base = dump_in(tmp_path, f"clean_{base_dtype}", family, None, base_dtype)
        code, report = compare_json(tmp_path, base, target)
        assert code == 1, f"{bug}: {base_dtype} base vs {dtype} target passed"
        first = report["first_failure"]
        assert re.fullmatch(BUGS[bug].lives_at, first["hook"]), f"{bug} vs {base_dtype}: first failure {first}"
        # Gated against the floor, not the fixed fallback: the reference could replay both sides.
        failed = next(h for h in report["hooks"] if h["hook"] == first["hook"])
        assert failed["kind"] == "top_k" or failed["budget"]["metric"] == "floor_ratio", failed["budget"]


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_clean_float32_against_bfloat16_passes_with_the_floor(tmp_path, family):
    base = dump_in(tmp_path, "f32", family, None, "float32")
    target = dump_in(tmp_path, "bf16", family, None, "bfloat16")
    code, report = compare_json(tmp_path, base, target)
    assert code == 0, report["first_failure"]
    floats = [h for h in report["hooks"] if h["kind"] == "float" and h["rel_l2"] is not None]
    # The floor explains the whole difference: every hook bf16 moved by more than its absolute term
    # was gated by floor_ratio against a floor computed for it.
    moved = [h for h in floats if h["rel_l2"] > (h["budget"]["min_rel_l2"] or 0)]
    assert moved and all(h["budget"]["metric"] == "floor_ratio" and h["floor"] for h in moved)
