"""Evidence for the built-in gradient budgets (docs/budgets.md "Gradients"): gradient dumps of the
golden configs and of configs the golden set does not hold (ci/measure_noise_floor.py's unseen
models, plus an OLMoE with clip_qkv), in float32 and bfloat16, with both losses, each checked in
grad.isolated and grad.chained under a budget that gates nothing (rel_l2 <= 1), printing per run
the largest rel_l2 and where, and every row that fails for another reason (a gradient on one side
only, a module without a backward): a clean dump must have none.

    .venv/bin/python ci/measure_grad_budget.py [--only NAME] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
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
        models = [(name, GOLDEN / f"{name}.json") for name in GOLDEN_CONFIGS]
        models += [(name, config_file(tmp / "configs", base, overrides)) for name, base, overrides in UNSEEN + EXTRA]
        for name, config in models:
            if args.only and args.only != name:
                continue
            for dtype in ("float32", "bfloat16"):
                for loss in ("logprob_sum", "ce_mean"):
                    fixture = tmp / f"{name}_{dtype}_{loss}.h5"
                    subprocess.run([sys.executable, "-m", "parity.dump.cli", "--config", str(config), "--seed", "3",
                                    "--out", str(fixture), "--dtype", dtype, "--grad", loss, "--quiet"], check=True)
                    for mode in ("grad.isolated", "grad.chained"):
                        out = tmp / f"{name}_{dtype}_{loss}_{mode}.json"
                        subprocess.run([str(args.parity), "check", str(fixture), "--mode", mode, "--budget", str(budget),
                                        "--json", str(out)], capture_output=True, text=True)
                        print(f"{name:28s} {dtype:8s} {loss:11s} {mode:13s} {worst(json.loads(out.read_text()), mode)}",
                              flush=True)


if __name__ == "__main__":
    main()
