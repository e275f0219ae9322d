"""One view of a Keras 3 functional model (layers, edges from ``get_config``, shapes).

MAC counting, channel shrinking and (where it can) QAT rebuilding stand on
:class:`ModelGraph`; see :mod:`tfedge.graph._graph`.
"""

from __future__ import annotations

from ._graph import ModelGraph, Node, TensorRef, flatten_model, rewire

__all__ = ["ModelGraph", "Node", "TensorRef", "flatten_model", "rewire"]
