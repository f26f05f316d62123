"""The package's plan holds: imports point one way (cli -> pipeline -> methods | data -> rendering ->
geometry -> model), no module reaches another's private names, the library never imports the
experiment helpers, old import paths still work for one release, and the public API loads lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import handlib

PACKAGE = Path(handlib.__file__).resolve().parent
#: Layer of each part; a module may import its own part and lower layers, never a sibling of its
#: own layer (methods and data do not know each other).
LAYERS = {"model": 0, "geometry": 1, "rendering": 2, "methods": 3, "data": 3, "pipeline": 4, "cli": 5, "experiments": 6}


def part_of(module: str) -> str:
    parts = module.split(".")
    return "cli" if parts[1:2] == ["cli"] else parts[1] if len(parts) > 1 else ""


def handlib_imports(path: Path) -> list[tuple[str, ast.AST]]:
    """Every handlib module imported by the file (absolute names), with the node."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names if alias.name.startswith("handlib.")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("handlib"):
            if node.module == "handlib":
                found += [(f"handlib.{alias.name}", node) for alias in node.names]
            else:
                found += [(node.module, node)] + [
                    (f"{node.module}.{alias.name}", node)
                    for alias in node.names
                    if (PACKAGE / node.module.split(".", 1)[1].replace(".", "/") / f"{alias.name}.py").is_file()
                ]
    return found


def library_modules() -> list[tuple[str, Path]]:
    return [
        ("handlib." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts), p)
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "__init__.py" or p.parent != PACKAGE
    ]


def test_imports_point_down_the_layers():
    wrong = []
    for module, path in library_modules():
        here = part_of(module)
        for imported, node in handlib_imports(path):
            there = part_of(imported)
            if there not in LAYERS:
                wrong.append(f"{module}:{node.lineno} imports {imported} (not in a known part)")
            elif there != here and LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{module}:{node.lineno} ({here}) imports {imported} ({there})")
    assert not wrong, "\n".join(wrong)


def outside_names(tree: ast.AST) -> set[str]:
    """Names a file binds to other packages' modules (numpy's, copyreg, ...): their private names
    are theirs to keep stable, not handlib's concern here."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if not a.name.startswith("handlib")}
        elif isinstance(node, ast.ImportFrom) and not (node.module or "").startswith("handlib"):
            names |= {a.asname or a.name for a in node.names}
    return names


def test_no_module_reaches_another_modules_private_names():
    wrong = []
    for module, path in library_modules():
        tree = ast.parse(path.read_text())
        own = outside_names(tree) | {"self", "cls", "ctx"}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("handlib"):
                wrong += [
                    f"{module} imports {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and (node.value.id in own or node.value.id.startswith("_")))
            ):
                wrong.append(f"{module}:{node.lineno} reads .{node.attr}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_among_modules():
    graph = {module: {name for name, _ in handlib_imports(path)} for module, path in library_modules()}
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        if state.get(module) == 2 or module not in graph:
            return
        if state.get(module) == 1:
            pytest.fail("import cycle: " + " -> ".join([*trail[trail.index(module) :], module]))
        state[module] = 1
        for imported in sorted(graph[module]):
            visit(imported, [*trail, module])
        state[module] = 2

    for module in graph:
        visit(module, [])


def test_old_import_paths_forward_for_one_release():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from handlib.render import Renderer  # noqa: F401  (the 0.1 path)
        from handlib.smvr import refine_frame
    from handlib.methods.smvr import refine_frame as moved

    assert refine_frame is moved
    assert any("handlib.render moved to handlib.rendering.renderer" in str(w.message) for w in caught)
    for old, new in handlib.MOVED.items():
        assert (PACKAGE.parent / (new.replace(".", "/") + ".py")).is_file() or (
            PACKAGE.parent / new.replace(".", "/") / "__init__.py"
        ).is_file(), (old, new)


def test_public_api_loads_lazily_and_needs_no_renderer_for_the_hand():
    code = (
        "import sys, handlib\n"
        "assert 'handlib.model.hand' not in sys.modules\n"
        "handlib.HandParams.zeros(1)\n"
        "print(sorted(m for m in ('mitsuba', 'handlib.methods.smvr') if m in sys.modules))\n"
        "print(all(getattr(handlib, name) is not None for name in handlib.__all__ if name != 'VARIANT'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split("\n")[:2] == ["[]", "True"], result.stderr
