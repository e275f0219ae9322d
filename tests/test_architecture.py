"""Dependency rules of the codebase, enforced on the source (an AST scan of every import).

* ``tfedge.runtime`` (the device contract) imports only itself, the standard
  library, numpy, Pillow and a LiteRT interpreter: never TensorFlow, never the
  training side. The device runner and the Android port stand on it alone.
* ``rpi_runner`` imports nothing of tfedge but ``tfedge.runtime`` (and, from
  outside, only what a device has: numpy, Pillow, LiteRT, OpenCV, picamera2).
* The library never imports the command line (the ``tfedge.cli`` package and
  its ``converters.cli`` alias): commands are an outer shell over the library.
* The project's own tools (``benchmarks/``, ``converters/``) use tfedge's public
  API only: no module or name starting with ``_``. What they need, a user's
  script needs too. (A fuzzer aims at parsers themselves: such a line says
  ``# internal: why``.)
* No import cycles in ``tfedge`` or ``rpi_runner``, lazy imports (inside functions)
  counted: a cycle hidden in a function is still two modules that need each other.

Every import counts, at module level or inside a function (a lazy import
still runs on a device). ``python tests/test_architecture.py`` prints the
import cycles of the whole of tfedge, module-level and lazy ones. A package's
``__init__`` importing its own submodules is not a cycle (Python imports the
package first); only imports written in the code are edges.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]

#: What a device has besides the standard library.
RUNTIME_THIRD_PARTY = {"numpy", "PIL", "ai_edge_litert", "tflite_runtime"}
RUNNER_THIRD_PARTY = RUNTIME_THIRD_PARTY | {"cv2", "picamera2"}
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


@dataclass(frozen=True)
class Import:
    module: str        # the importing module, e.g. "tfedge.runtime.bundle"
    target: str        # the imported module, resolved, e.g. "tfedge.runtime.errors"
    line: int
    lazy: bool         # inside a function (runs when called, not on import)
    type_only: bool    # under ``if TYPE_CHECKING:`` (never runs)

    def __str__(self) -> str:
        where = "lazy " if self.lazy else ""
        return f"{self.module}:{self.line} {where}imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _exists(module: str) -> bool:
    base = REPO.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, lazy: bool = False, type_only: bool = False
          ) -> Iterator[tuple[ast.AST, bool, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, lazy, type_only
        inner_lazy = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        inner_type = type_only or (isinstance(child, ast.If) and _is_type_checking(child))
        yield from _walk(child, inner_lazy, inner_type)


def imports_of(path: Path) -> list[Import]:
    """Every import statement of one file, resolved to absolute module names."""
    module = _module_name(path)
    package = module if _is_package(path) else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node, lazy, type_only in _walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``from pkg import name``: the submodule pkg.name when it is one, else pkg itself.
            targets = [f"{base}.{a.name}" if _exists(f"{base}.{a.name}") else base
                       for a in node.names]
        for target in dict.fromkeys(targets):
            found.append(Import(module, target, node.lineno, lazy, type_only))
    return found


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py")
                  if "__pycache__" not in p.parts)


def _top(name: str) -> str:
    return name.split(".")[0]


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _violations(imports: Iterable[Import], allowed) -> list[str]:
    return [str(i) for i in imports if not i.type_only and not allowed(i.target)]


# --------------------------------------------------------------------------- rules


def test_runtime_imports_only_itself_numpy_pillow_and_litert():
    imports = [i for p in python_files("tfedge/runtime") for i in imports_of(p)]
    assert imports, "found no imports: is the scan looking at the right folder?"
    bad = _violations(imports, lambda t: _within(t, "tfedge.runtime")
                      or _top(t) in RUNTIME_THIRD_PARTY or _top(t) in STDLIB)
    assert bad == [], "tfedge.runtime reaches outside the device contract:\n" + "\n".join(bad)


def test_runner_depends_on_tfedge_runtime_only():
    imports = [i for p in python_files("rpi_runner") for i in imports_of(p)]
    bad = _violations(imports, lambda t: _within(t, "tfedge.runtime") or _within(t, "rpi_runner")
                      or _top(t) in RUNNER_THIRD_PARTY or _top(t) in STDLIB)
    assert bad == [], "rpi_runner imports beyond tfedge.runtime:\n" + "\n".join(bad)


def is_cli_module(name: str) -> bool:
    return _within(name, "tfedge.cli") or _within(name, "converters.cli")


def library_cli_imports() -> list[str]:
    imports = [i for p in python_files("tfedge") for i in imports_of(p)
               if not is_cli_module(i.module)]
    return _violations(imports, lambda t: not is_cli_module(t))


def test_library_never_imports_a_cli_module():
    bad = library_cli_imports()
    assert bad == [], "library modules import command-line modules:\n" + "\n".join(bad)


def test_the_cli_rule_recognises_cli_modules():
    assert is_cli_module("tfedge.cli") and is_cli_module("tfedge.cli.crop")
    assert is_cli_module("converters.cli") and not is_cli_module("tfedge.client")
    assert not is_cli_module("tfedge.runtime.commandline") and not is_cli_module("tfedge.client")


def private_tfedge_imports(*folders: str) -> list[str]:
    """Imports of a private tfedge module or name (``tfedge._train``, ``from tfedge.x import _y``)."""
    bad = []
    for path in python_files(*folders):
        if "recorded" in path.parts:  # frozen copies of the scripts that made a record
            continue
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, ast.Import):
                pairs = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                pairs = [(node.module, a.name) for a in node.names]
            else:
                continue
            if "# internal:" in lines[node.lineno - 1]:
                continue
            for module, name in pairs:
                if _top(module) != "tfedge":
                    continue
                parts = module.split(".") + ([name] if name else [])
                if any(part.startswith("_") for part in parts):
                    bad.append(f"{path.relative_to(REPO)}:{node.lineno} "
                               f"{module}{'.' + name if name else ''}")
    return bad


def test_benchmarks_and_converters_use_the_public_api_only():
    assert python_files("benchmarks"), "found no benchmark scripts"
    bad = private_tfedge_imports("benchmarks", "converters")
    assert bad == [], "private tfedge imports (export the name instead):\n" + "\n".join(bad)


#: Import paths from before tfedge.runtime existed -> the runtime module they now are.
MOVED = {"tfedge._errors": "tfedge.runtime.errors", "tfedge._io": "tfedge.runtime.fileio",
         "tfedge._image": "tfedge.runtime.image", "tfedge.litert": "tfedge.runtime.interpreter",
         "tfedge.bundle": "tfedge.runtime.bundle",
         "tfedge.crop.geometry": "tfedge.runtime.geometry",
         "tfedge.cascade._decision": "tfedge.runtime.decision"}


@pytest.mark.parametrize("old,new", sorted(MOVED.items()))
def test_old_import_paths_are_the_runtime_modules(old, new):
    """Aliases, not copies: ``except tfedge.BundleError`` and monkeypatches keep working."""
    import importlib

    assert importlib.import_module(old) is importlib.import_module(new)


def test_every_name_the_runtime_offers_resolves():
    import tfedge.runtime

    for name in tfedge.runtime.__all__:
        assert getattr(tfedge.runtime, name) is not None, name


def test_every_name_tfedge_offers_resolves_without_loading_tensorflow_at_import():
    import subprocess

    code = ("import sys, tfedge; assert 'tensorflow' not in sys.modules; "
            "missing = [n for n in tfedge.__all__ if getattr(tfedge, n, None) is None]; "
            "assert not missing, missing")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_error_classes_are_one_set_of_objects():
    import tfedge
    import tfedge.runtime
    from tfedge.runtime import errors

    for name in ("TfedgeError", "DatasetError", "ModelConfigError", "BundleError"):
        assert getattr(tfedge, name) is getattr(tfedge.runtime, name) is getattr(errors, name)


# --------------------------------------------------------------------------- cycles


def import_graph(files: Iterable[Path], *, include_lazy: bool,
                 within: str = "tfedge") -> dict[str, set[str]]:
    """Module -> the modules of ``within`` it imports (aliases resolved by file, not object)."""
    graph: dict[str, set[str]] = {}
    for path in files:
        name = _module_name(path)
        edges = graph.setdefault(name, set())
        for i in imports_of(path):
            if i.type_only or (i.lazy and not include_lazy) or not _within(i.target, within):
                continue
            if i.target != name:
                edges.add(i.target)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


@pytest.mark.parametrize("package", ["tfedge", "rpi_runner"])
def test_no_import_cycles_not_even_through_lazy_imports(package):
    graph = import_graph(python_files(package), include_lazy=True, within=package)
    assert len(graph) > 5 and import_cycles(graph) == []


def test_cycle_finder_finds_cycles():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_import_scan_resolves_relative_and_submodule_imports():
    found = {i.target for i in imports_of(REPO / "tfedge/runtime/bundle.py")}
    assert {"tfedge.runtime.errors", "tfedge.runtime.decision", "numpy"} <= found


if __name__ == "__main__":
    files = python_files("tfedge")
    for lazy in (False, True):
        cycles = import_cycles(import_graph(files, include_lazy=lazy))
        print(f"{'module-level and lazy' if lazy else 'module-level'} import cycles in tfedge: "
              f"{len(cycles)}")
        for cycle in cycles:
            print("  " + " <-> ".join(cycle))
    print("library modules importing CLI modules:")
    for line in library_cli_imports():
        print("  " + line)
