"""The known-bug registry (references/models/known_bugs.toml) as Python sees it: parity.known_bugs()
carries every field of every entry the C++ parser read, parity.zoo.BUGS binds each entry to the
patch of the same name and refuses any mismatch, and the zoo cases still agree with it."""

from __future__ import annotations

import tomllib

import pytest

import parity
from helpers import REPO, GOLDEN
from parity.zoo import cast_points, patches
from parity.zoo.patches import BUGS, Bug, bind

REGISTRY = REPO / "references" / "models" / "known_bugs.toml"


def test_known_bugs_is_the_registry_file_field_for_field():
    """What C++ parsed and the binding handed over is what the file says (tomllib), every field."""
    on_disk = {entry["name"]: entry for entry in tomllib.loads(REGISTRY.read_text())["bug"]}
    ours = parity.known_bugs()
    assert sorted(b["name"] for b in ours) == sorted(on_disk)
    for bug in ours:
        assert bug == on_disk[bug["name"]], bug["name"]
    # Fresh dicts each call: a caller mutating one cannot change the registry.
    ours[0]["title"] = "changed"
    assert parity.known_bugs()[0]["title"] != "changed"


def test_bugs_bind_every_registry_entry_to_its_patch_in_registry_order():
    entries = parity.known_bugs()
    assert list(BUGS) == [e["name"] for e in entries]
    for entry in entries:
        bug = BUGS[entry["name"]]
        module = cast_points if entry["fixture"]["dtype"] == "bfloat16" else patches  # the bf16 cast-point bugs
        assert bug.patch is getattr(module, entry["name"]), "a patch is the function named like its entry"
        assert {k: getattr(bug, k) for k in entry} == entry
    assert set(patches._PATCHES) == set(BUGS)


def test_bind_refuses_an_entry_without_a_patch_and_a_patch_without_an_entry():
    entries = parity.known_bugs()
    with pytest.raises(RuntimeError, match="registry entries without a patch in parity/zoo/patches.py: "
                                           "gemma4_no_final_softcap"):
        bind(entries, {k: v for k, v in patches._PATCHES.items() if k != "gemma4_no_final_softcap"})
    with pytest.raises(RuntimeError, match=r"patches without a \[\[bug\]\] entry in references/models/known_bugs.toml: "
                                           "gemma4_new_bug"):
        bind(entries, {**patches._PATCHES, "gemma4_new_bug": patches.gemma4_no_final_softcap})
    broken = [dict(e, lives_at="model\\.layers\\.(0") if e["name"] == "gemma4_layer_scalar_ignored" else e
              for e in entries]
    with pytest.raises(RuntimeError, match="bug 'gemma4_layer_scalar_ignored': lives_at is not a regex"):
        bind(broken, patches._PATCHES)
    # A field the Python side does not know (C++ added one without the Bug dataclass) is refused too.
    with pytest.raises(TypeError, match="unexpected keyword"):
        bind([dict(entries[0], new_field="x")], {entries[0]["name"]: patches._PATCHES[entries[0]["name"]]})
    assert isinstance(bind(entries, patches._PATCHES)["gemma4_no_final_softcap"], Bug)


@pytest.mark.parametrize("name", list(BUGS))
def test_the_zoo_case_agrees_with_the_registry(name):
    """cases/zoo/<name>.toml gates the registry's fixture and names its bug, so its first failing
    hooks and diagnosis are the registry's (the zoo_case.<name> ctest then checks the gate fails there)."""
    bug = BUGS[name]
    case = tomllib.loads((REPO / "cases" / "zoo" / f"{name}.toml").read_text())
    assert (REPO / "cases" / "zoo" / case["fixture"]).resolve() == (GOLDEN / "zoo" / bug.fixture["file"]).resolve()
    assert case["expect"] == {"bug": name}
