"""Writes the fuzzers' seed corpora from the shipped golden files (ci/fuzz; fuzz_seeds_test.py).

    python harness/fuzz/make_seeds.py OUT_DIR [--parity build/parity]

OUT_DIR/<target>/ gets real inputs of each format, all of which the harness must accept:
  fixture      the smallest golden fixtures (one per family and dtype, and a zoo fixture)
  logprob_run  the golden logprob runs
  checkpoint   checkpoint folders of golden configs saved by transformers (one file; sharded with
               an index; Hub per-expert tensor names), packed as checkpoint_fuzz.cpp reads them
  case         every shipped case file
  html_report  check, logprob and summary JSON results written by the CLI on shipped cases
Nothing is stored in the repo: the seeds follow the golden files and the formats as they change.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "golden"
SEPARATOR = b"\n--8<--\n"  # checkpoint_fuzz.cpp

FIXTURES = ["olmoe_base_bf16.h5", "gemma4_dense.h5", "zoo/olmoe_router_topk_softmax.h5",
            "zoo/gemma4_no_final_softcap.h5"]


def copy_fixtures(out: Path) -> None:
    for name in FIXTURES:
        shutil.copy(GOLDEN / name, out / name.replace("/", "_"))


def copy_logprob_runs(out: Path) -> None:
    for run in sorted((GOLDEN / "logprob_runs").glob("*.h5")):
        shutil.copy(run, out / run.name)


def copy_cases(out: Path) -> None:
    for case in sorted((REPO / "cases").rglob("*.toml")):
        shutil.copy(case, out / f"{case.parent.name}_{case.name}")


def pack_checkpoint(folder: Path) -> bytes:
    """A saved checkpoint folder as one fuzz input: config, index (renamed shards), shards."""
    config = (folder / "config.json").read_bytes()
    index_path = folder / "model.safetensors.index.json"
    if not index_path.exists():
        return SEPARATOR.join([config, b"", (folder / "model.safetensors").read_bytes()])
    index = json.loads(index_path.read_text())
    files = sorted(set(index["weight_map"].values()))
    renamed = {f: f"shard-{i + 1}.safetensors" for i, f in enumerate(files)}
    index["weight_map"] = {k: renamed[v] for k, v in index["weight_map"].items()}
    return SEPARATOR.join([config, json.dumps(index).encode(), *((folder / f).read_bytes() for f in files)])


def write_checkpoints(out: Path) -> None:
    from parity.dump.build import random_model  # torch and transformers: imported only here

    with tempfile.TemporaryDirectory() as tmp:
        for config, shard in [("olmoe_base", None), ("olmoe_base", "60KB"), ("gemma4_dense", "200KB")]:
            folder = Path(tmp) / f"{config}_{shard}"
            model = random_model(GOLDEN / "configs" / f"{config}.json", seed=1)
            if shard:
                model.save_pretrained(folder, max_shard_size=shard)
            else:
                model.save_pretrained(folder)
            (out / f"{config}_{shard or 'single'}.bin").write_bytes(pack_checkpoint(folder))


def write_results(out: Path, parity: Path) -> None:
    def run(*args: str) -> None:
        done = subprocess.run([str(parity), *args], capture_output=True, text=True, cwd=REPO)
        if done.returncode not in (0, 1):  # a gate failure still writes a complete result
            raise SystemExit(f"parity {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")

    run("check", "--case", "cases/olmoe_base.toml", "--json", str(out / "check.json"))
    run("check", "--case", "cases/zoo/olmoe_router_topk_softmax.toml", "--json", str(out / "check_zoo.json"))
    run("logprobs", "--case", "cases/logprobs/olmoe_base_fp32_vs_bf16.toml", "--json", str(out / "logprobs.json"))
    with tempfile.TemporaryDirectory() as tmp:
        run("check", "cases/zoo", "--out", tmp)
        shutil.copy(Path(tmp) / "summary.json", out / "summary.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--parity", type=Path, default=REPO / "build" / "parity", help="the CLI that writes the JSON seeds")
    args = parser.parse_args()
    writers = {"fixture": copy_fixtures, "logprob_run": copy_logprob_runs, "case": copy_cases,
               "checkpoint": write_checkpoints, "html_report": lambda out: write_results(out, args.parity)}
    for target, write in writers.items():
        folder = args.out / target
        folder.mkdir(parents=True, exist_ok=True)
        write(folder)
        print(f"{target}: {len(list(folder.iterdir()))} seeds in {folder}")


if __name__ == "__main__":
    main()
