"""parity.zoo: the known bugs of Gemma-4 and OLMoE ports, plantable into a live HF model.

    from parity.zoo import BUGS
    with BUGS["gemma4_no_final_softcap"].patch(model):
        dump(model, ids, "buggy.h5")

golden/zoo/ holds one fixture per bug (python -m parity.zoo.golden); golden/zoo/README.md tells
each bug's story. The C++ reference replays the same bugs as variants (references/models/variants.h).
"""

from .patches import BUGS, Bug

__all__ = ["BUGS", "Bug"]
