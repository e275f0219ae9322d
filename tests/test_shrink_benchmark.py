"""benchmarks/shrink.py's cascade comparison: the run's data and budget, and its two first stages."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import TINY_CLASSES, make_colour_split

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import shrink as shrink_benchmark  # noqa: E402


def _save(path: Path, name: str, resolution: int) -> None:
    from tfedge import create_model, save_classifier

    model = create_model(name, num_classes=len(TINY_CLASSES), resolution=resolution)
    save_classifier(model, path, {"class_names": list(TINY_CLASSES)})


def test_cascade_comparison_sees_the_runs_data_and_keeps_a_linked_registry_stage(
        tmp_path, monkeypatch):
    import tfedge
    import tfedge.data

    split = make_colour_split(48)
    seen = {}

    def load_dataset(kind, benchmark):
        seen["config"] = benchmark
        return SimpleNamespace(name="colours", train=split, val=split, test=split)

    def no_training(*args, **kwargs):
        raise AssertionError("a registry stage already in the folder must not be trained again")

    monkeypatch.setattr(tfedge.data, "load_dataset", load_dataset)
    monkeypatch.setattr(tfedge, "train_classifier", no_training)
    _save(tmp_path / "shrink_quick_base_seed0.keras", "resnet10_050", 64)
    _save(tmp_path / "shrink_quick_models" / "compound_full_0.25.keras", "resnet10_025", 32)
    _save(tmp_path / "shrink_quick_registry_resnet10_025_r64_seed0.keras", "resnet10_025", 64)

    out = shrink_benchmark.cascade_comparison(
        True, tmp_path, registry_stage="resnet10_025@64",
        overrides={"train_size": 48, "val_size": 16, "test_size": 16})
    config = seen["config"]
    assert (config.train_size, config.val_size, config.test_size) == (48, 16, 16)
    assert set(out["cascades"]) == {"shrunk", "registry"}
    for entry in out["cascades"].values():
        assert [b["budget"] for b in entry["budgets"]] == list(shrink_benchmark.CASCADE_BUDGETS)
        assert len(entry["stage_test_top1"]) == 2
        for budget in entry["budgets"]:
            assert 0.0 <= budget["top1"] <= 1.0 and sum(budget["exit_fractions"]) == pytest.approx(1)
    shrunk, registry = (out["cascades"][k]["stage_macs"] for k in ("shrunk", "registry"))
    assert shrunk[-1] == registry[-1] and shrunk[0] < registry[0]  # same base, stages as saved

    with pytest.raises(SystemExit, match="NAME@RESOLUTION"):
        shrink_benchmark.cascade_comparison(True, tmp_path, registry_stage="resnet10_025")


def test_method_lists_skip_crops_on_none_and_refuse_unknown_names_before_training():
    import argparse

    parser = argparse.ArgumentParser()
    assert shrink_benchmark._method_list(parser, "--crop-methods", ["none"]) == ()
    assert shrink_benchmark._method_list(parser, "--crop-methods", []) == ()
    assert shrink_benchmark._method_list(parser, "--methods", ["compound", "bn"]) == \
        ("compound", "bn")
    with pytest.raises(SystemExit):
        shrink_benchmark._method_list(parser, "--methods", ["compund"])


def test_search_flags_reach_the_runs_settings():
    args = SimpleNamespace(sizes=None, epochs=None, patience=None, finetune_epochs=None,
                           score=None, step_macs_fraction=None, importance=None,
                           width_allocation="global", score_steps=None,
                           dimensions=["depth", "width"], always_finetuned=False)
    assert shrink_benchmark._overrides(args) == {"width_allocation": "global",
                                                 "dimensions": ["depth", "width"]}
    args.always_finetuned = True
    assert shrink_benchmark._overrides(args)["keep_better_start"] is False


def test_a_resumed_run_keeps_the_rows_a_killed_run_finished_and_runs_the_rest(
        tmp_path, monkeypatch):
    """A full run is hours per seed and a session that ends kills it: --resume must not redo
    finished rows, must go on with the one killed mid-way from its search log, and must redo
    all (search logs too) when the settings differ."""
    import tfedge.data
    import tfedge.shrink

    split = make_colour_split(48)
    monkeypatch.setattr(tfedge.data, "load_dataset", lambda kind, benchmark: SimpleNamespace(
        name="colours", train=split, val=split, test=split))
    _save(tmp_path / "shrink_quick_base_seed0.keras", "resnet10_025", 32)
    calls: list[str] = []
    seen_logs: list[bool] = []
    kill = {"at": "bn_full_0.5"}

    def run_shrink(model, method, budget, train, val, *, config, output_dir, name):
        calls.append(name)
        log = Path(output_dir) / f"{name}.search.json"
        seen_logs.append(log.exists())
        if name == kill["at"]:
            log.write_text("{}")  # the search had taken steps when it was killed
            raise KeyboardInterrupt  # the session ends: not an error the table reports
        return SimpleNamespace(model=model, macs=budget, val_top1=0.5, steps=[],
                               architecture={"resolution": 32}, record=lambda: {})

    def no_int8(model, images):
        raise RuntimeError("not timed in this test")

    monkeypatch.setattr(tfedge.shrink, "run_shrink", run_shrink)
    monkeypatch.setattr(shrink_benchmark, "_int8", no_int8)

    def run(seeds=(0,), **kwargs):
        return shrink_benchmark.run(True, tmp_path, ("compound", "bn"), (), (0.25, 0.5),
                                    seeds=seeds, reuse_bases=True, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        run()
    assert calls == ["compound_full_0.25", "bn_full_0.25", "compound_full_0.5", "bn_full_0.5"]
    finished = sorted(p.name for p in (tmp_path / "shrink_quick_rows").iterdir())
    assert finished == ["seed0_bn_full_0.25.json", "seed0_compound_full_0.25.json",
                        "seed0_compound_full_0.5.json"]

    calls.clear()
    seen_logs.clear()
    kill["at"] = None
    result = run(resume=True)
    assert calls == ["bn_full_0.5"]
    assert seen_logs == [True]  # the killed row's search goes on from its log
    assert [(r["method"], r["target"]) for r in result["rows"]] == [
        ("compound", 0.25), ("bn", 0.25), ("compound", 0.5), ("bn", 0.5)]

    calls.clear()
    seen_logs.clear()
    kill["at"] = "bn_full_0.5"
    with pytest.raises(KeyboardInterrupt):  # another budget: no row, no search log is reused
        run(resume=True, overrides={"finetune_epochs": 3})
    assert len(calls) == 4 and not any(seen_logs)
    calls.clear()
    seen_logs.clear()
    kill["at"] = None
    run()  # without --resume every row runs again, and no search log is left to resume
    assert len(calls) == 4 and not any(seen_logs)

    # The folder keeps the first seed's models, for timing: a run whose first seed is 1
    # replaces them, so seed 0's rows cannot be timed from their models any more.
    _save(tmp_path / "shrink_quick_base_seed1.keras", "resnet10_025", 32)
    run(seeds=(1,))
    calls.clear()
    run(resume=True)
    assert len(calls) == 4
