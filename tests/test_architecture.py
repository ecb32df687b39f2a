"""The layering rules, read from the source: dependencies point one way, CLI -> library -> host adapters ->
hosts, with no import cycles anywhere.

Every ``import`` statement counts, including the ones inside functions (a function-level import is how a
cycle usually hides); only imports under ``if TYPE_CHECKING:`` are left out, because they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: the hosts whose internals only the adapters in vr_plugins/hosts/ may touch
HOSTS = ("llamafactory", "skythought")
HOST_ADAPTERS = "vr_plugins.hosts"
CLI = "vr_tools"


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for the library (vr_plugins) and the CLI (tools/vr_tools)."""
    out = {}
    for top, root in (("vr_plugins", REPO), ("vr_tools", REPO / "tools")):
        for path in sorted((root / top).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, module: str, is_package: bool) -> list[tuple[str, int]]:
    """(imported dotted name, line) for every import that can run, absolute names for relative imports."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join([*package, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            # ``from a import b``: the module a.b when there is one, otherwise a (import_graph falls back)
            found.extend((f"{base}.{alias.name}", node.lineno) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (``from a import b`` counts as ``a.b`` when that is a module)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, _ in _imports(path, name, path.name == "__init__.py"):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_cycles():
    """The check below is only as good as this: a two-module cycle, a longer one and a clean chain."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles (function-level imports count): " + "; ".join(" <-> ".join(c) for c in found)


def test_only_the_host_adapters_import_the_hosts():
    modules = _modules()
    offenders = []
    for name, path in modules.items():
        if name == HOST_ADAPTERS or name.startswith(HOST_ADAPTERS + "."):
            continue
        for target, line in _imports(path, name, path.name == "__init__.py"):
            if target.split(".")[0] in HOSTS:
                offenders.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not offenders, "only vr_plugins/hosts/ may import LLaMA-Factory or SkyThought:\n" + "\n".join(offenders)


def test_the_library_never_imports_the_cli():
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {target}"
        for name, path in _modules().items() if not name.startswith(CLI)
        for target, line in _imports(path, name, path.name == "__init__.py") if target.split(".")[0] == CLI
    ]
    assert not offenders, "vr_plugins must not depend on the CLI (tools/vr_tools):\n" + "\n".join(offenders)


def test_the_skythought_handlers_live_in_the_adapter():
    """The handler classes subclass SkyThought's, so the registered targets point into hosts/skythought."""
    from vr_plugins.registry import registry

    targets = {name: str(registry("eval_tasks").get(name).handler) for name in registry("eval_tasks").names()
               if name.startswith("vr_")}
    assert targets, "no built-in eval tasks registered"
    outside = {name: t for name, t in targets.items() if not t.startswith(HOST_ADAPTERS + ".skythought.")}
    assert not outside, f"built-in task handlers outside {HOST_ADAPTERS}.skythought: {outside}"


def test_tested_versions_are_declared_in_one_module():
    """Only hosts/versions.py writes version numbers down; the adapters read its table."""
    from vr_plugins.hosts import llamafactory, skythought, versions

    assert llamafactory.TESTED_VERSIONS is versions.TESTED["llamafactory"]
    assert skythought.TESTED_VERSIONS is versions.TESTED["skythought"]
    offenders = []
    for name, path in _modules().items():
        if name == "vr_plugins.hosts.versions":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                if any("TESTED" in n for n in names) and not isinstance(node.value, (ast.Subscript, ast.Name, ast.Attribute)):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {names}")
    assert not offenders, "tested-version constants outside vr_plugins/hosts/versions.py: " + ", ".join(offenders)
