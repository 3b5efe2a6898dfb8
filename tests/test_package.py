"""The package's structure: what a newcomer relies on when reading it (issue 18).

Every import between mexpr's modules is counted, the module-level ones and those inside
functions alike (a function-local import that hides a cycle still makes one)."""

from __future__ import annotations

import argparse
import ast
import os
from pathlib import Path

import mexpr

PKG = Path(mexpr.__file__).parent


def _modules() -> dict[str, Path]:
    """``mexpr.x`` / ``mexpr.baselines.y`` -> file, for every module of the package."""
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


MODULES = _modules()


def _target(name: str) -> str | None:
    """The package module that ``name`` (a dotted import) lives in, if any."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(mod: str) -> tuple[set[str], dict[str, str], list[tuple[str, str]]]:
    """(modules ``mod`` imports, {local alias: module}, private names imported from elsewhere)."""
    tree = ast.parse(MODULES[mod].read_text())
    deps, aliases, private = set(), {}, []
    pkg = mod if MODULES[mod].name == "__init__.py" else mod.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("mexpr"):
                continue
            for a in node.names:
                full = f"{base}.{a.name}"
                if full in MODULES:  # from mexpr import flow
                    deps.add(full)
                    aliases[a.asname or a.name] = full
                else:  # from mexpr.flow import compute
                    tgt = _target(base)
                    deps.add(tgt)
                    if a.name.startswith("_") and tgt != mod:
                        private.append((tgt, a.name))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("mexpr"):
                    deps.add(_target(a.name))
    deps.discard(mod)
    deps.discard(None)
    return deps, aliases, private


def _private_definitions() -> dict[str, set[str]]:
    """Single-underscore names (functions, classes, methods, constants) each module defines."""
    out = {}
    for mod, path in MODULES.items():
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        out[mod] = {n for n in names if n.startswith("_") and not n.startswith("__")}
    return out


def test_no_import_cycles_between_the_package_modules():
    graph = {mod: _imports(mod)[0] for mod in MODULES}
    # a package __init__ that re-exports its own modules is not a cycle with them
    graph = {m: {d for d in deps if not (MODULES[d].name == "__init__.py" and m.startswith(d + "."))} for m, deps in graph.items()}
    cycles = []

    def visit(node, path):
        for nxt in sorted(graph[node]):
            if nxt == path[0]:
                cycles.append(" -> ".join(path + [nxt]))
            elif nxt not in path and nxt > path[0]:  # each cycle once, from its smallest module
                visit(nxt, path + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_private_name_is_used_outside_its_module():
    defined = _private_definitions()
    problems = []
    for mod in MODULES:
        _, aliases, private = _imports(mod)
        problems += [f"{mod} imports {tgt}.{name}" for tgt, name in private]
        own = defined[mod]
        elsewhere = set().union(*(names for m, names in defined.items() if m != mod)) - own
        for node in ast.walk(ast.parse(MODULES[mod].read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                if isinstance(node.value, ast.Name) and node.value.id in aliases:  # flow._params
                    problems.append(f"{mod}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
                elif node.attr in elsewhere and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                    problems.append(f"{mod}:{node.lineno} uses .{node.attr}, private to another module")
    assert not problems, "\n".join(problems)


def test_the_checks_see_a_cycle_and_a_private_name(tmp_path, monkeypatch):
    """The two tests above can fail: a planted cycle and a planted private import are found."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f():\n    from mexpr.b import _g\n    return _g\n")
    b.write_text("from mexpr import a\n\ndef _g():\n    return a\n")
    monkeypatch.setitem(MODULES, "mexpr.a", a)
    monkeypatch.setitem(MODULES, "mexpr.b", b)
    deps_a, _, private_a = _imports("mexpr.a")
    deps_b, _, _ = _imports("mexpr.b")
    assert deps_a == {"mexpr.b"} and deps_b == {"mexpr.a"} and private_a == [("mexpr.b", "_g")]
    try:
        test_no_import_cycles_between_the_package_modules()
    except AssertionError as e:
        assert "mexpr.a -> mexpr.b -> mexpr.a" in str(e)
    else:
        raise AssertionError("the planted cycle was not found")


def test_the_package_text_names_every_module():
    """``help(mexpr)``'s picture of the package matches its files (and ``import mexpr`` exposes each)."""
    public = sorted(name.split(".")[1] for name in MODULES if name.count(".") == 1 and not name.split(".")[1].startswith("_"))
    assert len(public) >= 20
    unnamed = [m for m in public if f":mod:`mexpr.{m}`" not in mexpr.__doc__]
    assert not unnamed, f"mexpr/__init__.py's text does not name {unnamed}"
    assert set(public) <= set(dir(mexpr))


def test_the_command_line_text_lists_every_command():
    import re

    from mexpr import cli

    parser = cli.build_parser()
    commands = set(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices)
    block = cli.__doc__.split("--------", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r"^(\w+) ", block, re.M))
    assert listed == commands, f"in the text, not commands: {listed - commands}; commands not in the text: {commands - listed}"


def test_real_data_code_never_reads_the_synthetic_ground_truth():
    """Only the ground-truth scoring and the CLI's ``synth`` command import the generator; nothing in
    the package imports the scoring, so no pipeline stage can lean on motion that real data lacks."""
    users = {m for m in MODULES for d in _imports(m)[0] if d == "mexpr.groundtruth" or d.startswith("mexpr.synth")}
    users = {m for m in users if not m.startswith("mexpr.synth")}
    assert users == {"mexpr.groundtruth", "mexpr.cli"}, users


def test_commands_silence_tensorflow_unless_verbose(casme1_root, monkeypatch):
    """``python -m mexpr ...`` prints only its own lines: TensorFlow's start-up log is off before it is
    imported (here and in the workers and kernels it starts), unless ``--verbose``."""
    import subprocess
    import sys

    from mexpr import cli

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert cli.main(["info", str(casme1_root), "--verbose"]) == 0 and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = (
        "import os, sys; from mexpr import cli; cli.main(sys.argv[1:]); import tensorflow as tf; tf.constant(1.0) + 1; "
        "print('level', os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    )
    quiet = subprocess.run([sys.executable, "-c", code, "info", str(casme1_root)], env=env, capture_output=True, text=True, check=True)
    assert "level 2" in quiet.stdout
    for noise in ("cpu_feature_guard", "absl::InitializeLog", "oneDNN custom operations"):
        assert noise not in quiet.stderr
