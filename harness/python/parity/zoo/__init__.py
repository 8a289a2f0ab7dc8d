"""parity.zoo: the known bugs of Gemma-4 and OLMoE ports, plantable into a live HF model.

    from parity.zoo import BUGS
    with BUGS["gemma4_no_final_softcap"].patch(model):
        dump(model, ids, "buggy.h5")

Each Bug is an entry of the registry references/models/known_bugs.toml (parity.known_bugs():
title, story, source, where it lives, its zoo fixture, its first failures) with the patch of the
same name (patches.py). golden/zoo/ holds one fixture per bug (python -m parity.zoo.golden);
golden/zoo/README.md lists them (generated: python -m parity.zoo.table). The C++ reference
replays the same bugs as variants (references/models/variants.h).
"""

from .patches import BUGS, Bug

__all__ = ["BUGS", "Bug"]
