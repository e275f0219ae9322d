"""Compound shrinking: physically remove channels, residual blocks and input pixels from a Keras model.

Width (:func:`find_channel_groups`, :func:`prune_channels`, :func:`shrink_width`),
depth (:func:`find_blocks`, :func:`drop_blocks`) and resolution
(:func:`set_resolution`) surgery work on Keras 3 functional models and return
new models; importance criteria (:data:`IMPORTANCES`) say which channels or
blocks to drop. The search and the baselines that use them are at the end.
"""

from __future__ import annotations

from ._groups import ChannelGroup, ChannelMember, ShrinkError, find_channel_groups
from ._surgery import prune_channels
from ._importance import (IMPORTANCES, block_importance, make_importance, round_keep,
                          shrink_width)
from ._depth import Block, drop_blocks, find_blocks
from ._resolution import allowed_sides, set_resolution, total_stride

__all__ = [
    "ChannelGroup", "ChannelMember", "ShrinkError", "find_channel_groups", "prune_channels",
    "IMPORTANCES", "make_importance", "round_keep", "shrink_width", "block_importance",
    "Block", "find_blocks", "drop_blocks", "set_resolution", "total_stride", "allowed_sides",
]

# --- search and baselines (B2) ---
try:
    from ._search import SearchConfig, SearchResult, compound_search
    from ._finetune import FinetuneConfig, finetune_with_distillation
    from ._latency import LatencyMeter
    from ._baselines import BASELINES, shrink_to_target
except ImportError:  # B2's modules not written yet: the surgery above still works
    pass
else:
    __all__ += ["SearchConfig", "SearchResult", "compound_search", "finetune_with_distillation",
                "FinetuneConfig", "BASELINES", "shrink_to_target", "LatencyMeter"]
