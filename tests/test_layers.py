"""The package's import layers, read from the source (every module's imports, by ``ast``).

docs/architecture.md, "Layers": imports point down only; ``audio/`` knows nothing of
training, ``sonify/`` knows no framework, the adapters translate; no import cycle.
Imports inside ``if TYPE_CHECKING:`` are annotations only and are not counted; imports
inside functions (late imports) are counted, except where a rule says "module level".
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "auralize"

#: the layers of docs/architecture.md, lowest first: a module may import its own layer
#: and the ones below it (the package root ``auralize`` is its version and AuralizeError)
LAYERS = [
    {"auralize", "errors", "readers"},
    {"audio", "workers"},
    {"sonify", "layer_groups"},
    {"models", "activations", "dream", "generate"},
    {"torch", "torch_layers", "torch_steps", "keras", "keras_layers", "keras_record",
     "keras_step", "lightning", "transformers", "transformers_sharded", "fit_session",
     "sharded_norms", "shard_layouts", "amp_steps", "deepspeed_zero", "step_records"},
    {"digits", "sweeps"},
    {"trackers", "notebook", "web"},
    {"commands", "cli", "__main__"},
]
ADAPTERS = LAYERS[4]
FRAMEWORKS = {"torch", "keras", "tensorflow", "jax", "jaxlib", "flax", "lightning",
              "pytorch_lightning", "transformers", "accelerate", "deepspeed"}

#: Imports that go up a layer on purpose, late (inside a function): the session finds
#: its optional outputs at run time, so a run that uses none of them imports none.
UPWARD_BY_DESIGN = {
    ("auralize.sonify.session", "auralize.trackers"),
    ("auralize.sonify.session", "auralize.trackers.uploader"),
    ("auralize.sonify.session", "auralize.notebook.target"),
    ("auralize.sonify.targets", "auralize.web.bridge"),
    ("auralize.sweeps.sound", "auralize.web.bridge"),
}

#: Cycles that are known and owned elsewhere; remove an entry when its cycle is gone.
KNOWN_CYCLES: list[set[str]] = []


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (an auralize module where it names one)
    late: bool  # inside a function
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> list[Import]:
    found: list[Import] = []
    is_package = path.name == "__init__.py"

    def add(target: str, late: bool, line: int) -> None:
        found.append(Import(name, target, late, line))

    def visit(node: ast.AST, late: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for sub in child.orelse:
                    visit_one(sub, late)
                continue
            visit_one(child, late)

    def visit_one(child: ast.AST, late: bool) -> None:
        if isinstance(child, ast.Import):
            for alias in child.names:
                add(alias.name, late, child.lineno)
        elif isinstance(child, ast.ImportFrom):
            base = child.module or ""
            if child.level:  # relative: resolve against this module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[:len(package) - child.level + 1]
                base = ".".join(package + ([base] if base else []))
            for alias in child.names:
                full = f"{base}.{alias.name}"
                add(full if full in MODULES else base, late, child.lineno)
        else:
            visit(child, late or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                    ast.Lambda)))

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


IMPORTS = [imp for name, path in MODULES.items() for imp in _imports(name, path)]


def _area(module: str) -> str:
    """``auralize.audio.engine`` -> ``audio``; the package root -> ``auralize``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _layer(module: str) -> int:
    area = _area(module)
    for index, names in enumerate(LAYERS):
        if area in names:
            return index
    raise AssertionError(f"{module} is in no layer: add {area!r} to LAYERS (and the docs)")


def _own(imp: Import) -> bool:
    return imp.target.split(".")[0] == "auralize"


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(component)
    return out


def test_the_reader_sees_late_annotation_and_relative_imports(tmp_path):
    """What the rules below rely on: late imports marked, TYPE_CHECKING ones skipped,
    relative ones resolved, and cycles found."""
    path = tmp_path / "fake.py"
    path.write_text("from typing import TYPE_CHECKING\n"
                    "from auralize.audio import score\n"
                    "from . import engine\n"
                    "if TYPE_CHECKING:\n    from auralize.sonify.telemetry import TrainingStep\n"
                    "def f():\n    import torch\n")
    found = {(imp.target, imp.late) for imp in _imports("auralize.audio.fake", path)}
    assert found == {("typing", False), ("auralize.audio.score", False),
                     ("auralize.audio.engine", False), ("torch", True)}
    assert ("auralize.audio.engine", "auralize.audio.voices.kinds") in {
        (imp.source, imp.target) for imp in IMPORTS}
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_cycle():
    graph = {name: set() for name in MODULES}
    for imp in IMPORTS:
        if imp.target in MODULES and imp.target != imp.source:
            graph[imp.source].add(imp.target)
    unknown = [sorted(c) for c in _cycles(graph) if not any(c <= k for k in KNOWN_CYCLES)]
    assert not unknown, f"import cycles: {unknown}"


def test_imports_point_down():
    upward = [f"{imp.source}:{imp.line} imports {imp.target} ({'late' if imp.late else 'module level'})"
              for imp in IMPORTS
              if _own(imp) and imp.source != "auralize" and imp.target in MODULES
              and _layer(imp.target) > _layer(imp.source)
              and not (imp.late and (imp.source, imp.target) in UPWARD_BY_DESIGN)]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _area(m) in ("audio", "workers")))
def test_audio_knows_nothing_above_it(module):
    """The engine and the worker model import only themselves and AuralizeError: no
    training, sessions, pages, sweeps, commands, adapters, and no ML framework (not even
    late)."""
    bad = [f"{imp.target} (line {imp.line})" for imp in IMPORTS if imp.source == module
           and ((_own(imp) and _area(imp.target) not in ("audio", "workers", "errors"))
                or imp.target.split(".")[0] in FRAMEWORKS)]
    assert not bad, f"{module} imports {', '.join(bad)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _area(m) == "sonify"))
def test_sonify_knows_no_framework(module):
    """Training sound takes plain records: no framework at module level, no adapter at all."""
    bad = [f"{imp.target} (line {imp.line})" for imp in IMPORTS if imp.source == module
           and ((imp.target.split(".")[0] in FRAMEWORKS and not imp.late)
                or (_own(imp) and _area(imp.target) in ADAPTERS))]
    assert not bad, f"{module} imports {', '.join(bad)}"


def test_audio_names_no_training_concept():
    """The engine knows nothing of training (issue 20): no word of it in audio/'s code or
    docs; what an earcon means, the live clock's policy and speech timing live in sonify/."""
    words = re.compile(r"\b(train\w*|epochs?|loss(es)?|gradients?|optimi[sz]er\w*|weights?)\b",
                       re.IGNORECASE)
    found = []
    for path in sorted([*(PACKAGE / "audio").rglob("*.py"), *(PACKAGE / "workers").rglob("*.py")]):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if words.search(line):
                found.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


#: numba kernel files: one compiled function a span kind, long by nature (the charter's
#: exception); every other module stays under the limit
KERNELS = {"auralize.audio.kernels", "auralize.audio.voices.bank_kernels"}
MAX_LINES = 400


def test_no_module_is_longer_than_the_limit():
    """Modules small and named by role (the charter: no file over ~400 lines outside the
    numba kernels): split a module by role before it grows past the limit."""
    long = {name: n for name, path in MODULES.items() if name not in KERNELS
            and (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
