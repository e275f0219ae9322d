"""The Android app's plain-Java core, held to the Python runtime by golden vectors.

* The committed vectors (``android_demo/core/src/test/resources/golden``) must be what the
  Python runtime computes today from the committed tiny bundle: regenerated here and
  compared, so a change on the Python side cannot leave the Java side silently behind.
* The Java core and its JUnit 4 tests are compiled with javac and run
  (``android_demo/core/jvm-test.sh``); a Java failure fails this test, with JUnit's counts
  in the message. Without a JDK and Debian's junit4/hamcrest/org.json jars the test skips,
  except under CI (``CI=true``), where it fails: CI must run the Java tests.
* The app's framework-only sources (those that import nothing but ``android.*``, the JDK,
  ``org.json`` and the core) are compiled against a real ``android.jar``: Debian bullseye's
  ``android-sdk-platform-23``, which ``scripts/setup.sh`` fetches and unpacks (bookworm has
  no ``android-sdk-platform-*``). Without one the test skips, except under CI.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
ANDROID = REPO / "android_demo"
CORE = ANDROID / "core"
GOLDEN = CORE / "src" / "test" / "resources" / "golden"
JAVA_LIB = Path(os.environ.get("JAVA_LIB", "/usr/share/java"))
JARS = ("com.android.json.jar", "junit4.jar", "hamcrest-core.jar")
JAVA_PACKAGES = "default-jdk-headless junit4 libhamcrest-java libandroid-json-java"
#: Relative tolerance for floats when comparing regenerated vectors (exp/log of another
#: numpy build may differ in the last bit); everything else must be equal.
FLOAT_RTOL = 1e-12
#: ... and an absolute one: a margin of two nearly equal probabilities keeps only their
#: absolute error (about 1e-17).
FLOAT_ATOL = 1e-15


def _make_vectors():
    sys.path.insert(0, str(ANDROID / "tools"))
    try:
        import make_vectors
    finally:
        sys.path.pop(0)
    return make_vectors


def _missing_java() -> list[str]:
    missing = [tool for tool in ("javac", "java") if shutil.which(tool) is None]
    missing += [str(JAVA_LIB / jar) for jar in JARS if not (JAVA_LIB / jar).is_file()]
    return missing


def _require_java() -> None:
    missing = _missing_java()
    if not missing:
        return
    message = (f"the Android core's JVM tests need {', '.join(missing)}: apt-get install -y "
               f"{JAVA_PACKAGES} (bash scripts/setup.sh does it as root)")
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the Java tests: {message}")
    pytest.skip(message)


def _differences(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Where two JSON values differ (floats within FLOAT_RTOL), as readable paths."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = [f"{path}: keys {sorted(set(expected) ^ set(actual))} differ"] \
            if set(expected) != set(actual) else []
        for key in sorted(set(expected) & set(actual)):
            out += _differences(expected[key], actual[key], f"{path}.{key}")
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: {len(expected)} items, now {len(actual)}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual)):
            out += _differences(e, a, f"{path}[{i}]")
        return out
    if isinstance(expected, float) and isinstance(actual, float):
        ok = math.isclose(expected, actual, rel_tol=FLOAT_RTOL, abs_tol=FLOAT_ATOL)
        return [] if ok else [f"{path}: {expected!r}, now {actual!r}"]
    if type(expected) is not type(actual) or expected != actual:
        return [f"{path}: {str(expected)[:80]!r}, now {str(actual)[:80]!r}"]
    return []


def _without_knife_edges(vectors: dict[str, Any]) -> dict[str, Any]:
    """``unit.json`` without the exit flag of decisions whose score is within rounding of the
    threshold: those hold on this machine's numpy (the Java tests check them) but numpy's exp
    and log differ in the last bit between CPUs, and then so may such a decision."""
    for case in vectors.get("decisions", []):
        for stage in case["stages"]:
            t = stage["threshold"]
            if t is not None and abs(stage["score"] - t) <= 1e-12 * max(1.0, abs(t)):
                stage.pop("exits")
    return vectors


def test_committed_vectors_are_what_python_computes_today(tmp_path):
    pytest.importorskip("ai_edge_litert")
    make_vectors = _make_vectors()
    make_vectors.write_vectors(tmp_path, GOLDEN / make_vectors.BUNDLE_NAME)
    problems = []
    for name in ("pipeline.json", "unit.json", "refusals.json"):
        committed = _without_knife_edges(json.loads((GOLDEN / name).read_text()))
        now = _without_knife_edges(json.loads((tmp_path / name).read_text()))
        problems += [f"{name} {d}" for d in _differences(committed, now)]
    assert not problems, (
        f"{len(problems)} golden values changed on the Python side (first: "
        f"{problems[:5]}): if the change is intended, run .venv/bin/python "
        "android_demo/tools/make_vectors.py, make the Java core agree, and commit both")


def _junit_counts(output: str) -> tuple[int, int]:
    """(tests run, failures) from JUnitCore's closing lines."""
    ok = re.search(r"^OK \((\d+) tests?\)", output, re.M)
    if ok:
        return int(ok.group(1)), 0
    failed = re.search(r"^Tests run: (\d+),\s+Failures: (\d+)", output, re.M)
    if failed:
        return int(failed.group(1)), int(failed.group(2))
    return 0, 0


