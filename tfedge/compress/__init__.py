"""``tfedge compress``: the whole EdgeCompress method as one resumable, cached pipeline.

    from tfedge.compress import DataSource, CompressConfig, run_compress, preset
    result = run_compress("runs/mine", DataSource("mydata"), CompressConfig(epochs=8))
    print(result.report, result.summary["ablation"])

    data, config = preset("quick")            # what 'tfedge demo --preset quick' runs
    run_compress("runs/demo", data, config)

Steps (each cached in the run folder, see :mod:`._steps`): base (trained or
given) -> Grad-CAM box labels (when the data has no boxes) -> foreground
predictor (+ refiner) -> crop-robust classifier -> compound shrinking into
cascade stages -> shrink-only ablation -> cascade calibration -> int8 bundle
checked against float -> verification -> measurements -> report (HTML, PNGs,
JSON). Importing this package does not import TensorFlow.
"""

from __future__ import annotations

from ._config import (CALIBRATION_MODES, PRESETS, CompressConfig, DataSource, data_fingerprint,
                      find_voc_boxes, preset)
from ._steps import RUN_FILE, STEP_NAMES, CompressResult, check_same_data, read_run, run_compress

__all__ = ["CALIBRATION_MODES", "PRESETS", "CompressConfig", "DataSource", "data_fingerprint",
           "find_voc_boxes", "preset", "RUN_FILE", "STEP_NAMES", "CompressResult",
           "check_same_data", "read_run", "run_compress"]
