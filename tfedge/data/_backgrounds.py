"""Background photographs that ship inside installed wheels (no download).

scikit-image bundles a handful of real photographs and textures under
``skimage/data``; scikit-learn bundles two more. They are read straight from
the package folders with Pillow: ``skimage.data``'s own functions may try to
fetch other files from the internet, so they are never called.

``scenes="extended"`` (opt-in: :class:`tfedge.data.BenchmarkConfig`'s
``scenes`` field) adds 19 more scenes from other offline packages (see
docs/data.md for sources and licences): matplotlib's sample photo
(``grace_hopper``), Debian's ``darknet`` (6 photos of animals, people, a
kite) and ``mate-backgrounds`` (12 nature photos). The Debian files are
looked up under every root of ``$TFEDGE_SCENE_ROOT`` (colon-separated,
default ``/``), so ``dpkg-deb -x`` of the packages into a folder works
without installing them.

Only natural photographs and textures are used. Synthetic images (chessboards,
colour wheels, phantoms, logos, a silhouette), a scanned page, an artificially
blurred copy of a photo and a 102-pixel thumbnail are left out on purpose: a
benchmark background should look like a real scene.

The photos are split into a training set and a held-out set so the test
split's scenes are never seen in training. Membership is fixed by a hash of
each photo's *scene* (near-duplicate views such as the left and right
motorcycle shots share one scene and therefore one side of the split), so
adding a photo never moves another one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from .._errors import DatasetError

__all__ = [
    "available_photos",
    "load_photo",
    "photo_path",
    "photo_scene",
    "split_photos",
    "is_heldout",
    "HELDOUT_FRACTION",
    "SCENE_SETS",
    "SCENE_ROOT_ENV",
]

# name -> (package, file inside the package). Real photographs and textures only.
_SKIMAGE_PHOTOS = {
    "astronaut": "data/astronaut.png",
    "brick": "data/brick.png",
    "camera": "data/camera.png",
    "cell": "data/cell.png",
    "chelsea": "data/chelsea.png",
    "coffee": "data/coffee.png",
    "coins": "data/coins.png",
    "grass": "data/grass.png",
    "gravel": "data/gravel.png",
    "hubble_deep_field": "data/hubble_deep_field.jpg",
    "ihc": "data/ihc.png",
    "moon": "data/moon.png",
    "motorcycle_left": "data/motorcycle_left.png",
    "motorcycle_right": "data/motorcycle_right.png",
    "retina": "data/retina.jpg",
    "rocket": "data/rocket.jpg",
    "text": "data/text.png",
}
_SKLEARN_PHOTOS = {
    "china": "datasets/images/china.jpg",
    "flower": "datasets/images/flower.jpg",
}
# scenes="extended": more photos from other offline packages (docs/data.md).
# name -> (package, file inside the package) for Python packages ...
_EXTENDED_PACKAGE_PHOTOS = {
    "mpl_grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
}
# ... and name -> (Debian package, absolute path) for files of Debian packages. darknet's
# scream.jpg (a painting) is left out.
_DARKNET = "/usr/share/darknet/data"
_MATE = "/usr/share/backgrounds/mate/nature"
_EXTENDED_DEBIAN_PHOTOS = {
    **{f"darknet_{n}": ("darknet", f"{_DARKNET}/{n}.jpg")
       for n in ("dog", "eagle", "giraffe", "horses", "kite", "person")},
    **{f"mate_{n.lower()}": ("mate-backgrounds", f"{_MATE}/{n}.jpg")
       for n in ("Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird",
                 "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower")},
}
SCENE_SETS = ("default", "extended")
SCENE_ROOT_ENV = "TFEDGE_SCENE_ROOT"
# Photos of one scene must land on the same side of the train/held-out split.
_SCENES = {
    "motorcycle_left": "motorcycle",
    "motorcycle_right": "motorcycle",
}

HELDOUT_FRACTION = 0.3
_SPLIT_SALT = b"tfedge-photo-split-v1:"
_HASH_BYTES = 8

_MISSING_SKIMAGE = (
    "scikit-image is not installed, and the benchmark's background photos ship inside it: "
    "pip install 'tfedge[train]' (or pip install scikit-image)")


def _package_dir(package: str) -> Optional[Path]:
    """The installed package's folder, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _photo_files() -> dict[str, Path]:
    skimage_dir = _package_dir("skimage")
    if skimage_dir is None:
        raise DatasetError(_MISSING_SKIMAGE)
    files: dict[str, Path] = {}
    for package_dir, table in ((skimage_dir, _SKIMAGE_PHOTOS), (_package_dir("sklearn"), _SKLEARN_PHOTOS)):
        if package_dir is None:
            continue
        for name, rel in table.items():
            path = package_dir / rel
            if path.is_file():
                files[name] = path
    if not files:
        raise DatasetError(
            f"no background photos found under {skimage_dir / 'data'}: reinstall scikit-image "
            "(pip install --force-reinstall scikit-image)")
    return files


