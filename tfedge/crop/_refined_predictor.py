"""The refined predictor: a box predictor and the refiner that looks again at its boxes.

A type every layer of :mod:`tfedge.crop` recognises (the boxnet helpers
unwrap it to its first stage, inference runs both models, predictor files
load a refiner's file as one), so it sits below them all and holds no
behaviour beyond its own checks. Why a refiner, and how it is trained:
:mod:`tfedge.crop._refine`; running one: :func:`tfedge.crop.refine_boxes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .._errors import TfedgeError
from .geometry import CropConfig

__all__ = ["RefinedPredictor", "REFINER_ROLE", "DEFAULT_REFINE_WINDOW"]

#: The ``role`` a refiner's sidecar records (its file loads as a :class:`RefinedPredictor`).
REFINER_ROLE = "refiner"
#: The refiner's window: the box's longer side grown by 25% (x1.25), at least 10% of the
#: image's short side, squared and slid inside the image.
DEFAULT_REFINE_WINDOW = CropConfig(margin=0.25, square=True, min_size=0.1)


@dataclass(frozen=True)
class RefinedPredictor:
    """A predictor and the refiner that looks again at its boxes (see :mod:`tfedge.crop._refine`)."""

    predictor: Any
    refiner: Any
    window: CropConfig = DEFAULT_REFINE_WINDOW
    passes: int = 2
    predictor_path: Optional[str] = None  # the file the predictor was loaded from, if any

    def __post_init__(self) -> None:
        if isinstance(self.passes, bool) or not isinstance(self.passes, int) or self.passes < 1:
            raise TfedgeError(f"passes must be a whole number >= 1, got {self.passes!r}")

    @property
    def name(self) -> str:
        return f"{self.predictor.name}+{self.refiner.name}x{self.passes}"
