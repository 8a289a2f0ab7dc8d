"""Evidence for the built-in gradient budgets (docs/budgets.md "Gradients"): gradient dumps of the
golden configs and of configs the golden set does not hold (ci/measure_noise_floor.py's unseen
models, plus an OLMoE with clip_qkv), in float32 and bfloat16, with both losses, each checked in
grad.isolated and grad.chained under a budget that gates nothing (rel_l2 <= 1), printing per run
the largest rel_l2 and where, and every row that fails for another reason (a gradient on one side
only, a module without a backward): a clean dump must have none. Then `parity compare --grad` of
each float32 dump against the bfloat16 one and against a float32 dump made on ATen's default CPU
kernels (another machine's float32): the largest floor ratio of the rows with a noise floor, and
how the rows without one fared (judged by each side's own backward, or left ungated).

    .venv/bin/python ci/measure_grad_budget.py [--only NAME] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure_noise_floor import GOLDEN, REPO, UNSEEN, config_file  # noqa: E402

GOLDEN_CONFIGS = ["gemma4_full", "gemma4_dense", "olmoe_base", "olmoe_norm_topk", "olmoe_clip_qkv"]
EXTRA = [("olmoe_clip_qkv_norm_topk_4l", "olmoe_base", dict(
    num_hidden_layers=4, hidden_size=48, num_attention_heads=6, num_key_value_heads=2, num_experts=6,
    num_experts_per_tok=3, norm_topk_prob=True, clip_qkv=0.5))]
WIDE = "[grad.isolated]\ndefault = { rel_l2 = 1.0 }\n[grad.chained]\ndefault = { rel_l2 = 1.0 }\n"
# No [grad.isolated] here: the three-way view judges each side by the built-in budget of its dtype.
WIDE_COMPARE = "[grad.compare]\ndefault = { floor_ratio = 1e9, min_rel_l2 = 1.0 }\n[compare]\ndefault = { rel_l2 = 1.0 }\n"


def compared(result: dict) -> str:
    rows = [h for h in result["hooks"] if h["mode"] == "grad.compare"]
    floored = [h for h in rows if h.get("floor") and h.get("floor_ratio") is not None]
    top = max(floored, key=lambda h: h["floor_ratio"], default=None)
    judged = [h for h in rows if not h.get("floor") and h["status"] != "skipped"]
    departs = [h["hook"] for h in judged if h["status"] == "fail"]
    ungated = [h for h in rows if h["status"] == "skipped"]
    worst_ungated = max(ungated, key=lambda h: h["rel_l2"] or 0, default=None)
    text = (f"max floor ratio {top['floor_ratio']:.2f} at {top['hook']} (rel_l2 {top['rel_l2']:.2e})" if top
            else "no floored row")
    text += f"; {len(judged)} judged by three-way ({len(departs)} depart{': ' + str(departs[:3]) if departs else ''})"
    if worst_ungated:
        text += f"; {len(ungated)} ungated (max rel_l2 {worst_ungated['rel_l2']:.2e} at {worst_ungated['hook']})"
    return text


def worst(result: dict, mode: str) -> str:
    rows = [h for h in result["hooks"] if h["mode"] == mode]
    measured = [h for h in rows if h.get("rel_l2") is not None]
    top = max(measured, key=lambda h: h["rel_l2"], default=None)
    floored = [h for h in measured if h.get("floor_ratio") is not None and h["rel_l2"] > 1e-6]
    ratio = max(floored, key=lambda h: h["floor_ratio"], default=None)
    other = [f"{h['hook']}: {h['message']}" for h in rows if h["status"] == "fail" and h.get("rel_l2") is None]
    problems = [p for run in result.get("runs", []) for p in run.get("problems", [])]
    text = f"max rel_l2 {top['rel_l2']:.2e} at {top['hook']}" if top else "nothing measured"
    if top and top.get("floor"):
        text += f" (floor {top['floor']['rel_l2']:.2e})"
    if ratio:
        text += f"; max floor ratio (rel_l2 > 1e-6) {ratio['floor_ratio']:.2f} at {ratio['hook']} (rel_l2 {ratio['rel_l2']:.2e})"
    return text + f"; {len(measured)} rows" + (f"; OTHER FAILURES {other[:3]}" if other else "") + \
        (f"; PROBLEMS {problems[:2]}" if problems else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only")
    parser.add_argument("--keep", type=Path, help="keep fixtures and JSON here")
    parser.add_argument("--parity", type=Path, default=REPO / "build" / "parity")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = args.keep or Path(tmpdir)
        (tmp / "configs").mkdir(parents=True, exist_ok=True)
        budget = tmp / "wide.toml"
        budget.write_text(WIDE)
        compare_budget = tmp / "wide_compare.toml"
        compare_budget.write_text(WIDE_COMPARE)
        models = [(name, GOLDEN / f"{name}.json") for name in GOLDEN_CONFIGS]
        models += [(name, config_file(tmp / "configs", base, overrides)) for name, base, overrides in UNSEEN + EXTRA]
        for name, config in models:
            if args.only and args.only != name:
                continue
            for dtype in ("float32", "bfloat16", "float32_aten_default"):
                for loss in ("logprob_sum", "ce_mean"):
                    fixture = tmp / f"{name}_{dtype}_{loss}.h5"
                    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"} if dtype.endswith("aten_default") else None
                    subprocess.run([sys.executable, "-m", "parity.dump.cli", "--config", str(config), "--seed", "3",
                                    "--out", str(fixture), "--dtype", dtype.split("_")[0], "--grad", loss, "--quiet"],
                                   check=True, env=env)
                    if dtype != "float32":
                        out = tmp / f"{name}_{dtype}_{loss}_compare.json"
                        subprocess.run([str(args.parity), "compare", "--grad", str(tmp / f"{name}_float32_{loss}.h5"),
                                        str(fixture), "--budget", str(compare_budget), "--json", str(out)],
                                       capture_output=True, text=True)
                        print(f"{name:28s} f32 vs {dtype:20s} {loss:11s} grad.compare  "
                              f"{compared(json.loads(out.read_text()))}", flush=True)
                        if dtype != "bfloat16":
                            continue
                    for mode in ("grad.isolated", "grad.chained"):
                        out = tmp / f"{name}_{dtype}_{loss}_{mode}.json"
                        subprocess.run([str(args.parity), "check", str(fixture), "--mode", mode, "--budget", str(budget),
                                        "--json", str(out)], capture_output=True, text=True)
                        print(f"{name:28s} {dtype:8s} {loss:11s} {mode:13s} {worst(json.loads(out.read_text()), mode)}",
                              flush=True)


if __name__ == "__main__":
    main()
