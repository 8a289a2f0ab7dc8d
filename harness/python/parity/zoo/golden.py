"""The zoo fixtures: one golden fixture per known bug, made by a real HF model with the bug planted.

    python -m parity.zoo.golden [--only NAME] [--out DIR]     # ci/regen_golden runs it

Entries: [[fixture]] in golden/zoo/zoo.toml (file relative to golden/zoo/, config relative to
golden/, and `bug`, a name in parity.zoo.BUGS). Each is made as golden/fixtures.toml's are
(parity.dump.golden.make) inside the bug's patch, with /meta `bug` = its name; its weights and
/meta/config are the model's true ones.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from ..dump.errors import DumpError
from ..dump.golden import GOLDEN_DIR, GoldenFixture, load_manifest, make, write_each
from .patches import BUGS

ZOO_DIR = GOLDEN_DIR / "zoo"
MANIFEST = ZOO_DIR / "zoo.toml"


@dataclass(frozen=True)
class ZooFixture(GoldenFixture):
    bug: str


def load_zoo(path: Path = MANIFEST) -> list[ZooFixture]:
    entries = load_manifest(path, ZooFixture)
    unknown = sorted({e.bug for e in entries} - set(BUGS))
    if unknown:
        raise DumpError(f"{path}: bugs not in parity.zoo.BUGS: {', '.join(unknown)}")
    return entries


def make_zoo(entry: ZooFixture, out_dir: Path = ZOO_DIR, golden_dir: Path = GOLDEN_DIR) -> Path:
    return make(entry, out_dir, golden_dir, plant=BUGS[entry.bug].patch, meta={"bug": entry.bug})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the zoo fixtures listed in golden/zoo/zoo.toml.")
    parser.add_argument("--only", help="regenerate only this file (NAME.h5 or zoo/NAME.h5) or bug")
    parser.add_argument("--out", type=Path, default=ZOO_DIR, help="output folder (default golden/zoo/)")
    args = parser.parse_args(argv)
    only = args.only.removeprefix("zoo/") if args.only else None
    try:
        entries = [e for e in load_zoo() if only in (None, e.file, e.bug)]
    except DumpError as error:
        print(f"regen: error: {error}", file=sys.stderr)
        return 2
    if not entries:
        print(f"regen: error: no fixture or bug named {args.only!r} in golden/zoo/zoo.toml", file=sys.stderr)
        return 2
    # ValueError: a patch that would plant nothing in the entry's model (patches.py).
    return write_each(entries, make_zoo, args.out, "zoo/", (DumpError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
