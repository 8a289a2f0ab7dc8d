"""Shared test helpers: the repo layout and config variants of the golden configs."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
GOLDEN = REPO / "golden"


def tiny_config(tmp_path: Path, base: str, **overrides) -> Path:
    """A config file: golden/configs/<base>.json with `overrides` applied."""
    fields = json.loads((GOLDEN / "configs" / f"{base}.json").read_text())
    fields.update(overrides)
    path = tmp_path / f"{base}_variant.json"
    path.write_text(json.dumps(fields))
    return path

PARITY = REPO / "build" / "parity"
