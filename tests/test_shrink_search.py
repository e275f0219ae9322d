"""Compound shrinking search, the baselines, the KD fine-tune and `tfedge shrink`, on tiny models."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from tfedge import TfedgeError
from tfedge.shrink._search import (SearchConfig, bisect_largest, bisect_largest_int, choose_step,
                                   fill_counts, next_resolution, resolve_target, step_score)
from tfedge.cli.shrink import parse_target

from conftest import make_colour_split

TINY_MODEL = "resnet10_025"
TINY_RESOLUTION = 32


# --------------------------------------------------------------------------- pure arithmetic


def test_resolve_target_takes_ratios_and_absolute_counts():
    assert resolve_target(1000, 0.5) == 500
    assert resolve_target(1000, 0.25) == 250
    assert resolve_target(1000, 400) == 400
    assert resolve_target(10**6, 2.5e5) == 250000


@pytest.mark.parametrize("target, message", [
    (1, "does not shrink"), (1.0, "does not shrink"), (1000, "does not shrink"),
    (5000, "does not shrink"), (0, "invalid"), (-0.5, "invalid"), (float("nan"), "invalid"),
    (True, "invalid"), ("0.5", "invalid")])
def test_resolve_target_refuses_what_is_no_shrink(target, message):
    with pytest.raises(TfedgeError, match=message):
        resolve_target(1000, target)


def test_step_score_is_accuracy_lost_per_fraction_of_base_macs_saved():
    # 2 points lost for 10% of the base saved: 0.2 per unit fraction.
    assert step_score(0.80, 0.78, 1000, 900, 1000) == pytest.approx(0.2)
    # The same loss for twice the saving scores half as badly.
    assert step_score(0.80, 0.78, 1000, 800, 1000) == pytest.approx(0.1)
    assert step_score(0.80, 0.82, 1000, 900, 1000) < 0, "a gain scores below zero"
    assert step_score(0.80, 0.70, 1000, 1000, 1000) == math.inf, "nothing saved: never chosen"


def test_choose_step_prefers_the_cheapest_accuracy_per_mac():
    candidates = [{"macs": 900, "val_top1": 0.70},   # 10 points for 10%: score 1.0
                  {"macs": 800, "val_top1": 0.78},   # 2 points for 20%: score 0.1
                  {"macs": 950, "val_top1": 0.79}]   # 1 point for 5%: score 0.2
    assert choose_step(candidates, top1=0.80, macs=1000, target_macs=500, base_macs=1000) == 1


def test_choose_step_among_steps_reaching_the_target_takes_the_most_accurate():
    candidates = [{"macs": 400, "val_top1": 0.60},   # saves most, but overshooting earns nothing
                  {"macs": 500, "val_top1": 0.75},   # reaches it too, more accurate: wins
                  {"macs": 700, "val_top1": 0.60}]   # does not reach it, 0.2 lost for 0.3 saved
    assert choose_step(candidates, top1=0.80, macs=1000, target_macs=500, base_macs=1000) == 1
    same = [{"macs": 400, "val_top1": 0.75}, {"macs": 500, "val_top1": 0.75}]
    assert choose_step(same, top1=0.80, macs=1000, target_macs=500, base_macs=1000) == 1, \
        "equally accurate reaching steps: the one keeping more of the budget"


def test_choose_step_a_landing_step_competes_on_score_with_shorter_steps():
    # The landing step loses 0.40 for the 0.5 of the base still to save (score 0.8); a
    # resolution step stopping short loses 0.05 for 0.3 saved (score 0.17): the search
    # takes the short step and goes on, instead of ending on the ruinous landing.
    candidates = [{"macs": 500, "val_top1": 0.40},   # width landing exactly on the target
                  {"macs": 700, "val_top1": 0.75}]   # resolution, short of it
    common = dict(top1=0.80, macs=1000, target_macs=500, base_macs=1000)
    assert choose_step(candidates, **common) == 1
    assert choose_step(candidates, **common, landing_tolerance=0.05) == 1
    # A cheap landing still ends the search.
    assert choose_step([{"macs": 500, "val_top1": 0.78}, candidates[1]], **common) == 0
    # Overshooting buys no credit: 250 MACs for 0.1 lost scores as 500 would (0.2), and
    # loses to the short step (0.17); credited with its whole saving (0.75) it would win.
    assert choose_step([{"macs": 250, "val_top1": 0.70}, candidates[1]], **common) == 1


def test_choose_step_without_useful_candidates_is_none_and_ties_go_first():
    assert choose_step([], top1=0.8, macs=1000, target_macs=500, base_macs=1000) is None
    assert choose_step([{"macs": 1000, "val_top1": 0.9}], top1=0.8, macs=1000,
                       target_macs=500, base_macs=1000) is None
    tie = [{"macs": 900, "val_top1": 0.78}, {"macs": 900, "val_top1": 0.78}]
    assert choose_step(tie, top1=0.8, macs=1000, target_macs=500, base_macs=1000) == 0
    free = [{"macs": 900, "val_top1": 0.8}, {"macs": 700, "val_top1": 0.8}]
    assert choose_step(free, top1=0.8, macs=1000, target_macs=500, base_macs=1000) == 1, \
        "two steps that lose nothing: the one saving more"


def test_next_resolution_steps_by_pixels_or_fraction_and_stops_at_the_minimum():
    assert next_resolution(128, 16, 32) == 112
    assert next_resolution(40, 16, 32) == 32, "clamped to the minimum"
    assert next_resolution(32, 16, 32) is None
    assert next_resolution(100, 0.25, 32) == 75
    assert next_resolution(33, 0.01, 32) == 32, "a fraction removes at least one pixel"


def test_bisect_largest_finds_the_last_ratio_within_budget_of_a_step_function():
    # MACs of a width ratio with channels rounded to multiples of 8 of 64: steps of 1/8.
    def macs(r: float) -> int:
        return 1000 * max(8, int(round(64 * r / 8)) * 8)

    ratio = bisect_largest(macs, 32000, 0.001, 1.0, steps=14)
    assert macs(ratio) <= 32000
    assert macs(ratio + 1.0 / 2**12) > 32000 or ratio == 1.0, "largest within 2^-12"
    assert bisect_largest(macs, 10**9, 0.001, 1.0) == 1.0, "hi within budget is returned as is"


def test_bisect_largest_int_finds_the_largest_side_within_budget():
    def macs(side: int) -> int:
        return side * side

    assert bisect_largest_int(macs, 1000, 8, 64) == 31
    assert bisect_largest_int(macs, 4096, 8, 64) == 64
    assert bisect_largest_int(macs, 64, 8, 64) == 8


def test_fill_counts_spends_the_budget_the_rounding_left_least_kept_group_first():
    sizes = {"a": 16, "b": 64}

    def cost(counts):  # MACs of two layers: a 3x3 conv on a, a 1x1 on b
        return 9 * counts["a"] ** 2 + counts["b"] ** 2

    start = {"a": 8, "b": 32}   # a common ratio of 0.5: 1600 MACs
    filled = fill_counts(sizes, start, 4, lambda c: cost(c) <= 2800)
    assert cost(filled) <= 2800
    # Tie at 50%: the larger group b grows (36); then a, now the least kept, grows (12);
    # b at 40 or a at 16 would exceed the budget.
    assert filled == {"a": 12, "b": 36}
    assert fill_counts(sizes, start, 4, lambda c: False) == start
    full = fill_counts(sizes, start, 8, lambda c: True, max_tries=100)
    assert full == sizes, "never past a group's size"
    calls = []
    fill_counts(sizes, start, 4, lambda c: calls.append(c) or False)
    assert len(calls) == 2, "a group that no longer fits is not tried again"


@pytest.mark.parametrize("kwargs, message", [
    (dict(target_macs_ratio=1.0), "target_macs_ratio"), (dict(target_macs_ratio=0), "target_macs_ratio"),
    (dict(target_macs=0), "target_macs"), (dict(width_step=1.0), "width_step"),
    (dict(depth_step=0), "depth_step"), (dict(resolution_step=0), "resolution_step"),
    (dict(min_resolution=4), "min_resolution"), (dict(score="magic"), "unknown score"),
    (dict(dimensions=("height",)), "dimensions"), (dict(dimensions=()), "dimensions"),
    (dict(round_to=0), "round_to"), (dict(finetune_epochs=-1), "finetune_epochs"),
    (dict(val_size=0), "val_size"), (dict(importance="magic"), "unknown importance 'magic'"),
    (dict(bn_batches=-1), "bn_batches"), (dict(bn_batches=True), "bn_batches")])
def test_bad_search_config_is_refused_with_the_bad_value(kwargs, message):
    with pytest.raises(TfedgeError, match=message):
        SearchConfig(**kwargs)


def test_search_config_target_prefers_the_absolute_count():
    assert SearchConfig(target_macs_ratio=0.25).target(1000) == 250
    assert SearchConfig(target_macs=300).target(1000) == 300


@pytest.mark.parametrize("text, value", [("0.5", 0.5), (".25", 0.25), ("20M", 2e7), ("2e7", 2e7),
                                         ("1.5G", 1.5e9), ("500k", 5e5), ("123456", 123456)])
def test_cli_target_parses_ratios_and_counts(text, value):
    assert parse_target(text) == value


@pytest.mark.parametrize("text", ["1", "50", "0", "-0.5", "half", "1e400"])
def test_cli_target_refuses_no_shrink_and_typos(text):
    with pytest.raises(TfedgeError, match="--target-macs"):
        parse_target(text)


# --------------------------------------------------------------------------- on tiny models


@pytest.fixture(scope="module")
def tiny():
    """A briefly trained resnet10_025 at 32 px on the colour toy task, with its splits."""
    from tfedge._train import TrainConfig, train_classifier

    train = make_colour_split(192, seed=0)
    val = make_colour_split(48, seed=1)
    model, _ = train_classifier(TINY_MODEL, train, config=TrainConfig(
        epochs=1, batch_size=32, augment=None, bn_recalibration_batches=2),
        resolution=TINY_RESOLUTION)
    return model, train, val


def _macs(model) -> int:
    from tfedge import count_macs

    return count_macs(model).macs


FAST = dict(finetune_epochs=0, val_size=48, bn_batches=2, batch_size=32, calibration_size=32,
            min_resolution=16, width_step=0.25)


def test_search_reaches_the_target_and_logs_every_step(tmp_path, tiny):
    from tfedge.shrink._search import compound_search

    model, train, val = tiny
    base_macs = _macs(model)
    weights = [w.copy() for w in model.get_weights()]
    result = compound_search(model, train, val, SearchConfig(target_macs_ratio=0.5, **FAST),
                             output_dir=tmp_path, name="tiny", progress=False)
    assert result.reached and result.macs <= base_macs // 2
    assert _macs(result.model) == result.macs
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights())), \
        "the base model is not modified"
    log = json.loads((tmp_path / "tiny.search.json").read_text())
    assert log["finished"] and log["steps"] == result.steps
    dims = [s["dimension"] for s in log["steps"]]
    assert dims[0] == "base" and dims[-1] == "finetune" and len(dims) >= 3
    searched = log["steps"][1:-1]
    assert all(s["dimension"] in ("depth", "width", "resolution") for s in searched)
    macs = [s["macs"] for s in log["steps"][:-1]]
    assert all(a > b for a, b in zip(macs, macs[1:])), "every step saves MACs"
    for step in log["steps"]:
        assert {"dimension", "macs", "val_top1", "seconds"} <= set(step)
    assert all(s["candidates"] for s in searched), "each step records the candidates it beat"
    assert (tmp_path / "tiny.search.keras").exists()


def test_search_resumes_after_a_kill_from_its_log(tmp_path, tiny, monkeypatch):
    from tfedge.shrink import _search

    model, train, val = tiny
    config = SearchConfig(target_macs_ratio=0.3, **FAST)
    real_save = _search._SearchLog.save
    saved = {"steps": 0}

    def killed_after_first_step(self, state, model=None, record=None):
        real_save(self, state, model, record)
        if model is not None:
            saved["steps"] += 1
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(_search._SearchLog, "save", killed_after_first_step)
    with pytest.raises(KeyboardInterrupt):
        _search.compound_search(model, train, val, config, output_dir=tmp_path, name="r",
                                progress=False)
    before = json.loads((tmp_path / "r.search.json").read_text())["steps"]
    assert len(before) == 2 and not json.loads((tmp_path / "r.search.json").read_text())["finished"]
    monkeypatch.setattr(_search._SearchLog, "save", real_save)
    result = _search.compound_search(model, train, val, config, output_dir=tmp_path, name="r",
                                     progress=False)
    assert result.steps[:2] == before, "the logged steps are kept, not searched again"
    assert result.reached and result.steps[-1]["dimension"] == "finetune"
    # A finished search started again returns its result without searching.
    again = _search.compound_search(model, train, val, config, output_dir=tmp_path, name="r",
                                    progress=False)
    assert again.steps == result.steps and again.macs == result.macs


def test_search_scored_by_short_finetunes_and_an_unreachable_target(tmp_path, tiny, caplog):
    from tfedge.shrink._search import compound_search

    model, train, val = tiny
    config = SearchConfig(target_macs_ratio=0.8, score="finetune", score_finetune_steps=2,
                          **{**FAST, "dimensions": ("resolution",)})
    result = compound_search(model, train, val, config, progress=False)
    assert result.reached and result.steps[1]["dimension"] == "resolution"
    # Resolution alone, never below 24 px, cannot reach 10% of the MACs: a warning, not a crash.
    config = SearchConfig(target_macs_ratio=0.1, **{**FAST, "dimensions": ("resolution",),
                                                    "min_resolution": 24})
    with caplog.at_level("WARNING"):
        result = compound_search(model, train, val, config, progress=False)
    assert not result.reached and result.architecture["resolution"] == 24
    assert "no dimension can shrink" in caplog.text


def test_search_log_of_another_search_is_refused(tmp_path, tiny):
    from tfedge.shrink._search import compound_search

    model, train, val = tiny
    compound_search(model, train, val, SearchConfig(target_macs_ratio=0.7, **FAST),
                    output_dir=tmp_path, name="x", progress=False)
    with pytest.raises(TfedgeError, match="another search"):
        compound_search(model, train, val, SearchConfig(target_macs_ratio=0.6, **FAST),
                        output_dir=tmp_path, name="x", progress=False)


@pytest.mark.parametrize("method", ["uniform", "resolution", "l1", "bn", "hrank"])
def test_each_baseline_lands_on_its_target(method, tiny):
    from tfedge.shrink._baselines import BASELINES
    from tfedge.shrink._search import calibration_arrays

    model, train, _ = tiny
    base_macs = _macs(model)
    target = base_macs // 2
    calibration = calibration_arrays(train, 32, TINY_RESOLUTION)
    shrunk = BASELINES[method](model, target, calibration, round_to=4)
    macs = _macs(shrunk)
    assert macs <= target
    # Within the knob's granularity: channel budgets are filled notch by notch; a stride-32
    # network's MACs jump with the input side (feature maps are rounded up), so pixels are coarser.
    assert macs >= (0.6 if method == "resolution" else 0.8) * target, \
        f"{method} undershoots: {macs} of {target}"
    out = shrunk(np.zeros((1, *shrunk.input_shape[1:]), np.float32))
    assert out.shape == (1, 3)


def test_bn_baseline_ranks_equal_scales_evenly_across_groups():
    from tfedge.shrink._search import global_ranks

    # Distinct scales: network slimming's global order.
    ranks = global_ranks({"a": np.array([0.1, 0.5]), "b": np.array([0.3])})
    assert ranks["a"].tolist() == [0, 2] and ranks["b"].tolist() == [1]
    # Equal scales: the last channels of every group go first, in proportion to group size.
    ranks = global_ranks({"a": np.ones(4), "b": np.ones(2)})
    assert ranks["a"].tolist() == [5, 3, 2, 0] and ranks["b"].tolist() == [4, 1]


def test_bn_baseline_lands_on_its_target_when_every_scale_is_equal():
    """An untrained model's BatchNorm scales are all 1: a threshold on the value alone cut
    every channel at once (EfficientNetB0 asked for 50% of its MACs got 3%)."""
    from tfedge.models import build_model, get_spec
    from tfedge.shrink._baselines import BASELINES

    model = build_model(get_spec(TINY_MODEL, num_classes=3, resolution=TINY_RESOLUTION))
    target = _macs(model) // 2
    macs = _macs(BASELINES["bn"](model, target, None, round_to=4))
    assert 0.8 * target <= macs <= target


def test_shrink_to_target_fine_tunes_a_baseline_with_distillation(tiny):
    from tfedge.shrink._baselines import run_shrink, shrink_to_target

    model, train, val = tiny
    config = SearchConfig(**{**FAST, "finetune_epochs": 1})
    result = run_shrink(model, "l1", 0.5, train, val, config=config, progress=False)
    assert [s["dimension"] for s in result.steps] == ["base", "l1", "finetune"]
    assert result.reached and result.steps[-1]["epochs"] == 1
    with pytest.raises(TfedgeError, match="unknown shrink method"):
        shrink_to_target(model, "magic", 0.5, train, val, config=config)


def test_finetune_with_distillation_returns_a_new_model(tiny):
    from tfedge.shrink._finetune import FinetuneConfig, finetune_with_distillation

    model, train, val = tiny
    before = [w.copy() for w in model.get_weights()]
    tuned = finetune_with_distillation(model, model, train, val, epochs=1,
                                       config=FinetuneConfig(batch_size=32, augment=False,
                                                             bn_recalibration_batches=2))
    assert tuned is not model
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert any(not np.array_equal(a, b) for a, b in zip(before, tuned.get_weights()))


def test_select_on_validation_keeps_the_start_only_when_it_scored_strictly_higher():
    from tfedge.shrink._search import select_on_validation

    assert select_on_validation(0.70, 0.65) == "start"
    assert select_on_validation(0.60, 0.65) == "finetuned"
    assert select_on_validation(0.65, 0.65) == "finetuned", "a tie keeps the trained model"


def _ruining_finetune(monkeypatch):
    """Make every final fine-tune return a copy that validation scores -1 (worse than any
    start), as a full fine-tune at a too-high rate can do; return the copies made."""
    from tfedge.shrink import _search
    from tfedge.shrink._finetune import copy_model

    ruined = []

    def ruin(student, teacher, train, **_):
        ruined.append(copy_model(student))
        return ruined[-1]

    real = _search._evaluate
    monkeypatch.setattr(_search, "finetune_with_distillation", ruin)
    monkeypatch.setattr(_search, "_evaluate",
                        lambda m, v: -1.0 if any(m is r for r in ruined) else real(m, v))
    return ruined


@pytest.mark.parametrize("method", ["compound", "l1"])
def test_a_finetune_that_lowers_validation_gives_back_its_start(method, tiny, monkeypatch):
    from tfedge.shrink._baselines import run_shrink

    model, train, val = tiny
    ruined = _ruining_finetune(monkeypatch)
    result = run_shrink(model, method, 0.5, train, val, config=SearchConfig(**FAST),
                        progress=False)
    last = result.steps[-1]
    assert last["dimension"] == "finetune" and last["kept"] == "start"
    assert last["finetuned_val_top1"] == -1.0
    assert last["val_top1"] == result.val_top1 == result.steps[-2]["val_top1"] >= 0
    assert result.model is not ruined[-1] and _macs(result.model) == result.macs
    # Without the rule (the CLI's --always-finetuned) the fine-tuned model is the result.
    result = run_shrink(model, method, 0.5, train, val, progress=False,
                        config=SearchConfig(**FAST, keep_better_start=False))
    assert result.steps[-1]["kept"] == "finetuned" and result.model is ruined[-1]
    assert result.val_top1 == -1.0


def test_cli_always_finetuned_turns_the_rule_off():
    from tfedge.cli.shrink import _config_from_args

    argv = ["shrink", "--model", "m.keras", "--output", "o.keras", "--target-macs", "0.5"]
    assert _config_from_args(_parser().parse_args(argv)).keep_better_start
    args = _parser().parse_args([*argv, "--always-finetuned"])
    assert not _config_from_args(args).keep_better_start


# --------------------------------------------------------------------------- the CLI


def _parser():
    from tfedge.cli import build_parser
    from tfedge.cli.shrink import register

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "shrink" not in sub.choices:  # until tfedge.cli wires it in
        register(sub)
    return parser


DATA_FLAGS = ["--image-size", "32", "--object-size", "8", "16", "--train-size", "96",
              "--val-size", "32", "--test-size", "32"]


def _one_line_error(capsys, argv, *fragments):
    from tfedge.cli._shell import run_cli

    assert run_cli(_parser(), argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_bad_input_gives_one_line_errors(tmp_path, capsys, tiny):
    from tfedge._train import save_classifier

    base = tmp_path / "base.keras"
    save_classifier(tiny[0], base, {"class_names": list(tiny[1].class_names)})
    common = ["shrink", "--output", str(tmp_path / "out.keras")]
    _one_line_error(capsys, [*common, "--model", str(base), "--target-macs", "1"], "--target-macs")
    _one_line_error(capsys, [*common, "--model", str(base), "--target-macs", "2.5"],
                    "--target-macs")
    _one_line_error(capsys, [*common, "--model", str(base), "--target-macs", "0.5", "--method",
                             "magic"], "unknown shrink method 'magic'")
    _one_line_error(capsys, [*common, "--model", str(tmp_path / "missing.keras"),
                             "--target-macs", "0.5"], "missing.keras", "does not exist")
    _one_line_error(capsys, ["shrink", "--output", str(tmp_path / "out.h5"), "--model", str(base),
                             "--target-macs", "0.5"], "--output must end in .keras")
    _one_line_error(capsys, [*common, "--model", str(base), "--target-macs", "0.5",
                             "--importance", "magic"], "unknown importance 'magic'")


def meta_kept(search_log) -> str:
    """Which model the final fine-tune kept, as the search log records it."""
    kept = json.loads(search_log.read_text())["steps"][-1]["kept"]
    assert kept in ("start", "finetuned")
    return kept


def test_cli_end_to_end_writes_a_loadable_classifier_with_its_record(tmp_path, capsys):
    from tfedge.cli._shell import run_cli
    from tfedge._train import load_classifier, read_sidecar, save_classifier
    from tfedge.data import BenchmarkConfig, load_dataset
    from tfedge.models import create_model

    data = load_dataset("benchmark", benchmark=BenchmarkConfig(
        image_size=32, object_size=(8, 16), train_size=96, val_size=32, test_size=32))
    base = tmp_path / "base.keras"
    save_classifier(create_model(TINY_MODEL, resolution=32, num_classes=len(data.class_names)),
                    base, {"class_names": list(data.class_names)})
    out = tmp_path / "small.keras"
    rc = run_cli(_parser(), ["shrink", "--model", str(base), "--output", str(out),
                             "--target-macs", "0.5", "--finetune-epochs", "0", "--round-to", "4",
                             "--min-resolution", "16", "--width-step", "0.25",
                             "--bn-batches", "1", "--batch-size", "32", *DATA_FLAGS])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["reached"] and summary["macs"] <= summary["base_macs"] * 0.5
    assert summary["finetune_kept"] == meta_kept(tmp_path / "small.search.json")
    model = load_classifier(out)
    meta = read_sidecar(out)
    assert meta["class_names"] == list(data.class_names)
    assert meta["resolution"] == model.input_shape[1] == summary["resolution"]
    assert meta["shrink"]["method"] == "compound" and meta["shrink"]["steps"]
    assert meta["base_model"]["sha256"] and len(meta["base_model"]["sha256"]) == 64
    assert (tmp_path / "small.search.json").exists()
