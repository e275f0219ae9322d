"""Compound search refinements: MAC-sized steps, stride-aligned sides, landing, a fair fine-tune
budget, and an int8-latency target measured with the runtime."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfedge import TfedgeError
from tfedge.shrink._resolution import allowed_sides
from tfedge.shrink._search import SearchConfig, choose_step, remaining_finetune

from conftest import make_colour_split


# --------------------------------------------------------------------------- pure arithmetic


def test_remaining_finetune_takes_the_accepted_steps_training_off_the_budget():
    assert remaining_finetune(2, 60, 0) == (2, None), "nothing used: whole epochs"
    assert remaining_finetune(2, 60, 40) == (2, 40), "80 of 120 steps left, over 2 epochs"
    assert remaining_finetune(2, 60, 119) == (1, 1)
    assert remaining_finetune(2, 60, 120) == (0, None), "spent: BatchNorm re-estimation only"
    assert remaining_finetune(2, 60, 500) == (0, None)
    assert remaining_finetune(0, 60, 10) == (0, None)


def test_final_finetune_is_charged_only_for_accepted_steps_that_trained():
    from tfedge.shrink._search import _final_finetune

    train = [0] * 640  # ten batches of 64: one epoch is 10 steps
    config = SearchConfig(finetune_epochs=2, score="finetune", score_finetune_steps=3)
    steps = [{"dimension": "base"}, {"dimension": "width", "train_steps": 3},
             {"dimension": "resolution", "train_steps": 3}]
    ft = _final_finetune(config, train, steps)
    assert (ft.epochs, ft.steps_per_epoch) == (2, 7), "20 steps less 6 accepted: 14 over 2 epochs"
    free = _final_finetune(SearchConfig(finetune_epochs=2, charge_search_steps=False), train, steps)
    assert (free.epochs, free.steps_per_epoch) == (2, None)


def test_allowed_sides_are_multiples_from_the_minimum_below_the_current_side():
    assert allowed_sides(128, 32, 32) == [32, 64, 96]
    assert allowed_sides(64, 32, 16) == [32, 48]
    assert allowed_sides(64, 20, 16) == [32, 48], "the minimum rounds up to a multiple"
    assert allowed_sides(32, 32, 32) == []
    assert allowed_sides(20, 16, 1) == [16, 17, 18, 19]
    with pytest.raises(ValueError):
        allowed_sides(64, 32, 0)


def test_choose_step_prefers_landing_on_the_target_only_between_equal_scores():
    common = dict(top1=0.80, macs=1000, target_macs=500, base_macs=1000)
    # Equally accurate reaching steps score alike: the one within 5% of the target wins
    # with a tolerance (it spends the whole budget), else the one keeping more MACs.
    alike = [{"macs": 300, "val_top1": 0.70}, {"macs": 490, "val_top1": 0.70}]
    assert choose_step(alike, **common, landing_tolerance=0.05) == 1
    # An overshooting step far more accurate than the landing one wins: the tolerance never
    # overrides the score (the collapse it caused on a pretrained model).
    ruinous = [{"macs": 280, "val_top1": 0.54}, {"macs": 499, "val_top1": 0.0},
               {"macs": 960, "val_top1": 0.75}]
    assert choose_step(ruinous, **common, landing_tolerance=0.05) == 0
    assert choose_step(ruinous, **common) == 0


def test_choose_step_works_on_milliseconds_as_the_cost():
    candidates = [{"macs": 0.9, "val_top1": 0.70}, {"macs": 0.8, "val_top1": 0.78}]
    assert choose_step(candidates, top1=0.8, macs=1.0, target_macs=0.5, base_macs=1.0) == 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(step_macs_fraction=1.0), "step_macs_fraction"), (dict(step_macs_fraction=0), "step_macs_fraction"),
    (dict(resolution_multiple=-1), "resolution_multiple"), (dict(landing_tolerance=1.0), "landing_tolerance"),
    (dict(target_ms=0), "target_ms"), (dict(target_ms=float("inf")), "target_ms"),
    (dict(target_ms="1"), "target_ms"), (dict(width_allocation="diagonal"), "width_allocation"),
    (dict(width_allocation="global", importance="l1"), "importance 'bn'")])
def test_bad_new_search_settings_are_refused_with_the_bad_value(kwargs, message):
    with pytest.raises(TfedgeError, match=message):
        SearchConfig(**kwargs)


def test_width_allocation_is_in_the_fingerprint_only_when_it_is_not_the_default():
    """Search logs written before the option existed fingerprint a config without it: they
    must stay resumable, and a global search must not resume a uniform one's log."""
    assert "width_allocation" not in SearchConfig().to_dict()
    assert SearchConfig(width_allocation="global").to_dict()["width_allocation"] == "global"


