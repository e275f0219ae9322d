"""Where frames come from: image files, folders, globs, video files, USB cameras, the Pi camera.

Every source is a :class:`FrameSource`: iterate it for :class:`Frame` objects
(``(H, W, 3)`` uint8 pixels, RGB or BGR as ``Frame.bgr`` says, plus the time
spent getting them), and close it (or use ``with``) to release the device.
Camera and video handles are released in ``finally`` blocks, so an exception
or Ctrl-C in the middle of a run still frees the camera.

File sources never stop at a bad file: an unreadable, truncated or oversized
image becomes a ``Frame`` whose ``error`` says what is wrong (one line), and
the run goes on. Whatever the file holds (grayscale, palette, RGBA, 16-bit,
CMYK, EXIF-rotated), the frame is 8-bit RGB the right way up; see
:func:`decode_image`.

Optional packages are imported only when their source is chosen: OpenCV
(``pip install opencv-python-headless``, the ``camera`` extra) for video files
and USB cameras; ``picamera2`` for the Raspberry Pi camera, which comes from
Raspberry Pi OS (``sudo apt install python3-picamera2``) and is seen from a
venv created with ``--system-site-packages``.
"""

from __future__ import annotations

import glob
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np

from tfedge.runtime.errors import TfedgeError
from tfedge.runtime.folder_entries import entry_skip_kind
from tfedge.runtime.image import (DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_PIXELS, ImageReadError,
                                  first_line, read_image)

__all__ = [
    "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "DEFAULT_MAX_PIXELS", "DEFAULT_MAX_DECODED_BYTES", "DEFAULT_CAMERA_SIZE",
    "FrameError", "Frame", "SourceSpec", "parse_sources", "decode_image",
    "decode_image_sized", "FrameSource",
    "FileSource", "VideoSource", "PiCameraSource", "open_source", "OPENCV_INSTALL",
    "PICAMERA2_INSTALL",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm", ".pbm", ".pnm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".h264",
                  ".mjpeg", ".mjpg")
DEFAULT_CAMERA_SIZE = (640, 480)  # (width, height)
USB_READ_RETRIES = 30       # failed reads in a row before a USB camera counts as stopped
USB_RETRY_SECONDS = 0.05
OPENCV_INSTALL = "pip install opencv-python-headless (the tfedge[camera] extra)"
PICAMERA2_INSTALL = ("install Raspberry Pi OS's picamera2 with "
                     "'sudo apt install python3-picamera2' "
                     "and run tfedge-pi from a venv created with --system-site-packages "
                     "(python3 -m venv --system-site-packages ~/tfedge-venv) so it can see it")
# picamera2's "RGB888" is 3 bytes per pixel ordered B, G, R (OpenCV's order):
# the pipeline swaps channels on its small resized outputs, not on the frame.
_PICAMERA_FORMAT = "RGB888"
_MS = 1e3
_USB_PATTERN = re.compile(r"^(?:usb|camera|cam)(?::(\d+))?$", re.IGNORECASE)
_DEV_VIDEO = re.compile(r"^/dev/video(\d+)$")
_PICAMERA_PATTERN = re.compile(r"^(?:picam|picamera|picamera2|csi)(?::(\d+))?$", re.IGNORECASE)
_GLOB_CHARS = re.compile(r"[*?\[]")


class FrameError(ImageReadError):
    """One frame cannot be read; the run records it and goes on."""


@dataclass(frozen=True)
class Frame:
    """One frame, or the reason there is none.

    image: ``(H, W, 3)`` uint8, RGB unless ``bgr`` (OpenCV and picamera2
    deliver BGR). error: one line when the frame could not be read (``image``
    is None then). decode_ms: time spent reading and decoding it.
    full_size: ``(H, W)`` of the image file at full size when ``image`` was
    decoded smaller (JPEG draft decoding); None when ``image`` is full size.
    """

    source: str
    index: int
    image: Optional[np.ndarray]
    bgr: bool = False
    decode_ms: float = 0.0
    error: Optional[str] = None
    full_size: Optional[tuple[int, int]] = None

    def rgb(self) -> np.ndarray:
        """The pixels in RGB order (a view when the frame is BGR)."""
        if self.image is None:
            raise FrameError(self.error or f"{self.source}: no image")
        return self.image[..., ::-1] if self.bgr else self.image


