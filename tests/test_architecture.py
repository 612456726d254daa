"""The house rules, checked on the source: which layer may import which, who may import discord, aiohttp
or SQLite, and no import cycle anywhere. Read statically (ast), so nothing is imported to check it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = ("bot", "config", "database", "twitch_api")

# Each layer and the project layers it may import (itself included). Order is the architecture's:
# the vocabulary at the bottom, then the pure core, rendering, storage and ops, Discord I/O, cogs, the
# bot, and the app that wires it all.
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "twitch_notifier": set(),
    "twitch_notifier.models": set(),
    "twitch_notifier.twitch": {"twitch_notifier.models"},
    "twitch_notifier.db": set(),
    "twitch_notifier.core": {"twitch_notifier.models", "twitch_notifier.twitch"},
    "twitch_notifier.rendering": {"twitch_notifier.models", "twitch_notifier.twitch", "twitch_notifier.core"},
    # The /stats charts: rendering like the rest, and the one module that may import matplotlib (RESTRICTED).
    "twitch_notifier.rendering.charts": {
        "twitch_notifier.models",
        "twitch_notifier.twitch",
        "twitch_notifier.core",
        "twitch_notifier.rendering",
    },
    "database": {"twitch_notifier.models", "twitch_notifier.db"},
    "twitch_api": {"twitch_notifier.twitch", "twitch_notifier.models"},
    "twitch_notifier.ops": {"twitch_notifier.models", "twitch_notifier.core"},
    # Several processes on PostgreSQL: shard locks, the leader election and NOTIFY wake-ups (asyncpg, no Discord).
    "twitch_notifier.cluster": {"twitch_notifier.models"},
    # EventSub push: the WebSocket shards, the webhook receiver and the conduit/subscription upkeep.
    "twitch_notifier.eventsub": {"twitch_notifier.models", "twitch_notifier.twitch", "twitch_notifier.core"},
    "twitch_notifier.discord_io": {
        "twitch_notifier.models",
        "twitch_notifier.core",
        "twitch_notifier.rendering",
    },
    "twitch_notifier.cogs": {
        "twitch_notifier.models",
        "twitch_notifier.twitch",
        "twitch_notifier.core",
        "twitch_notifier.rendering",
        "twitch_notifier.rendering.charts",
        "twitch_notifier.discord_io",
        "database",
        "twitch_api",
    },
    "bot": {
        "twitch_notifier.models",
        "twitch_notifier.core",
        "twitch_notifier.discord_io",
        "twitch_notifier.cogs",
        "twitch_notifier.ops",
        "twitch_notifier.eventsub",
        "twitch_notifier.cluster",
        "database",
        "twitch_api",
        "config",
    },
    "twitch_notifier.app": {
        "twitch_notifier.models",
        "twitch_notifier.twitch",
        "twitch_notifier.core",
        "twitch_notifier.rendering",
        "twitch_notifier.discord_io",
        "twitch_notifier.cogs",
        "twitch_notifier.ops",
        "twitch_notifier.eventsub",
        "twitch_notifier.cluster",
        "database",
        "twitch_api",
        "config",
        "bot",
    },
    # `./quickstart.sh demo`: runs `python bot.py` as a process against the fakes of tests/fakes/ (which it
    # imports, like a test) and draws the messages; no layer of the bot imports it (see the test below).
    "twitch_notifier.demo": {"config"},
}
# Third-party packages that mark a layer: discord only where Discord is talked to, aiohttp only in the
# HTTP clients and servers, SQLite only in the storage.
RESTRICTED = {
    "discord": {"twitch_notifier.discord_io", "twitch_notifier.cogs", "bot"},
    "aiohttp": {
        "twitch_api",
        "twitch_notifier.ops",
        "twitch_notifier.discord_io",
        "twitch_notifier.eventsub",
        "twitch_notifier.demo",
    },
    "aiosqlite": {"database", "twitch_notifier.db"},
    "sqlite3": {"database", "twitch_notifier.db"},
    # PostgreSQL: the store's driver, and the cluster's dedicated session (imported when DATABASE_URL is set).
    "asyncpg": {"database", "twitch_notifier.db", "twitch_notifier.cluster"},
    # Plotting, and what comes with it, only where charts are drawn (and there only lazily: see LAZY).
    "matplotlib": {"twitch_notifier.rendering.charts"},
    "numpy": {"twitch_notifier.rendering.charts"},
    "PIL": {"twitch_notifier.rendering.charts"},
    # The demo's terminal drawing (requirements-demo.txt); the bot itself never needs it.
    "rich": {"twitch_notifier.demo"},
}
LAZY = {"matplotlib", "numpy", "PIL"}
"""Imported inside functions only, never when the module is: a bot that never draws a chart never loads them."""


def product_modules() -> dict[str, Path]:
    modules = {name: ROOT / f"{name}.py" for name in TOP_LEVEL}
    for path in sorted((ROOT / "twitch_notifier").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def layer_of(module: str) -> str:
    """The longest ALLOWED key that is `module` or a package above it."""
    candidates = [key for key in ALLOWED if module == key or module.startswith(key + ".")]
    return max(candidates, key=len)


def _is_main_guard(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at any depth, except under `if __name__ == "__main__":` (which runs
    only as a script and so never takes part in an import cycle)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    stack: list[ast.AST] = [node for node in tree.body if not _is_main_guard(node)]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return found


MODULES = product_modules()


def project_imports(module: str) -> set[str]:
    return {name for name in imports_of(MODULES[module]) if name in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_imports_only_the_layers_below_it(module: str) -> None:
    layer = layer_of(module)
    allowed = ALLOWED[layer] | {layer}
    wrong = sorted(name for name in project_imports(module) if layer_of(name) not in allowed)
    assert wrong == [], f"{module} ({layer}) may not import {wrong}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_discord_aiohttp_and_sqlite_stay_in_their_layers(module: str) -> None:
    layer = layer_of(module)
    names = imports_of(MODULES[module])
    wrong = sorted(
        package
        for package, layers in RESTRICTED.items()
        if layer not in layers and any(name == package or name.startswith(package + ".") for name in names)
    )
    assert wrong == [], f"{module} ({layer}) imports {wrong}"


def test_there_is_no_import_cycle() -> None:
    graph = {module: project_imports(module) - {module} for module in MODULES}
    # A package's __init__ is not imported by `from package.sub import x` in this graph: only real edges.
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        if module in visiting:
            cycle = [*visiting[visiting.index(module) :], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        visiting.append(module)
        for target in sorted(graph[module]):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_every_product_module_opens_with_a_docstring() -> None:
    missing = [name for name, path in MODULES.items() if not ast.get_docstring(ast.parse(path.read_text()))]
    assert missing == []


def test_the_rules_cover_every_module() -> None:
    # A new sub-package must be placed in the architecture, not silently fall under its parent's rules.
    packages = {name for name in MODULES if name.startswith("twitch_notifier.") and MODULES[name].name == "__init__.py"}
    assert packages <= set(ALLOWED), f"place these in ALLOWED: {sorted(packages - set(ALLOWED))}"


def test_nothing_in_the_bot_imports_the_demo() -> None:
    # The demo imports the test fakes and rich: a bot that imported it would need both in production.
    demo = "twitch_notifier.demo"
    assert all(demo not in allowed for layer, allowed in ALLOWED.items() if layer != demo)
    importers = sorted(
        module
        for module in MODULES
        if layer_of(module) != demo
        and any(name == demo or name.startswith(demo + ".") for name in imports_of(MODULES[module]))
    )
    assert importers == []


def _module_level_imports(tree: ast.Module) -> set[str]:
    """What a module imports when it is imported: its top-level statements (and their if/try/with blocks),
    not what its functions import when they run."""
    found: set[str] = set()
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.If | ast.Try | ast.With):
            stack.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_plotting_is_imported_only_inside_functions(module: str) -> None:
    names = _module_level_imports(ast.parse(MODULES[module].read_text()))
    eager = sorted(name for name in names if name.split(".")[0] in LAZY)
    assert eager == [], f"{module} imports {eager} when it is imported: import them where a chart is drawn"


def test_importing_the_bot_and_its_cogs_loads_no_plotting_library() -> None:
    # A fresh interpreter: this test process may have drawn a chart already.
    code = (
        "import sys, bot, twitch_notifier.app.build, twitch_notifier.app.run, twitch_notifier.cogs.stats, "
        "twitch_notifier.rendering.charts; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'matplotlib', 'numpy', 'PIL'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout
