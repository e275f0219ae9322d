"""Class-folder datasets with VOC XML or CSV boxes: layouts, the box convention, every error."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfedge._errors import DatasetError
from tfedge.data._folders import load_class_folders, load_image_dataset
from tfedge.data._types import FileSplit


def _image(path: Path, width: int = 10, height: int = 20, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(path, format=fmt)
    return path


def _voc(path: Path, objects: list[tuple], size: tuple[int, int] | None = (10, 20),
         extra: str = "") -> Path:
    """Write a VOC file; ``objects`` holds (name, xmin, ymin, xmax, ymax) with any text values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size_xml = "" if size is None else (f"<size><width>{size[0]}</width><height>{size[1]}</height>"
                                        "<depth>3</depth></size>")
    objs = "".join(f"<object><name>{n}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
                   f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
                   for n, x0, y0, x1, y1 in objects)
    path.write_text(f"{extra}<annotation><filename>{path.stem}</filename>{size_xml}{objs}</annotation>")
    return path


def _raises(match: str):
    """pytest.raises for a DatasetError; the message must also be a single line."""
    return pytest.raises(DatasetError, match=match)


def _one_line(exc_info) -> None:
    assert "\n" not in str(exc_info.value)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/{dog,cat,bird}/ with images, a non-image, a hidden file and a nested folder."""
    root = tmp_path / "data"
    _image(root / "dog" / "d2.png")
    _image(root / "dog" / "d1.JPEG", fmt="JPEG")
    _image(root / "cat" / "c1.bmp", fmt="BMP")
    _image(root / "cat" / "c2.webp", fmt="WEBP")
    _image(root / "bird" / "b1.jpg", fmt="JPEG")
    (root / "dog" / "notes.txt").write_text("not an image")
    _image(root / "dog" / ".hidden.png")
    _image(root / "dog" / "nested" / "deep.png")
    (root / ".cache").mkdir()
    return root


# --------------------------------------------------------------------------- folders


def test_classes_sorted_labels_and_extensions(tree, caplog):
    with caplog.at_level(logging.WARNING):
        split = load_class_folders(tree)
    assert isinstance(split, FileSplit)
    assert split.class_names == ("bird", "cat", "dog")
    names = [Path(p).name for p in split.paths]
    assert names == ["b1.jpg", "c1.bmp", "c2.webp", "d1.JPEG", "d2.png"]
    np.testing.assert_array_equal(split.labels, [0, 1, 1, 2, 2])
    assert split.labels.dtype == np.int32
    assert split.boxes is None
    assert all(Path(p).is_absolute() for p in split.paths)
    assert "skipped 1 sub-folder" in caplog.text  # nested/deep.png is not loaded


def test_extensions_filter(tree):
    split = load_class_folders(tree, extensions=("png", ".JPG", "bmp", "webp"),
                               class_names=("bird", "dog", "cat"))
    # .JPEG is not .JPG: d1.JPEG is left out.
    assert [Path(p).name for p in split.paths] == ["b1.jpg", "c1.bmp", "c2.webp", "d2.png"]
    np.testing.assert_array_equal(split.labels, [0, 2, 2, 1])
    with _raises(r"cat: class folder holds no images with extension \.png, \.jpg"):
        load_class_folders(tree, extensions=("png", ".JPG"))


def test_class_names_order_and_missing_class(tmp_path):
    root = tmp_path / "val"
    _image(root / "b" / "x.png")
    split = load_class_folders(root, class_names=["c", "b", "a"])
    assert split.class_names == ("c", "b", "a")
    np.testing.assert_array_equal(split.labels, [1])
    with _raises(r"folder\(s\) b are not among the 2 class names"):
        load_class_folders(root, class_names=["a", "c"])
    with _raises("more than once"):
        load_class_folders(root, class_names=["b", "b"])


def test_folder_errors(tmp_path):
    with _raises(f"{re.escape(str(tmp_path / 'missing'))}: dataset folder not found") as e:
        load_class_folders(tmp_path / "missing")
    _one_line(e)
    afile = _image(tmp_path / "file.png")
    with _raises("not a folder"):
        load_class_folders(afile)
    loose = tmp_path / "loose"
    _image(loose / "a.png")
    with _raises(r"no class folders found \(it holds 1 images directly"):
        load_class_folders(loose)
    empty = tmp_path / "empty"
    (empty / "cat").mkdir(parents=True)
    _image(empty / "dog" / "d.png")
    (empty / "cat" / "readme.txt").write_text("x")
    with _raises(r"cat: class folder holds no images with extension .jpg"):
        load_class_folders(empty)
    with _raises("not a file extension"):
        load_class_folders(empty, extensions=[""])


def test_image_dataset_split_layout(tmp_path):
    root = tmp_path / "ds"
    _image(root / "train" / "cat" / "c1.png")
    _image(root / "train" / "dog" / "d1.png")
    _image(root / "val" / "dog" / "d2.png")
    _image(root / "val" / "emu" / "e1.png")
    splits = load_image_dataset(root)
    assert set(splits) == {"train", "val"}
    # One label order for all splits: the union of their class folders.
    assert splits["train"].class_names == splits["val"].class_names == ("cat", "dog", "emu")
    np.testing.assert_array_equal(splits["train"].labels, [0, 1])
    np.testing.assert_array_equal(splits["val"].labels, [1, 2])


def test_image_dataset_single_tree_and_mixed_layout(tree, tmp_path):
    splits = load_image_dataset(tree)
    assert list(splits) == ["train"] and len(splits["train"]) == 5
    _image(tmp_path / "mixed" / "train" / "a" / "x.png")
    _image(tmp_path / "mixed" / "cat" / "y.png")
    with _raises(r"holds split folders \(train\) and other folders \(cat\)"):
        load_image_dataset(tmp_path / "mixed")


# --------------------------------------------------------------------------- VOC boxes


def test_voc_box_convention_exact(tmp_path):
    root = tmp_path / "data"
    _image(root / "cat" / "c1.png", width=10, height=20)
    _voc(tmp_path / "boxes" / "cat" / "c1.xml", [("cat", 2, 4, 5, 7)])
    split = load_class_folders(root, boxes=tmp_path / "boxes")
    # Inclusive 0-based pixels: rows 4..7 of 20, columns 2..5 of 10.
    np.testing.assert_array_equal(split.boxes, np.float32([[4 / 20, 2 / 10, 8 / 20, 6 / 10]]))
    assert split.boxes.dtype == np.float32


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_boxes_follows_pillows_exif_transpose(orientation, tmp_path):
    from PIL import ImageOps

    from tfedge.data._boxes import orient_boxes

    stored = np.zeros((20, 30), np.uint8)
    stored[3:9, 5:17] = 255                                      # rows 3..8, columns 5..16
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "o.png", exif=exif.tobytes())
    with Image.open(tmp_path / "o.png") as image:
        upright = np.asarray(ImageOps.exif_transpose(image))
    rows, cols = np.flatnonzero(upright.max(axis=1)), np.flatnonzero(upright.max(axis=0))
    h, w = upright.shape
    expected = [rows[0] / h, cols[0] / w, (rows[-1] + 1) / h, (cols[-1] + 1) / w]
    box = orient_boxes(np.float32([[3 / 20, 5 / 30, 9 / 20, 17 / 30]]), orientation)
    np.testing.assert_allclose(box[0], expected, atol=1e-6)


def _turned_jpeg(path: Path, orientation: int = 6) -> Path:
    """A 30x20 (WxH) stored JPEG, red in its top-left 10x5 corner, with an EXIF orientation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((20, 30, 3), 40, np.uint8)
    pixels[:5, :10] = (250, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, quality=95, exif=exif.tobytes())
    return path


