"""Importance criteria (being written)."""
from __future__ import annotations
IMPORTANCES: dict = {}
def make_importance(name_or_callable):
    raise NotImplementedError
def round_keep(size, ratio, round_to=8):
    raise NotImplementedError
def shrink_width(model, keep_ratio, **kwargs):
    raise NotImplementedError
def block_importance(model, blocks, calibration):
    raise NotImplementedError
