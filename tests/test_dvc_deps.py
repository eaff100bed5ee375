"""Static check: every module a stage script imports is a dependency of that stage.

DVC re-runs a stage only when a listed dependency changes, so a module the stage imports
(directly or through other ``medssl`` modules, at any depth, including imports inside
functions and the packages' ``__init__`` files; not those under ``if TYPE_CHECKING:``,
which never run) but does not list would let stale results
through. The check reads ``dvc.yaml`` and the source with :mod:`ast`; nothing is imported.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

SCRIPT = re.compile(r"\bpython\s+(pipelines/\w+\.py)")


def _module_file(name: str) -> Path | None:
    """``medssl.a.b`` -> its file under the repository, or None (not a medssl module)."""
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _package_inits(name: str) -> Iterator[Path]:
    parts = name.split(".")
    for k in range(1, len(parts)):
        init = REPO.joinpath(*parts[:k], "__init__.py")
        if init.is_file():
            yield init


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (imports that never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                yield child
                yield from _runtime_nodes(child)
            continue
        yield node
        yield from _runtime_nodes(node)


def _imported_names(path: Path) -> Iterator[str]:
    """Absolute module names imported by ``path`` at run time (``from x import y`` yields
    ``x`` and ``x.y``: ``y`` may be a submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = list(path.relative_to(REPO).with_suffix("").parts[:-1])
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def medssl_closure(script: Path) -> set[Path]:
    """Every ``medssl`` source file that running ``script`` may import."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        for name in _imported_names(path):
            if name != "medssl" and not name.startswith("medssl."):
                continue
            found = _module_file(name)
            for file in [*_package_inits(name), *([found] if found else [])]:
                if file not in seen:
                    seen.add(file)
                    todo.append(file)
    return seen


def _stages() -> dict[str, tuple[str, list[str]]]:
    """``stage -> (script, deps)`` with ``${paths.*}`` resolved."""
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    paths = {k: v for item in dvc.get("vars", []) for k, v in (item.get("paths") or {}).items()}

    def resolve(text: str) -> str:
        return re.sub(r"\$\{paths\.(\w+)\}", lambda m: str(paths[m.group(1)]), text)

    out = {}
    for name, stage in dvc["stages"].items():
        cmd = stage["cmd"] if isinstance(stage["cmd"], str) else " ".join(stage["cmd"])
        match = SCRIPT.search(cmd)
        if match:
            deps = [resolve(d if isinstance(d, str) else next(iter(d))) for d in stage["deps"]]
            out[name] = (match.group(1), deps)
    return out


def _covered(file: Path, deps: list[str]) -> bool:
    rel = file.relative_to(REPO).as_posix()
    return any(rel == d.rstrip("/") or rel.startswith(d.rstrip("/") + "/") for d in deps)


STAGES = _stages()


def test_every_stage_script_is_found() -> None:
    assert {"ingest", "pretrain", "finetune", "evaluate", "report"} <= set(STAGES)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_every_imported_module(stage: str) -> None:
    script, deps = STAGES[stage]
    assert _covered(REPO / script, deps), f"{stage}: {script} is not a dependency"
    missing = sorted(
        f.relative_to(REPO).as_posix()
        for f in medssl_closure(REPO / script)
        if not _covered(f, deps)
    )
    assert not missing, f"{stage}: imported but not in deps: {missing}"


def test_the_closure_follows_imports_inside_packages_and_functions() -> None:
    closure = {f.relative_to(REPO).as_posix() for f in medssl_closure(REPO / "pipelines/ingest.py")}
    assert "medssl/__init__.py" in closure
    assert "medssl/burned_in/ocr.py" in closure  # reached through medssl.ingest
