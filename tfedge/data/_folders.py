"""User datasets: ImageNet-style class folders, with optional object boxes.

Layout (the one ImageNet ships in)::

    root/<class_name>/<image>.jpg          one folder per class
    root/{train,val,test}/<class_name>/... or one such tree per split

* Classes are the sub-folders of ``root``, sorted alphabetically; the label of
  an image is the index of its folder in that order (or in ``class_names``
  when given). Folders and files whose name starts with ``.`` are skipped.
* Only files directly inside a class folder count. Deeper sub-folders are
  skipped (with a warning), so a stray ``root/cat/thumbnails/`` cannot leak
  images of unknown class into the split.
* Extensions match case-insensitively (ImageNet's files end in ``.JPEG``).

Boxes (optional) come from one of two sources, named by ``boxes=``:

* ``"voc:DIR"`` or a directory: Pascal VOC XML files, the format ImageNet's
  boxes ship in, matched to images by file stem, either as
  ``DIR/<class_name>/<stem>.xml`` (ImageNet's training boxes) or
  ``DIR/<stem>.xml`` (ImageNet's validation boxes); the first wins.
* ``"csv:FILE"`` or a ``.csv`` file: one row per box, header
  ``filename,xmin,ymin,xmax,ymax`` plus optionally ``width,height`` (both)
  and ``label``; other columns are ignored. ``filename`` is the image's path
  relative to the split folder, to the dataset root, or its bare file name
  (which must then be unique).

Box coordinates in both formats are pixels in the VOC convention: the first
and last pixel covered, both included, 0-based (see
:func:`tfedge.data._boxes.voc_pixels_to_box`). The crop predictor learns one
box per image, so of several objects tfedge keeps the largest, preferring
objects whose VOC ``<name>`` (or CSV ``label``) equals the image's class
folder name. Images without a box file or row get a NaN row (unknown box);
the counts are logged.

Every problem a user can fix raises :class:`DatasetError` whose one-line
message names the file (and CSV line) and what to do.
"""

from __future__ import annotations

import csv
import logging
import os
import posixpath
import unicodedata
import xml.etree.ElementTree as ET
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from .._errors import DatasetError
from ._boxes import box_area, orient_boxes, voc_pixels_to_box
from ._files import DIRECTORY, REGULAR_FILE, entry_kind, not_a_regular_file
from ._types import FileSplit

__all__ = [
    "IMAGE_EXTENSIONS",
    "SPLIT_NAMES",
    "SkippedFile",
    "load_class_folders",
    "load_image_dataset",
]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
"""File extensions taken as images by default (matched case-insensitively)."""

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
"""Folder names :func:`load_image_dataset` recognises as splits."""

VOC_PREFIX = "voc:"
CSV_PREFIX = "csv:"
CSV_REQUIRED_COLUMNS = ("filename", "xmin", "ymin", "xmax", "ymax")
CSV_SIZE_COLUMNS = ("width", "height")
CSV_LABEL_COLUMN = "label"
VOC_COORDS = ("xmin", "ymin", "xmax", "ymax")
_MAX_LISTED = 5  # names shown in an error message before "..."
_MAX_SKIPS_LOGGED = 20  # skipped files named one per line before "... and N more"

#: ``(path, reason)`` of an image-named entry that is not a readable regular file
#: (a symlink loop, a dangling symlink, a FIFO, a socket, a device): left out of the split.
SkippedFile = tuple[str, str]


# --------------------------------------------------------------------------- box records