def test_java_core_passes_its_junit_tests_against_the_vectors(tmp_path, capsys):
    _require_java()
    # The Python runtime's own golden folder is named, so its absence fails instead of skipping.
    java_opts = f"{os.environ.get('JAVA_OPTS', '')} -Dtfedge.runtime.golden={REPO / 'tests' / 'golden'}"
    env = dict(os.environ, BUILD_DIR=str(tmp_path / "jvm"), JAVA_OPTS=java_opts.strip())
    proc = subprocess.run(["bash", str(CORE / "jvm-test.sh")], capture_output=True, text=True,
                          env=env, timeout=300)
    output = proc.stdout + proc.stderr
    run, failures = _junit_counts(output)
    assert proc.returncode == 0 and run > 0 and failures == 0, (
        f"Java core: {run} JUnit tests run, {failures} failed (exit status {proc.returncode}):\n"
        f"{output[-6000:]}")
    # JUnit's count in the suite's own output (CI logs), whatever pytest's capture mode.
    with capsys.disabled():
        print(f"\nandroid_demo/core JUnit: {run} tests run, all passed")


def _perturb_golden_copy(dest: Path) -> dict[str, str]:
    """Copy the golden vectors to ``dest`` and change one value in each of five places, each
    beyond its tolerance; returns {JUnit test header: a phrase its failure must contain}."""
    shutil.copytree(GOLDEN, dest)

    def edit(name: str, change) -> None:
        data = json.loads((dest / name).read_text())
        change(data)
        (dest / name).write_text(json.dumps(data))

    expected: dict[str, str] = {}

    def exit_stage(pipeline: dict[str, Any]) -> None:
        # A frame whose exit stage another frame shares, so every stage is still seen exiting.
        stages = [k["result"]["exit_stage"] for k in pipeline["cases"]]
        i = next(i for i, s in enumerate(stages) if stages.count(s) > 1)
        new = (stages[i] + 1) % len(pipeline["manifest"]["stages"])
        pipeline["cases"][i]["result"]["exit_stage"] = new
        expected["everyFrameMatchesThePythonRunner(org.tfedge.core.PipelineGoldenTest)"] = (
            f"frame {i} ({pipeline['cases'][i]['source']}): exit stage expected:<{new}> "
            f"but was:<{stages[i]}>")

    def unit(vectors: dict[str, Any]) -> None:
        i = next(i for i, c in enumerate(vectors["box"]) if c["box_format"] == "heatmap_cyxhw")
        vectors["box"][i]["box"][0] += 1e-3
        expected["boxesDecodeAsInPython(org.tfedge.core.UnitVectorsTest)"] = (
            f"box case {i} (heatmap_cyxhw): box: arrays first differed at element [0]")
        values = vectors["dequantize"][0]["values"]
        values[0] += max(1e-3, abs(values[0]) * 1e-3)
        expected["dequantizeLikeLitert(org.tfedge.core.UnitVectorsTest)"] = (
            "arrays first differed at element [0]")
        i, j, stage = next((i, j, s) for i, c in enumerate(vectors["decisions"])
                           for j, s in enumerate(c["stages"])
                           if s["threshold"] is not None and abs(s["score"] - s["threshold"]) > 1e-6)
        stage["exits"] = not stage["exits"]
        expected["decisionsAreTheSame(org.tfedge.core.UnitVectorsTest)"] = (
            f"decision case {i} stage {j} ({stage['criterion']}): "
            f"exits {str(not stage['exits']).lower()} with score")

    def refusal(refusals: dict[str, Any]) -> None:
        case = next(c for c in refusals["cases"] if c["name"] == "sha_mismatch")
        case["phrase"] = None  # "Python accepts it": Java's refusal now disagrees
        expected["theSameBundlesAreRefusedWithTheSamePhrase(org.tfedge.core.RefusalTest)"] = (
            "sha_mismatch: Python accepts it, Java says: stage2.tflite: SHA-256 mismatch")

    edit("pipeline.json", exit_stage)
    edit("unit.json", unit)
    edit("refusals.json", refusal)
    return expected


