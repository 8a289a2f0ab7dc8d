"""The golden fixture set: read golden/fixtures.toml and (re)make its fixtures.

    python -m parity.dump.golden --golden golden [--only NAME] [--out DIR]     # what ci/regen_golden runs

The golden folder is always given (--golden, or golden_dir): an installed package cannot tell
where a checkout's golden/ is, and guessing from this file's location would write fixtures into
whatever tree the package was imported from.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import dump
from .errors import DumpError
from .build import random_input_ids, random_model


@dataclass(frozen=True)
class GoldenFixture:
    file: str
    config: str  # relative to golden/
    seed: int
    batch: int
    seq_len: int
    dtype: str
    grad: str | None = None  # a loss (grad.LOSSES): a gradient fixture (format v2) from it


def load_manifest(path: Path) -> list[GoldenFixture]:
    """The [[fixture]] entries of a manifest (golden/fixtures.toml)."""
    with open(path, "rb") as handle:
        entries = tomllib.load(handle)["fixture"]
    return [GoldenFixture(**entry) for entry in entries]


def make(entry: GoldenFixture, out_dir: Path, golden_dir: Path, *,
         plant: Callable[[object], contextlib.AbstractContextManager] | None = None, meta: dict | None = None) -> Path:
    """Writes `entry` into out_dir exactly as `parity-dump --config ... --seed ...` would.

    golden_dir: the golden/ folder entry.config is relative to (/meta source still says
    "random:golden/<config>": where the fixture comes from in the repo, wherever it was made).
    plant: a context manager factory entered around the dump with the model (a parity.zoo patch:
    the forward is buggy, the weights and config stay true). meta: extra /meta keys."""
    model = random_model(golden_dir / entry.config, entry.seed, entry.dtype)
    ids = random_input_ids(entry.seed, entry.batch, entry.seq_len, model.config.get_text_config().vocab_size)
    meta = {"seed": entry.seed, "source": f"random:golden/{entry.config}", **(meta or {})}
    with plant(model) if plant else contextlib.nullcontext():
        return dump(model, ids, out_dir / entry.file, meta=meta, grad=entry.grad, progress=False).path


def write_each(entries: list, make_one: Callable[[object, Path], Path], out_dir: Path, label: str = "",
               errors: tuple[type[Exception], ...] = (DumpError,)) -> int:
    """Makes every entry, printing each file written; the first failure is one line and exit code 2."""
    for entry in entries:
        try:
            path = make_one(entry, out_dir)
        except errors as error:
            print(f"regen: error: {label}{entry.file}: {error}", file=sys.stderr)
            return 2
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


def golden_arguments(parser: argparse.ArgumentParser, out_help: str) -> None:
    """--golden (required) and --out, shared by the three regeneration modules."""
    parser.add_argument("--golden", type=Path, required=True,
                        help="the golden/ folder: manifests and configs are read from it (ci/regen_golden: golden)")
    parser.add_argument("--out", type=Path, help=out_help)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the golden fixtures listed in golden/fixtures.toml.")
    parser.add_argument("--only", help="regenerate only this file name")
    golden_arguments(parser, "output folder (default: the --golden folder)")
    args = parser.parse_args(argv)
    manifest = args.golden / "fixtures.toml"
    entries = [e for e in load_manifest(manifest) if args.only in (None, e.file)]
    if not entries:
        print(f"regen: error: no fixture named {args.only!r} in {manifest}", file=sys.stderr)
        return 2
    return write_each(entries, lambda entry, out: make(entry, out, args.golden), args.out or args.golden)


if __name__ == "__main__":
    sys.exit(main())
