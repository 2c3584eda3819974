"""The layers import one way (docs/architecture.md): checked on the source, so a wrong import fails CI."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# package -> top-level modules it must never import
FORBIDDEN = {
    "config": {"outbox", "orders", "shipping", "tasks", "web", "cli", "bootstrap", "celery", "kombu",
               "flask"},
    "outbox": {"orders", "shipping", "tasks", "web", "cli", "bootstrap", "celery", "kombu", "flask",
               "django"},
    "orders": {"shipping", "tasks", "web", "cli", "bootstrap", "celery", "kombu", "flask", "django"},
    # The second service sits beside the shop: the machinery only, never the shop itself.
    "shipping": {"orders", "tasks", "web", "cli", "bootstrap", "live", "celery", "kombu", "flask", "django"},
    "tasks": {"web", "cli", "bootstrap", "flask", "django"},
    # The stream server reads the database and listens to the feed: no Celery, no Flask.
    "live": {"web", "cli", "tasks", "bootstrap", "celery", "kombu", "flask", "django"},
}
ENV_READERS = re.compile(r"os\.environ|getenv\(")


def python_files(package: str) -> list[Path]:
    return [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_only_the_layers_below_it(package):
    wrong = [f"{path.relative_to(ROOT)} imports {module}"
             for path in python_files(package)
             for module in sorted(imported_modules(path))
             if module.split(".")[0] in FORBIDDEN[package]]
    assert not wrong, wrong


def test_no_module_imports_a_private_name_of_another():
    wrong = []
    for package in ("config", "outbox", "orders", "tasks", "web", "live", "cli", "bench", "examples"):
        for path in python_files(package):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 0:
                    wrong += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert not wrong, wrong


def test_only_the_settings_module_reads_the_environment():
    readers = [str(path.relative_to(ROOT))
               for package in ("config", "outbox", "orders", "tasks", "web", "live", "cli")
               for path in python_files(package) if ENV_READERS.search(path.read_text())]
    readers += [name for name in ("celeryconfig.py", "bootstrap.py")
                if ENV_READERS.search((ROOT / name).read_text())]
    assert readers == ["config/settings.py"]