@dataclass(frozen=True)
class _PixelBox:
    """One object box as written in a file, with where it came from."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    name: Optional[str]
    where: str  # "file" or "file:line", for error messages
    fix: str  # what the user should do when this box is wrong


@dataclass
class _BoxRecord:
    """All boxes given for one image, plus the image size the file states (if any)."""

    where: str
    boxes: list[_PixelBox] = field(default_factory=list)
    size: Optional[tuple[int, int]] = None  # (width, height); None: read the image


def _number(text: Optional[str], what: str, where: str, fix: str) -> float:
    if text is None or not text.strip():
        raise DatasetError(f"{where}: {what} is missing: {fix}")
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{where}: {what} {text.strip()!r} is not a number: {fix}") from None
    if not np.isfinite(value):
        raise DatasetError(f"{where}: {what} {text.strip()!r} is not a finite number: {fix}")
    return value


def _list_names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (", ..." if len(names) > _MAX_LISTED else "")


# --------------------------------------------------------------------------- VOC XML


def _parse_xml_safely(data: bytes, where: str) -> ET.Element:
    """Parse XML with expat, refusing any DOCTYPE or entity declaration.

    Box files never need a DTD, and entity declarations are how XML bombs
    ("billion laughs") and external-entity reads work. The check runs inside
    the parser, so no encoding trick hides a declaration from it.
    """
    fix = "fix or delete this file"
    builder = ET.TreeBuilder()
    parser = xml.parsers.expat.ParserCreate()

    def refuse_doctype(*_args: object) -> None:
        raise DatasetError(f"{where}: XML DOCTYPE/ENTITY declarations are not allowed in box files: {fix}")

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_doctype
    parser.UnparsedEntityDeclHandler = refuse_doctype
    parser.ExternalEntityRefHandler = refuse_doctype
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        root = builder.close()
    except xml.parsers.expat.ExpatError as exc:
        raise DatasetError(f"{where}: malformed XML ({exc}): {fix}") from None
    except AssertionError:  # TreeBuilder: no root element
        raise DatasetError(f"{where}: malformed XML (no root element): {fix}") from None
    return root


def _read_voc(path: Path) -> _BoxRecord:
    """Read one Pascal VOC annotation file into pixel boxes (validated for numbers only)."""
    where = str(path)
    fix = "fix or delete this file"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{where}: cannot read box file ({exc.strerror}): fix its permissions or delete it") from None
    root = _parse_xml_safely(data, where)
    if root.tag != "annotation":
        raise DatasetError(f"{where}: root element is <{root.tag}>, expected <annotation>: {fix}")
    record = _BoxRecord(where=where)
    size = root.find("size")
    if size is not None:
        w_text, h_text = size.findtext("width"), size.findtext("height")
        if w_text is not None and w_text.strip() and h_text is not None and h_text.strip():
            width = _number(w_text, "<width>", where, fix)
            height = _number(h_text, "<height>", where, fix)
            if width != int(width) or height != int(height) or width < 0 or height < 0:
                raise DatasetError(f"{where}: <size> {w_text.strip()}x{h_text.strip()} is not a whole "
                                   f"number of pixels: {fix}")
            if width > 0 and height > 0:  # 0x0 means "unknown" in some tools
                record.size = (int(width), int(height))
    for obj in root.iter("object"):
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise DatasetError(f"{where}: an <object> has no <bndbox>: {fix}")
        coords = [_number(bndbox.findtext(tag), f"<{tag}>", where, fix) for tag in VOC_COORDS]
        name = obj.findtext("name")
        record.boxes.append(_PixelBox(*coords, name=name.strip() if name else None, where=where, fix=fix))
    return record


class _VocIndex:
    """The XML files of a VOC box directory, found by (class folder, stem) or stem."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise DatasetError(f"{directory}: VOC box directory not found: pass an existing "
                               "directory of .xml files (DIR/<class>/<stem>.xml or DIR/<stem>.xml)")
        self.directory = directory
        self.by_class: dict[tuple[str, str], Path] = {}
        self.by_stem: dict[str, Path] = {}
        # Symlink loops, FIFOs and other non-files named .xml are left out (entry_kind
        # never raises or opens them); a looked-up stem then has no box file.
        for entry in _scandir_sorted(directory):
            if entry.name.startswith("."):
                continue
            kind, _ = entry_kind(entry)
            if kind == DIRECTORY:
                for sub in _scandir_sorted(Path(entry.path)):
                    if sub.name.lower().endswith(".xml") and entry_kind(sub)[0] == REGULAR_FILE:
                        self.by_class[(entry.name, Path(sub.name).stem)] = Path(sub.path)
            elif kind == REGULAR_FILE and entry.name.lower().endswith(".xml"):
                self.by_stem[Path(entry.name).stem] = Path(entry.path)
        if not self.by_class and not self.by_stem:
            raise DatasetError(f"{directory}: no .xml box files found: expected "
                               "DIR/<class>/<stem>.xml or DIR/<stem>.xml")
        self.used: set[Path] = set()
        self.owners: dict[Path, Path] = {}
        self.label = f"VOC directory {directory}"

    def lookup(self, class_name: str, image: Path, keys: Sequence[str]) -> Optional[_BoxRecord]:
        path = self.by_class.get((class_name, image.stem)) or self.by_stem.get(image.stem)
        if path is None:
            return None
        # Matched by file stem only: two images of one stem (other classes or splits) would
        # silently share one box, as a CSV row naming several images would.
        owner = self.owners.setdefault(path, image)
        if owner != image:
            raise DatasetError(f"{path}: matches both {owner} and {image} (box files are matched "
                               "by file stem): put each class's files in "
                               f"{self.directory}/<class>/<stem>.xml, or rename one image")
        self.used.add(path)
        return _read_voc(path)

    @property
    def unused(self) -> int:
        return len(self.by_class) + len(self.by_stem) - len(self.used)


