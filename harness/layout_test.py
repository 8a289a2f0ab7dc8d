"""The layout is the architecture (docs/architecture.md), checked on the sources' #include lines:
references/ is pure math (it includes nothing of the harness or the reports, and no HDF5), the
harness library includes no CLI or report header, and no header includes itself through others."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import REPO

ROOTS = [REPO / "harness", REPO / "references", REPO / "reports"]  # the include directories
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SOURCES = [p for root in ROOTS for p in root.rglob("*") if p.suffix in (".h", ".cpp")]


def resolve(source: Path, name: str) -> Path | None:
    """The project file an #include "name" in `source` reads (its own folder first), or None (generated or external)."""
    for base in [source.parent, *ROOTS]:
        if (base / name).is_file():
            return (base / name).resolve()
    return None


def includes(source: Path) -> list[Path]:
    return [p for p in (resolve(source, n) for n in INCLUDE.findall(source.read_text())) if p is not None]


def under(path: Path, *folders: str) -> bool:
    return any(path.is_relative_to(REPO / f) for f in folders)


def test_the_sources_are_found():
    assert len(SOURCES) > 100 and any(p.name == "run_case.h" for p in SOURCES)


def test_references_are_pure_math():
    for source in (p for p in SOURCES if under(p, "references")):
        text = source.read_text()
        assert "hdf5.h" not in text, f"{source} reads HDF5: file I/O belongs in harness/io"
        for target in includes(source):
            assert under(target, "references"), f"{source} includes {target}: references/ depend on nothing above them"


def test_the_harness_library_includes_no_front_end():
    # bench/ and fuzz/ are drivers, like the CLI: the fuzz targets feed the HTML renderer too.
    library = [p for p in SOURCES if under(p, "harness") and not under(p, "harness/cli", "harness/python", "harness/bench",
                                                                       "harness/fuzz")
               and not p.name.endswith("_test.cpp")]
    assert library
    for source in library:
        for target in includes(source):
            assert not under(target, "harness/cli", "harness/python", "reports"), \
                f"{source} includes {target}: the library must not depend on a front end or a renderer"


def test_no_include_cycle():
    graph = {p.resolve(): includes(p) for p in SOURCES if p.suffix == ".h"}
    state: dict[Path, int] = {}  # 1: on the current path, 2: done

    def visit(node: Path, path: list[Path]) -> None:
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                raise AssertionError("include cycle: " + " -> ".join(str(p.relative_to(REPO)) for p in cycle))
            if state.get(nxt) is None:
                visit(nxt, path + [nxt])
        state[node] = 2

    for header in graph:
        if state.get(header) is None:
            visit(header, [header])
