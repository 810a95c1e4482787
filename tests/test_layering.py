"""The package's import layering (docs/architecture.md): read every module's imports from its source.

body/config <- data, models <- hub (model files, registry) <- training, pipelines, evaluation <- app, demo <- cli.
Function-level (lazy) imports count for layering; only module-level imports can form a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import recapture

PACKAGE = Path(recapture.__file__).parent
#: Layer of each top-level part of the package; a module may import only its own layer or lower ones.
LAYERS = {
    "fileio": -1, "devices": -1, "lazy": -1,  # the floor: file safety, device names, deferred torch; no recapture imports
    "config": 0, "body": 0,
    "data": 1, "models": 1,
    "hub": 2,
    "training": 3, "pipelines": 3, "evaluation": 3,
    "app": 4, "demo": 4, "cli": 5, "__main__": 6, "__init__": 6,
}
#: Same-layer imports that are part of the design: evaluation generates images through the pipelines' API,
#: and training prepares real data with the photo stages (pose estimation of CCP photos).
ALLOWED_ACROSS = {("evaluation", "pipelines"), ("training", "pipelines")}
#: Scoring two folders must not pull in model loading or generation.
FOLDER_SCORING = tuple(f"recapture.evaluation.{name}" for name in (
    "metrics", "matching", "report", "ssim", "folders", "options", "baselines", "strips", "cache", "paired",
    "distributions"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = PACKAGE.parent / name.replace(".", "/")
    return path.is_dir() or path.with_suffix(".py").is_file()


def imports_of(path: Path, module_level_only: bool = False) -> set[str]:
    """``recapture.*`` modules imported by the file at ``path`` (TYPE_CHECKING blocks ignored)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for child in node.body for n in ast.walk(child)}
    found: set[str] = set()
    for node in nodes:
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("recapture"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                own = module_name(path).split(".")
                package = own if path.name == "__init__.py" else own[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base.startswith("recapture"):
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names if _is_module(f"{base}.{a.name}"))
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_part_has_a_layer() -> None:
    assert {top(m) for m in MODULES} <= set(LAYERS), {top(m) for m in MODULES} - set(LAYERS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_runs_up_the_layers(module: str) -> None:
    mine = top(module)
    for imported in imports_of(MODULES[module]):
        theirs = top(imported)
        if theirs == mine or imported == "recapture":
            continue
        assert LAYERS[theirs] < LAYERS[mine] or (LAYERS[theirs] == LAYERS[mine] and (mine, theirs) in ALLOWED_ACROSS), \
            f"{module} (layer {LAYERS[mine]}) imports {imported} (layer {LAYERS[theirs]})"


def test_inference_never_imports_training() -> None:
    offenders = {m: sorted(i for i in imports_of(p) if top(i) == "training")
                 for m, p in MODULES.items() if top(m) in ("pipelines", "hub", "models", "app", "evaluation")}
    assert not {m: i for m, i in offenders.items() if i}


def _closure(start: str, module_level_only: bool) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        current = todo.pop()
        if current in seen or current not in MODULES:
            continue
        seen.add(current)
        todo.extend(imports_of(MODULES[current], module_level_only))
    return seen


@pytest.mark.parametrize("module", FOLDER_SCORING)
def test_folder_scoring_loads_no_model(module: str) -> None:
    reached = _closure(module, module_level_only=True)
    assert not reached & {"recapture.hub", "recapture.evaluation.generate", "recapture.models.generator"}, reached


def test_no_import_circle() -> None:
    graph = {m: {i for i in imports_of(p, module_level_only=True) if i in MODULES and i != m} for m, p in MODULES.items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom recapture.training import trainer\n\ndef f():\n    from recapture.app import state\n")
    assert {"recapture.training", "recapture.training.trainer", "recapture.app", "recapture.app.state"} <= imports_of(bad)
    assert imports_of(bad, module_level_only=True) == {"recapture.training", "recapture.training.trainer"}
