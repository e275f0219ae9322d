"""The shared data flags: defaults are BenchmarkConfig's, every flag reaches the config."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from tfedge.cli import add_data_flags, benchmark_config_from_args
from tfedge.data import SCENE_SETS, BenchmarkConfig


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_data_flags(parser)
    return parser.parse_args(list(argv))


def test_no_flags_give_the_library_default_benchmark():
    assert benchmark_config_from_args(_parse()) == BenchmarkConfig()


def test_every_benchmark_flag_reaches_the_config():
    args = _parse("--image-size", "96", "--object-size", "30", "60", "--train-size", "100",
                  "--val-size", "20", "--test-size", "30", "--no-tint", "--data-seed", "7",
                  "--scenes", "extended")
    config = benchmark_config_from_args(args)
    assert dataclasses.asdict(config) == dataclasses.asdict(dataclasses.replace(
        BenchmarkConfig(), image_size=96, object_size=(30, 60), train_size=100, val_size=20,
        test_size=30, tint=False, seed=7, scenes="extended"))


def test_an_unknown_scene_set_is_a_usage_error_listing_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse("--scenes", "forest")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--scenes" in err and all(name in err for name in SCENE_SETS)