def test_boxes_of_exif_turned_images_turn_with_the_decoded_image(tmp_path):
    from tfedge.data._tfdata import read_file_image

    root = tmp_path / "data"
    _turned_jpeg(root / "cat" / "stored.jpg")
    _turned_jpeg(root / "cat" / "upright.jpg")
    # One box file in the stored frame (size 30x20), one drawn on the upright image (20x30).
    _voc(tmp_path / "boxes" / "cat" / "stored.xml", [("cat", 0, 0, 9, 4)], size=(30, 20))
    _voc(tmp_path / "boxes" / "cat" / "upright.xml", [("cat", 15, 0, 19, 9)], size=(20, 30))
    split = load_class_folders(root, boxes=tmp_path / "boxes")
    from tfedge._image import upright_size

    image = read_file_image(split.paths[0])
    assert image.shape == (30, 20, 3)                            # decoded upright, as tfedge-pi
    assert upright_size(split.paths[0]) == (30, 20)
    red = np.argwhere((image[..., 0] > 180) & (image[..., 1] < 90))
    (y0, x0), (y1, x1) = red.min(axis=0), red.max(axis=0) + 1
    truth = np.float32([y0 / 30, x0 / 20, y1 / 30, x1 / 20])     # the red corner, upright
    for box in split.boxes:
        np.testing.assert_allclose(box, truth, atol=0.06)
    _voc(tmp_path / "boxes" / "cat" / "upright.xml", [("cat", 0, 0, 9, 4)], size=(25, 20))
    with _raises(r"states image size 25x20 but upright.jpg is 30x20 \(20x30 upright, by its "
                 r"EXIF orientation\)"):
        load_class_folders(root, boxes=tmp_path / "boxes")


