"""The package's layout rules, checked on the source: no import cycles (imports inside
functions included), no module importing the public front door, function-local imports only
for optional heavy third-party modules with a reason, and small modules.

The layer order itself is the import-linter contract in ``pyproject.toml`` (``lint-imports``,
run by CI and by the last test here when the tool is installed)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "trufor_lab"
#: Third-party modules a function may import lazily (heavy, optional, or UI-only).
LAZY_OK = {"matplotlib", "captum", "ipywidgets", "IPython", "pandas", "skimage", "scipy", "torch", "voila"}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ids |= {id(n) for n in ast.walk(node)}
    return ids


def _imports(name: str, path: Path, mods: dict[str, Path]):
    """(imported trufor_lab module, node, inside a function) for every import in a module."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    in_func = {
        id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)
    }
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - node.level + 1]
                base = ".".join(pkg + ([node.module] if node.module else []))
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
            targets = subs if len(subs) == len(node.names) else [base, *subs]
        for t in targets:
            yield t, node, id(node) in in_func


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for t, _, _ in _imports(m, p, mods):
            while t and t not in mods and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in mods and t != m:
                graph[m].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

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
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_modules():
    assert _cycles(_graph()) == []


def test_nothing_inside_imports_the_front_door():
    offenders = sorted(m for m, deps in _graph().items() if "trufor_lab" in deps and m != "trufor_lab")
    assert offenders == [], "import from the defining module, not from trufor_lab/__init__"


def test_function_local_imports_are_only_lazy_heavy_dependencies_with_a_reason():
    mods = _modules()
    bad = []
    for m, p in mods.items():
        lines = p.read_text().splitlines()
        for target, node, local in _imports(m, p, mods):
            if not local:
                continue
            where = f"{p.relative_to(ROOT)}:{node.lineno}"
            text = "\n".join(lines[node.lineno - 1 : node.end_lineno])
            if target.startswith("trufor_lab"):
                bad.append(f"{where}: imports {target} inside a function")
            elif target.split(".")[0] not in LAZY_OK:
                bad.append(f"{where}: {target} is light; import it at module level")
            elif "# lazy:" not in text:
                bad.append(f"{where}: lazy import of {target} without a '# lazy: reason' comment")
    assert bad == []


def test_modules_are_small_or_say_why_not():
    big = []
    for p in PKG.rglob("*.py"):
        n = sum(1 for line in p.read_text().splitlines() if line.strip())  # blank lines aside
        doc = ast.get_docstring(ast.parse(p.read_text())) or ""
        if n > MAX_LINES and "One cohesive thing" not in doc:
            big.append(f"{p.relative_to(ROOT)}: {n} lines")
    assert big == []


def test_every_subpackage_says_what_it_may_import():
    for init in PKG.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert "import" in doc, f"{init.relative_to(ROOT)}: docstring should say what the package may import"


LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


@pytest.mark.skipif(
    not LINT_IMPORTS.exists() and shutil.which("lint-imports") is None,
    reason="import-linter not installed (pip install -e '.[test]')",
)
def test_layer_contract_holds():
    exe = str(LINT_IMPORTS) if LINT_IMPORTS.exists() else shutil.which("lint-imports")
    p = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:]


def test_every_subpackage_ships_in_the_wheel():
    """pyproject.toml lists the packages explicitly (weights/ maps into the wheel): a new
    subpackage must be added there, or an installed trufor-lab would miss it."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in PKG.rglob("__init__.py")}
    assert found - listed == set()


def _module_map() -> dict[str, set[str]]:
    """ARCHITECTURE.md's module map: package folder ('' for the top level) -> the ``x.py`` it names."""
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    out: dict[str, set[str]] = {}
    for bullet in section.split("\n- ")[1:]:
        head = re.match(r"`(\w+)/`:|top level:", bullet)
        assert head, f"a module map line names no package: {bullet[:60]!r}"
        out[head.group(1) or ""] = set(re.findall(r"`(\w+\.py)`", bullet))
    return out


def _package_files() -> dict[str, set[str]]:
    files: dict[str, set[str]] = {}
    for p in PKG.rglob("*.py"):
        folder = "/".join(p.parent.relative_to(PKG).parts)
        if folder and p.name == "__init__.py":
            continue  # a subpackage's front is its heading
        files.setdefault(folder, set()).add(p.name)
    return files


def test_architecture_md_names_every_module_and_no_missing_one():
    """viz/display.py, notebooks.py and most of model/, common/ and interpret/ were in no map: a
    reader of ARCHITECTURE.md could not find where the block means, the ablation registry or the
    input checks live."""
    named, files = _module_map(), _package_files()
    missing = sorted(f"{d}/{f}" for d, fs in files.items() for f in fs - named.get(d, set()))
    stale = sorted(f"{d}/{f}" for d, fs in named.items() for f in fs - files.get(d, set()))
    assert (missing, stale) == ([], [])


def test_the_module_map_check_sees_a_module_left_out():
    named = _module_map()
    assert "display.py" in named["viz"] and "notebooks.py" in named[""]
    files = {**_package_files(), "viz": _package_files()["viz"] | {"new_figure_kind.py"}}
    assert sorted(f for f in files["viz"] - named["viz"]) == ["new_figure_kind.py"]


def test_a_subpackage_docstring_that_lists_its_modules_lists_them_all():
    """inference's list left out modes and deviation, model's six modules, interpret's ablations,
    attribution and targets, training's edits and photo_sets, casebook's five of seven."""
    incomplete = []
    for init in sorted(PKG.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        listed = set(re.findall(r"^- (?:``|:mod:`\.)(\w+)`", doc, re.M))
        if not listed:
            continue  # no list of modules: nothing claimed
        have = {p.stem for p in init.parent.glob("*.py")} - {"__init__", "__main__"}
        if have - listed:
            incomplete.append(f"{init.relative_to(ROOT)}: {sorted(have - listed)}")
    assert incomplete == []
