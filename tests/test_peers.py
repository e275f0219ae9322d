"""benchmarks/peers.py's arithmetic: expected cascade latency, the peer at equal latency."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import peers  # noqa: E402


def test_cascade_expected_ms_weights_each_stage_by_the_frames_reaching_it():
    # 70% leave at stage 0, the rest at stage 1: predictor + stage 0 + 0.3 x stage 1.
    assert peers.cascade_expected_ms(0.1, [0.2, 1.0], [0.7, 0.3]) == pytest.approx(0.6)
    assert peers.cascade_expected_ms(0.1, [0.2, 1.0], [1.0, 0.0]) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="2 stage timings for 1 exit"):
        peers.cascade_expected_ms(0.1, [0.2, 1.0], [1.0])


def _row(name, kind, ms, top1):
    return {"name": name, "kind": kind, "int8_ms": ms, "top1_mean": top1}


def test_best_peer_near_takes_the_most_accurate_peer_within_10_percent():
    rows = [_row("base", "base", 0.50, 0.6), _row("a", "peer", 0.21, 0.50),
            _row("b", "peer", 0.19, 0.55), _row("c", "peer", 0.30, 0.90),
            _row("cascade", "cascade", 0.20, 0.7)]
    assert peers.best_peer_near(rows, "cascade")["name"] == "b"
    assert peers.best_peer_near(rows, "cascade", window=0.01) is None


def test_parse_models_names_the_flag():
    assert peers._parse_models("mobilenetv2_035@96,resnet10_025@128", "--peers") == [
        ("mobilenetv2_035", 96), ("resnet10_025", 128)]
    with pytest.raises(peers.BenchmarkError, match="--peers"):
        peers._parse_models("mobilenetv2_035", "--peers")


@pytest.mark.parametrize("used, reason, converged", [
    (6, "patience", True),      # stopped by patience before the cap
    (8, "patience", False),     # patience ran out on the cap's last epoch: the budget ended it
    (8, "epochs", False),
])
def test_budget_reads_the_sidecar_and_calls_only_an_early_stop_converged(tmp_path, used, reason,
                                                                         converged):
    import json

    model = tmp_path / "m.keras"
    (tmp_path / "m.keras.json").write_text(json.dumps({
        "train_config": {"epochs": 8, "patience": 2}, "epochs_used": used,
        "best_epoch": used - 2, "stop_reason": reason}))
    budget = peers._budget(model)
    assert budget == {"epochs_used": used, "cap": 8, "best_epoch": used - 2,
                      "stop_reason": reason, "converged": converged}


@pytest.mark.parametrize("score, learned", [(0.106, False), (0.57, True)])
def test_a_classifier_stopped_at_chance_is_not_called_converged(tmp_path, score, learned):
    import json

    model = tmp_path / "m.keras"
    (tmp_path / "m.keras.json").write_text(json.dumps({
        "train_config": {"epochs": 40, "patience": 4}, "epochs_used": 5, "best_epoch": 1,
        "stop_reason": "patience", "best_val_score": score, "num_classes": 10}))
    budget = peers._budget(model)
    assert budget["above_chance"] is learned and budget["converged"] is learned


def test_refined_stages_and_a_foreign_refiner_never_enter_a_reused_run(tmp_path):
    import json
    from types import SimpleNamespace

    import cascade

    assert (cascade.stage_path(tmp_path, "resnet10_025", 64, 0, refined=True)
            != cascade.stage_path(tmp_path, "resnet10_025", 64, 0, refined=False))
    (tmp_path / "refiner_seed0.keras").write_bytes(b"stand-in")
    sidecar = {"dataset": "d", "refines": "predictor_seed0.keras",
               "train_config": {"train": {"epochs": 16, "seed": 0}}}
    (tmp_path / "refiner_seed0.keras.json").write_text(json.dumps(sidecar))
    data = SimpleNamespace(name="d")
    pred = tmp_path / "predictor_seed0.keras"
    assert cascade.train_or_reuse_refiner(0, 16, None, pred, data, tmp_path, reuse=True) == (
        tmp_path / "refiner_seed0.keras")
    # Another epoch count, dataset, training seed or predictor: refused, not silently reused.
    for changed in ({"dataset": "other"}, {"refines": "predictor_seed1.keras"},
                    {"train_config": {"train": {"epochs": 8, "seed": 0}}},
                    {"train_config": {"train": {"epochs": 16, "seed": 1}}}):
        (tmp_path / "refiner_seed0.keras.json").write_text(json.dumps({**sidecar, **changed}))
        with pytest.raises(peers.BenchmarkError, match="cannot be reused"):
            cascade.train_or_reuse_refiner(0, 16, None, pred, data, tmp_path, reuse=True)


def test_peer_recipes_parse_and_go_to_the_longest_matching_family():
    recipes = peers.parse_recipes([
        "mobilenetv2:optimizer=sgd,learning_rate=0.05,weight_decay=4e-5,min_epochs=25",
        "mobilenetv2_035:learning_rate=0.1"])
    assert recipes["mobilenetv2"] == {"optimizer": "sgd", "learning_rate": 0.05,
                                      "weight_decay": 4e-5, "min_epochs": 25}
    assert peers.recipe_for("mobilenetv2_050", recipes)["optimizer"] == "sgd"
    assert peers.recipe_for("mobilenetv2_035", recipes) == {"learning_rate": 0.1}
    assert peers.recipe_for("resnet18_025", recipes) is None
    config = peers._train_config(dict(epochs=40, patience=4, min_epochs=15), 2,
                                 recipes["mobilenetv2"])
    assert (config.optimizer, config.learning_rate, config.weight_decay) == ("sgd", 0.05, 4e-5)
    # The run's cap, seed and (unless the recipe sets them) early stopping stay.
    assert (config.epochs, config.seed, config.patience, config.min_epochs) == (40, 2, 4, 25)


@pytest.mark.parametrize("text, match", [
    ("mobilenetv2", "not PREFIX:KEY=VALUE"),
    ("mobilenetv2:epochs=80", "KEY one of optimizer"),       # the cap is the run's
    ("mobilenetv2:seed=3", "KEY one of optimizer"),
    ("mobilenetv2:learning_rate=fast", "learning_rate must be a float"),
    ("mobilenetv2:optimizer", "not KEY=VALUE"),
])
def test_a_bad_peer_recipe_names_the_problem(text, match):
    with pytest.raises(peers.BenchmarkError, match=match):
        peers.parse_recipes([text])


def test_a_family_gets_one_recipe():
    with pytest.raises(peers.BenchmarkError, match="twice"):
        peers.parse_recipes(["mobilenetv2:learning_rate=0.1", "mobilenetv2:weight_decay=0"])


def test_mobilenetv2_peers_get_the_sgd_recipe_unless_a_flag_names_their_family():
    mnv2, resnet = ("mobilenetv2_035", 128), ("resnet18_025", 128)
    sgd = peers.peer_recipes([], [mnv2, resnet])
    assert sgd == {"mobilenetv2": {"optimizer": "sgd", "learning_rate": 0.05,
                                   "weight_decay": 4e-5}}
    assert peers.recipe_for("resnet18_025", sgd) is None
    # No MobileNetV2 among the peers: no recipe in the run (nor in its JSON line).
    assert peers.peer_recipes([], [resnet]) == {}
    # A flag for the family replaces the default; one for a narrower prefix sits beside it.
    assert peers.peer_recipes(["mobilenetv2:optimizer=adamw"], [mnv2]) == {
        "mobilenetv2": {"optimizer": "adamw"}}
    both = peers.peer_recipes(["mobilenetv2_035:learning_rate=0.1"],
                              [mnv2, ("mobilenetv2_050", 96)])
    assert peers.recipe_for("mobilenetv2_035", both) == {"learning_rate": 0.1}
    assert peers.recipe_for("mobilenetv2_050", both)["optimizer"] == "sgd"
    with pytest.raises(peers.BenchmarkError, match="no peer's name starts with that"):
        peers.peer_recipes(["mobilenetv3:optimizer=sgd"], [mnv2, resnet])


def test_a_bad_recipe_value_is_refused_before_training():
    with pytest.raises(peers.BenchmarkError, match="unknown optimizer 'rmsprop'"):
        peers._train_config(dict(epochs=40, patience=4, min_epochs=0), 0,
                            {"optimizer": "rmsprop"})


def test_a_peer_trained_with_another_recipe_is_not_reused(tmp_path):
    import json

    sizes = dict(epochs=40, patience=4, min_epochs=0)
    model = tmp_path / "peer.keras"
    sgd = {"optimizer": "sgd", "learning_rate": 0.05, "weight_decay": 4e-5, "min_epochs": 25}
    trained = peers._train_config(sizes, 0, sgd).to_dict()
    (tmp_path / "peer.keras.json").write_text(json.dumps({"dataset": "d",
                                                          "train_config": trained}))
    peers.check_reusable(model, "d", peers._train_config(sizes, 0, sgd), sgd)  # the same: reused
    # Without the recipe (the common AdamW), or with another learning rate or minimum: refused.
    for recipe in (None, {**sgd, "learning_rate": 0.1}, {**sgd, "min_epochs": 10}):
        with pytest.raises(peers.BenchmarkError, match="cannot be reused.*--peer-recipe"):
            peers.check_reusable(model, "d", peers._train_config(sizes, 0, recipe), recipe)
    # A peer of the common recipe trained before recipes existed is still reused.
    plain = peers._train_config(sizes, 0).to_dict()
    (tmp_path / "peer.keras.json").write_text(json.dumps({"dataset": "d",
                                                          "train_config": plain}))
    peers.check_reusable(model, "d", peers._train_config(sizes, 0), None)


def test_plot_labels_do_not_overlap_each_other_or_other_points(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The crowd of the 3-seed MobileNetV2 run: two peers 0.03 ms and 1.2 points apart
    # (their labels overlapped), two more at the same latency, the cascade among them.
    points = [(0.604, 0.502, "base resnet10_050@128"), (0.238, 0.464, "resnet10_025@128"),
              (0.405, 0.472, "resnet10_050@96"), (0.343, 0.505, "resnet18_025@128"),
              (0.342, 0.471, "mobilenetv2_050@96"), (0.377, 0.517, "mobilenetv2_035@128"),
              (0.447, 0.653, "crop: predictor + refiner x2 + resnet10_050_r64"),
              (0.344, 0.644, "cascade: predictor + refiner x2, two stages")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot([p[0] for p in points], [p[1] for p in points], "o")
    fig.tight_layout()
    boxes = peers.place_labels(ax, fig.canvas.get_renderer(), points)
    assert len(boxes) == len(points) and len(ax.texts) == len(points)
    for i, a in enumerate(boxes):
        assert not any(a.overlaps(b) for b in boxes[i + 1:]), points[i][2]
        # Inside the axes: the base's label at the right edge was cut off by the figure's.
        assert ax.bbox.x0 <= a.x0 and a.x1 <= ax.bbox.x1, points[i][2]
    plt.close(fig)
    rows = [{"name": n, "kind": "peer", "int8_ms": x, "top1_mean": y, "top1_min": y - 0.01,
             "top1_max": y + 0.01} for x, y, n in points]
    peers.plot_rows(rows, tmp_path / "plot.png", "title")
    assert (tmp_path / "plot.png").stat().st_size > 10_000
