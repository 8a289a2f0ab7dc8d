"""The zoo fixtures: one golden fixture per known bug, made by a real HF model with the bug planted.

    python -m parity.zoo.golden --golden golden [--only NAME] [--out DIR]     # ci/regen_golden runs it

The list is the registry's (references/models/known_bugs.toml, through parity.zoo.BUGS): each
bug's [bug.fixture] (file relative to golden/zoo/, config relative to golden/, seed, batch,
seq_len, dtype). Each is made as golden/fixtures.toml's are (parity.dump.golden.make) inside the
bug's patch, with /meta `bug` = its name; its weights and /meta/config are the model's true ones.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from ..dump.errors import DumpError
from ..dump.golden import GoldenFixture, golden_arguments, make, write_each
from .patches import BUGS


@dataclass(frozen=True, kw_only=True)
class ZooFixture(GoldenFixture):
    bug: str


def load_zoo() -> list[ZooFixture]:
    """Every bug's zoo fixture, in the registry's order."""
    # GoldenFixture(**fixture) takes exactly the registry's fixture fields: one it does not know is
    # a TypeError here rather than a field silently ignored.
    return [ZooFixture(bug=bug.name, **bug.fixture) for bug in BUGS.values()]


def make_zoo(entry: ZooFixture, out_dir: Path, golden_dir: Path) -> Path:
    """Writes the zoo fixture of entry.bug into out_dir (golden_dir: the golden/ folder its config is in)."""
    return make(entry, out_dir, golden_dir, plant=BUGS[entry.bug].patch, meta={"bug": entry.bug})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the zoo fixture of every known bug "
                                                 "(references/models/known_bugs.toml).")
    parser.add_argument("--only", help="regenerate only this file (NAME.h5 or zoo/NAME.h5) or bug")
    golden_arguments(parser, "output folder (default: the zoo/ folder of --golden)")
    args = parser.parse_args(argv)
    only = args.only.removeprefix("zoo/") if args.only else None
    entries = [e for e in load_zoo() if only in (None, e.file, e.bug)]
    if not entries:
        print(f"regen: error: no zoo fixture or bug named {args.only!r} in references/models/known_bugs.toml",
              file=sys.stderr)
        return 2
    # ValueError: a patch that would plant nothing in the entry's model (patches.py).
    return write_each(entries, lambda entry, out: make_zoo(entry, out, args.golden), args.out or args.golden / "zoo",
                      "zoo/", (DumpError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
