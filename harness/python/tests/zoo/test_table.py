"""golden/zoo/README.md's list of bugs is what python -m parity.zoo.table generates from the
registry and the patches' docstrings, and the generator only ever touches its markers' span."""

from __future__ import annotations

import dataclasses

import pytest

from helpers import GOLDEN
from parity.zoo import BUGS
from parity.zoo.table import BEGIN, END, WIDTH, _paragraph, main, render, splice

README = GOLDEN / "zoo" / "README.md"


def test_the_committed_readme_is_what_the_generator_writes():
    current = README.read_text()
    assert splice(current, render(BUGS)) == current, "run: python -m parity.zoo.table golden/zoo/README.md"


def test_the_generated_list_has_every_bug_with_its_story_source_and_patch():
    block = render(BUGS)
    flat = " ".join(block.split())
    for number, bug in enumerate(BUGS.values(), 1):
        assert f"## {number}. `{bug.name}` (`{bug.fixture['file']}`)" in block
        assert " ".join(bug.story.split()) in flat and " ".join(bug.source.split()) in flat
        assert f"parity.zoo.patches.{bug.name}" in block


def test_a_patch_without_a_docstring_is_refused():
    def undocumented(model):
        pass
    bug = dataclasses.replace(next(iter(BUGS.values())), patch=undocumented)
    with pytest.raises(ValueError, match=f"the patch of {bug.name} has no docstring"):
        render({bug.name: bug})


def test_splice_replaces_only_between_the_markers_and_needs_both():
    readme = f"intro\n{BEGIN}\nold\n{END}\noutro\n"
    assert splice(readme, f"{BEGIN}\nnew\n{END}") == f"intro\n{BEGIN}\nnew\n{END}\noutro\n"
    for broken in ("intro\n", f"{BEGIN}\n", f"{END}\n{BEGIN}\n", f"{BEGIN}\n{END}\n{END}\n"):
        with pytest.raises(ValueError, match="bugs:begin"):
            splice(broken, "x")


def test_check_fails_on_a_stale_readme_and_the_generator_fixes_it(tmp_path, capsys):
    stale = tmp_path / "README.md"
    stale.write_text(f"# zoo\n\n{BEGIN}\nold\n{END}\n")
    assert main(["--check", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main([str(stale)]) == 0
    assert main(["--check", str(stale)]) == 0
    assert stale.read_text().startswith(f"# zoo\n\n{BEGIN}\n") and stale.read_text().endswith(f"{END}\n")
    (tmp_path / "plain.md").write_text("no markers\n")
    assert main([str(tmp_path / "plain.md")]) == 2


def test_a_wrapped_line_never_starts_a_markdown_block():
    # At WIDTH the 26th word would start a line with "- ", which Markdown reads as a list item.
    text = "abc " * 25 + "- y 1. z"
    assert [len(line) for line in _paragraph(text).splitlines()][0] == WIDTH - 5
    for line in _paragraph(text).splitlines()[1:]:
        assert not line.startswith(("- ", "1. ")), line
