"""Attack the bundle reader, ``tfedge-convert inspect|verify`` and ``tfedge-pi`` with generated cases.

    python benchmarks/robustness.py --quick          # a couple of minutes
    python benchmarks/robustness.py --examples 200   # more cases of each kind

Every case is generated (hypothesis strategies where hypothesis is installed,
seeded ``random`` otherwise), written into a sandbox, and run by a *worker*
process that calls the command's ``main()`` exactly as the console script
does, with its stdout/stderr captured. The parent waits for each case with a
timeout: a case that does not answer in time counts as a hang, the worker is
killed and a fresh one takes over, so nothing blocks. Kinds (issue 18):

* ``manifest``  random JSON values in random manifest fields, raw text cuts,
  deep nesting, NaN/Infinity literals (inspect, verify, tfedge-pi);
* ``zip``       extra entries with generated names (``..``, absolute, long,
  backslashes, unicode), folder/file clashes, duplicates, symlink entries,
  bombs (declared sizes), missing listed files, truncations and byte flips;
* ``path``      the bundle path is a FIFO, a device, a loop, empty, random bytes;
* ``image``     generated images of every mode and format, truncated, flipped,
  odd EXIF, file names with newlines and escape sequences (JSON and --human);
  8192x8192 16-bit PNG and float TIFF (memory);
* ``folder``    FIFOs, dangling and looping symlinks named like images;
* ``model``     a hash-valid model that fails at invoke on bright frames and
  one whose outputs are NaN on bright frames (built with TensorFlow if it is
  installed; skipped otherwise, said in the JSON).

Counted per case: ``crashes`` (an uncaught exception or a signal),
``hangs`` (over the timeout), ``tracebacks`` (a traceback printed),
``silent_wrong`` (exit 0 on a tampered bundle, non-standard JSON such as NaN,
a record missing or split over lines, a bad frame without an error record, an
error message over one line), ``lost_artifacts`` (the input bundle altered or
a file written outside the sandbox, a temporary left behind). ``rss_growth_mb``
is the worker's resident memory growth over the run (leaks) and
``peak_case_mb`` the largest peak of one case (the 8192x8192 images).

The last line is one JSON object; everything but ``inputs_tried``,
``rss_growth_mb`` and the informational fields must be 0.

``--atheris SECONDS`` (opt-in; ``pip install atheris``) adds coverage-guided
fuzzing (libFuzzer through atheris, tfedge's modules instrumented) of four
readers, SECONDS each, every target in its own process: ``manifest``
(``_loads_manifest`` + ``_parse_manifest``), ``zip`` (``load_bundle`` of the
bytes as a ``.zip``), ``voc_xml`` (the VOC box-file reader) and ``csv`` (the
box-CSV reader), seeded with valid inputs. Anything but the reader's own
one-line error (``BundleError`` / ``DatasetError``) is a crash; a multi-line
message is ``silent_wrong``; an input over libFuzzer's per-input timeout is a
hang. Their counts join the totals; the ``atheris`` field has runs, coverage
and the first crashing inputs (base64) per target. ``--atheris-only`` skips
the generated cases.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import random
import select
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, environment, print_result, run_main, setup_logging  # noqa: E402

log = logging.getLogger("robustness")

GOLDEN_BUNDLE = REPO / "tests" / "golden" / "bundle"
CASE_TIMEOUT_S = 60.0
BIG_CASE_TIMEOUT_S = 240.0
BIG_SIDE = 8192
PEAK_LIMIT_MB = 900  # a frame within the default limits must not need more (Pi 4: 1-8 GB)
QUICK_EXAMPLES = 12
FULL_EXAMPLES = 60
COUNTERS = ("crashes", "hangs", "tracebacks", "silent_wrong", "lost_artifacts")


# --------------------------------------------------------------------------- worker


def _peak_reset() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _run_command(command: str, argv: list[str]) -> int:
    if command == "pi":
        from rpi_runner.cli import main
    else:
        from tfedge.cli.convert import main
        argv = [command] + argv
    return int(main(argv))


def worker() -> None:
    """Read one case per line on stdin, run it, answer one JSON line on stdout."""
    real_stdout = sys.stdout
    for line in sys.stdin:
        case = json.loads(line)
        out, err = io.StringIO(), io.StringIO()
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        _peak_reset()
        crashed = None
        code = None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = _run_command(case["command"], case["argv"])
            except SystemExit as exc:  # argparse usage errors
                code = exc.code if isinstance(exc.code, int) else 2
            except BaseException:  # noqa: BLE001 - a crash is what we count
                crashed = traceback.format_exc()
        reply = {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
                 "crash": crashed, "peak_mb": _status_mb("VmHWM"), "rss_mb": _status_mb("VmRSS")}
        real_stdout.write(json.dumps(reply) + "\n")
        real_stdout.flush()


class Worker:
    """A worker process; :meth:`run` answers a case or None after ``timeout`` (then restarts)."""

    def __init__(self, sandbox: Path):
        self.sandbox = sandbox
        self.process: Optional[subprocess.Popen] = None
        self.started_rss: Optional[float] = None
        self.last_rss: Optional[float] = None
        self.restarts = 0

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ, TMPDIR=str(self.sandbox / "tmp"), TF_CPP_MIN_LOG_LEVEL="3")
        return subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env=env, cwd=self.sandbox)

    def run(self, case: dict[str, Any], timeout: float) -> Optional[dict[str, Any]]:
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
            self.restarts += 1
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps(case) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            self.process = None
            return {"code": None, "stdout": "", "stderr": "", "crash": "worker died",
                    "peak_mb": 0.0, "rss_mb": 0.0}
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            self.kill()
            return None
        line = self.process.stdout.readline()
        if not line:  # killed by a signal (e.g. the OOM killer) or a hard crash
            code = self.process.wait()
            self.process = None
            return {"code": code, "stdout": "", "stderr": "", "crash": f"signal {-code}",
                    "peak_mb": 0.0, "rss_mb": 0.0}
        reply = json.loads(line)
        return reply

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


# --------------------------------------------------------------------------- bookkeeping


class Tally:
    def __init__(self) -> None:
        self.counts = {name: 0 for name in COUNTERS}
        self.tried = 0
        self.per_kind: dict[str, int] = {}
        self.failures: list[dict[str, Any]] = []
        self.peak_case_mb = 0.0

    def add(self, kind: str, name: str, problems: dict[str, str]) -> None:
        self.tried += 1
        self.per_kind[kind] = self.per_kind.get(kind, 0) + 1
        for counter, why in problems.items():
            self.counts[counter] += 1
            if len(self.failures) < 50:
                self.failures.append({"kind": kind, "case": name, counter: why[:600]})
                log.warning("%s %s: %s: %s", kind, name, counter, why[:300])


def _one_line_error(stderr: str) -> bool:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return len(lines) == 1 and ": error: " in lines[0]


def _strict_json(text: str) -> Optional[Any]:
    def refuse(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def judge(reply: Optional[dict[str, Any]], *, ok_codes: tuple[int, ...], must_fail: bool = False,
          frames: Optional[int] = None, bad_frames: Optional[set[int]] = None,
          human: bool = False) -> dict[str, str]:
    """The counters a case's outcome adds (empty: handled well)."""
    if reply is None:
        return {"hangs": "no answer within the timeout"}
    problems: dict[str, str] = {}
    if reply["crash"]:
        problems["crashes"] = reply["crash"].strip().splitlines()[-1]
        problems["tracebacks"] = reply["crash"][-400:]
        return problems
    if "Traceback (most recent call last)" in reply["stderr"]:
        problems["tracebacks"] = reply["stderr"][-400:]
    code = reply["code"]
    if code not in ok_codes and code != 2:
        problems["crashes"] = f"exit status {code}"
    if code == 2 and not _one_line_error(reply["stderr"]):
        problems["silent_wrong"] = f"exit 2 without exactly one error line: {reply['stderr']!r}"
    if must_fail and code == 0:
        problems["silent_wrong"] = "a tampered or invalid bundle was accepted"
    if code in (0, 1) and frames is not None:
        problems.update(_judge_frames(reply["stdout"], frames, bad_frames or set(), human))
    elif code == 0 and not human:
        lines = [line for line in reply["stdout"].splitlines() if line.strip()]
        if lines and lines[-1].startswith("{"):
            try:
                _strict_json(lines[-1])
            except ValueError as exc:
                problems["silent_wrong"] = f"last line is not strict JSON ({exc})"
    return problems


