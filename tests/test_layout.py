"""The one-way layout: the library never imports the pipeline, and no import cycle exists.

Every ``import medxai...`` counts, at module level, inside functions (a deferred
import may put off TensorFlow, never hide a cycle) and under ``TYPE_CHECKING``.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "medxai"
LIBRARY = (
    "medxai.methods",
    "medxai.metrics",
    "medxai.viz",
    "medxai.io",
    "medxai.data",
    "medxai.preprocess",
    "medxai.heatmap",
    "medxai.filters",
    "medxai.errors",
)
PIPELINE = ("medxai.pipeline", "medxai.cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for target in names:
                if target.startswith("medxai") and target in modules and target != name:
                    targets.add(target)
                    # importing a module runs its parent packages' __init__ first (the importer's own
                    # packages are already running, so those are no edge)
                    parts = target.split(".")
                    parents = (".".join(parts[:i]) for i in range(2, len(parts)))
                    targets.update(p for p in parents if p in modules and not under(name, (p,)))
        graph[name] = targets
    return graph


def under(name: str, roots) -> bool:
    return any(name == r or name.startswith(r + ".") for r in roots)


def test_the_library_never_imports_the_pipeline():
    graph = imports()
    assert len(graph) > 40
    bad = sorted((m, t) for m, ts in graph.items() if under(m, LIBRARY) for t in ts if under(t, PIPELINE))
    assert not bad, bad


def test_no_import_cycles():
    graph = imports()
    graph = {m: {t for t in ts if t != "medxai"} for m, ts in graph.items()}  # the root's exports are lazy
    state: dict[str, int] = {}
    cycles = []

    def visit(node, path):
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles
