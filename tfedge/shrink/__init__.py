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

from ._search import (DIMENSIONS, WIDTH_ALLOCATIONS, SearchConfig, SearchResult, Slimming,
                      compound_search)
from ._finetune import FinetuneConfig, finetune_with_distillation
from ._latency import TIMING_INVOKES, TIMING_ROUNDS, LatencyMeter, time_interleaved
from ._baselines import BASELINES, METHODS, run_shrink, shrink_to_target

__all__ = [
    "ChannelGroup", "ChannelMember", "ShrinkError", "find_channel_groups", "prune_channels",
    "IMPORTANCES", "make_importance", "round_keep", "shrink_width", "block_importance",
    "Block", "find_blocks", "drop_blocks", "set_resolution", "total_stride", "allowed_sides",
    # the search, its fine-tune, the baselines in the same harness, and int8 timing
    "SearchConfig", "SearchResult", "compound_search", "Slimming", "WIDTH_ALLOCATIONS",
    "DIMENSIONS",
    "finetune_with_distillation",
    "FinetuneConfig", "BASELINES", "METHODS", "shrink_to_target", "run_shrink",
    "LatencyMeter", "time_interleaved", "TIMING_ROUNDS", "TIMING_INVOKES",
]