# --------------------------------------------------------------------------- CSV


def _csv_key(name: str) -> str:
    """A file name as the CSV index compares it: '/' separators, no './', Unicode NFC.

    macOS writes names decomposed (NFD) and most editors composed (NFC); the
    same visible name must match either way.
    """
    if not name:
        return name
    return unicodedata.normalize("NFC", posixpath.normpath(name.replace("\\", "/")))


class _CsvIndex:
    """The rows of a box CSV, grouped by the ``filename`` column."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = f"CSV {path}"
        problem = not_a_regular_file(path) if path.exists() or path.is_symlink() else None
        if problem is not None:  # open() on a FIFO would block forever
            raise DatasetError(f"{path}: box CSV is {problem}: pass a regular .csv file")
        try:
            handle = open(path, newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise DatasetError(f"{path}: cannot open box CSV ({exc.strerror}): pass an existing "
                               "readable .csv file") from None
        self.rows: dict[str, _BoxRecord] = {}
        with handle:
            reader = csv.reader(handle)
            try:
                header = next(reader, None)
                if header is None:
                    raise DatasetError(f"{path}: box CSV is empty: add the header "
                                       f"{','.join(CSV_REQUIRED_COLUMNS)} and one row per box")
                columns = [c.strip().lower() for c in header]
                missing = [c for c in CSV_REQUIRED_COLUMNS if c not in columns]
                if missing:
                    raise DatasetError(f"{path}:1: header lacks column(s) {', '.join(missing)}: the header "
                                       f"must name {','.join(CSV_REQUIRED_COLUMNS)} (optionally width,height,label)")
                sizes = [c for c in CSV_SIZE_COLUMNS if c in columns]
                if len(sizes) == 1:
                    raise DatasetError(f"{path}:1: header has {sizes[0]} without "
                                       f"{'height' if sizes[0] == 'width' else 'width'}: give both or neither")
                col = {name: columns.index(name) for name in
                       (*CSV_REQUIRED_COLUMNS, *sizes, *([CSV_LABEL_COLUMN] if CSV_LABEL_COLUMN in columns else []))}
                for row in reader:
                    self._add_row(row, col, bool(sizes), len(header), reader.line_num)
            except csv.Error as exc:
                raise DatasetError(f"{path}:{reader.line_num}: malformed CSV ({exc}): fix this line") from None
            except UnicodeDecodeError:
                raise DatasetError(f"{path}: box CSV is not UTF-8 text: save it as UTF-8") from None
        if not self.rows:
            raise DatasetError(f"{path}: box CSV has a header but no rows: add one row per box")
        self.used: set[str] = set()
        # Which images a bare file name matched: a name matching two images is ambiguous.
        self.basename_hits: dict[str, list[Path]] = {}

    def _add_row(self, row: list[str], col: dict[str, int], has_size: bool, n_header: int,
                 line: int) -> None:
        if not row or all(not cell.strip() for cell in row):
            return  # blank line
        where = f"{self.path}:{line}"
        fix = "fix or delete this row"
        if len(row) <= max(col.values()):
            raise DatasetError(f"{where}: {len(row)} fields but the header has {n_header}: {fix}")
        filename = _csv_key(row[col["filename"]].strip())
        if not filename:
            raise DatasetError(f"{where}: filename is empty: {fix}")
        coords = [_number(row[col[c]], c, where, fix) for c in VOC_COORDS]
        label = row[col[CSV_LABEL_COLUMN]].strip() if CSV_LABEL_COLUMN in col else None
        size = None
        if has_size:
            width = _number(row[col["width"]], "width", where, fix)
            height = _number(row[col["height"]], "height", where, fix)
            if width != int(width) or height != int(height) or width <= 0 or height <= 0:
                raise DatasetError(f"{where}: image size {width:g}x{height:g} is not a positive whole "
                                   f"number of pixels: {fix}")
            size = (int(width), int(height))
        record = self.rows.setdefault(filename, _BoxRecord(where=where, size=size))
        if record.size != size:
            stated = "none" if record.size is None else f"{record.size[0]}x{record.size[1]}"
            raise DatasetError(f"{where}: width,height {size[0]}x{size[1]} disagree with an earlier "
                               f"row for {filename!r} ({record.where}: {stated}): {fix}")
        record.boxes.append(_PixelBox(*coords, name=label or None, where=where, fix=fix))

    def lookup(self, class_name: str, image: Path, keys: Sequence[str]) -> Optional[_BoxRecord]:
        for key in map(_csv_key, keys):
            if key in self.rows:
                self.used.add(key)
                return self.rows[key]
        name = _csv_key(image.name)
        if name in self.rows:
            self.used.add(name)
            hits = self.basename_hits.setdefault(name, [])
            hits.append(image)
            if len(hits) > 1:
                raise DatasetError(
                    f"{self.rows[name].where}: filename {name!r} matches several images "
                    f"({hits[0]}, {hits[1]}): write the path relative to the dataset root instead")
            return self.rows[name]
        return None

    @property
    def unused(self) -> int:
        return len(self.rows) - len(self.used)


_BoxIndex = _VocIndex | _CsvIndex


def _open_box_source(boxes: str | os.PathLike) -> _BoxIndex:
    """Turn ``boxes=`` into an index: ``voc:DIR``, ``csv:FILE``, a directory or a ``.csv`` file."""
    text = os.fspath(boxes)
    if text.startswith(VOC_PREFIX):
        return _VocIndex(Path(text[len(VOC_PREFIX):]))
    if text.startswith(CSV_PREFIX):
        return _CsvIndex(Path(text[len(CSV_PREFIX):]))
    path = Path(text)
    if path.is_dir():
        return _VocIndex(path)
    if path.suffix.lower() == ".csv":
        return _CsvIndex(path)
    if not path.exists():
        raise DatasetError(f"boxes={text!r}: no such file or directory: pass a directory of VOC .xml "
                           "files or a .csv file (or prefix voc: / csv:)")
    raise DatasetError(f"boxes={text!r}: cannot tell the box format: pass a directory of VOC .xml "
                       "files, a .csv file, or prefix the path with voc: or csv:")


# --------------------------------------------------------------------------- resolving one box


def _image_header(image: Path) -> tuple[int, int, int]:
    """(width, height, EXIF orientation) of the stored image (Pillow reads no pixels here)."""
    from .._image import ImageReadError, stored_header

    try:
        return stored_header(image)
    except ImageReadError as exc:
        raise DatasetError(f"{exc}: replace or delete this image") from None


def _resolve_box(record: _BoxRecord, image: Path, class_name: str, check_image_sizes: bool) -> np.ndarray:
    """Validate the boxes of one image and return the chosen one, normalised (NaN if none)."""
    from .._image import AXES_SWAPPING_ORIENTATIONS

    if not record.boxes:
        return np.full(4, np.nan, np.float32)
    # Boxes are in the stored image's pixels; images are decoded upright (EXIF orientation
    # applied), so an EXIF-turned image's box turns with it. A box file whose stated size is
    # the upright one was drawn on the upright image.
    orientation = 1
    if record.size is None:
        width, height, orientation = _image_header(image)
    else:
        width, height = record.size
        if check_image_sizes:
            stored_w, stored_h, orientation = _image_header(image)
            turned = orientation in AXES_SWAPPING_ORIENTATIONS
            if turned and (stored_h, stored_w) == record.size:
                orientation = 1
            elif (stored_w, stored_h) != record.size:
                upright = f" ({stored_h}x{stored_w} upright, by its EXIF orientation)" \
                    if turned else ""
                raise DatasetError(
                    f"{record.where}: states image size {width}x{height} but {image.name} is "
                    f"{stored_w}x{stored_h}{upright}: fix the size or the box file")
    normalised = []
    for b in record.boxes:
        fix = b.fix
        # Inclusive pixel indices: min == max is a box one pixel wide.
        if b.xmin > b.xmax or b.ymin > b.ymax:
            raise DatasetError(f"{b.where}: box x {b.xmin:g}..{b.xmax:g}, y {b.ymin:g}..{b.ymax:g} is empty "
                               f"(min must not be above max): {fix}")
        if b.xmin >= width or b.ymin >= height or b.xmax < 0 or b.ymax < 0:
            raise DatasetError(f"{b.where}: box x {b.xmin:g}..{b.xmax:g}, y {b.ymin:g}..{b.ymax:g} lies "
                               f"outside the {width}x{height} image: {fix}")
        # 1-based files may name pixel `width` itself; a few ImageNet boxes overrun the edge by
        # some pixels. Both are clipped (by voc_pixels_to_box), as ImageNet's own tools do.
        if b.xmin < 0 or b.ymin < 0 or b.xmax > width or b.ymax > height:
            log.warning("%s: box x %g..%g, y %g..%g overruns the %dx%d image: clipped to it",
                        b.where, b.xmin, b.xmax, b.ymin, b.ymax, width, height)
        normalised.append(voc_pixels_to_box(b.xmin, b.ymin, b.xmax, b.ymax, width, height))
    candidates = orient_boxes(np.stack(normalised), orientation)
    own_class = np.array([b.name == class_name for b in record.boxes])
    areas = np.where(own_class, box_area(candidates), -1.0) if own_class.any() else box_area(candidates)
    return candidates[int(np.argmax(areas))]


# --------------------------------------------------------------------------- folders


def _scandir_sorted(directory: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(directory) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise DatasetError(f"{directory}: cannot list folder ({exc.strerror or exc}): fix its "
                           "permissions or remove it") from None


def _normalise_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    if isinstance(extensions, str):
        extensions = (extensions,)
    out = []
    for ext in extensions:
        if not isinstance(ext, str) or not ext.strip(".").strip():
            raise DatasetError(f"extensions: {ext!r} is not a file extension: pass e.g. ('.jpg', '.png')")
        out.append("." + ext.strip().lstrip(".").lower())
    if not out:
        raise DatasetError("extensions is empty: pass at least one, e.g. ('.jpg', '.png')")
    return tuple(out)


def _class_folders(root: Path, warn: bool = False) -> list[str]:
    """Names of the (non-hidden) sub-folders of ``root``, sorted.

    warn: log the symlinks (looping or dangling) left out; one caller per
    folder warns, so a folder scanned twice is not reported twice.
    """
    if not root.exists():
        raise DatasetError(f"{root}: dataset folder not found: pass the folder holding one "
                           "sub-folder per class")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder: pass the folder holding one sub-folder per class")
    names = []
    for entry in _scandir_sorted(root):
        if entry.name.startswith("."):
            continue
        kind, reason = entry_kind(entry)
        if kind == DIRECTORY:
            names.append(entry.name)
        elif warn and reason is not None and "symlink" in reason:
            log.warning("%s: skipped, not a class folder: %s", entry.path, reason)
    return names


def _check_class_names(class_names: Optional[Sequence[str]]) -> Optional[tuple[str, ...]]:
    if class_names is None:
        return None
    if isinstance(class_names, str):
        raise DatasetError(f"class_names={class_names!r} is a string: pass a list of class names")
    names = tuple(class_names)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise DatasetError("class_names must be a non-empty list of non-empty strings")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DatasetError(f"class_names lists {_list_names(dupes)} more than once: give each class once")
    return names


def _log_skipped(root: Path, skipped: Sequence[SkippedFile]) -> None:
    """One warning per skipped file (the first few), then the count: never a silent skip."""
    for path, reason in skipped[:_MAX_SKIPS_LOGGED]:
        log.warning("skipped %s: %s", path, reason)
    if len(skipped) > _MAX_SKIPS_LOGGED:
        log.warning("... and %d more", len(skipped) - _MAX_SKIPS_LOGGED)
    if skipped:
        what = "entry that is not a readable file" if len(skipped) == 1 else \
            "entries that are not readable files"
        log.warning("%s: skipped %d image-named %s (symlink loops, dangling symlinks, FIFOs, "
                    "devices): fix or delete them", root, len(skipped), what)


def _load_split(root: Path, class_names: tuple[str, ...], extensions: tuple[str, ...],
                box_index: Optional[_BoxIndex], key_roots: Sequence[Path],
                check_image_sizes: bool, warn_root: bool = True
                ) -> tuple[FileSplit, int, list[SkippedFile]]:
    """Scan ``root/<class>/`` folders; return the split, how many images got a box, and the
    image-named entries left out because they are not regular files."""
    folders = _class_folders(root, warn=warn_root)
    if not folders:
        loose = [e.name for e in _scandir_sorted(root)
                 if e.name.lower().endswith(extensions) and entry_kind(e)[0] == REGULAR_FILE]
        hint = (f" (it holds {len(loose)} images directly: move them into root/<class_name>/)"
                if loose else "")
        raise DatasetError(f"{root}: no class folders found{hint}: expected "
                           f"{root}/<class_name>/<image>{extensions[0]}")
    unknown = [f for f in folders if f not in class_names]
    if unknown:
        raise DatasetError(f"{root}: folder(s) {_list_names(unknown)} are not among the "
                           f"{len(class_names)} class names given: add them to class_names or remove them")
    label_of = {name: i for i, name in enumerate(class_names)}
    paths: list[str] = []
    labels: list[int] = []
    boxes: list[np.ndarray] = []
    skipped_dirs = 0
    skipped: list[SkippedFile] = []
    for name in folders:
        folder = root / name
        count = 0
        for entry in _scandir_sorted(folder):
            if entry.name.startswith("."):
                continue
            kind, reason = entry_kind(entry)
            if kind == DIRECTORY:
                skipped_dirs += 1
                continue
            if not entry.name.lower().endswith(extensions):
                continue
            image = Path(os.path.abspath(entry.path))
            if kind != REGULAR_FILE:
                # Opening a FIFO blocks forever and a symlink loop raises: such an entry is
                # left out, named and counted (see _log_skipped), never opened.
                skipped.append((str(image), reason or "not a regular file"))
                continue
            paths.append(str(image))
            labels.append(label_of[name])
            count += 1
            if box_index is not None:
                keys = [Path(entry.path).relative_to(r).as_posix() for r in key_roots]
                record = box_index.lookup(name, image, keys)
                boxes.append(np.full(4, np.nan, np.float32) if record is None
                             else _resolve_box(record, image, name, check_image_sizes))
        if count == 0:
            here = Path(os.path.abspath(folder))
            left_out = sum(1 for path, _ in skipped if Path(path).parent == here)
            hint = f" ({left_out} skipped: not readable files)" if left_out else ""
            _log_skipped(root, skipped)
            raise DatasetError(f"{folder}: class folder holds no images with extension "
                               f"{', '.join(extensions)}{hint}: add images or delete the folder")
    _log_skipped(root, skipped)
    if skipped_dirs:
        log.warning("%s: skipped %d sub-folder(s) inside class folders: only images directly in "
                    "root/<class_name>/ are loaded", root, skipped_dirs)
    box_array = np.stack(boxes).astype(np.float32) if box_index is not None else None
    with_box = 0 if box_array is None else int((~np.isnan(box_array).any(axis=1)).sum())
    split = FileSplit(tuple(paths), np.asarray(labels, dtype=np.int32), box_array, class_names)
    if box_index is not None:
        log.info("%s: %d images in %d classes, %d with a box, %d without", root, len(paths),
                 len(folders), with_box, len(paths) - with_box)
    else:
        log.info("%s: %d images in %d classes", root, len(paths), len(folders))
    return split, with_box, skipped


def _report_unused(box_index: _BoxIndex) -> None:
    if box_index.unused:
        log.info("%s: %d box file(s)/row(s) matched no image", box_index.label, box_index.unused)


def load_class_folders(root: str | os.PathLike, *, boxes: str | os.PathLike | None = None,
                       extensions: Iterable[str] = IMAGE_EXTENSIONS,
                       class_names: Optional[Sequence[str]] = None,
                       check_image_sizes: bool = True) -> FileSplit:
    """Load one split laid out as ``root/<class_name>/<image>``.

    Args:
        root: the folder holding one sub-folder per class.
        boxes: optional box source: ``"voc:DIR"``, ``"csv:FILE"``, a directory
            (VOC XML) or a ``.csv`` file (see the module docstring).
        extensions: file extensions taken as images, case-insensitive.
        class_names: the label order; by default the sorted folder names.
            Give it to load a validation split with the training split's
            labels: every folder must be one of these names; classes with no
            folder are allowed.
        check_image_sizes: compare the image size a box file states with the
            image's header (one header read per boxed image). Images whose
            box file states no size are always read. The header also gives
            the EXIF orientation: boxes, given in the stored pixels, turn
            with the image (decoded upright); with False they are taken as
            drawn on the upright image.

    Returns:
        A :class:`FileSplit` with absolute paths, sorted by class then file
        name. ``boxes`` is None without a box source, else ``(N, 4)`` with NaN
        rows for images that have no box.
    """
    root = Path(root)
    exts = _normalise_extensions(extensions)
    names = _check_class_names(class_names)
    if names is None:
        names = tuple(_class_folders(root))
    box_index = None if boxes is None else _open_box_source(boxes)
    split, with_box, _ = _load_split(root, names, exts, box_index, [root], check_image_sizes)
    if box_index is not None:
        if with_box == 0:
            raise DatasetError(f"{box_index.label}: no box matched any of the {len(split)} images in "
                               f"{root}: check that box files are named after the images")
        _report_unused(box_index)
    return split


def load_image_dataset(root: str | os.PathLike, *,
                       boxes: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None,
                       extensions: Iterable[str] = IMAGE_EXTENSIONS,
                       class_names: Optional[Sequence[str]] = None,
                       check_image_sizes: bool = True) -> dict[str, FileSplit]:
    """Load a dataset with split folders, or a single class-folder tree as ``train``.

    ``root/{train,val,test}/<class_name>/...``: every split folder present is
    returned under its name. Otherwise ``root/<class_name>/...`` is returned
    as ``{"train": split}``. All splits share one label order: the sorted
    union of their class folders (or ``class_names``).

    ``boxes`` is one box source for every split (a VOC directory holding both
    training and validation files, or one CSV), or a mapping from split name
    to its own source (ImageNet ships its validation boxes apart). A CSV
    ``filename`` may then be relative to the split folder or to ``root``.

    Image-named entries that are not regular files (symlink loops, dangling
    symlinks, FIFOs, devices) are left out and logged with their count;
    :func:`scan_image_dataset` also returns them.
    """
    return scan_image_dataset(root, boxes=boxes, extensions=extensions, class_names=class_names,
                              check_image_sizes=check_image_sizes)[0]


def scan_image_dataset(root: str | os.PathLike, *,
                       boxes: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None,
                       extensions: Iterable[str] = IMAGE_EXTENSIONS,
                       class_names: Optional[Sequence[str]] = None,
                       check_image_sizes: bool = True
                       ) -> tuple[dict[str, FileSplit], list[SkippedFile]]:
    """:func:`load_image_dataset`, plus the ``(path, reason)`` of every entry it left out."""
    root = Path(root)
    exts = _normalise_extensions(extensions)
    names = _check_class_names(class_names)
    folders = _class_folders(root, warn=True)
    splits = [s for s in SPLIT_NAMES if s in folders]
    if splits:
        others = [f for f in folders if f not in SPLIT_NAMES]
        if others:
            raise DatasetError(f"{root}: holds split folders ({', '.join(splits)}) and other folders "
                               f"({_list_names(others)}): keep only {', '.join(SPLIT_NAMES)} at the top")
        split_roots = {s: root / s for s in splits}
    else:
        split_roots = {"train": root}
    if names is None:
        union = sorted({c for r in split_roots.values() for c in _class_folders(r)})
        names = tuple(union)

    if isinstance(boxes, Mapping):
        unknown = [k for k in boxes if k not in split_roots]
        if unknown:
            raise DatasetError(f"boxes names split(s) {_list_names(unknown)} but {root} has "
                               f"{', '.join(split_roots)}: use those names")
        sources = {s: _open_box_source(b) for s, b in boxes.items()}
    elif boxes is not None:
        shared = _open_box_source(boxes)
        sources = {s: shared for s in split_roots}
    else:
        sources = {}

    out: dict[str, FileSplit] = {}
    skipped: list[SkippedFile] = []
    matched: dict[int, int] = {}
    for split_name, split_root in split_roots.items():
        index = sources.get(split_name)
        key_roots = [split_root] if split_root == root else [split_root, root]
        split, with_box, split_skipped = _load_split(split_root, names, exts, index, key_roots,
                                                     check_image_sizes,
                                                     warn_root=split_root != root)
        skipped += split_skipped
        if index is None and sources:
            # Another split has boxes: give this one NaN rows so every split has the same form.
            split = FileSplit(split.paths, split.labels,
                              np.full((len(split), 4), np.nan, np.float32), split.class_names)
        out[split_name] = split
        if index is not None:
            matched[id(index)] = matched.get(id(index), 0) + with_box
    for index in {id(i): i for i in sources.values()}.values():
        if matched.get(id(index), 0) == 0:
            raise DatasetError(f"{index.label}: no box matched any image under {root}: check that box "
                               "files are named after the images")
        _report_unused(index)
    return out, skipped
