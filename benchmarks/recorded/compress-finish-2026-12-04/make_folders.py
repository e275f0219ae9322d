"""The two user folders of NOTES.md: 3 colour classes, 64-px PNGs, train/ and test/ splits
(60 and 70 images per class), Pascal VOC .xml next to each image in mydata/, none in nobox/.
Run from the repository root: .venv/bin/python benchmarks/recorded/compress-finish-2026-12-04/make_folders.py OUT"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from test_compress_e2e import make_voc_folder  # noqa: E402

out = Path(sys.argv[1])
make_voc_folder(out / "mydata", boxes=True, train_per_class=60, test_per_class=70, size=64)
make_voc_folder(out / "nobox", boxes=False, train_per_class=60, test_per_class=70, size=64)
