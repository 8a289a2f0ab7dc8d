"""Evidence for the noise-floor budgets (docs/budgets.md "Noise floor"): dumps clean models of
configs the golden set does not hold (per-layer inputs with KV sharing, k_eq_v MoE, norm_topk_prob
both ways, 30-layer narrow models with real head dims), in float32 and bfloat16, checks each in
both modes and prints, per run:
  ratio   the largest rel_l2 / floor over hooks whose rel_l2 is above the min_rel_l2 of the dtype
  zero    the largest rel_l2 of a hook whose floor is exactly zero (elementwise ops)
  failed  hooks the built-in budget fails (a clean dump must fail none)
and `parity compare` (its floor: run/compare_floor.h) of each float32 dump against the bfloat16 one
and against a float32 dump of the same model made on torch's scalar CPU kernels
(ATEN_CPU_CAPABILITY=default: other float sums, a second correct float32 implementation).

    .venv/bin/python ci/measure_noise_floor.py [--only NAME] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "golden" / "configs"

# Each: (name, base golden config, overrides). None of these is a golden fixture's config.
UNSEEN = [
    ("gemma4_ple_kvshare_6l", "gemma4_dense", dict(
        num_hidden_layers=6, hidden_size=64, intermediate_size=160, head_dim=32, global_head_dim=64,
        layer_types=["sliding_attention"] * 2 + ["full_attention"] + ["sliding_attention"] * 2 + ["full_attention"],
        hidden_size_per_layer_input=16, vocab_size_per_layer_input=128, num_kv_shared_layers=2)),
    ("gemma4_dense_ple_12l_real_head_dims", "gemma4_dense", dict(
        num_hidden_layers=12, hidden_size=64, num_attention_heads=2, num_key_value_heads=1, head_dim=128,
        global_head_dim=256, layer_types=(["sliding_attention"] * 5 + ["full_attention"]) * 2,
        hidden_size_per_layer_input=16, vocab_size_per_layer_input=128, num_kv_shared_layers=4)),
    ("gemma4_moe_k_eq_v_30l", "gemma4_full", dict(
        num_hidden_layers=30, hidden_size=64, num_attention_heads=2, num_key_value_heads=1, head_dim=128,
        global_head_dim=256, num_global_key_value_heads=1,
        layer_types=(["sliding_attention"] * 5 + ["full_attention"]) * 5, num_kv_shared_layers=10)),
    ("olmoe_norm_topk_30l", "olmoe_base", dict(
        num_hidden_layers=30, hidden_size=128, num_attention_heads=2, num_key_value_heads=1,
        norm_topk_prob=True)),
    ("olmoe_no_norm_topk_30l", "olmoe_base", dict(
        num_hidden_layers=30, hidden_size=128, num_attention_heads=2, num_key_value_heads=2,
        norm_topk_prob=False)),
]

MIN_REL_L2 = {"float32": None, "bfloat16": None}  # read from the built-in budget in the JSON


def config_file(tmp: Path, base: str, overrides: dict) -> Path:
    fields = json.loads((GOLDEN / f"{base}.json").read_text())
    fields.update(overrides)
    path = tmp / f"{base}_{len(list(tmp.iterdir()))}.json"
    path.write_text(json.dumps(fields))
    return path


def summarise(result: dict, mode: str) -> str:
    hooks = [h for h in result["hooks"] if h["mode"] == mode and h["rel_l2"] is not None and h["floor"]]
    failed = [h["hook"] for h in result["hooks"] if h["mode"] == mode and h["status"] == "fail"]
    floor_min = next((h["budget"].get("min_rel_l2") or 0 for h in hooks if h["budget"]
                      and h["budget"]["metric"] == "floor_ratio"), 0)
    above = [h for h in hooks if h["floor"]["rel_l2"] > 0 and h["rel_l2"] > floor_min]
    ratio = max(above, key=lambda h: h["floor_ratio"], default=None)
    zero = max((h for h in hooks if h["floor"]["rel_l2"] == 0), key=lambda h: h["rel_l2"], default=None)
    parts = [f"ratio {ratio['floor_ratio']:.2f} at {ratio['hook']} (rel_l2 {ratio['rel_l2']:.1e})" if ratio else "ratio -",
             f"zero-floor max rel_l2 {zero['rel_l2']:.1e} at {zero['hook']}" if zero else "zero-floor -",
             f"failed {len(failed)}" + (f": {failed[:3]}" if failed else "")]
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only")
    parser.add_argument("--keep", type=Path, help="keep fixtures and JSON here")
    parser.add_argument("--parity", type=Path, default=REPO / "build" / "parity")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = args.keep or Path(tmpdir)
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "configs").mkdir(exist_ok=True)
        for name, base, overrides in UNSEEN:
            if args.only and args.only != name:
                continue
            config = config_file(tmp / "configs", base, overrides)
            fixtures = {}
            for dtype in ("float32", "bfloat16"):
                fixtures[dtype] = dump_fixture(config, tmp / f"{name}_{dtype}.h5", dtype)
                for mode in ("isolated", "chained"):
                    out = tmp / f"{name}_{dtype}_{mode}.json"
                    subprocess.run([str(args.parity), "check", str(fixtures[dtype]), "--mode", mode, "--json", str(out)],
                                   capture_output=True, text=True)
                    print(f"{name:24s} {dtype:8s} {mode:8s} {summarise(json.loads(out.read_text()), mode)}", flush=True)
            scalar = dump_fixture(config, tmp / f"{name}_float32_scalar.h5", "float32", {"ATEN_CPU_CAPABILITY": "default"})
            for label, target in (("vs_bf16", fixtures["bfloat16"]), ("vs_scalar", scalar)):
                out = tmp / f"{name}_compare_{label}.json"
                subprocess.run([str(args.parity), "compare", str(fixtures["float32"]), str(target), "--json", str(out)],
                               capture_output=True, text=True)
                print(f"{name:24s} {label:8s} compare  {summarise(json.loads(out.read_text()), 'compare')}", flush=True)


def dump_fixture(config: Path, out: Path, dtype: str, env: dict | None = None) -> Path:
    subprocess.run([sys.executable, "-m", "parity.dump.cli", "--config", str(config), "--seed", "3",
                    "--out", str(out), "--dtype", dtype, "--quiet"], check=True, env={**os.environ, **(env or {})})
    return out


if __name__ == "__main__":
    main()