def _check_scenes(scenes: str) -> None:
    if scenes not in SCENE_SETS:
        raise DatasetError(f"unknown scene set {scenes!r}: choose one of {', '.join(SCENE_SETS)}")


def _scene_roots() -> list[Path]:
    text = os.environ.get(SCENE_ROOT_ENV) or "/"
    return [Path(part).expanduser() for part in text.split(os.pathsep) if part]


def _extended_files() -> dict[str, Path]:
    """The extra scenes; every one must be present (one config, one set of photos)."""
    files: dict[str, Path] = {}
    missing: set[str] = set()
    for name, (package, rel) in _EXTENDED_PACKAGE_PHOTOS.items():
        folder = _package_dir(package)
        if folder is not None and (folder / rel).is_file():
            files[name] = folder / rel
        else:
            missing.add(f"pip install {package}")
    for name, (package, absolute) in _EXTENDED_DEBIAN_PHOTOS.items():
        found = [root / absolute.lstrip("/") for root in _scene_roots()]
        found = [path for path in found if path.is_file()]
        if found:
            files[name] = found[0]
        else:
            missing.add(f"apt-get install {package}")
    if missing:
        raise DatasetError(
            f"scenes='extended' needs photos that are not installed: {'; '.join(sorted(missing))} "
            f"(or dpkg-deb -x the .deb files into a folder and set ${SCENE_ROOT_ENV} to it), "
            "or use scenes='default'")
    return files


def _scene_files(scenes: str) -> dict[str, Path]:
    _check_scenes(scenes)
    files = _photo_files()
    if scenes == "extended":
        files.update(_extended_files())
    return files


def available_photos(scenes: str = "default") -> list[str]:
    """Names of the background photos of a scene set (``'default'`` or ``'extended'``), sorted."""
    return sorted(_scene_files(scenes))


def photo_path(name: str) -> Path:
    files = _photo_files()
    if name not in files and (name in _EXTENDED_PACKAGE_PHOTOS or name in _EXTENDED_DEBIAN_PHOTOS):
        files = _scene_files("extended")
    if name not in files:
        raise DatasetError(
            f"unknown background photo {name!r}: choose one of {', '.join(sorted(files))}")
    return files[name]


def load_photo(name: str) -> np.ndarray:
    """The photo as an ``(H, W, 3)`` uint8 RGB array (grayscale photos are replicated)."""
    from PIL import Image

    path = photo_path(name)
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except OSError as exc:
        raise DatasetError(f"background photo {path} cannot be read ({exc}): reinstall its package") from exc
    return np.asarray(rgb, dtype=np.uint8).copy()


def photo_scene(name: str) -> str:
    """The scene a photo shows; photos of one scene share a split."""
    return _SCENES.get(name, name)


def _heldout_score(scene: str) -> float:
    digest = hashlib.sha256(_SPLIT_SALT + scene.encode("utf-8")).digest()
    return int.from_bytes(digest[:_HASH_BYTES], "big") / float(1 << (8 * _HASH_BYTES))


def is_heldout(name: str) -> bool:
    return _heldout_score(photo_scene(name)) < HELDOUT_FRACTION


def split_photos(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split photo names into (train, held-out), about 70/30, each sorted.

    A photo's side depends only on its scene's hash, never on the other names.
    """
    unique = sorted(set(names))
    train = [n for n in unique if not is_heldout(n)]
    heldout = [n for n in unique if is_heldout(n)]
    return train, heldout