def test_training_decodes_like_the_runner_and_names_unreadable_files(tmp_path):
    from rpi_runner._sources import decode_image
    from tfedge.cli._shell import _unreadable_image_line
    from tfedge.data._tfdata import make_dataset, read_file_image

    root = tmp_path / "data"
    palette = Image.fromarray(np.uint8([[[255, 0, 0], [0, 0, 255]]] * 4)).convert(
        "P", palette=Image.Palette.ADAPTIVE, colors=2)
    (root / "a").mkdir(parents=True)
    palette.save(root / "a" / "palette.bmp")
    _turned_jpeg(root / "a" / "turned.jpg")
    split = load_class_folders(root)
    for path in split.paths:
        np.testing.assert_array_equal(read_file_image(path), decode_image(path))
    assert tuple(read_file_image(root / "a" / "palette.bmp")[0, 0]) == (255, 0, 0)
    cut = root / "a" / "zcut.jpg"
    data = (root / "a" / "turned.jpg").read_bytes()
    cut.write_bytes(data[:len(data) // 3])
    split = load_class_folders(root)
    with pytest.raises(Exception) as exc:
        for _ in make_dataset(split, resolution=8, batch_size=4, training=False):
            pass
    line = _unreadable_image_line(exc.value)
    assert line is not None and line.startswith("unreadable training image: ")
    assert str(cut) in line and "truncated" in line and "\n" not in line
    from tfedge.data._tfdata import unreadable_images

    seen = []
    bad = unreadable_images(split, workers=2, progress=lambda done, total: seen.append(done))
    assert [path for path, _ in bad] == [str(cut)] and "truncated" in bad[0][1]
    assert seen[-1] == len(split) == 3


def test_flat_voc_file_matching_two_images_is_refused(tmp_path):
    for name in ("cat", "dog"):
        _image(tmp_path / "data" / name / "001.png")
    _voc(tmp_path / "flat" / "001.xml", [("cat", 0, 0, 4, 4)])
    with _raises(r"001.xml: matches both .*cat/001.png and .*dog/001.png .*<class>/<stem>.xml") \
            as exc:
        load_class_folders(tmp_path / "data", boxes=tmp_path / "flat")
    _one_line(exc)
    _voc(tmp_path / "per_class" / "cat" / "001.xml", [("cat", 0, 0, 4, 4)])
    _voc(tmp_path / "per_class" / "dog" / "001.xml", [("dog", 1, 1, 4, 4)])
    split = load_class_folders(tmp_path / "data", boxes=tmp_path / "per_class")
    assert split.boxes[0][0] == 0 and split.boxes[1][0] == np.float32(1 / 20)


def test_voc_boxes_overrunning_the_edge_are_clipped_and_one_pixel_boxes_kept(tmp_path, caplog):
    root = tmp_path / "data"
    _image(root / "cat" / "a.png", width=10, height=20)
    _image(root / "cat" / "b.png", width=10, height=20)
    _voc(tmp_path / "boxes" / "cat" / "a.xml", [("cat", -2, 3, 12, 7)])   # ImageNet has some
    _voc(tmp_path / "boxes" / "cat" / "b.xml", [("cat", 4, 6, 4, 6)])     # one pixel
    with caplog.at_level(logging.WARNING, logger="tfedge.data._folders"):
        split = load_class_folders(root, boxes=tmp_path / "boxes")
    np.testing.assert_allclose(split.boxes[0], [3 / 20, 0, 8 / 20, 1])
    np.testing.assert_allclose(split.boxes[1], [6 / 20, 4 / 10, 7 / 20, 5 / 10])
    assert "a.xml" in caplog.text and "overruns the 10x20 image: clipped" in caplog.text


def test_voc_layouts_choice_of_box_and_unknown_rows(tmp_path, caplog):
    root = tmp_path / "data"
    for name in ("a", "b", "c", "d", "e"):
        _image(root / "cat" / f"{name}.png", width=10, height=20)
    boxes = tmp_path / "boxes"
    _voc(boxes / "cat" / "a.xml", [("cat", 0, 0, 1, 1), ("cat", 0, 0, 4, 9)])   # largest wins
    _voc(boxes / "b.xml", [("cat", 1, 1, 2, 2), ("dog", 0, 0, 9, 19)])          # flat; own class wins
    _voc(boxes / "c.xml", [], size=None)                                        # no object: unknown
    _voc(boxes / "d.xml", [("x", 0, 0, 9, 19)], size=None)                      # size read from image
    _voc(boxes / "unused.xml", [("x", 0, 0, 1, 1)])
    with caplog.at_level(logging.INFO, logger="tfedge.data._folders"):
        split = load_class_folders(root, boxes=f"voc:{boxes}")
    np.testing.assert_allclose(split.boxes[0], [0, 0, 10 / 20, 5 / 10])
    np.testing.assert_allclose(split.boxes[1], [1 / 20, 1 / 10, 3 / 20, 3 / 10])
    assert np.isnan(split.boxes[2]).all()
    np.testing.assert_allclose(split.boxes[3], [0, 0, 1, 1])
    assert np.isnan(split.boxes[4]).all()  # e.png has no box file
    assert "3 with a box, 2 without" in caplog.text
    assert "1 box file(s)/row(s) matched no image" in caplog.text


def test_voc_class_folder_file_beats_flat_file(tmp_path):
    root = tmp_path / "data"
    _image(root / "cat" / "a.png")
    _voc(tmp_path / "boxes" / "cat" / "a.xml", [("cat", 0, 0, 4, 4)])
    _voc(tmp_path / "boxes" / "a.xml", [("cat", 0, 0, 9, 19)])
    split = load_class_folders(root, boxes=tmp_path / "boxes")
    np.testing.assert_allclose(split.boxes[0], [0, 0, 5 / 20, 5 / 10])


@pytest.mark.parametrize("objects, size, extra, match", [
    ([("cat", 0, 0, "abc", 5)], (10, 20), "", r"<xmax> 'abc' is not a number: fix or delete this file"),
    ([("cat", 0, 0, "", 5)], (10, 20), "", r"<xmax> is missing"),
    ([("cat", 0, 0, "inf", 5)], (10, 20), "", r"<xmax> 'inf' is not a finite number"),
    ([("cat", 6, 0, 5, 5)], (10, 20), "", r"box x 6\.\.5, y 0\.\.5 is empty"),
    ([("cat", 0, 6, 5, 2)], (10, 20), "", r"is empty \(min must not be above max\)"),
    ([("cat", 10, 0, 12, 5)], (10, 20), "", r"lies outside the 10x20 image"),
    ([("cat", 0, -5, 5, -1)], (10, 20), "", r"lies outside the 10x20 image"),
    ([("cat", 0, 0, 5, 5)], (12, 20), "", r"states image size 12x20 but a\.png is 10x20"),
    ([("cat", 0, 0, 5, 5)], (10.5, 20), "", r"not a whole number of pixels"),
    ([("cat", 0, 0, 5, 5)], (10, 20),
     '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>',
     r"DOCTYPE/ENTITY declarations are not allowed"),
    ([("cat", 0, 0, 5, 5)], (10, 20), '<!DOCTYPE annotation SYSTEM "file:///etc/passwd">',
     r"DOCTYPE/ENTITY declarations are not allowed"),
])
def test_voc_malformed(tmp_path, objects, size, extra, match):
    root = tmp_path / "data"
    _image(root / "cat" / "a.png", width=10, height=20)
    xml = _voc(tmp_path / "boxes" / "cat" / "a.xml", objects, size=size, extra=extra)
    with _raises(re.escape(str(xml)) + ": .*" + match) as e:
        load_class_folders(root, boxes=tmp_path / "boxes")
    _one_line(e)


@pytest.mark.parametrize("text, match", [
    ("<annotation><object><name>x</name>", r"malformed XML"),
    ("", r"malformed XML"),
    ("<annotation><object><name>cat</name></object></annotation>", r"an <object> has no <bndbox>"),
    ("<notvoc/>", r"root element is <notvoc>, expected <annotation>"),
    ('<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/hostname">]><annotation>&e;</annotation>',
     r"XML DOCTYPE/ENTITY declarations are not allowed"),
])
def test_voc_malformed_documents(tmp_path, text, match):
    root = tmp_path / "data"
    _image(root / "cat" / "a.png")
    xml = tmp_path / "boxes" / "a.xml"
    xml.parent.mkdir()
    xml.write_text(text)
    with _raises(re.escape(str(xml)) + ": " + match) as e:
        load_class_folders(root, boxes=tmp_path / "boxes")
    _one_line(e)


def test_voc_entity_in_utf16_is_still_refused(tmp_path):
    root = tmp_path / "data"
    _image(root / "cat" / "a.png")
    xml = tmp_path / "boxes" / "a.xml"
    xml.parent.mkdir()
    doc = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY e "x">]><annotation/>'
    xml.write_bytes(doc.encode("utf-16"))
    with _raises("DOCTYPE/ENTITY declarations are not allowed"):
        load_class_folders(root, boxes=tmp_path / "boxes")


def test_voc_size_check_can_be_skipped(tmp_path):
    root = tmp_path / "data"
    _image(root / "cat" / "a.png", width=10, height=20)
    _voc(tmp_path / "boxes" / "a.xml", [("cat", 0, 0, 9, 9)], size=(20, 20))
    split = load_class_folders(root, boxes=tmp_path / "boxes", check_image_sizes=False)
    np.testing.assert_allclose(split.boxes[0], [0, 0, 0.5, 0.5])  # normalised by the stated size


def test_box_source_errors(tmp_path, tree):
    with _raises(r"no such file or directory"):
        load_class_folders(tree, boxes=tmp_path / "nope")
    with _raises(r"VOC box directory not found"):
        load_class_folders(tree, boxes=f"voc:{tmp_path / 'nope'}")
    (tmp_path / "boxes.json").write_text("{}")
    with _raises(r"cannot tell the box format"):
        load_class_folders(tree, boxes=tmp_path / "boxes.json")
    (tmp_path / "emptyboxes").mkdir()
    with _raises(r"no \.xml box files found"):
        load_class_folders(tree, boxes=tmp_path / "emptyboxes")
    _voc(tmp_path / "other" / "zzz.xml", [("cat", 0, 0, 1, 1)])
    with _raises(r"no box matched any of the 5 images"):
        load_class_folders(tree, boxes=tmp_path / "other")


def test_image_dataset_boxes_per_split(tmp_path):
    root = tmp_path / "ds"
    _image(root / "train" / "cat" / "t1.png")
    _image(root / "val" / "cat" / "v1.png")
    _voc(tmp_path / "train_boxes" / "cat" / "t1.xml", [("cat", 0, 0, 4, 9)])
    _voc(tmp_path / "val_boxes" / "v1.xml", [("cat", 5, 10, 9, 19)])
    splits = load_image_dataset(root, boxes={"train": tmp_path / "train_boxes",
                                             "val": f"voc:{tmp_path / 'val_boxes'}"})
    np.testing.assert_allclose(splits["train"].boxes, [[0, 0, 0.5, 0.5]])
    np.testing.assert_allclose(splits["val"].boxes, [[0.5, 0.5, 1, 1]])
    only_train = load_image_dataset(root, boxes={"train": tmp_path / "train_boxes"})
    assert np.isnan(only_train["val"].boxes).all()  # same form in every split
    with _raises(r"boxes names split\(s\) test"):
        load_image_dataset(root, boxes={"test": tmp_path / "train_boxes"})
    with _raises(r"no box matched any image"):
        load_image_dataset(root, boxes={"train": tmp_path / "val_boxes"})


# --------------------------------------------------------------------------- CSV boxes


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_boxes(tmp_path):
    root = tmp_path / "data"
    _image(root / "cat" / "a.png", width=10, height=20)
    _image(root / "cat" / "b.png", width=10, height=20)
    _image(root / "dog" / "c.png", width=10, height=20)
    _image(root / "dog" / "d.png", width=10, height=20)
    csv_file = _csv(tmp_path / "boxes.csv",
                    "filename,xmin,ymin,xmax,ymax,label\n"
                    "cat/a.png,2,4,5,7,cat\n"          # relative path; the exact convention
                    "b.png,0,0,1,1,cat\n"              # bare name, two boxes: largest wins
                    "b.png,0,0,9,9,cat\n"
                    "\n"
                    "c.png,0,0,9,19,person\n"          # own class (dog) wins over a larger box
                    "c.png,1,1,2,2,dog\n"
                    "elsewhere.png,0,0,1,1,cat\n")
    split = load_class_folders(root, boxes=csv_file)
    np.testing.assert_array_equal(split.boxes[0], np.float32([4 / 20, 2 / 10, 8 / 20, 6 / 10]))
    np.testing.assert_allclose(split.boxes[1], [0, 0, 0.5, 1.0])
    np.testing.assert_allclose(split.boxes[2], [1 / 20, 1 / 10, 3 / 20, 3 / 10])
    assert np.isnan(split.boxes[3]).all()


def test_csv_with_sizes_and_paths_relative_to_dataset_root(tmp_path):
    root = tmp_path / "ds"
    _image(root / "train" / "cat" / "a.png", width=10, height=20)
    _image(root / "val" / "cat" / "a.png", width=10, height=20)
    csv_file = _csv(tmp_path / "b.csv", "FileName, xmin, ymin, xmax, ymax, width, height\n"
                                        "train/cat/a.png,0,0,4,9,10,20\n"
                                        "val/cat/a.png,5,10,9,19,10,20\n")
    splits = load_image_dataset(root, boxes=f"csv:{csv_file}")
    np.testing.assert_allclose(splits["train"].boxes, [[0, 0, 0.5, 0.5]])
    np.testing.assert_allclose(splits["val"].boxes, [[0.5, 0.5, 1, 1]])


def test_csv_names_match_with_dot_slash_and_either_unicode_form(tmp_path):
    import unicodedata

    root = tmp_path / "ds"
    composed = unicodedata.normalize("NFC", "caf\u00e9.png")
    _image(root / "cat" / composed, width=10, height=20)
    _image(root / "cat" / "b.png", width=10, height=20)
    decomposed = unicodedata.normalize("NFD", composed)           # as macOS writes it
    csv_file = _csv(tmp_path / "b.csv", "filename,xmin,ymin,xmax,ymax\n"
                                        f"cat/{decomposed},0,0,4,9\n./cat/b.png,5,10,9,19\n")
    split = load_class_folders(root, boxes=csv_file)
    np.testing.assert_allclose(split.boxes, [[0.5, 0.5, 1, 1], [0, 0, 0.5, 0.5]])


@pytest.mark.parametrize("text, line, match", [
    ("filename,xmin,ymin,xmax\n", 1, r"header lacks column\(s\) ymax"),
    ("filename,xmin,ymin,xmax,ymax,width\n", 1, r"header has width without height"),
    ("filename,xmin,ymin,xmax,ymax\na.png,0,0,1,1\na.png,0,x,1,1\n", 3,
     r"ymin 'x' is not a number: fix or delete this row"),
    ("filename,xmin,ymin,xmax,ymax\na.png,0,0,1\n", 2, r"4 fields but the header has 5"),
    ("filename,xmin,ymin,xmax,ymax\n,0,0,1,1\n", 2, r"filename is empty"),
    ("filename,xmin,ymin,xmax,ymax\na.png,3,0,1,1\n", 2, r"is empty \(min must not be above max\)"),
    ("filename,xmin,ymin,xmax,ymax\na.png,0,21,1,25\n", 2, r"lies outside the 10x20 image"),
    ("filename,xmin,ymin,xmax,ymax,width,height\na.png,0,0,1,1,0,20\n", 2, r"not a positive whole"),
    ("filename,xmin,ymin,xmax,ymax,width,height\na.png,0,0,1,1,10,21\n", 2,
     r"states image size 10x21 but a\.png is 10x20"),
    ("filename,xmin,ymin,xmax,ymax,width,height\na.png,0,0,1,1,10,20\na.png,0,0,1,1,10,21\n", 3,
     r"width,height 10x21 disagree with an earlier row for 'a\.png' \(.*boxes\.csv:2: 10x20\)"),
    ('filename,xmin,ymin,xmax,ymax\n"a.png,0,0,1,1\n', 2, r"1 fields but the header has 5"),
])
def test_csv_malformed(tmp_path, text, line, match):
    root = tmp_path / "data"
    _image(root / "cat" / "a.png", width=10, height=20)
    csv_file = _csv(tmp_path / "boxes.csv", text)
    with pytest.raises(DatasetError) as e:
        load_class_folders(root, boxes=csv_file)
    message = str(e.value)
    assert message.startswith(f"{csv_file}:{line}: "), message
    assert re.search(match, message), message
    _one_line(e)


def test_csv_whole_file_errors(tmp_path):
    root = tmp_path / "data"
    _image(root / "cat" / "a.png")
    _image(root / "dog" / "a.png")
    with _raises(r"box CSV is empty"):
        load_class_folders(root, boxes=_csv(tmp_path / "e.csv", ""))
    with _raises(r"header but no rows"):
        load_class_folders(root, boxes=_csv(tmp_path / "h.csv", "filename,xmin,ymin,xmax,ymax\n"))
    ambiguous = _csv(tmp_path / "amb.csv", "filename,xmin,ymin,xmax,ymax\na.png,0,0,1,1\n")
    with _raises(r"amb\.csv:2: filename 'a\.png' matches several images"):
        load_class_folders(root, boxes=ambiguous)
    with _raises(r"cannot open box CSV"):
        load_class_folders(root, boxes=f"csv:{tmp_path / 'missing.csv'}")
