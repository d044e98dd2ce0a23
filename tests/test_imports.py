"""The package's rooms import each other without circles, and the library never imports
the command line (nnforge.cli): a static check of every module-level import, and each
module imported on its own in a fresh interpreter."""
import ast
import os
import subprocess
import sys

import pytest

import nnforge

ROOT = os.path.dirname(os.path.abspath(nnforge.__file__))


def _modules() -> dict:
    """{dotted name: path} for every .py file in the package."""
    out = {}
    for folder, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, f), os.path.dirname(ROOT))[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                out[".".join(rel)] = os.path.join(folder, f)
    return out


MODULES = _modules()


def _imports(name: str, path: str, top_level_only: bool) -> set:
    """The nnforge modules `name` imports (module level only, or everywhere)."""
    with open(path) as f:
        tree = ast.parse(f.read())
    package = name if path.endswith("__init__.py") else name.rsplit(".", 1)[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            for a in node.names:  # `from . import x` imports the submodule x when there is one
                sub = f"{mod}.{a.name}"
                found.add(sub if sub in MODULES else mod)
    return {m for m in found if m in MODULES and m != name}


def test_no_import_cycles_among_nnforge_modules():
    graph = {m: _imports(m, p, top_level_only=True) for m, p in MODULES.items()}
    # a package's __init__ importing its own submodules is how packages work, not a circle
    graph = {m: {d for d in deps if not (d.startswith(m + ".") and MODULES[m].endswith("__init__.py"))}
             for m, deps in graph.items()}
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycle = stack[stack.index(d):] + [d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_library_never_imports_the_command_line():
    for name, path in MODULES.items():
        if name.startswith(("nnforge.cli", "nnforge.bench", "nnforge.__main__")):
            continue
        bad = {m for m in _imports(name, path, top_level_only=False) if m.startswith("nnforge.cli")}
        assert not bad, f"{name} imports {sorted(bad)}"


def test_module_and_training_facade_are_separate_rooms():
    module_deps = _imports("nnforge.nn.module", MODULES["nnforge.nn.module"], top_level_only=False)
    assert module_deps <= {"nnforge.nn.flat", "nnforge.nn._state"}, module_deps
    # _state (load_state_dict's checks) is a leaf: it imports nothing of nnforge
    assert not {m for m in _imports("nnforge.nn._state", MODULES["nnforge.nn._state"], top_level_only=False)
                if m.startswith("nnforge")}
    training = _imports("nnforge.nn.training", MODULES["nnforge.nn.training"], top_level_only=False)
    assert not training & {"nnforge.nn.model", "nnforge.nn.containers"}, training


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith(("nnforge.nn", "nnforge.cli",
                                                                            "nnforge.data"))))
def test_each_module_imports_alone(name):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
