"""The data flags every command that reads a dataset shares (``--data``, ``--boxes``, ...).

``--data benchmark`` (the default) is the built-in fashion-on-photos benchmark,
generated and cached by its parameters; any other value is a folder of class
folders. The benchmark flag defaults are :class:`tfedge.data.BenchmarkConfig`'s.
"""

from __future__ import annotations

import argparse

__all__ = ["add_data_flags", "benchmark_config_from_args", "dataset_from_args"]


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
