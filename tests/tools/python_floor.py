"""Keep plugins/ runnable on the managed-host Python floor (3.9, Debian 11's).

Three checks, any failure exits non-zero with the file and line:

* vermin (pinned in requirements-dev.txt) with ``--target=3.9-``: syntax and stdlib APIs
  (``match``, ``zip(strict=)``, ``dataclass(slots=)``, ``int.bit_count``, new modules, ...).
  Annotations are not evaluated: every plugin file has ``from __future__ import annotations``.
* runtime ``X | Y`` of types (3.10), which vermin only finds with a heuristic that also flags
  annotations: here any ``|`` outside an annotation with ``None``, a builtin type, a typing name
  or a subscripted generic as an operand; and annotations count as runtime code in a file without
  the ``__future__`` import.
* when a Python 3.9 interpreter is installed, it parses every file (the real parser).

Run: ``.venv/bin/python tests/tools/python_floor.py`` (``make lint`` runs it from sanity.sh).
"""

from __future__ import annotations

import ast
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

FLOOR = (3, 9)
REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
TYPE_NAMES = {"None", "int", "str", "bytes", "float", "bool", "dict", "list", "tuple", "set", "frozenset", "type",
              "object", "Any", "Callable", "Optional", "Union", "Iterable", "Iterator", "Mapping", "Sequence"}


def _annotation_nodes(tree: ast.AST) -> set[int]:
    nodes: set[int] = set()
    for node in ast.walk(tree):
        for field in ("annotation", "returns"):
            sub = getattr(node, field, None)
            if isinstance(sub, ast.AST):
                nodes.update(id(n) for n in ast.walk(sub))
    return nodes


def _is_type(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value is None
    if isinstance(node, ast.Name):
        return node.id in TYPE_NAMES
    if isinstance(node, ast.Attribute):
        return isinstance(node.value, ast.Name) and node.value.id == "typing"
    if isinstance(node, ast.Subscript):
        return _is_type(node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _is_type(node.left) or _is_type(node.right)
    return False


def runtime_unions(path: Path) -> list[str]:
    """``file:line: expr`` for every ``X | Y`` of types evaluated at runtime."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    future = any(
        isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )
    skip = _annotation_nodes(tree) if future else set()
    return [
        f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)} (X | Y of types needs Python 3.10)"
        for node in ast.walk(tree)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and id(node) not in skip and _is_type(node)
    ]


def floor_interpreter() -> str | None:
    """A Python of the floor version (PATH or pyenv), or None."""
    wanted = "%d.%d" % FLOOR
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for candidate in [shutil.which(f"python{wanted}"), *sorted(glob.glob(f"{pyenv}/versions/{wanted}.*/bin/python{wanted}"))]:
        if candidate and subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def main() -> int:
    files = sorted(PLUGINS.rglob("*.py"))
    problems: list[str] = []
    vermin = Path(sys.executable).with_name("vermin")
    found = subprocess.run(
        [str(vermin), "--target=%d.%d-" % FLOOR, "--violations", "--no-tips", "--quiet", *map(str, files)],
        capture_output=True, text=True, check=False,
    )
    if found.returncode != 0:
        problems.append(f"vermin --target={FLOOR[0]}.{FLOOR[1]}-:\n{found.stdout}{found.stderr}")
    for path in files:
        problems += runtime_unions(path)
    interpreter = floor_interpreter()
    if interpreter:
        parse = "import ast, sys\nfor p in sys.argv[1:]:\n    ast.parse(open(p, encoding='utf-8').read(), p)\n"
        parsed = subprocess.run([interpreter, "-c", parse, *map(str, files)], capture_output=True, text=True, check=False)
        if parsed.returncode != 0:
            problems.append(f"{interpreter} cannot parse plugins/:\n{parsed.stderr}")
    for problem in problems:
        print(problem, file=sys.stderr)
    where = f"; parsed by {interpreter}" if interpreter else "; no Python %d.%d here to parse with" % FLOOR
    print(f"python floor {FLOOR[0]}.{FLOOR[1]}: {len(files)} files, {len(problems)} problems{where}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