def test_java_core_fails_when_a_golden_value_is_perturbed(tmp_path):
    """The JUnit tests can fail: an exit stage, a heat-map box coordinate, a dequantised value,
    an exit decision and a refusal each changed in a copy of the vectors is each caught, by the
    test that owns it, with a message naming the value (the committed vectors stay untouched)."""
    _require_java()
    expected = _perturb_golden_copy(tmp_path / "golden")
    env = dict(os.environ, BUILD_DIR=str(tmp_path / "jvm"),
               JAVA_OPTS=f"-Dtfedge.golden={tmp_path / 'golden'}")
    proc = subprocess.run(["bash", str(CORE / "jvm-test.sh")], capture_output=True, text=True,
                          env=env, timeout=300)
    output = proc.stdout + proc.stderr
    run, failures = _junit_counts(output)
    # JUnitCore's report: "N) test(Class)" then the failure's text, up to the next header.
    blocks = dict(re.findall(r"^\d+\) (\S+)\n(.*?)(?=^\d+\) |^FAILURES!!!)", output, re.M | re.S))
    assert proc.returncode == 1 and run > 0 and failures == len(expected), output[-6000:]
    assert set(blocks) == set(expected), output[-6000:]
    for test, phrase in expected.items():
        assert phrase in blocks[test], f"{test}: no {phrase!r} in:\n{blocks[test][:1500]}"


def test_app_sources_parse():
    """Every app source at least parses (javac's parser, no types: the libraries are missing)."""
    _require_java()
    sources = sorted(str(p) for p in (ANDROID / "app").rglob("*.java"))
    proc = subprocess.run(["java", str(ANDROID / "tools" / "ParseOnly.java"), *sources],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


#: Where scripts/setup.sh unpacks bullseye's android-sdk-platform-23 (as root, and not).
_SETUP_SDK_PREFIXES = (os.environ.get("TFEDGE_ANDROID_SDK", ""), "/opt/tfedge/android-sdk-23",
                       os.path.join(os.environ.get("XDG_CACHE_HOME",
                                                   os.path.expanduser("~/.cache")),
                                    "tfedge", "android-sdk-23"))


def _android_jar() -> Path | None:
    candidates = [os.environ.get("ANDROID_JAR", "")]
    homes = [os.environ.get("ANDROID_HOME"), os.environ.get("ANDROID_SDK_ROOT"),
             "/usr/lib/android-sdk"]
    homes += [os.path.join(p, "usr", "lib", "android-sdk") for p in _SETUP_SDK_PREFIXES if p]
    for home in homes:
        if home:
            candidates += sorted(glob.glob(os.path.join(home, "platforms", "android-*",
                                                        "android.jar")), reverse=True)
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


#: Imports a framework-only app source may have: no CameraX, no LiteRT, no AndroidX.
_FRAMEWORK_ONLY = re.compile(r"^(android\.|java\.|javax\.|org\.json\.|org\.tfedge\.)")


def framework_only_sources() -> tuple[list[Path], list[Path]]:
    """The app's Java sources split into (framework-only, needing CameraX/LiteRT/AndroidX)."""
    plain, other = [], []
    for path in sorted((ANDROID / "app" / "src" / "main" / "java").rglob("*.java")):
        imports = re.findall(r"^import\s+(?:static\s+)?([\w.]+)", path.read_text(), re.M)
        (plain if all(_FRAMEWORK_ONLY.match(i) for i in imports) else other).append(path)
    return plain, other


def test_app_sources_split_into_framework_only_and_library_ones():
    plain, other = framework_only_sources()
    names = {p.name for p in plain}
    assert {"SettingsActivity.java", "AssetSource.java", "Settings.java"} <= names, names
    assert {"MainActivity.java", "LiteRtEngine.java"} <= {p.name for p in other}


def test_framework_only_app_sources_compile_against_android_jar(tmp_path):
    android_jar = _android_jar()
    if android_jar is None:
        message = ("no android.jar: bash scripts/setup.sh fetches Debian bullseye's "
                   "android-sdk-platform-23 (or set ANDROID_JAR / ANDROID_HOME)")
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must compile the app's framework-only sources: {message}")
        pytest.skip(message)
    _require_java()
    plain, other = framework_only_sources()
    # What cannot be compiled here: CameraX and AndroidX (MainActivity), LiteRT (LiteRtEngine),
    # from Google's Maven repository, which CI cannot reach.
    assert {p.name for p in other} == {"MainActivity.java", "LiteRtEngine.java"}
    core = sorted(str(p) for p in (CORE / "src" / "main" / "java").rglob("*.java"))
    proc = subprocess.run(["javac", "--release", "8", "-encoding", "UTF-8", "-cp",
                           f"{android_jar}:{JAVA_LIB / 'com.android.json.jar'}", "-d",
                           str(tmp_path), *core, *map(str, plain)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    compiled = {p.stem for p in (tmp_path / "org" / "tfedge" / "demo").glob("*.class")}
    assert {p.stem for p in plain} <= compiled


@pytest.mark.slow
def test_the_tiny_bundle_can_still_be_rebuilt(tmp_path):
    """make_vectors.py --bundle (TensorFlow): the bundle builder still runs and its bundle loads."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("ai_edge_litert")
    from tfedge.bundle import load_bundle

    make_vectors = _make_vectors()
    built = make_vectors.build_bundle(tmp_path / "bundle")
    with load_bundle(built) as bundle:
        assert [s.criterion for s in bundle.stages] == ["max_softmax", "entropy", "margin"]
        assert [s.input.dtype for s in bundle.stages] == ["int8", "uint8", "int8"]
        assert bundle.predictor.box_format == "heatmap_cyxhw"