def _judge_frames(stdout: str, frames: int, bad: set[int], human: bool) -> dict[str, str]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if len(lines) != frames:
        return {"silent_wrong": f"{len(lines)} output lines for {frames} frames"}
    if human:
        return {}
    for index, line in enumerate(lines):
        try:
            record = _strict_json(line)
        except ValueError as exc:
            return {"silent_wrong": f"record {index} is not strict JSON ({exc}): {line[:200]}"}
        if "error" in record:
            if "\n" in record["error"].replace(str(record.get("source")), ""):  # names may hold one
                return {"silent_wrong": f"record {index}'s error spans lines"}
        else:
            if record["index"] in bad:
                return {"silent_wrong": f"frame {record['index']} should be an error record: "
                                        f"{line[:200]}"}
    return {}


def _tree_digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def _leftovers(sandbox: Path, expected: set[str]) -> list[str]:
    """Entries of the sandbox's temporary folder and top level that a case must not leave."""
    left = [f"tmp/{p.name}" for p in (sandbox / "tmp").iterdir()]
    left += [p.name for p in sandbox.iterdir()
             if p.name not in expected and not p.name.startswith("case")]
    return left


# --------------------------------------------------------------------------- generators


def _json_values(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON-ish value: scalars, odd numbers, unicode, nested lists and objects."""
    choice = rng.randrange(12 if depth < 3 else 8)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 1, 2 ** 31, -2 ** 63, 10 ** 30, 255, 256])
    if choice == 3:
        return rng.choice([0.0, -0.0, 1e308, 5e-324, 0.5, 1.5, -3.25])
    if choice == 4:
        return "".join(rng.choice("ab\n\x00\u2028é/.\\") for _ in range(rng.randrange(0, 12)))
    if choice == 5:
        return "x" * rng.choice([0, 1, 300, 5000])
    if choice == 6:
        return rng.choice(["int8", "float32", "uint8", "max_softmax", "entropy", "RGB", ""])
    if choice == 7:
        return [rng.randrange(-5, 300) for _ in range(rng.randrange(0, 5))]
    if choice in (8, 9):
        return [_json_values(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {f"k{i}": _json_values(rng, depth + 1) for i in range(rng.randrange(0, 4))}


def _paths(obj: Any, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _paths(value, prefix + (i,))


def _set_path(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return obj


def draw_many(strategy_name: str, count: int, seed: int) -> Optional[list[Any]]:
    """``count`` values of one of the hypothesis strategies below (None without hypothesis).

    Hypothesis generates them (its edge-case-seeking generation, seeded, no
    shrinking, no database); each value then becomes one bounded case.
    """
    try:
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import seed as fix_seed
        from hypothesis import strategies as st
    except ImportError:
        return None
    scalars = (st.none() | st.booleans() | st.integers(min_value=-2 ** 70, max_value=2 ** 70)
               | st.floats(allow_nan=False, allow_infinity=False)
               | st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
    strategies = {
        "json": st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                             | st.dictionaries(st.text(max_size=8), children, max_size=4),
                             max_leaves=12),
        "zip_name": st.lists(st.sampled_from(["..", ".", "", "a", "x.tflite", "stage0.tflite",
                                              "labels.txt", "manifest.json", "C:", "\\", "é",
                                              "\u2028", "a" * 255, "b" * 256, "c" * 300])
                             | st.text(alphabet="ab./\\:é", min_size=1, max_size=12),
                             min_size=1, max_size=4).map("/".join),
        "file_stem": st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/\0"),
                             min_size=1, max_size=60),
    }
    values: list[Any] = []

    @fix_seed(seed)
    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategies[strategy_name])
    def collect(value: Any) -> None:
        values.append(value)

    collect()
    return values


class Pool:
    """Values drawn by hypothesis, falling back on ``fallback(rng)`` when it is not installed."""

    def __init__(self, name: str, count: int, seed: int, rng: random.Random,
                 fallback: Callable[[random.Random], Any]):
        self.values = draw_many(name, count, seed) or []
        self.rng = rng
        self.fallback = fallback
        self.used = 0

    def next(self) -> Any:
        if self.used < len(self.values):
            self.used += 1
            return self.values[self.used - 1]
        return self.fallback(self.rng)


def manifest_cases(rng: random.Random, count: int) -> Iterator[tuple[str, Callable[[Path], None]]]:
    base = json.loads((GOLDEN_BUNDLE / "manifest.json").read_text())
    paths = list(_paths(base))
    pool = Pool("json", count, rng.randrange(2 ** 31), rng, _json_values)
    for i in range(count):
        style = i % 5
        if style == 0:  # a random value at a random place
            path = rng.choice(paths)
            value = pool.next()
            name = f"set {'.'.join(map(str, path))[:60]}"

            def write(folder: Path, path=path, value=value) -> None:
                manifest = _set_path(json.loads(json.dumps(base)), path, value)
                (folder / "manifest.json").write_text(json.dumps(manifest))
        elif style == 1:  # deep nesting somewhere free-form
            depth = rng.choice([33, 200, 1000, 5000, 20000])
            name = f"nest {depth}"

            def write(folder: Path, depth=depth) -> None:
                text = json.dumps(base).replace('"metrics": {', '"metrics": {"d": '
                                                + "[" * depth + "]" * depth + ", ", 1)
                (folder / "manifest.json").write_text(text)
        elif style == 2:  # a non-standard constant
            constant = rng.choice(["NaN", "Infinity", "-Infinity"])
            name = f"constant {constant}"

            def write(folder: Path, constant=constant) -> None:
                text = json.dumps(base).replace('"metrics": {', f'"metrics": {{"x": {constant}, ',
                                                1)
                (folder / "manifest.json").write_text(text)
        elif style == 3:  # the text cut short
            cut = rng.randrange(0, len(json.dumps(base)))
            name = f"cut at {cut}"

            def write(folder: Path, cut=cut) -> None:
                (folder / "manifest.json").write_text(json.dumps(base)[:cut])
        else:  # a flipped byte in a model (hash mismatch) or in the manifest text
            target = rng.choice(["stage0.tflite", "predictor.tflite", "manifest.json"])
            offset = rng.randrange(0, (GOLDEN_BUNDLE / target).stat().st_size)
            name = f"flip {target}@{offset}"

            def write(folder: Path, target=target, offset=offset) -> None:
                data = bytearray((folder / target).read_bytes())
                data[offset] ^= 0x41
                (folder / target).write_bytes(bytes(data))
        yield name, write


def _zip_name(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randrange(1, 4)):
        kind = rng.randrange(8)
        parts.append({0: "..", 1: "", 2: "a" * rng.choice([100, 255, 256, 300]),
                      3: "C:", 4: "x\\y", 5: "é\u2028", 6: "manifest.json",
                      7: rng.choice(["stage0.tflite", "labels.txt", "x", "x.tflite"])}[kind])
    name = "/".join(parts)
    return ("/" + name) if rng.random() < 0.1 else name


def zip_cases(rng: random.Random, count: int) -> Iterator[tuple[str, Callable[[Path], Path], bool]]:
    """``(name, build(sandbox) -> zip path, must_fail)``."""
    golden = {p.name: p.read_bytes() for p in GOLDEN_BUNDLE.iterdir()}
    names = Pool("zip_name", count, rng.randrange(2 ** 31), rng, _zip_name)
    for i in range(count):
        style = i % 7
        entries: list[tuple[Any, bytes]] = [(n, d) for n, d in sorted(golden.items())]
        must_fail = False
        if style == 0:
            extra = names.next()
            entries.append((extra, b"evil"))
            name = f"extra entry {extra[:50]!r}"
        elif style == 1:
            first = rng.choice(["x", "stage0.tflite", "sub"])
            pair = [(first, b"file"), (f"{first}/inside", b"x")]
            if rng.random() < 0.5:
                pair.reverse()
            entries += pair
            name = f"file and folder {first}"
            must_fail = first == "stage0.tflite"
        elif style == 2:
            victim = rng.choice(sorted(golden))
            entries.append((victim, b"second copy"))
            name = f"duplicate {victim}"
            must_fail = True
        elif style == 3:
            info = zipfile.ZipInfo(rng.choice(["link", "stage0.tflite"]))
            info.external_attr = 0o120777 << 16
            entries = [(n, d) for n, d in entries if n != info.filename] + [(info, b"/etc/passwd")]
            name = f"symlink entry {info.filename}"
            must_fail = True
        elif style == 4:
            victim = rng.choice([n for n in golden if n != "manifest.json"])
            entries = [(n, d) for n, d in entries if n != victim]
            name = f"missing {victim}"
            must_fail = True
        elif style == 5:
            size = rng.choice([2 ** 20, 600 * 2 ** 20])
            entries.append(("bomb.bin", b"\0" * size))
            name = f"unlisted {size >> 20} MiB of zeros"
        else:
            name = "truncated"
            must_fail = True

        def build(sandbox: Path, entries=entries, style=style, i=i) -> Path:
            path = sandbox / f"case{i}.zip"
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # duplicate names are the point
                with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
                    for entry, data in entries:
                        try:
                            zf.writestr(entry, data)
                        except (IndexError, ValueError):
                            pass  # a name Python's zipfile cannot write (e.g. empty)
            if style == 6:
                data = path.read_bytes()
                path.write_bytes(data[: rng.randrange(10, len(data) - 1)])
            return path
        yield name, build, must_fail


def path_cases(sandbox: Path, rng: random.Random) -> Iterator[tuple[str, str, bool]]:
    """``(name, bundle path, must_fail)`` of odd things given as the bundle."""
    fifo = sandbox / "fifo.zip"
    os.mkfifo(fifo)
    loop = sandbox / "loop"
    os.symlink(loop, loop)
    empty = sandbox / "empty.zip"
    empty.write_bytes(b"")
    noise = sandbox / "noise.zip"
    noise.write_bytes(bytes(rng.randrange(256) for _ in range(5000)))
    folder = sandbox / "plainfolder"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    for name, path in (("fifo", fifo), ("dev_zero", "/dev/zero"), ("dev_null", "/dev/null"),
                       ("symlink_loop", loop), ("empty", empty), ("noise", noise),
                       ("folder_without_manifest", folder), ("missing", sandbox / "nothing")):
        yield name, str(path), True


def _image_bytes(rng: random.Random, mode: str, size: tuple[int, int], fmt: str) -> bytes:
    import numpy as np
    from PIL import Image

    width, height = size
    generator = np.random.default_rng(rng.randrange(2 ** 31))
    if mode == "I;16":
        picture = Image.fromarray(generator.integers(0, 65535, (height, width), dtype=np.uint16))
    elif mode == "F":
        picture = Image.fromarray(generator.normal(0, 2, (height, width)).astype(np.float32))
    else:
        picture = Image.fromarray(generator.integers(0, 255, (height, width, 3), dtype=np.uint8))
        picture = picture.convert(mode)
    out = io.BytesIO()
    exif = None
    if fmt in ("JPEG", "PNG", "TIFF", "WEBP") and rng.random() < 0.3:
        exif = Image.Exif()
        exif[0x0112] = rng.choice([0, 1, 3, 5, 6, 8, 9, 65535])
    try:
        picture.save(out, format=fmt, **({"exif": exif} if exif is not None else {}))
    except (OSError, ValueError, KeyError):
        picture.convert("RGB").save(out, format="PNG")
    return out.getvalue()


IMAGE_MODES = ("RGB", "L", "P", "1", "RGBA", "LA", "CMYK", "I;16", "F", "I")
IMAGE_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP")
ODD_NAMES = ("plain", "new\nline", "esc\x1b[31mred", "tab\there", "é-unicode", " space ",
             "-dash", "quote\"'", "x" * 200)


def image_cases(rng: random.Random, count: int
                ) -> Iterator[tuple[str, Callable[[Path], tuple[list[Path], set[int]]], bool]]:
    """``(name, build(folder) -> (frames, indices that must be error records), human)``."""
    stems = Pool("file_stem", count * 3, rng.randrange(2 ** 31), rng,
                 lambda r: r.choice(ODD_NAMES))
    for i in range(count):
        frames = rng.randrange(1, 4)
        specs = []
        for j in range(frames):
            mode = rng.choice(IMAGE_MODES)
            fmt = rng.choice(IMAGE_FORMATS)
            size = (rng.randrange(1, 97), rng.randrange(1, 97))
            damage = rng.choice(["none", "none", "truncate", "flip", "garbage", "huge_header"])
            stem = stems.next() if rng.random() < 0.5 else rng.choice(ODD_NAMES)
            specs.append((mode, fmt, size, damage, stem[:100]))
        human = rng.random() < 0.3
        name = "; ".join(f"{m} {f} {s[0]}x{s[1]} {d}" for m, f, s, d, _ in specs)

        def build(folder: Path, specs=specs, i=i) -> tuple[list[Path], set[int]]:
            paths, bad = [], set()
            for j, (mode, fmt, size, damage, stem) in enumerate(specs):
                data = _image_bytes(rng, mode, size, fmt)
                if damage == "truncate":
                    data = data[: max(1, len(data) // rng.choice([2, 3, 10]))]
                elif damage == "flip":
                    data = bytearray(data)
                    for _ in range(4):
                        data[rng.randrange(len(data))] ^= 0xFF
                    data = bytes(data)
                elif damage == "garbage":
                    data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
                    bad.add(j)
                elif damage == "huge_header":
                    data = _huge_png_header()
                    bad.add(j)
                path = folder / f"{j:02d}_{stem}.{fmt.lower()}"
                path.write_bytes(data)
                paths.append(path)
            return paths, bad
        yield name, build, human


def _huge_png_header(width: int = 100_000, height: int = 100_000) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def big_images(folder: Path) -> list[tuple[str, Path]]:
    """The two memory cases of issue 18 item 9 (8192x8192: 16-bit PNG and float TIFF)."""
    import numpy as np
    from PIL import Image

    png, tif = folder / "big16.png", folder / "bigfloat.tif"
    pixels = np.zeros((BIG_SIDE, BIG_SIDE), np.uint16)
    pixels[::7, ::5] = 40000
    Image.fromarray(pixels).save(png)
    del pixels
    floats = np.zeros((BIG_SIDE, BIG_SIDE), np.float32)
    floats[::3, ::7] = 0.5
    Image.fromarray(floats).save(tif, compression="tiff_adobe_deflate")
    return [("16-bit PNG 8192x8192", png), ("float TIFF 8192x8192", tif)]


def build_model_bundles(folder: Path) -> dict[str, Path]:
    """Float bundles whose stage fails at invoke / gives NaN when the frame is bright (TF)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    from tfedge.runtime.bundle import StageEntry, write_bundle
    from tfedge.runtime.interpreter import TfliteModel

    resolution, labels = 8, ["dark", "bright"]

    def gather_model(x):  # mean pixel / 50 as an index into 3 rows: bright frames overflow
        index = tf.cast(tf.reduce_mean(x, axis=[1, 2, 3]) / 50.0, tf.int32)
        table = tf.constant([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
        return tf.gather(table, index)

    def nan_model(x):  # log(100 - mean): NaN once the frame is brighter than 100
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=False)
        value = tf.math.log(100.0 - mean)
        return tf.stack([value, -value], axis=1)

    bundles = {}
    for name, fn in (("gather", gather_model), ("nan", nan_model)):
        concrete = tf.function(fn).get_concrete_function(
            tf.TensorSpec([1, resolution, resolution, 3], tf.float32))
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
        data = converter.convert()
        model = TfliteModel(data)
        entry = StageEntry(name=name, resolution=resolution, macs=1, input=model.input_spec,
                           output=model.output_spec)
        bundles[name] = write_bundle(folder / f"model_{name}", labels=labels,
                                     stages=[(entry, data)])
        _ = np
    return bundles


def _frame_pngs(folder: Path, values: list[int]) -> list[Path]:
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, value in enumerate(values):
        path = folder / f"{i:02d}_{value}.png"
        Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(path)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- the run


def _clean(path: Path) -> None:
    if path.is_symlink() or path.is_file() or stat.S_ISFIFO(os.lstat(path).st_mode):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _with_atheris(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Fuzz with atheris if asked; its crashes, hangs and multi-line errors join the totals."""
    if not args.atheris:
        return result
    fuzzed = run_atheris(args.atheris, args.atheris_targets or list(ATHERIS_TARGETS))
    for target in fuzzed.values():
        if isinstance(target, dict):
            for key in ("crashes", "hangs", "silent_wrong"):
                result[key] = result.get(key, 0) + target[key]
    result["atheris"] = {"seconds_per_target": args.atheris, "targets": fuzzed}
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.atheris_only:
        result = {"inputs_tried": 0, **{key: 0 for key in COUNTERS}, "rss_growth_mb": 0.0,
                  "note": "atheris only: the generated cases did not run",
                  "environment": environment()}
        return _with_atheris(result, args)
    rng = random.Random(args.seed)
    examples = args.examples or (QUICK_EXAMPLES if args.quick else FULL_EXAMPLES)
    sandbox = Path(tempfile.mkdtemp(prefix="tfedge-robustness-"))
    (sandbox / "tmp").mkdir()
    golden = sandbox / "golden"
    shutil.copytree(GOLDEN_BUNDLE, golden)
    golden_digest = _tree_digest(golden)
    frame = _frame_pngs(sandbox / "frame", [90])[0]
    keep = {"golden", "frame", "tmp", "m", "images", "specials", "models"}
    tally = Tally()
    work = Worker(sandbox)
    start = time.perf_counter()

    def case(kind: str, name: str, command: str, argv: list[str], timeout: float = CASE_TIMEOUT_S,
             **judging: Any) -> Optional[dict[str, Any]]:
        reply = work.run({"command": command, "argv": argv}, timeout)
        problems = judge(reply, **judging)
        if reply is not None:
            tally.peak_case_mb = max(tally.peak_case_mb, float(reply["peak_mb"]))
            if kind != "image-big" and work.started_rss is None:
                work.started_rss = float(reply["rss_mb"])
            if kind != "image-big":  # growth is about leaks, not the big frames' arenas
                work.last_rss = float(reply["rss_mb"])
            if kind == "image-big" and reply["peak_mb"] > PEAK_LIMIT_MB:
                problems["crashes"] = f"peak {reply['peak_mb']:.0f} MB > {PEAK_LIMIT_MB} MB"
        if _tree_digest(golden) != golden_digest:
            problems["lost_artifacts"] = "the golden bundle copy was altered"
            shutil.rmtree(golden)
            shutil.copytree(GOLDEN_BUNDLE, golden)
        left = _leftovers(sandbox, keep)
        if left:
            problems["lost_artifacts"] = f"left behind: {left[:5]}"
            for name_left in left:
                with contextlib.suppress(OSError):
                    _clean(sandbox / name_left)
        tally.add(kind, name, problems)
        return reply

    # a warm-up (imports, interpreter) so memory growth is measured from a steady state
    case("warmup", "golden bundle", "pi", [str(golden), str(frame)], ok_codes=(0,), frames=1)
    case("warmup", "golden bundle", "inspect", [str(golden)], ok_codes=(0,))
    case("warmup", "golden bundle", "verify", [str(golden)], ok_codes=(0,))
    work.started_rss = work.last_rss

    log.info("manifest cases")
    for name, write in manifest_cases(rng, examples * 3):
        folder = sandbox / "m"
        shutil.copytree(GOLDEN_BUNDLE, folder)
        write(folder)
        tampered = "flip" in name and "manifest" not in name
        for command, argv, judging in (
                ("inspect", [str(folder)], {"ok_codes": (0,)}),
                ("verify", [str(folder)], {"ok_codes": (0,), "must_fail": tampered}),
                ("pi", [str(folder), str(frame)], {"ok_codes": (0, 1), "frames": 1,
                                                   "must_fail": tampered})):
            reply = case("manifest", f"{command}: {name}", command, argv, **judging)
            if reply is not None and reply["code"] == 2:
                break  # the reader refused it: the other commands read it the same way
        shutil.rmtree(folder)

    log.info("zip cases")
    for name, build, must_fail in zip_cases(rng, examples * 2):
        path = build(sandbox)
        case("zip", name, "verify", [str(path)], ok_codes=(0,), must_fail=must_fail)
        path.unlink()

    log.info("bundle path cases")
    odd_paths = list(path_cases(sandbox, rng))
    keep.update(Path(path).name for _, path, _ in odd_paths)
    for name, path, must_fail in odd_paths:
        case("path", name, "inspect", [path], ok_codes=(), must_fail=must_fail)
        case("path", name, "pi", [path, str(frame)], ok_codes=(), must_fail=must_fail)

    log.info("image cases")
    for name, build, human in image_cases(rng, examples * 3):
        folder = sandbox / "images"
        folder.mkdir()
        paths, bad = build(folder)
        argv = [str(golden)] + [str(p) for p in paths] + (["--human"] if human else [])
        case("image", name, "pi", argv, ok_codes=(0, 1), frames=len(paths), bad_frames=bad,
             human=human)
        shutil.rmtree(folder)

    log.info("folder entry cases")
    folder = sandbox / "specials"
    shutil.copytree(frame.parent, folder)
    os.mkfifo(folder / "x.jpg")
    os.symlink(folder / "gone.png", folder / "dangling.png")
    os.symlink(folder / "loop.png", folder / "loop.png")
    reply = case("folder", "fifo, dangling and looping symlinks", "pi",
                 [str(golden), str(folder), "--benchmark", "--warmup", "0"], ok_codes=(0,))
    if reply is not None and reply["code"] == 0:
        summary = json.loads(reply["stdout"].strip().splitlines()[-1])
        if summary.get("skipped") != {"dangling_symlink": 1, "fifo": 1, "symlink_loop": 1}:
            tally.counts["silent_wrong"] += 1
            tally.failures.append({"kind": "folder", "silent_wrong": f"skipped {summary}"})
    shutil.rmtree(folder)

    model_note = "skipped"
    if not args.no_models:
        log.info("model cases (TensorFlow builds two float models)")
        try:
            bundles = build_model_bundles(sandbox / "models")
            keep.add("models")
            model_note = "ran"
        except ImportError as exc:
            bundles = {}
            model_note = f"skipped: {exc}"
        values = [10, 240, 30, 200]
        frames = _frame_pngs(sandbox / "models" / "frames", values)
        for name, path in bundles.items():
            bad = {i for i, v in enumerate(values) if v > 100}
            case("model", f"{name}: frames", "pi", [str(path)] + [str(p) for p in frames],
                 ok_codes=(1,), frames=len(frames), bad_frames=bad)
            case("model", f"{name}: verify", "verify", [str(path)], ok_codes=(0,),
                 must_fail=True)
            case("model", f"{name}: zip", "pi", [str(path), str(frames[1])], ok_codes=(1,),
                 frames=1, bad_frames={0})

    if not args.no_big:
        log.info("8192x8192 images (memory)")
        for name, path in big_images(sandbox / "frame"):
            case("image-big", name, "pi", [str(golden), str(path)], timeout=BIG_CASE_TIMEOUT_S,
                 ok_codes=(0,), frames=1)
    work.kill()
    shutil.rmtree(sandbox, ignore_errors=True)
    growth = (work.last_rss or 0.0) - (work.started_rss or 0.0)
    result = {"inputs_tried": tally.tried, **tally.counts,
              "rss_growth_mb": round(growth, 1), "peak_case_mb": round(tally.peak_case_mb, 1),
              "per_kind": tally.per_kind, "model_cases": model_note,
              "generator": _generator_name(),
              "seed": args.seed, "examples": examples, "quick": bool(args.quick),
              "worker_restarts": work.restarts, "seconds": round(time.perf_counter() - start, 1),
              "failures": tally.failures[:20], "environment": environment()}
    return _with_atheris(result, args)


# --------------------------------------------------------------------------- atheris

ATHERIS_TARGETS = ("manifest", "zip", "voc_xml", "csv")
ATHERIS_INPUT_TIMEOUT_S = 10  # libFuzzer's per-input limit: over it is a hang
ATHERIS_RSS_LIMIT_MB = 2048
_VOC_SEED = (b"<annotation><size><width>40</width><height>30</height></size><object>"
             b"<name>cat</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>30</xmax>"
             b"<ymax>20</ymax></bndbox></object></annotation>")
_CSV_SEED = b"filename,xmin,ymin,xmax,ymax,width,height,label\na/1.png,1,2,30,20,40,30,cat\n"


def _atheris_seeds(target: str) -> list[bytes]:
    if target == "manifest":
        return [(GOLDEN_BUNDLE / "manifest.json").read_bytes(),
                (REPO / "tests" / "golden" / "bundle_refined" / "manifest.json").read_bytes()
                if (REPO / "tests" / "golden" / "bundle_refined").is_dir() else b"{}"]
    if target == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            for f in sorted(GOLDEN_BUNDLE.iterdir()):
                zf.write(f, f.name)
        return [buffer.getvalue()]
    return [_VOC_SEED] if target == "voc_xml" else [_CSV_SEED]


def fuzz_child(target: str, seconds: int, corpus: Path, artifacts: Path) -> None:
    """One atheris target, run until libFuzzer's -max_total_time (this process exits then)."""
    import atheris

    with atheris.instrument_imports(include=["tfedge"]):
        from tfedge import DatasetError
        from tfedge.data import _folders  # internal: fuzzes the parsers themselves
        from tfedge.runtime import bundle as bundle_module
        from tfedge.runtime.errors import BundleError
    scratch = Path(tempfile.mkdtemp(prefix="tfedge-fuzz-"))
    path = scratch / ("input.zip" if target == "zip" else
                      "input.xml" if target == "voc_xml" else "input.csv")

    def read(data: bytes) -> None:
        if target == "manifest":
            bundle_module._parse_manifest(bundle_module._loads_manifest(data))
            return
        path.write_bytes(data)
        if target == "zip":
            with bundle_module.load_bundle(path, extract_to=scratch / "x"):
                pass
        elif target == "voc_xml":
            _folders._read_voc(path)
        else:
            _folders._CsvIndex(path)

    expected = BundleError if target in ("manifest", "zip") else DatasetError

    def test_one(data: bytes) -> None:
        try:
            read(data)
        except expected as exc:
            if "\n" in str(exc) or "Traceback" in str(exc):
                raise RuntimeError(f"a multi-line error message: {str(exc)[:300]!r}") from exc
        finally:
            shutil.rmtree(scratch / "x", ignore_errors=True)

    atheris.Setup([sys.argv[0], str(corpus), f"-max_total_time={seconds}",
                   f"-timeout={ATHERIS_INPUT_TIMEOUT_S}", f"-rss_limit_mb={ATHERIS_RSS_LIMIT_MB}",
                   f"-artifact_prefix={artifacts}/", "-print_final_stats=1"], test_one)
    atheris.Fuzz()


def run_atheris(seconds: int, targets: list[str]) -> dict[str, Any]:
    """Each target in its own process for ``seconds``; counts parsed from libFuzzer's output."""
    import base64
    import re

    try:
        import atheris  # noqa: F401
    except ImportError as exc:
        return {"skipped": f"atheris is not installed ({exc}): pip install atheris"}
    results: dict[str, Any] = {}
    for target in targets:
        work = Path(tempfile.mkdtemp(prefix=f"tfedge-atheris-{target}-"))
        corpus, artifacts = work / "corpus", work / "artifacts"
        corpus.mkdir()
        artifacts.mkdir()
        for i, seed in enumerate(_atheris_seeds(target)):
            (corpus / f"seed{i}").write_bytes(seed)
        log.info("atheris: %s for %d s", target, seconds)
        start = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, __file__, "--fuzz-child", target, str(seconds),
                                   str(corpus), str(artifacts)], capture_output=True, text=True,
                                  cwd=REPO, timeout=seconds + 120 + ATHERIS_INPUT_TIMEOUT_S,
                                  env=dict(os.environ, TMPDIR=str(work)))
            output, code = done.stdout + done.stderr, done.returncode
        except subprocess.TimeoutExpired as exc:
            output, code = str(exc.stdout or "") + str(exc.stderr or ""), None
        found = sorted(artifacts.iterdir())
        runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", output)
        cov = re.findall(r"\bcov: (\d+)", output)
        timeouts = [f for f in found if f.name.startswith("timeout-")]
        crashes = [f for f in found if not f.name.startswith("timeout-")]
        multi_line = "a multi-line error message" in output
        first_error = next((line for line in output.splitlines()
                            if "Uncaught Python exception" in line or "ERROR: libFuzzer" in line),
                           None)
        results[target] = {
            "runs": int(runs[-1]) if runs else None, "coverage": int(cov[-1]) if cov else None,
            "corpus_files": len(list(corpus.iterdir())),
            "crashes": 0 if multi_line else len(crashes) + (code is None),
            "hangs": len(timeouts), "silent_wrong": int(multi_line),
            "exit_code": code, "seconds": round(time.perf_counter() - start, 1),
            "first_error": first_error,
            "error_tail": output[-1500:] if crashes or timeouts or code not in (0, None) else None,
            "inputs": [base64.b64encode(f.read_bytes()[:4096]).decode("ascii") for f in found[:3]],
        }
        shutil.rmtree(work, ignore_errors=True)
    return results


def _generator_name() -> str:
    try:
        import hypothesis
    except ImportError:
        return "seeded random (hypothesis not installed)"
    return (f"hypothesis {hypothesis.__version__} (JSON values, zip entry names, file names) "
            "+ seeded random (structure, damage)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EXAMPLES} per kind unit")
    parser.add_argument("--examples", type=int, default=None,
                        help=f"cases per kind unit (default {FULL_EXAMPLES}; x2-x3 per kind)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-models", action="store_true", help="skip the TensorFlow-built models")
    parser.add_argument("--no-big", action="store_true", help="skip the 8192x8192 images")
    parser.add_argument("--atheris", type=int, default=None, metavar="SECONDS",
                        help="also fuzz the manifest, zip, VOC XML and CSV readers with atheris, "
                             "SECONDS per target (needs 'pip install atheris')")
    parser.add_argument("--atheris-targets", nargs="+", choices=ATHERIS_TARGETS, default=None)
    parser.add_argument("--atheris-only", action="store_true",
                        help="only the atheris fuzzing (with --atheris)")
    parser.add_argument("--output", type=str, default=None, help="also write the JSON here")
    args = parser.parse_args()
    if args.atheris_only and not args.atheris:
        parser.error("--atheris-only needs --atheris SECONDS")
    setup_logging()
    print_result(run(args), output=args.output)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker()
    elif len(sys.argv) > 1 and sys.argv[1] == "--fuzz-child":
        fuzz_child(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5]))
    else:
        run_main(main)
