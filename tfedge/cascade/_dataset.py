"""The dataset a cascade was trained on, as ``cascade.json`` records it.

``build`` records the data of its stages (:func:`dataset_record`, or
:func:`dataset_record_from_models` from the stages' sidecars), so calibration,
evaluation and conversion load the same images again without being told
(:func:`recorded_dataset`) and refuse other data (:func:`dataset_mismatch`).
The record is ``{"name": ..., "source": DataSource.to_dict()}``; ``source`` is
missing when only the dataset's name is known.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .._errors import TfedgeError
from ..data._source import DataSource

__all__ = ["dataset_record", "describe_dataset_record", "dataset_record_from_models",
           "recorded_dataset", "dataset_mismatch", "check_models_trained_on"]


def dataset_record(dataset: Any, source: Optional[DataSource] = None) -> dict[str, Any]:
    """What ``cascade.json`` records of its data: the name, and the source when known."""
    out: dict[str, Any] = {"name": dataset.name if hasattr(dataset, "name") else str(dataset)}
    if source is not None:
        out["source"] = source.to_dict()
    return out


def describe_dataset_record(record: dict[str, Any]) -> str:
    """The record in words, e.g. ``'fashion-on-photos-…' (built-in benchmark (…))``."""
    if record.get("source"):
        return f"{record['name']!r} ({DataSource.from_dict(record['source']).describe()})"
    return repr(record["name"])


def _source_of_sidecar(side: dict[str, Any]) -> Optional[DataSource]:
    """Where a model's training images came from, when its sidecar says: a compress run's
    data source, or the built-in benchmark's settings that ``tfedge train`` records."""
    compress = side.get("compress") or {}
    info = side.get("dataset_info") or {}
    if compress.get("data"):
        return DataSource.from_dict(compress["data"])
    if info.get("kind") == "benchmark" and isinstance(info.get("config"), dict):
        bench = dict(info["config"])
        seed = int(bench.pop("seed", 0))
        return DataSource("benchmark", benchmark=bench, seed=seed)
    return None


def dataset_record_from_models(models: Sequence[Any], predictor: Any = None
                               ) -> Optional[dict[str, Any]]:
    """The dataset record of a cascade built from ``models`` (and ``predictor``), read from
    their sidecars: the first one that says both the dataset's name and where it is; else
    the first stage's dataset name alone (with the source when it is the default
    benchmark); None when no sidecar names a dataset."""
    from .._train import read_sidecar
    from ..data import BenchmarkConfig

    sidecars = [read_sidecar(p) for p in [*models, *([predictor] if predictor else [])]]
    for side in sidecars:
        source = _source_of_sidecar(side)
        if side.get("dataset") and source is not None:
            return {"name": side["dataset"], "source": source.to_dict()}
    first = sidecars[0].get("dataset") if sidecars else None
    if not first:
        return None
    default = BenchmarkConfig()
    if first == f"fashion-on-photos-{default.key()}":
        return {"name": first, "source": DataSource("benchmark", seed=default.seed).to_dict()}
    return {"name": first}


def check_models_trained_on(models: Sequence[Any], dataset_name: str, *, fix: str) -> None:
    """Refuse a model whose sidecar names another dataset than ``dataset_name``."""
    from .._train import read_sidecar

    for path in models:
        trained_on = read_sidecar(path).get("dataset")
        if trained_on and trained_on != dataset_name:
            raise TfedgeError(f"{path} was trained on dataset {trained_on!r}, but the data "
                              f"given is {dataset_name!r}: {fix}")


def recorded_dataset(spec: Any, path: Any = "the cascade", **where: Any):
    """The :class:`~tfedge.data.Dataset` the cascade ``spec`` records.

    where: :func:`tfedge.data.load_dataset`'s ``cache_dir``, ``fashion_mnist_path``,
    ``allow_download``. Raises when the cascade records no dataset, only its name, or a
    source that now loads as another dataset (its files changed).
    """
    recorded = spec.dataset
    if recorded is None:
        raise TfedgeError(f"{path} records no dataset (built by an older tfedge): pass the "
                          "dataset, or rebuild the cascade")
    if not recorded.get("source"):
        raise TfedgeError(f"{path} was built from dataset {recorded['name']!r} but does not "
                          "record where it is: pass its data flags (--data ...)")
    dataset = DataSource.from_dict(recorded["source"]).load(**where)
    if dataset.name != recorded["name"]:
        raise TfedgeError(f"{path} records dataset {recorded['name']!r}, but its source now "
                          f"loads as {dataset.name!r}: pass the data flags of the dataset "
                          "the stages were trained on")
    return dataset


def dataset_mismatch(record: Optional[dict[str, Any]], source: Optional[DataSource],
                     dataset_name: Optional[str] = None) -> Optional[str]:
    """How the given data (``source``, and the loaded dataset's name when known) differ
    from the cascade's ``record``, in words; None when they are the same images (or the
    cascade records nothing to compare with)."""
    if record is None:
        return None
    recorded = describe_dataset_record(record)
    if source is not None and record.get("source"):
        if not DataSource.from_dict(record["source"]).same_images(source):
            return f"was trained on {recorded}, but the data given is {source.describe()}"
    if dataset_name is not None and dataset_name != record["name"]:
        return f"was trained on {recorded}, but the data given is {dataset_name!r}"
    return None