# --------------------------------------------------------------------------- on a tiny model


@pytest.fixture(scope="module")
def tiny():
    """resnet10_025 at 32 px (stride 32), one epoch on the colour toy task."""
    from tfedge._train import TrainConfig, train_classifier

    train = make_colour_split(192, seed=0)
    val = make_colour_split(48, seed=1)
    model, _ = train_classifier("resnet10_025", train, config=TrainConfig(
        epochs=1, batch_size=32, augment=None, bn_recalibration_batches=2), resolution=32)
    return model, train, val


def _macs(model) -> int:
    from tfedge import count_macs

    return count_macs(model).macs


@pytest.mark.parametrize("resolution", [32, 64])
def test_total_stride_of_a_registry_resnet(resolution):
    from tfedge.models import create_model
    from tfedge.shrink._resolution import total_stride

    model = create_model("resnet10_025", resolution=resolution, num_classes=3)
    assert total_stride(model) == 32


@pytest.mark.slow
def test_sized_steps_aligned_sides_landing_and_a_charged_finetune(tiny):
    from tfedge.shrink._search import compound_search

    model, train, val = tiny
    base_macs = _macs(model)
    config = SearchConfig(target_macs_ratio=0.4, step_macs_fraction=0.3, resolution_multiple=8,
                          min_resolution=16, score="finetune", score_finetune_steps=1,
                          finetune_epochs=1, val_size=48, bn_batches=2, batch_size=32,
                          calibration_size=32, round_to=4)
    result = compound_search(model, train, val, config, progress=False)
    target = config.target(base_macs)
    assert result.reached
    searched = result.steps[1:-1]
    for before, step in zip(result.steps, searched):
        kept = choose_step(step["candidates"], top1=before["val_top1"], macs=before["macs"],
                           target_macs=target, base_macs=base_macs,
                           landing_tolerance=config.landing_tolerance)
        assert (step["candidates"][kept]["macs"], step["candidates"][kept]["dimension"]) == \
            (step["macs"], step["dimension"]), "each step keeps the best-scoring candidate"
    for before, step in zip(result.steps, searched):
        for c in step["candidates"]:
            if c["dimension"] == "resolution":
                assert c["resolution"] % 8 == 0, "sides are multiples of resolution_multiple"
            if c["dimension"] == "width" and c["macs"] > target:
                assert c["macs"] <= math.floor(0.7 * before["macs"]), "a width step saves >= 30%"
        assert step["train_steps"] == 1
    final = result.steps[-1]
    budget = len(train) // 32  # one epoch of 6 steps
    used = len(searched)
    assert final["dimension"] == "finetune" and 0 < used < budget
    assert (final["epochs"], final["steps_per_epoch"]) == (1, budget - used), \
        "the accepted steps' short fine-tunes come off the final fine-tune"


