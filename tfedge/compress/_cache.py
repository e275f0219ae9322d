"""The step cache of a compress run: a step is skipped when its inputs are unchanged.

Each step of :func:`tfedge.compress.run_compress` has a name, a JSON-able
``inputs`` mapping (data fingerprint, settings, and the sha256 of every
upstream artifact it reads) and output files. After it runs, its record
``<run>/steps/<name>.json`` holds the key (sha256 of the canonical inputs),
the inputs themselves, each output's sha256 and the step's small JSON result.
The next run skips the step when the record's key equals the new key and every
output file still has its recorded hash; downstream steps hash their upstream
files, so a changed artifact re-runs everything after it and nothing before.
Records are written atomically after the outputs, so a killed step leaves no
record and runs again (the training engine resumes it from its backup).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from ..runtime.fileio import atomic_write_json

__all__ = ["canonical_key", "file_sha256", "tree_sha256", "StepCache", "STEP_FORMAT"]

STEP_FORMAT = "tfedge-compress-step"
_CHUNK = 1 << 20


def canonical_key(inputs: Mapping[str, Any]) -> str:
    """sha256 of ``inputs`` as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(path: Union[str, os.PathLike]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_sha256(path: Union[str, os.PathLike]) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, sorted)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(item.relative_to(path)).encode("utf-8") + b"\0")
        digest.update(file_sha256(item).encode("ascii"))
    return digest.hexdigest()


class StepCache:
    """Records of finished steps under ``<root>/steps/``."""

    def __init__(self, root: Union[str, os.PathLike]):
        self.root = Path(root)
        self.dir = self.root / "steps"

    def record_path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def _relative(self, path: Union[str, os.PathLike]) -> str:
        path = Path(path)
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path.resolve())

    def _absolute(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() else self.root / path

    def lookup(self, name: str, inputs: Mapping[str, Any]) -> Optional[dict[str, Any]]:
        """The step's recorded result if its inputs and outputs are unchanged, else None."""
        path = self.record_path(name)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("key") != canonical_key(inputs):
            return None
        for rel, digest in (record.get("outputs") or {}).items():
            out = self._absolute(rel)
            if not out.exists() or tree_sha256(out) != digest:
                return None
        return record

    def why_stale(self, name: str, inputs: Mapping[str, Any]) -> str:
        """A few words on why ``name`` runs (for the progress line)."""
        path = self.record_path(name)
        if not path.is_file():
            return "not run yet"
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "its record is unreadable"
        old = record.get("inputs") or {}
        changed = sorted(k for k in set(old) | set(inputs)
                         if canonical_key({"v": old.get(k)}) != canonical_key({"v": inputs.get(k)}))
        if changed:
            return "changed: " + ", ".join(changed[:4]) + ("..." if len(changed) > 4 else "")
        return "an output file changed or is missing"

    def save(self, name: str, inputs: Mapping[str, Any], outputs: Sequence[Union[str, os.PathLike]],
             result: Mapping[str, Any], seconds: float) -> dict[str, Any]:
        record = {"format": STEP_FORMAT, "step": name, "key": canonical_key(inputs),
                  "inputs": dict(inputs),
                  # A step may leave out an output it had nothing to write for (recorded absent).
                  "outputs": {self._relative(p): tree_sha256(p) for p in outputs
                              if Path(p).exists()},
                  "result": dict(result), "seconds": round(float(seconds), 3)}
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.record_path(name), record)
        return record

    def output_hash(self, record: Mapping[str, Any], path: Union[str, os.PathLike]
                    ) -> Optional[str]:
        """The recorded sha256 of one output (None: the step did not write it)."""
        return (record.get("outputs") or {}).get(self._relative(path))
