"""Generic code names no use case: what one use case needs is in its declaration.

"Generic" is every module of ``slipway/`` outside the use-case packages ``slipway/usecases/<name>/``
(``slipway/usecases/__init__.py``, the registry, is generic), of ``assets/`` and of
``orchestration/``. For each such module this test parses the source (comments are never seen)
and checks:

1. **imports**: no ``import``/``from … import`` (at any depth, lazy ones included) of
   ``slipway.usecases.<name>`` or below, nor ``from slipway.usecases import <name>``, for any
   registered use case and the toy one of the tests;
2. **literals**: no string constant (docstrings excepted; f-string parts included) contains, as
   a whole identifier token (split on anything but letters, digits and ``_``), a name taken from
   the declarations of every registered use case and the toy: its stream and reference names,
   their keys, the examples table (``layer.name`` and ``name``), row key and entity columns, the
   feature tables and window feature sets, the label stream and key, the model and its feature
   service. Generic words that one declaration happens to use too (``date``, ``event_time``…)
   are not on the list: it is built from the names above only.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.usecase import UseCase
from slipway.usecases import load_path, registered

ROOT = Path(__file__).resolve().parents[2]
TOY = "tests.support.parcels:PARCELS"


def usecases() -> list[UseCase]:
    found = {u.name: u for u in (load_path(p) for p in registered().values())}
    toy = load_path(TOY)
    return [*found.values(), toy]


def declared_names(usecase: UseCase) -> set[str]:
    """The table, stream, key and model names a use case declares (see the module doc)."""
    names: set[str] = set()
    for stream in usecase.streams:
        names |= {stream.name, stream.key}
    for reference in usecase.references:
        names |= {reference.name, reference.key}
    if usecase.examples is not None:
        ex = usecase.examples
        names |= {ex.table, ex.table.partition(".")[2], ex.row_key, *ex.entity_columns}
    names |= {t.name for t in usecase.feature_tables}
    names |= {w.name for w in usecase.window_features}
    names |= {n for n in (usecase.label.stream, usecase.label.key) if n}
    if usecase.model is not None:
        names |= {usecase.model.name, usecase.model.feature_service}
    return names


def generic_modules() -> list[Path]:
    files = [*ROOT.glob("slipway/**/*.py"), *ROOT.glob("assets/**/*.py")]
    files += ROOT.glob("orchestration/**/*.py")
    usecase_dirs = [p for p in (ROOT / "slipway" / "usecases").iterdir() if p.is_dir()]
    return sorted(
        f
        for f in files
        if not any(d in f.parents for d in usecase_dirs) and "__pycache__" not in f.parts
    )


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def offences(path: Path, names: set[str], packages: set[str]) -> Iterator[str]:
    """``line: what`` for every use-case import and use-case name literal in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if any(alias.name == p or alias.name.startswith(p + ".") for p in packages):
                    yield f"{node.lineno}: imports {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = node.module
            targets = [module] + (
                [f"{module}.{a.name}" for a in node.names] if module == "slipway.usecases" else []
            )
            for target in targets:
                if any(target == p or target.startswith(p + ".") for p in packages):
                    yield f"{node.lineno}: imports {target}"
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
        ):
            hits = {node.value} & names | set(re.findall(r"[A-Za-z0-9_]+", node.value)) & names
            if hits:
                yield f"{node.lineno}: literal {node.value[:60]!r} names {sorted(hits)}"


@pytest.fixture(scope="module")
def rules() -> tuple[set[str], set[str]]:
    declared = usecases()
    names = set().union(*(declared_names(u) for u in declared))
    packages = {f"slipway.usecases.{u.name}" for u in declared}
    return names, packages


def test_the_rules_see_every_declaration(rules) -> None:
    names, packages = rules
    # the flagship's and the toy's names are on the list: the check is not vacuous
    assert {"transactions", "transaction_id", "gold.enriched_transactions", "scans"} <= names
    assert {"slipway.usecases.fraud", "slipway.usecases.parcels"} <= packages
    assert len(generic_modules()) > 50


def test_generic_modules_name_no_use_case(rules) -> None:
    names, packages = rules
    found = {}
    for path in generic_modules():
        rel = path.relative_to(ROOT).as_posix()
        hits = list(offences(path, names, packages))
        if hits:
            found[rel] = hits
    assert not found, "generic modules naming a use case:\n" + "\n".join(
        f"{k}:{h}" for k, v in found.items() for h in v
    )


def test_the_check_catches_what_it_is_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Reads transactions."""\n'
        "from slipway.usecases.fraud import FRAUD\n"
        "from slipway.usecases import fraud, get_usecase\n"
        "TABLE = 'gold.enriched_transactions'\n"
        "def f(usecase):\n"
        "    return f\"silver.{usecase.primary.name}\", f'{x}:transaction_id', 'a transactions day'\n"
    )
    hits = list(
        offences(
            sample,
            {"transactions", "transaction_id", "gold.enriched_transactions"},
            {"slipway.usecases.fraud"},
        )
    )
    assert [h.split(":")[0] for h in hits].count("2") == 1
    assert any(h.startswith("3: imports slipway.usecases.fraud") for h in hits)
    assert any(h.startswith("4: literal") for h in hits)
    assert sum(h.startswith("6: literal") for h in hits) == 2
    assert not any(h.startswith("1:") for h in hits)  # the docstring is not code
