"""``_zipimport.compile_once``: modules from a zip compiled once, with the names zipimport gives (issue 17).

Each interpreter imports a package from a zip in a fresh process and counts the ``compile`` calls
per file: plain zipimport, then with :func:`compile_once`. Managed hosts run Python 3.9 to 3.13;
every one of them found on this machine is tried.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ansible_collections.linuxnet.bridge.plugins.module_utils import _zipimport


def interpreters() -> list[str]:
    """This Python and every Python 3.9 to 3.13 installed here (the distribution's, pyenv's)."""
    found = {sys.executable}
    for minor in range(9, 14):
        found.update(str(path) for path in Path("/root/.pyenv/versions").glob(f"3.{minor}.*/bin/python3"))
        found.update(str(path) for path in Path("/usr/bin").glob(f"python3.{minor}"))
    return sorted(found)


PROBE = r"""
import builtins, importlib.util, json, sys
counts = {}
original = builtins.compile
def counting(source, filename, *args, **kwargs):
    counts[filename] = counts.get(filename, 0) + 1
    return original(source, filename, *args, **kwargs)
builtins.compile = counting
archive, helper, install = sys.argv[1], sys.argv[2], sys.argv[3] == "yes"
sys.path.insert(0, archive)
if install:
    spec = importlib.util.spec_from_file_location("zipimport_helper", helper)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.compile_once()
import pkg.a, top
try:
    import pkg.missing
    missing = "imported"
except ModuleNotFoundError as exc:
    missing = exc.name
builtins.compile = original
modules = {name: [m.__file__, m.__spec__.origin, type(m.__loader__).__name__, m.__name__ in ("pkg",) and list(m.__path__)]
           for name, m in sys.modules.items() if name in ("pkg", "pkg.a", "pkg.b", "top")}
print(json.dumps({"counts": {k: v for k, v in counts.items() if k.startswith(archive)}, "modules": modules,
                  "missing": missing, "b": pkg.a.B}))
"""


@pytest.fixture(name="archive")
def _archive(tmp_path: Path) -> Path:
    path = tmp_path / "payload.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg/__init__.py", "")
        zf.writestr("pkg/a.py", "from pkg.b import VALUE as B\n")
        zf.writestr("pkg/b.py", "VALUE = 'from b'\n")
        zf.writestr("top.py", "X = 1\n")
    return path


def probe(python: str, archive: Path, install: bool) -> dict:
    out = subprocess.run([python, "-I", "-c", PROBE, str(archive), _zipimport.__file__, "yes" if install else "no"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("python", interpreters())
def test_each_module_compiled_once_with_the_names_zipimport_gives(python: str, archive: Path) -> None:
    plain, once = probe(python, archive, False), probe(python, archive, True)
    files = [f"{archive}/pkg/__init__.py", f"{archive}/pkg/a.py", f"{archive}/pkg/b.py", f"{archive}/top.py"]
    assert once["counts"] == dict.fromkeys(files, 1)
    assert all(plain["counts"][name] >= 1 for name in files)  # (CPython 3.9-3.13 compile each twice)
    assert {name: values[:2] + values[3:] for name, values in once["modules"].items()} == \
           {name: values[:2] + values[3:] for name, values in plain["modules"].items()}
    assert once["modules"]["pkg"][0] == f"{archive}/pkg/__init__.py" and once["modules"]["pkg"][3] == [f"{archive}/pkg"]
    assert {values[2] for values in once["modules"].values()} == {"CompileOnce"}
    assert once["missing"] == plain["missing"] == "pkg.missing"
    assert once["b"] == "from b"
