"""tfedge compress end to end on a tiny user folder dataset (slow: about 3 minutes on 2 cores).

The layout of issue #16's must-show: ``root/{train,test}/<class>/`` with a Pascal
VOC file next to every image, each split its own; no flags but the folder. The
same folder without boxes trains the predictor on Grad-CAM pseudo-boxes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfedge.compress import CompressConfig, DataSource, run_compress

pytestmark = pytest.mark.slow

CLASSES = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}
#: The smallest settings that still run every step (tiny models, one epoch each).
TINY = dict(model="resnet10_025", resolution=32, epochs=1, batch_size=16,
            predictor="boxnet_heat_r32_w4", predictor_epochs=1, crop_resolution=32,
            crop_copies=1, shrink_targets=(0.75,), shrink_finetune_epochs=0, shrink_only=False,
            tolerance_points=100.0, preview_count=6)


def make_voc_folder(root: Path, *, boxes: bool, train_per_class: int = 20,
                    test_per_class: int = 6, size: int = 32, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for name, colour in CLASSES.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image = rng.integers(0, 120, (size, size, 3), dtype=np.uint8)
                side = int(rng.integers(size // 4, size // 2))
                y0, x0 = (int(v) for v in rng.integers(0, size - side, 2))
                image[y0:y0 + side, x0:x0 + side] = colour
                stem = f"{name}_{i:03d}"
                Image.fromarray(image).save(folder / f"{stem}.png")
                if boxes:
                    (folder / f"{stem}.xml").write_text(
                        f"<annotation><size><width>{size}</width><height>{size}</height>"
                        f"<depth>3</depth></size><object><name>{name}</name><bndbox>"
                        f"<xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x0 + side - 1}</xmax>"
                        f"<ymax>{y0 + side - 1}</ymax></bndbox></object></annotation>")
    return root


def test_voc_folder_end_to_end_then_all_cached(tmp_path, capsys):
    from PIL import Image as PILImage

    from rpi_runner import EdgePipeline
    from tfedge.cli.convert import main as convert_main
    from tfedge.runtime import load_bundle
    from tfedge.runtime.evaluate import evaluate_bundle

    data = make_voc_folder(tmp_path / "mydata", boxes=True)
    run_dir = tmp_path / "run"
    # With the refiner: the crop classifier, the stages and the bundle use the refined boxes.
    first = run_compress(run_dir, DataSource(str(data)),
                         CompressConfig(**TINY, refiner=True, refiner_epochs=1))
    assert "box_labels" not in first.steps_run  # true boxes, found next to the images
    rows = {r["method"]: r for r in first.summary["ablation"]}
    assert set(rows) == {"base", "crop", "crop+shrink", "crop+shrink+cascade"}
    for row in rows.values():
        for key in ("top1", "macs", "int8_ms", "params", "int8_bytes"):
            assert isinstance(row[key], (int, float)) and np.isfinite(row[key]), (row, key)
    assert rows["crop+shrink"]["macs"] < rows["crop"]["macs"]
    assert rows["crop+shrink+cascade"]["int8_top1"] is not None
    assert first.summary["measured"]["box_iou"] is not None  # the test split has true boxes
    assert first.report.is_file() and first.bundle.is_file()
    assert convert_main(["verify", str(first.bundle)]) == 0
    assert "predictor + refiner" in rows["crop"]["note"]
    assert first.summary["measured"]["bundle"]["refiner_in_bundle"]
    capsys.readouterr()
    assert convert_main(["inspect", str(first.bundle)]) == 0
    assert "  refiner: refiner.tflite" in capsys.readouterr().out
    cascade = json.loads((run_dir / "cascade.json").read_text())
    assert cascade["version"] == 2 and cascade["predictor"]["refiner"]["model"] == "refiner.keras"
    # The device runner (no TensorFlow) takes the Python evaluation's decisions on every test
    # image, refiner included.
    test = DataSource(str(data)).load().test
    assert len(test) == 18
    with load_bundle(first.bundle) as bundle:
        assert bundle.version == 2 and bundle.refiner is not None
        python = evaluate_bundle(bundle, test)
        with EdgePipeline(bundle) as pipeline:
            runner = [pipeline.classify(np.asarray(PILImage.open(p).convert("RGB"))).class_index
                      for p in test.paths]
    differ = int(np.sum(np.asarray(runner) != python.predictions))
    assert differ == 0, f"runner and Python evaluation differ on {differ} of 18 test images"

    # Every artifact records the data and what it came from.
    side = json.loads((run_dir / "crop.keras.json").read_text())
    assert side["compress"]["data"]["source"] == str(data.resolve())
    assert side["compress"]["inputs"]["predictor"] == json.loads(
        (run_dir / "steps" / "predictor.json").read_text())["outputs"]["predictor.keras"]
    assert cascade["dataset"]["source"]["source"] == str(data.resolve())

    # Given only the folder, a second run reuses the recorded data and settings: all cached.
    again = run_compress(run_dir)
    assert again.steps_run == []
    assert [r["top1"] for r in again.summary["ablation"]] == \
        [r["top1"] for r in first.summary["ablation"]]

    # (A changed setting re-runs only its step and those after it: test_compress.py's step
    # cache test; a third run here would cost a conversion.)


def test_folder_without_boxes_uses_gradcam_boxes(tmp_path):
    data = make_voc_folder(tmp_path / "nobox", boxes=False)
    result = run_compress(tmp_path / "run", DataSource(str(data)), CompressConfig(**TINY))
    assert "box_labels" in result.steps_run
    counts = result.summary["steps"]["box_labels"]["counts"]
    assert counts == {"ground_truth": 0, "gradcam": 54}  # 90% of 60 (10% held out for val)
    assert result.summary["measured"]["box_iou"] is None  # no true boxes to score against
    assert {r["method"] for r in result.summary["ablation"]} >= {"base", "crop+shrink+cascade"}
