"""Rules about how the code is put together, read from the source with `ast` (nothing is imported):
no import cycle among project modules, the pure math never reaches for configs or I/O, and nothing in the
code or the tests depends on files outside the repository (a public clone has no ../shared)."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("reasonrl", "verifiers", "search")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}


def imports(path: Path) -> set[str]:
    """Project modules that `path` imports anywhere in the file (lazy imports in functions included)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                head = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(head + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != me:
                found.add(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_among_project_modules():
    assert cycles({m: imports(p) for m, p in MODULES.items()}) == []


def external_imports(path: Path) -> set[str]:
    """Every module name `path` imports (absolute imports, lazy ones included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.update([node.module, *(f"{node.module}.{a.name}" for a in node.names)])
    return out


def test_only_reasonrl_distributed_imports_torch_distributed():
    entry = [REPO / "train.py", REPO / "evaluate.py"]
    offenders = [str(p.relative_to(REPO)) for p in [*MODULES.values(), *entry]
                 if p != REPO / "reasonrl" / "distributed.py"
                 and any(n == "torch.distributed" or n.startswith("torch.distributed.") for n in external_imports(p))]
    assert not offenders, f"import torch.distributed through reasonrl.distributed, not in {offenders}"
    assert "torch.distributed" in external_imports(REPO / "reasonrl" / "distributed.py")  # the rule sees imports


def test_config_imports_no_project_module():
    assert imports(MODULES["reasonrl.config"]) == set()


def test_the_math_never_sees_configs_engines_or_files():
    banned = {"omegaconf", "vllm", "torch.distributed", "json", "pathlib"}
    for name, path in MODULES.items():
        if not name.startswith("reasonrl.algorithms"):
            continue
        project = imports(path)
        assert "reasonrl.config" not in project, name
        assert project <= {m for m in MODULES if m.startswith("reasonrl.algorithms")} | {"reasonrl.registry"}, name
        tree = ast.parse(path.read_text())
        used = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        used |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not used & banned, (name, used & banned)


def test_nothing_points_outside_the_repository():
    """Docstrings cite docs/algorithms.md, not the team's notes beside the checkout; only conftest.py (for tests)
    and the benchmark scripts (which read benchmark files in place) know where ../shared/data is."""
    notes = ("ALGORITHMS.md", "ENVIRONMENT_NOTES.md", "DESIGN.md", "STYLE.md")
    folders = (*PACKAGES, "tests", "benchmarks", "scripts", "configs", "examples", "docs")
    files = [p for pkg in folders for p in (REPO / pkg).rglob("*")
             if p.suffix in (".py", ".yaml", ".md") and ".venv" not in p.parts and p != Path(__file__)]
    files += [REPO / name for name in ("train.py", "evaluate.py", "README.md", "BENCHMARKS.md", "Makefile")]
    for path in files:
        text = path.read_text()
        for note in notes:
            assert note not in text, (path, note)
        if path.suffix == ".py" and path.name != "conftest.py" and "benchmarks" not in path.parts:
            assert "../shared" not in text and '"shared"' not in text, path  # tests: data only through conftest