# --------------------------------------------------------------------------- decoding


def decode_image(source: Union[str, os.PathLike, Any], *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 draft_short_side: Optional[int] = None,
                 max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> np.ndarray:
    """Read an image file (a path or a binary file object) as ``(H, W, 3)`` uint8 RGB.

    * the size is checked from the header before decoding: more than
      ``max_pixels`` pixels is refused (a decompression bomb cannot exhaust
      memory);
    * ``draft_short_side``: a JPEG is decoded in draft mode (scaled by 1/2,
      1/4 or 1/8 inside the decoder, several times faster) as far as its short
      side stays at least this many pixels (None: full size);
    * EXIF orientation is applied, so the frame is the right way up;
    * any mode becomes 8-bit RGB (see :func:`tfedge.runtime.image.to_uint8_rgb`).

    Raises :class:`FrameError` with one line naming the file and the problem.
    """
    return decode_image_sized(source, max_pixels=max_pixels, draft_short_side=draft_short_side,
                              max_decoded_bytes=max_decoded_bytes)[0]


def decode_image_sized(source: Union[str, os.PathLike, Any], *,
                       max_pixels: int = DEFAULT_MAX_PIXELS,
                       draft_short_side: Optional[int] = None,
                       max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES
                       ) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`decode_image`, and the ``(H, W)`` the image has at full size, upright.

    The two differ only when draft decoding shrank a JPEG; then the second
    maps the decoded frame's pixels back to the file's. Training decodes
    class folders with the same function (:func:`tfedge.runtime.image.read_image`).
    """
    try:
        return read_image(source, max_pixels=max_pixels, draft_short_side=draft_short_side,
                          max_decoded_bytes=max_decoded_bytes)
    except ImageReadError as exc:
        raise FrameError(str(exc)) from exc


# --------------------------------------------------------------------------- source specs


@dataclass(frozen=True)
class SourceSpec:
    """What to read: ``kind`` is ``'files'``, ``'video'``, ``'usb'`` or ``'picamera'``.

    ``skipped``: ``(path, kind)`` of each entry of a folder or glob that is named
    like an image but is not a regular file (a FIFO, a dangling symlink, a
    symlink loop...; kinds from :data:`tfedge.runtime.folder_entries.SKIP_KINDS`).
    """

    kind: str
    paths: tuple[str, ...] = ()
    device: int = 0
    skipped: tuple[tuple[str, str], ...] = ()

    def skipped_counts(self) -> dict[str, int]:
        """How many entries were skipped, by kind (empty when none)."""
        counts: dict[str, int] = {}
        for _, kind in self.skipped:
            counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items()))

    def describe(self) -> str:
        if self.kind == "files":
            return f"{len(self.paths)} image file{'s' if len(self.paths) != 1 else ''}"
        if self.kind == "video":
            return f"video {self.paths[0]}"
        return f"{'USB camera' if self.kind == 'usb' else 'Pi camera'} {self.device}"


def _split_readable(candidates: Sequence[str], skipped: list[tuple[str, str]]) -> list[str]:
    """The regular files among ``candidates``; the others go to ``skipped`` with their kind."""
    found = []
    for path in candidates:
        kind = entry_skip_kind(path)
        if kind is None:
            found.append(path)
        else:
            skipped.append((path, kind))
    return found


def _folder_images(folder: Path, skipped: list[tuple[str, str]]) -> list[str]:
    named = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    found = _split_readable(named, skipped)
    if not found:
        raise TfedgeError(f"folder {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}): "
                          "pass a folder of images, an image, a glob or a video")
    return found


def parse_sources(items: Sequence[str]) -> SourceSpec:
    """Turn the command line's SOURCE arguments into a :class:`SourceSpec`.

    Images, folders (their images, sorted by name) and globs (quoted, so the
    shell does not expand them) may be mixed; a video file (by suffix),
    ``usb[:N]`` / ``/dev/videoN`` (a USB camera through OpenCV) or
    ``picam[:N]`` (the Raspberry Pi camera) must be the only source.
    """
    if not items:
        raise TfedgeError("no source: pass an image, a folder, a glob, a video, usb:0 or picam")
    special = []
    for item in items:
        picamera = _PICAMERA_PATTERN.match(item)
        usb = _USB_PATTERN.match(item) or _DEV_VIDEO.match(item)
        if picamera:
            special.append(SourceSpec("picamera", device=int(picamera[1] or 0)))
        elif usb:
            special.append(SourceSpec("usb", device=int(usb[1] or 0)))
        elif Path(item).suffix.lower() in VIDEO_SUFFIXES and not _GLOB_CHARS.search(item):
            if not Path(item).is_file():
                raise TfedgeError(f"video {item!r} does not exist: check the path")
            special.append(SourceSpec("video", paths=(item,)))
    if special:
        if len(items) > 1:
            raise TfedgeError(f"{' '.join(items)}: a video or camera must be the only source: "
                              "run one tfedge-pi per stream")
        return special[0]
    paths: list[str] = []
    skipped: list[tuple[str, str]] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            paths.extend(_folder_images(path, skipped))
        elif path.is_file():
            paths.append(item)
        elif os.path.lexists(item) and entry_skip_kind(item) is not None:
            raise TfedgeError(f"source {item!r} is a {entry_skip_kind(item).replace('_', ' ')}, "
                              "not an image file: pass an image, a folder or a glob")
        elif _GLOB_CHARS.search(item):
            matches = _split_readable(
                sorted(p for p in glob.glob(item, recursive=True) if not os.path.isdir(p)),
                skipped)
            if not matches:
                raise TfedgeError(f"glob {item!r} matches no files: check the pattern")
            paths.extend(matches)
        else:
            raise TfedgeError(f"source {item!r} does not exist: pass an image, a folder, a glob, "
                              "a video file, usb:0 (USB camera) or picam (Pi camera)")
    return SourceSpec("files", paths=tuple(paths), skipped=tuple(skipped))


# --------------------------------------------------------------------------- sources


class FrameSource:
    """An iterable of :class:`Frame` that must be closed (``with`` does it)."""

    spec: SourceSpec

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release files and devices (safe to call twice)."""

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class FileSource(FrameSource):
    """Image files, read one by one; ``repeat`` passes over the list (for benchmarks)."""

    def __init__(self, paths: Sequence[str], *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 draft_short_side: Optional[int] = None, repeat: int = 1,
                 max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES):
        self.spec = SourceSpec("files", paths=tuple(paths))
        self.max_pixels = int(max_pixels)
        self.max_decoded_bytes = int(max_decoded_bytes)
        self.draft_short_side = draft_short_side
        self.repeat = max(int(repeat), 1)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        for _ in range(self.repeat):
            for path in self.spec.paths:
                start = time.perf_counter()
                full_size = None
                try:
                    image, size = decode_image_sized(path, max_pixels=self.max_pixels,
                                                     draft_short_side=self.draft_short_side,
                                                     max_decoded_bytes=self.max_decoded_bytes)
                    error = None
                    if size != image.shape[:2]:
                        full_size = size
                except FrameError as exc:
                    image, error = None, str(exc)
                yield Frame(source=path, index=index, image=image,
                            decode_ms=(time.perf_counter() - start) * _MS, error=error,
                            full_size=full_size)
                index += 1


def _import_cv2() -> Any:
    try:
        import cv2  # noqa: PLC0415 - optional, only for video and USB cameras
    except ImportError as exc:
        raise TfedgeError(f"video files and USB cameras need OpenCV: {OPENCV_INSTALL}") from exc
    return cv2


class VideoSource(FrameSource):
    """A video file or a USB camera, through OpenCV (frames are BGR)."""

    def __init__(self, spec: SourceSpec, *, size: Optional[tuple[int, int]] = None):
        self.spec = spec
        self.size = size
        self._capture: Any = None

    def _open(self) -> Any:
        cv2 = _import_cv2()
        if self.spec.kind == "video":
            capture = cv2.VideoCapture(self.spec.paths[0])
            what = f"video {self.spec.paths[0]!r}"
        else:
            capture = cv2.VideoCapture(self.spec.device)
            what = f"USB camera {self.spec.device} (/dev/video{self.spec.device})"
            if self.size is not None:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        if not capture.isOpened():
            capture.release()
            fix = ("check the file and that OpenCV has a decoder for it"
                   if self.spec.kind == "video" else
                   "check it is plugged in and not used by another program (ls /dev/video*)")
            raise TfedgeError(f"cannot open {what}: {fix}")
        return capture

    def __iter__(self) -> Iterator[Frame]:
        capture = self._capture = self._open()
        camera = self.spec.kind != "video"
        name = f"usb:{self.spec.device}" if camera else self.spec.paths[0]
        index = failures = 0
        try:
            while True:
                start = time.perf_counter()
                ok, image = capture.read()
                elapsed = (time.perf_counter() - start) * _MS
                if not ok or image is None:
                    # A USB camera often fails its first reads while it starts up.
                    if camera and failures < USB_READ_RETRIES:
                        failures += 1
                        time.sleep(USB_RETRY_SECONDS)
                        continue
                    if index == 0:
                        fix = (f"it opened but gave no frame in {USB_READ_RETRIES} tries: check "
                               "that no other program uses it, or try another --camera-size"
                               if camera else "the file holds no frame OpenCV can decode")
                        raise TfedgeError(f"{name}: {fix}")
                    return  # end of the video, or the camera stopped
                failures = 0
                if image.ndim == 2:
                    image = np.repeat(image[:, :, None], 3, axis=2)
                yield Frame(source=name, index=index, image=image[:, :, :3], bgr=True,
                            decode_ms=elapsed)
                index += 1
        finally:
            self.close()

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


def _import_picamera2() -> Any:
    try:
        from picamera2 import Picamera2  # noqa: PLC0415 - only on a Raspberry Pi
    except ImportError as exc:
        raise TfedgeError(f"the Pi camera needs picamera2 ({first_line(exc)}): "
                          f"{PICAMERA2_INSTALL}") from exc
    return Picamera2


class PiCameraSource(FrameSource):
    """The Raspberry Pi camera through picamera2 (frames are BGR, see ``_PICAMERA_FORMAT``)."""

    def __init__(self, spec: SourceSpec, *, size: tuple[int, int] = DEFAULT_CAMERA_SIZE):
        self.spec = spec
        self.size = (int(size[0]), int(size[1]))
        self._camera: Any = None

    def __iter__(self) -> Iterator[Frame]:
        picamera2 = _import_picamera2()
        try:
            camera = self._camera = picamera2(self.spec.device)
        except (IndexError, RuntimeError) as exc:
            raise TfedgeError(f"cannot open Pi camera {self.spec.device} ({first_line(exc)}): "
                              "check the ribbon cable and 'rpicam-hello --list-cameras'") from exc
        name = f"picam:{self.spec.device}"
        index = 0
        try:
            config = camera.create_video_configuration(
                main={"size": self.size, "format": _PICAMERA_FORMAT})
            camera.configure(config)
            camera.start()
            while True:
                start = time.perf_counter()
                image = camera.capture_array("main")
                elapsed = (time.perf_counter() - start) * _MS
                yield Frame(source=name, index=index, image=image[:, :, :3], bgr=True,
                            decode_ms=elapsed)
                index += 1
        finally:
            self.close()

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        try:
            camera.stop()
        finally:
            camera.close()


def open_source(spec: SourceSpec, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                draft_short_side: Optional[int] = None, repeat: int = 1,
                camera_size: tuple[int, int] = DEFAULT_CAMERA_SIZE,
                max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> FrameSource:
    """The :class:`FrameSource` for ``spec`` (cameras open when iterated, not here)."""
    if spec.kind == "files":
        return FileSource(spec.paths, max_pixels=max_pixels, draft_short_side=draft_short_side,
                          repeat=repeat, max_decoded_bytes=max_decoded_bytes)
    if spec.kind in ("video", "usb"):
        _import_cv2()  # fail now, with the install command, rather than mid-run
        return VideoSource(spec, size=camera_size if spec.kind == "usb" else None)
    if spec.kind == "picamera":
        _import_picamera2()
        return PiCameraSource(spec, size=camera_size)
    raise TfedgeError(f"unknown source kind {spec.kind!r}")