def _with_scales(model, big_layer: str, seed: int = 0):
    """Small random BatchNorm scales everywhere but ``big_layer``, whose are ten times larger."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            low, high = (1.0, 2.0) if layer.name == big_layer else (0.1, 0.2)
            layer.gamma.assign(rng.uniform(low, high, layer.gamma.shape).astype("float32"))
    return model


def test_global_width_allocation_cuts_the_layers_with_small_batchnorm_scales():
    """With ``width_allocation="global"`` a width step ranks every group's channels by raw
    |gamma| together (network slimming), so the group whose scales are ten times larger keeps
    its channels and the others pay; the uniform allocation cuts every group alike."""
    from tfedge.models import create_model
    from tfedge.shrink._search import compound_search

    train, val = make_colour_split(64, seed=0), make_colour_split(16, seed=1)
    base = _with_scales(create_model("resnet10_025", resolution=32, num_classes=3),
                        "stage4_block1_bn1")
    kept = {}
    for allocation in ("global", "uniform"):
        config = SearchConfig(target_macs_ratio=0.5, dimensions=("width",), width_step=0.3,
                              width_allocation=allocation, score="bn", bn_batches=1,
                              finetune_epochs=0, val_size=16, batch_size=16,
                              calibration_size=16, round_to=4)
        result = compound_search(base, train, val, config, progress=False)
        assert result.reached and result.macs <= config.target(_macs(base))
        widths = [s for s in result.steps if s["dimension"] == "width"]
        assert widths and all(s["detail"]["allocation"] == allocation for s in widths)
        kept[allocation] = {name: result.model.get_layer(name).filters for name in
                            ("stage4_block1_conv1", "stage3_block1_conv1", "stage2_block1_conv1")}
    assert kept["global"]["stage4_block1_conv1"] == 128, kept
    assert kept["global"]["stage3_block1_conv1"] < kept["uniform"]["stage3_block1_conv1"], \
        "the others pay for it"
    assert kept["uniform"]["stage4_block1_conv1"] < 128, kept
    assert base.get_layer("stage4_block1_conv1").filters == 128, "the base is not modified"


def test_a_global_width_landing_that_would_overshoot_takes_the_even_cut():
    """One |gamma| threshold moves in notches of ``round_to`` channels of whichever group holds
    the next-lowest scale: when that is the stem's 16-channel group, a cut of 1% of the MACs
    would halve it. The landing takes the uniform allocation of the same criterion instead,
    which lands within the tolerance (at full size a 1.7% cut had landed at 74% of its
    budget, 18.6% of the base's MACs for a 25% target)."""
    from tfedge.models import create_model
    from tfedge.shrink._search import MIN_KEEP_RATIO, _Stepper, coarse_floor

    train = make_colour_split(32, seed=0)
    base = create_model("resnet10_025", resolution=32, num_classes=3)
    rng = np.random.default_rng(0)
    for layer in base.layers:
        if type(layer).__name__ == "BatchNormalization":
            low = layer.name in ("stem_bn", "stage1_block1_bn2")  # the stem's coupled group
            layer.gamma.assign(rng.uniform(*((0.01, 0.02) if low else (1.0, 2.0)),
                                           layer.gamma.shape).astype("float32"))
    macs = _macs(base)
    budget = int(0.99 * macs)
    assert coarse_floor(budget, 0.05) == pytest.approx(0.95 * budget)
    assert coarse_floor(budget, None) == coarse_floor(budget, 0.05)
    landed = {}
    for allocation in ("global", "uniform"):
        config = SearchConfig(width_allocation=allocation, round_to=8, calibration_size=16,
                              batch_size=16)
        stepper = _Stepper(config, train, budget)
        candidate = stepper._landing(base, macs, stepper.calibration(base), MIN_KEEP_RATIO, 1.0)
        landed[allocation] = candidate
        assert candidate.macs <= budget and _macs(candidate.model) == candidate.macs
    slimming = landed["global"]
    assert slimming.detail["allocation"] == "uniform", "the threshold's cut was too coarse"
    assert slimming.macs == landed["uniform"].macs >= coarse_floor(budget, 0.05)
    assert slimming.model.get_layer("stem_conv").filters == 16, "the stem keeps its channels"
    # Where the threshold lands well it is kept: a 30% cut takes channels where |gamma| is low.
    config = SearchConfig(width_allocation="global", round_to=8, calibration_size=16,
                          batch_size=16)
    stepper = _Stepper(config, train, int(0.7 * macs))
    wide = stepper._landing(base, macs, stepper.calibration(base), MIN_KEEP_RATIO, 1.0)
    assert wide.detail["allocation"] == "global"
    assert wide.model.get_layer("stem_conv").filters < 16


@pytest.mark.slow
def test_search_to_an_int8_latency_target_measured_with_the_runtime(tiny):
    from tfedge.shrink._latency import LatencyMeter
    from tfedge.shrink._search import compound_search

    model, train, val = tiny
    base_ms = LatencyMeter(model, train).reference_ms
    config = SearchConfig(target_ms=0.6 * base_ms, step_macs_fraction=0.3, min_resolution=16,
                          resolution_multiple=8, finetune_epochs=0, val_size=48, bn_batches=2,
                          batch_size=32, calibration_size=32, round_to=4)
    result = compound_search(model, train, val, config, progress=False)
    assert result.int8_ms is not None and result.base_int8_ms is not None
    assert result.reached and result.int8_ms <= config.target_ms
    assert all("int8_ms" in s for s in result.steps), "every step logs its int8 milliseconds"
    assert result.macs < _macs(model)
    record = result.record()
    assert record["target_ms"] == config.target_ms and record["int8_ms"] == result.int8_ms


def test_bn_batches_zero_keeps_batchnorm_statistics_in_every_fine_tune():
    from tfedge.shrink._finetune import FinetuneConfig

    kept = SearchConfig(bn_batches=0).finetune()
    assert kept.freeze_batchnorm and kept.bn_recalibration_batches == 0
    assert kept.train_config().bn_recalibration_batches == 0
    default = SearchConfig().finetune()
    assert not default.freeze_batchnorm and default.bn_recalibration_batches > 0
    with pytest.raises(TfedgeError, match="bn_recalibration_batches"):
        FinetuneConfig(bn_recalibration_batches=-1)


def _bn_statistics(model) -> dict[str, list[np.ndarray]]:
    import keras

    return {layer.name: [w.numpy() for w in (layer.moving_mean, layer.moving_variance)]
            for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}


def test_shrinking_with_bn_batches_zero_keeps_the_models_statistics(tiny):
    """A pretrained model's BatchNorm statistics survive the baseline's re-estimation step,
    compound's scoring and the fine-tune when bn_batches=0 (a frozen fine-tune that trains
    the rest), while the default re-estimates them; the result's BN layers train again."""
    from tfedge.shrink._baselines import run_shrink

    model, train, val = tiny
    before = _bn_statistics(model)
    config = SearchConfig(bn_batches=0, finetune_epochs=1, val_size=16, batch_size=64,
                          calibration_size=32, dimensions=("resolution",), min_resolution=16,
                          resolution_multiple=8)
    for method in ("resolution", "compound"):
        result = run_shrink(model, method, 0.5, train, val, config=config, progress=False)
        after = _bn_statistics(result.model)
        assert after.keys() == before.keys()
        for name in before:
            np.testing.assert_array_equal(after[name][0], before[name][0], err_msg=method)
            np.testing.assert_array_equal(after[name][1], before[name][1], err_msg=method)
        assert all(layer.trainable for layer in result.model.layers), method
        conv = [w for w in result.model.weights if "kernel" in w.path][0]
        assert not np.array_equal(conv.numpy(), model.get_layer(
            conv.path.split("/")[0]).kernel.numpy()), "the fine-tune trained the rest"
    recalibrated = run_shrink(model, "resolution", 0.5, train, val, progress=False,
                              config=SearchConfig(**{**config.to_dict(), "bn_batches": 2,
                                                     "finetune_epochs": 0}))
    changed = _bn_statistics(recalibrated.model)
    assert any(not np.allclose(changed[n][0], before[n][0]) for n in before), \
        "the default re-estimates the statistics (the contrast the option exists for)"


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("extra, fragment", [
    ([], "give exactly one target"),
    (["--target-macs", "0.5", "--target-ms", "0.2"], "give exactly one target"),
    (["--target-ms", "0.2", "--method", "l1"], "compound only"),
    (["--target-ms", "-1"], "target_ms must be positive"),
    (["--target-macs", "0.5", "--step-fraction", "1.5"], "step_macs_fraction"),
    (["--target-macs", "0.5", "--resolution-multiple", "-2"], "resolution_multiple"),
    (["--target-macs", "0.5", "--method", "bn", "--width-allocation", "global"], "--method compound"),
    (["--target-macs", "0.5", "--width-allocation", "global", "--importance", "l1"],
     "importance 'bn'")])
def test_cli_latency_target_and_step_flags_give_one_line_errors(tmp_path, capsys, extra, fragment):
    from tfedge.cli import build_parser
    from tfedge.cli._shell import run_cli

    argv = ["shrink", "--model", str(tmp_path / "base.keras"), "--output",
            str(tmp_path / "out.keras"), *extra]
    assert run_cli(build_parser(), argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert fragment in lines[0], lines[0]


# --------------------------------------------------------------------------- shrunk cascade stages


def test_cascade_build_takes_stages_shrunk_from_the_base(tmp_path, capsys):
    """`tfedge cascade build` on the base shrunk at two targets (saved as `tfedge shrink`
    saves them) plus the base: stages in order with their own resolution and MACs, and the
    cascade runs on a split."""
    from tfedge._train import save_classifier
    from tfedge.cascade import compute_stage_logits, load_cascade
    from tfedge.cli import build_parser
    from tfedge.cli._shell import run_cli
    from tfedge.models import create_model
    from tfedge.shrink import set_resolution, shrink_width

    split = make_colour_split(16, seed=3)
    names = list(split.class_names)
    base = create_model("resnet10_025", resolution=32, num_classes=len(names))
    half = shrink_width(base, 0.7, importance="l1", round_to=4)
    quarter = set_resolution(half, 16)
    paths = []
    for stem, model in (("quarter", quarter), ("half", half), ("base", base)):
        path = tmp_path / f"{stem}.keras"
        save_classifier(model, path, {"class_names": names, "shrink": {"method": stem}})
        paths.append(str(path))
    out = tmp_path / "cascade.json"
    assert run_cli(build_parser(), ["cascade", "build", *paths, "--output", str(out)]) == 0
    spec = load_cascade(out)
    assert [s.name for s in spec.stages] == ["quarter", "half", "base"]
    assert [s.resolution for s in spec.stages] == [16, 32, 32]
    assert list(spec.stage_macs) == [_macs(quarter), _macs(half), _macs(base)]
    assert spec.stage_macs[0] < spec.stage_macs[1] < spec.stage_macs[2]
    logits = compute_stage_logits(spec, split)
    assert [lg.shape for lg in logits.logits] == [(16, len(names))] * 3
