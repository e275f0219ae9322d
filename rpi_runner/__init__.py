"""tfedge-pi: the on-device runner of tfedge bundles (Raspberry Pi, or any computer).

Imports only numpy, pillow, a LiteRT interpreter (``ai-edge-litert``, or
``tflite-runtime``) and tfedge's TensorFlow-free device contract
(:mod:`tfedge.runtime`, and nothing else of tfedge): never TensorFlow. OpenCV (video
files, USB cameras) and picamera2 (the Pi camera) are imported only when such
a source is chosen.

    from rpi_runner import EdgePipeline, decode_image
    with EdgePipeline("mybundle.zip") as pipe:
        print(pipe.classify(decode_image("cat.jpg")).label)

The command line is ``tfedge-pi`` (:mod:`rpi_runner.cli`).
"""

from __future__ import annotations

from tfedge.runtime.decision import (StageDecision, confidence_score, decide_stage,
                                     decision_logits, passes_threshold, softmax)

from ._pipeline import (BOX_DECODERS, BundleEvaluation, EdgePipeline, FrameResult, FrameTrace,
                        StageTrace, agreement, decode_box, evaluate_bundle,
                        predictor_values)
from ._sources import (Frame, FrameError, FrameSource, SourceSpec, decode_image, open_source,
                       parse_sources)
from .cli import RunOptions, RunResult, main, run

__all__ = [
    "EdgePipeline", "FrameResult", "FrameTrace", "StageTrace", "evaluate_bundle",
    "BundleEvaluation", "agreement", "decode_box", "predictor_values", "BOX_DECODERS",
    "StageDecision", "decide_stage", "decision_logits", "softmax", "confidence_score",
    "passes_threshold",
    "Frame", "FrameError", "FrameSource", "SourceSpec", "decode_image", "open_source",
    "parse_sources",
    "RunOptions", "RunResult", "run", "main",
]
