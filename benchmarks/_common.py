"""What every benchmark shares: the environment record, seeds, JSON output.

See ../shared/BENCHMARKS.md (the protocol): the last line a benchmark prints is
one JSON object with its figures and the versions, seeds, commit and CPU that
produced them.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, NoReturn, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a checkout without installing
    sys.path.insert(0, str(REPO))

from tfedge import TfedgeError  # noqa: E402 - needs the path set above


class BenchmarkError(TfedgeError):
    """A benchmark cannot run as asked (missing inputs, bad flags); the message says the fix."""


FULL_SEEDS = (0, 1, 2)
QUICK_SEEDS = (0,)
DEBUG_ENV = "TFEDGE_DEBUG"
"""Set to 1 to see a benchmark's full traceback instead of its one-line error."""


def setup_logging() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


def run_main(main: Callable[[], Any]) -> NoReturn:
    """Run a benchmark's ``main`` and exit as the ``tfedge`` command does on failure.

    An error the user can fix (a missing dataset, a bad path, a full disk:
    see ``tfedge.cli._shell.user_error_line``) ends as one line,
    ``<script>: error: <message>``, with exit status 2 and no traceback;
    ``$TFEDGE_DEBUG=1`` shows the traceback. A bug keeps its traceback. Every
    script ends with ``if __name__ == "__main__": run_main(main)``.
    """
    from tfedge.cli import user_error_line
    from tfedge.runtime.commandline import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

    prog = Path(sys.argv[0]).name or "benchmark"
    try:
        main()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - only user-fixable errors are caught
        line = user_error_line(exc)
        if line is None or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        print(f"{prog}: error: {line}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_OK)


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
        return getattr(mod, "__version__", "unknown")
    except Exception:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def environment() -> dict[str, Any]:
    versions = {name: _version(mod) for name, mod in
                (("tensorflow", "tensorflow"), ("keras", "keras"), ("numpy", "numpy"),
                 ("ai_edge_litert", "ai_edge_litert"))}
    try:
        from importlib.metadata import version

        versions["ai_edge_litert"] = version("ai-edge-litert")
    except Exception:
        pass
    return {"versions": versions, "commit": git_commit(), "cpu": cpu_model(),
            "cores": os.cpu_count(), "python": platform.python_version()}


def trained_seed(model: str | os.PathLike) -> int | None:
    """The training seed a ``.keras`` model's sidecar records (None if it records none)."""
    from tfedge import read_sidecar

    seed = (read_sidecar(model).get("train_config") or {}).get("seed")
    return int(seed) if isinstance(seed, int) else None


def reusable_sidecar(model: str | os.PathLike, *, dataset: str, epochs: int,
                     seed: int | None = None, settings: Mapping[str, Any] | None = None,
                     fix: str = "match its budget") -> dict[str, Any]:
    """The sidecar of a model that ``--reuse`` may take: same data, epochs (and seed, and
    ``settings``: more ``train_config`` fields that must match; a ``min_epochs`` left out
    of a record is 0).

    A leftover of a run with other flags would otherwise enter the figures
    silently, while the JSON line names this run's budget. ``fix`` ends the
    error's advice.
    """
    from tfedge import read_sidecar

    meta = read_sidecar(model)
    config = {"min_epochs": 0, **(meta.get("train_config") or {})}
    found = {**config, "dataset": meta.get("dataset")}
    wanted = {"dataset": dataset, "epochs": epochs, **({"seed": seed} if seed is not None else {}),
              **(settings or {})}
    differ = [f"{k} {found.get(k)!r} (not {v!r})" for k, v in wanted.items() if found.get(k) != v]
    if differ:
        raise BenchmarkError(f"{model} cannot be reused: its {', '.join(differ)}; drop --reuse, "
                             f"use another --output-dir, or {fix}")
    return meta


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean and min-max of a figure over seeds."""
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "min": float(arr.min()), "max": float(arr.max())}


def print_result(result: dict[str, Any], output: Optional[str] = None) -> None:
    """Print the result as the last line of stdout; with ``output``, also write it there (atomically)."""
    if output:
        from tfedge.runtime.fileio import atomic_write_json

        atomic_write_json(output, result)
    print(json.dumps(result, sort_keys=True), flush=True)
