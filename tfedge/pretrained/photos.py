"""Real photographs that ship with installed packages, for checking ImageNet models offline.

scikit-image and scikit-learn (both in tfedge's ``train`` extra) ship a few
natural photos; Debian's ``darknet`` package ships more under
``/usr/share/darknet/data`` and they are used when present (never required).
These are sanity checks of a pretrained model (a cup of coffee should be
'espresso' or 'cup'), not an accuracy benchmark: there are a handful, and
their ImageNet labels are our reading of the pictures.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from tfedge._errors import DatasetError

__all__ = ["Photo", "bundled_photos", "photos_in", "load_photo", "load_photos",
           "augmented_crops", "PHOTO_SUFFIXES"]

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
DARKNET_DATA = Path("/usr/share/darknet/data")


@dataclass(frozen=True)
class Photo:
    """One photo: a short ``name``, its file, and what it shows (our description)."""

    name: str
    path: Path
    shows: str


#: (package module, file, name, what it shows).
_PACKAGE_PHOTOS = (
    ("skimage.data", "coffee.png", "coffee", "a cup of coffee on a saucer"),
    ("skimage.data", "chelsea.png", "chelsea", "a tabby cat"),
    ("skimage.data", "astronaut.png", "astronaut", "astronaut Eileen Collins with a flag"),
    ("skimage.data", "rocket.jpg", "rocket", "a rocket on its launch pad"),
    ("skimage.data", "motorcycle_left.png", "motorcycle", "a motorcycle in a studio"),
    ("sklearn.datasets", "images/china.jpg", "china", "a Chinese temple roof and trees"),
    ("sklearn.datasets", "images/flower.jpg", "flower", "a pink flower"),
)

#: More scikit-image pictures (``bundled_photos(extra=True)``): textures, microscopy,
#: grey-scale scenes. Not all show an ImageNet class; they widen an unlabelled
#: fine-tune or calibration set (labels then come from a model, see pseudo_labels).
_EXTRA_PACKAGE_PHOTOS = (
    ("skimage.data", "camera.png", "camera", "a cameraman on a tripod (grey-scale)"),
    ("skimage.data", "coins.png", "coins", "old coins (grey-scale)"),
    ("skimage.data", "brick.png", "brick", "a brick wall (grey-scale)"),
    ("skimage.data", "grass.png", "grass", "grass (grey-scale)"),
    ("skimage.data", "gravel.png", "gravel", "gravel (grey-scale)"),
    ("skimage.data", "hubble_deep_field.jpg", "hubble", "galaxies of the Hubble deep field"),
    ("skimage.data", "ihc.png", "ihc", "an immunohistochemistry micrograph"),
    ("skimage.data", "retina.jpg", "retina", "a human retina"),
    ("skimage.data", "moon.png", "moon", "the lunar surface (grey-scale)"),
)


def _module_dir(module: str) -> Path | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def bundled_photos(*, include_darknet: bool = True, extra: bool = False) -> list[Photo]:
    """The photos found in installed packages (scikit-image, scikit-learn, darknet).

    ``extra`` adds nine more scikit-image pictures (:data:`_EXTRA_PACKAGE_PHOTOS`).
    """
    photos = []
    for module, filename, name, shows in _PACKAGE_PHOTOS + (_EXTRA_PACKAGE_PHOTOS if extra
                                                            else ()):
        folder = _module_dir(module)
        if folder is not None and (folder / filename).is_file():
            photos.append(Photo(name, folder / filename, shows))
    if include_darknet and DARKNET_DATA.is_dir():
        for path in sorted(DARKNET_DATA.glob("*.jpg")):
            photos.append(Photo(f"darknet_{path.stem}", path, f"darknet sample {path.name}"))
    if not photos:
        raise DatasetError("no bundled photos found: pip install scikit-image scikit-learn "
                           "(the train extra), or pass a folder of photos")
    return photos


def photos_in(folder: Union[str, os.PathLike]) -> list[Photo]:
    """Every image file directly in ``folder`` (sorted by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"photo folder {str(folder)!r} does not exist")
    photos = [Photo(p.stem, p, p.name) for p in sorted(folder.iterdir())
              if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()]
    if not photos:
        raise DatasetError(f"{folder} holds no images ({', '.join(PHOTO_SUFFIXES)})")
    return photos


def load_photo(path: Union[str, os.PathLike], resolution: int) -> np.ndarray:
    """The central square of a photo resized to ``resolution``: ``(R, R, 3)`` uint8 RGB.

    Square-cropping keeps the aspect ratio ImageNet models saw in training; the
    antialiased bilinear resize of Pillow keeps small details from aliasing
    when a 600-px photo becomes 224 px.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"cannot read image {str(path)!r}: {exc}") from exc
    w, h = rgb.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    square = rgb.crop((left, top, left + side, top + side))
    return np.asarray(square.resize((resolution, resolution), Image.BILINEAR), dtype=np.uint8)


def load_photos(photos: Sequence[Photo], resolution: int) -> np.ndarray:
    """``(N, R, R, 3)`` uint8 of :func:`load_photo` for each photo."""
    return np.stack([load_photo(p.path, resolution) for p in photos])


def augmented_crops(photos: Sequence[Photo], resolution: int, count: int, *,
                    seed: int = 0, min_scale: float = 0.4) -> np.ndarray:
    """``count`` random square crops (``min_scale``..1 of the short side, flipped at random).

    Calibration images for int8 conversion: the same scenes at other scales
    and positions widen the activation ranges beyond the few full views.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    sources = []
    for p in photos:
        with Image.open(p.path) as image:
            sources.append(image.convert("RGB"))
    for i in range(count):
        src = sources[i % len(sources)]
        w, h = src.size
        side = int(round(min(w, h) * rng.uniform(min_scale, 1.0)))
        left = int(rng.integers(0, w - side + 1))
        top = int(rng.integers(0, h - side + 1))
        crop = src.crop((left, top, left + side, top + side)).resize(
            (resolution, resolution), Image.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        images.append(np.asarray(crop, dtype=np.uint8))
    return np.stack(images)
