"""The data flags every command that reads a dataset shares (``--data``, ``--boxes``, ...).

``--data benchmark`` (the default) is the built-in fashion-on-photos benchmark,
generated and cached by its parameters; any other value is a folder of class
folders. The benchmark flag defaults are :class:`tfedge.data.BenchmarkConfig`'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

from .._errors import TfedgeError

__all__ = ["add_data_flags", "benchmark_config_from_args", "dataset_from_args",
           "DATA_IDENTITY_FLAGS", "unset_data_defaults", "given_data_flags",
           "source_from_data_flags", "cascade_dataset"]

log = logging.getLogger("tfedge.cascade")

#: Data flags that say which images a command reads (not where caches live). Commands on a
#: cascade, which records its data, default them to None (:func:`unset_data_defaults`) to
#: know which ones were given.
DATA_IDENTITY_FLAGS = ("data", "boxes", "image_size", "object_size", "train_size", "val_size",
                       "test_size", "tint", "scenes", "data_seed")


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    from ..data import SCENE_SETS, BenchmarkConfig

    default = BenchmarkConfig()
    group = parser.add_argument_group("data")
    group.add_argument("--data", default="benchmark", type=str,
                       help="'benchmark' (the built-in fashion-on-photos data, default) or a "
                            "folder of class folders (ImageNet layout)")
    group.add_argument("--boxes", default=None, type=str,
                       help="object boxes of a folder dataset: a folder of Pascal VOC .xml "
                            "files or a .csv file (filename,xmin,ymin,xmax,ymax)")
    group.add_argument("--image-size", dest="image_size", type=int, default=default.image_size,
                       help=f"benchmark image side in pixels (default {default.image_size})")
    group.add_argument("--object-size", dest="object_size", type=int, nargs=2,
                       default=default.object_size,
                       metavar=("MIN", "MAX"), help="benchmark object side range in pixels")
    group.add_argument("--train-size", dest="train_size", type=int,
                       default=default.train_size)
    group.add_argument("--val-size", dest="val_size", type=int,
                       default=default.val_size)
    group.add_argument("--test-size", dest="test_size", type=int,
                       default=default.test_size)
    group.add_argument("--no-tint", dest="tint", action="store_false",
                       help="keep benchmark objects gray instead of colour-tinted")
    group.add_argument("--scenes", choices=SCENE_SETS, default=default.scenes,
                       help="benchmark background photos: 'default' (scikit-image's) or "
                            "'extended' (more scenes from other offline packages; docs/data.md)")
    group.add_argument("--data-seed", dest="data_seed", type=int, default=default.seed,
                       help="seed of the benchmark generator (and of the val hold-out)")
    group.add_argument("--fashion-mnist", dest="fashion_mnist", type=str, default=None,
                       help="folder holding Fashion-MNIST's four IDX .gz files "
                            "(default: /usr/share/datasets/fashion-mnist)")
    group.add_argument("--allow-download", dest="allow_download", action="store_true",
                       help="fetch Fashion-MNIST with Keras if it is not on disk")
    group.add_argument("--cache-dir", dest="cache_dir", type=str, default=None,
                       help="where generated data is cached (default: $TFEDGE_CACHE or "
                            "~/.cache/tfedge)")


def benchmark_config_from_args(args: argparse.Namespace):
    from ..data import BenchmarkConfig

    return BenchmarkConfig(image_size=args.image_size, object_size=tuple(args.object_size),
                           tint=args.tint, train_size=args.train_size, val_size=args.val_size,
                           test_size=args.test_size, seed=args.data_seed,
                           scenes=getattr(args, "scenes", "default"))


def dataset_from_args(args: argparse.Namespace):
    from ..data import load_dataset

    config = benchmark_config_from_args(args) if args.data == "benchmark" else None
    return load_dataset(args.data, benchmark=config, boxes=args.boxes, seed=args.data_seed,
                        cache_dir=args.cache_dir, fashion_mnist_path=args.fashion_mnist,
                        allow_download=args.allow_download)


def unset_data_defaults(parser: argparse.ArgumentParser) -> None:
    """Make the identity data flags of ``parser`` default to None (left out = not given)."""
    parser.set_defaults(**{flag: None for flag in DATA_IDENTITY_FLAGS})


def given_data_flags(args: argparse.Namespace) -> list[str]:
    """The identity data flags given on a command line with :func:`unset_data_defaults`."""
    return [f for f in DATA_IDENTITY_FLAGS if getattr(args, f, None) is not None]


def _filled(args: argparse.Namespace) -> argparse.Namespace:
    """A copy of ``args`` with every data flag left out at :func:`add_data_flags`' default."""
    defaults = argparse.ArgumentParser(add_help=False)
    add_data_flags(defaults)
    out = argparse.Namespace(**vars(args))
    for flag, value in vars(defaults.parse_args([])).items():
        if getattr(out, flag, None) is None:
            setattr(out, flag, value)
    return out


def source_from_data_flags(args: argparse.Namespace):
    """The :class:`~tfedge.data.DataSource` the data flags describe (left out: defaults)."""
    from ..data import DataSource

    args = _filled(args)
    if args.data == "benchmark":
        bench = dataclasses.asdict(benchmark_config_from_args(args))
        seed = bench.pop("seed")
        return DataSource("benchmark", benchmark=bench, seed=seed)
    return DataSource(args.data, boxes=args.boxes or "none", seed=args.data_seed)


def _where(args: argparse.Namespace) -> dict[str, Any]:
    return {"cache_dir": getattr(args, "cache_dir", None),
            "fashion_mnist_path": getattr(args, "fashion_mnist", None),
            "allow_download": bool(getattr(args, "allow_download", False))}


def cascade_dataset(args: argparse.Namespace, spec: Any, path: Any):
    """The dataset a command on cascade ``path`` reads: the one it records, unless data flags
    are given; given flags must name the same images, else a one-line error naming both."""
    from ..cascade._dataset import dataset_mismatch, describe_dataset_record, recorded_dataset

    given = given_data_flags(args)
    if not given:
        if spec.dataset is None:
            log.warning("%s records no dataset (built by an older tfedge): using the data "
                        "flags' defaults, the default benchmark; rebuild it, or pass --data",
                        path)
            return dataset_from_args(_filled(args))
        log.info("data: %s (recorded in %s)", describe_dataset_record(spec.dataset), path)
        return recorded_dataset(spec, path, **_where(args))
    fix = (f"drop the data flags ({', '.join('--' + f.replace('_', '-') for f in given)}) to use "
           "the recorded one, or rebuild the cascade with stages trained on that data")
    mismatch = dataset_mismatch(spec.dataset, source_from_data_flags(args))
    if mismatch:  # refused before any data is loaded
        raise TfedgeError(f"{path} {mismatch}: {fix}")
    dataset = dataset_from_args(_filled(args))
    mismatch = dataset_mismatch(spec.dataset, None, dataset.name)
    if mismatch:
        raise TfedgeError(f"{path} {mismatch}: {fix}")
    return dataset

