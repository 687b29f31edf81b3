"""The package's shape: no import cycles, training never imports the exporter, every
command-line module imports into one process (flags exist only when a program runs), and a
program stopped by a user error has not loaded TensorFlow."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import tfunmask

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = ["tfunmask.train", "tfunmask.export", "tfunmask.unmask", "tfunmask.evaluate"]
TOOLS = sorted(str(p) for p in (REPO / "tools").glob("*.py")) + sorted(
    str(p) for p in (REPO / "benchmarks").glob("*.py")
    if p.name != "torch_reference.py")  # a library of the bench extra (PyTorch), not a program


def package_modules():
    """{module name: source path} of every module of tfunmask."""
    found = {"tfunmask": Path(tfunmask.__file__)}
    for info in pkgutil.walk_packages(tfunmask.__path__, "tfunmask."):
        spec = info.module_finder.find_spec(info.name)
        found[info.name] = Path(spec.origin)
    return found


def import_graph():
    """{module: set of tfunmask modules it imports}, counting imports inside functions too (a
    deferred import hides a cycle from Python, not from a reader)."""
    modules = package_modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [base]).strip(".")
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    edges.add(sub if sub in modules else base)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == "open":
                return stack[stack.index(child):] + [child]
            if child not in state and (cycle := visit(child)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def reachable(graph, start):
    seen, todo = set(), [start]
    while todo:
        for child in graph[todo.pop()] - seen:
            seen.add(child)
            todo.append(child)
    return seen


def test_the_walker_sees_imports_and_cycles():
    graph = import_graph()
    assert "tfunmask.models.pix2pix" in graph["tfunmask.models"]
    assert "tfunmask.models.gan" in graph["tfunmask.models.pix2pix"]
    assert "tfunmask.serving.exporter" in graph["tfunmask.train"]  # a deferred import counts
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_training_does_not_import_the_exporter():
    graph = import_graph()
    for module in (m for m in graph if m.startswith("tfunmask.training")):
        assert not {m for m in reachable(graph, module) if m.startswith("tfunmask.serving")}, module


def test_nothing_in_the_package_imports_the_beam_pipeline():
    graph = import_graph()  # Beam is an extra: only tools/synthesize.py loads it, when it runs
    assert "tfunmask.synth.beam_pipeline" in graph
    assert [m for m in graph if "tfunmask.synth.beam_pipeline" in reachable(graph, m)] == []


def test_every_program_imports_into_one_process_without_defining_flags():
    script = f"""
import importlib, importlib.util
from absl import flags

def ours():
    return {{m: [f.name for f in fs] for m, fs in flags.FLAGS.flags_by_module_dict().items()
            if "tfunmask" in m or m.startswith("tool_")}}

programs = [importlib.import_module(name) for name in {PROGRAMS!r}]
for path in {TOOLS!r}:
    spec = importlib.util.spec_from_file_location("tool_" + path.rsplit("/", 1)[-1][:-3], path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
assert not ours(), ours()
programs[0].define_flags()  # what running the program does first: now its flags exist
assert "model" in ours()["tfunmask.train"] and "lambda_tv" in ours()["tfunmask.train"], ours()
print("imported", {len(PROGRAMS) + len(TOOLS)})
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"imported {len(PROGRAMS) + len(TOOLS)}" in result.stdout


@pytest.mark.parametrize("command, message", [
    (["-m", "tfunmask.train", "--model=cyclegan", "--loss=l1"], "error: --model=cyclegan does not take --loss"),
    (["-m", "tfunmask.train", "--resume", "--model_dir=no_run"], "error: no config.json in no_run"),
    ([str(REPO / "tools" / "make_tfrecords.py"), "--mode=paired", "--out=o"],
     "make_tfrecords: error: --mode=paired needs"),
    (["-m", "tfunmask.export", "--model_dir=no_run"], "error: no config.json in no_run"),
    (["-m", "tfunmask.evaluate", "--model=no_model", "--data=.", "--out=o"],
     "error: --model no_model: no such model file or folder"),
    (["-m", "tfunmask.evaluate", f"--model={REPO}", "--data=.", "--held_out=no_data", "--out=o"],
     "error: --held_out no_data is not a folder"),
])
def test_a_user_error_is_reported_before_tensorflow_loads(command, message, tmp_path):
    """The flags parser only arranges a quiet import (``startup.quiet_tensorflow``): a program that
    stops at a user error never imports TensorFlow (~5 s), as Python's own import log shows."""
    result = subprocess.run([sys.executable, "-X", "importtime", *command], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and lines[-1].startswith(message), result.stderr[-2000:]
    imported = [line.rpartition("|")[2].strip() for line in lines if line.startswith("import time:")]
    assert "absl" in imported and "tensorflow" not in imported and "keras" not in imported
