"""Resolution surgery (being written)."""
from __future__ import annotations
def set_resolution(model, size):
    raise NotImplementedError
