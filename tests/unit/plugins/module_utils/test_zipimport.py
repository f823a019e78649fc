"""``_zipimport.compile_once``: modules from a zip compiled once, with the names zipimport gives, and
not at all when the bytecode cache has them (issue 17).

Each interpreter imports a package from a zip in a fresh process and counts the ``compile`` calls
per file: plain zipimport, then with :func:`compile_once`, then again from a copy of the archive at
another path (the next AnsiballZ payload) with the cache the first process filled. Managed hosts
run Python 3.9 to 3.13; every one of them found on this machine is tried.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
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
archive, helper, install, cache, keep = sys.argv[1], sys.argv[2], sys.argv[3] == "yes", sys.argv[4] or None, sys.argv[5]
sys.path.insert(0, archive)
if install:
    spec = importlib.util.spec_from_file_location("zipimport_helper", helper)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.compile_once(cache)
import pkg.a
if install and keep == "after pkg.a":  # as a module does once it knows it is not in check mode
    module.keep_compiled()
import top
try:
    import pkg.missing
    missing = "imported"
except ModuleNotFoundError as exc:
    missing = exc.name
builtins.compile = original
modules = {name: [m.__file__, m.__spec__.origin, type(m.__loader__).__name__, m.__name__ in ("pkg",) and list(m.__path__)]
           for name, m in sys.modules.items() if name in ("pkg", "pkg.a", "pkg.b", "top")}
try:
    pkg.a.fail()
except ValueError as exc:
    where = [exc.__traceback__.tb_next.tb_frame.f_code.co_filename, exc.__traceback__.tb_next.tb_lineno]
print(json.dumps({"counts": {k: v for k, v in counts.items() if k.startswith(archive)}, "modules": modules,
                  "missing": missing, "b": pkg.a.B, "where": where}))
"""


# (sources under 1 KB are compiled, never cached)
PADDING = "# a source of a size the cache keeps\n" * 30


@pytest.fixture(name="archive")
def _archive(tmp_path: Path) -> Path:
    path = tmp_path / "payload.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg/__init__.py", PADDING)
        zf.writestr("pkg/a.py", "from pkg.b import VALUE as B\n\n\ndef fail():\n    raise ValueError(B)\n" + PADDING)
        zf.writestr("pkg/b.py", "VALUE = 'from b'\n" + PADDING)
        zf.writestr("top.py", "X = 1\n" + PADDING)
    return path


def probe(python: str, archive: Path, install: bool, cache: Path | None = None, keep: str = "after pkg.a") -> dict:
    out = subprocess.run([python, "-I", "-c", PROBE, str(archive), _zipimport.__file__, "yes" if install else "no",
                          str(cache or ""), keep], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("python", interpreters())
def test_each_module_compiled_once_with_the_names_zipimport_gives(python: str, archive: Path) -> None:
    plain, once = probe(python, archive, False), probe(python, archive, True, None)
    files = [f"{archive}/pkg/__init__.py", f"{archive}/pkg/a.py", f"{archive}/pkg/b.py", f"{archive}/top.py"]
    assert once["counts"] == dict.fromkeys(files, 1)
    assert all(plain["counts"][name] >= 1 for name in files)  # (CPython 3.9-3.13 compile each twice)
    assert {name: values[:2] + values[3:] for name, values in once["modules"].items()} == \
           {name: values[:2] + values[3:] for name, values in plain["modules"].items()}
    assert once["modules"]["pkg"][0] == f"{archive}/pkg/__init__.py" and once["modules"]["pkg"][3] == [f"{archive}/pkg"]
    assert {values[2] for values in once["modules"].values()} == {"CompileOnce"}
    assert once["missing"] == plain["missing"] == "pkg.missing"
    assert once["b"] == "from b"


def version(python: str) -> tuple[int, int]:
    out = subprocess.run([python, "-I", "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True, check=True)
    major, minor = out.stdout.split()
    return int(major), int(minor)


def entries(cache: Path) -> dict[str, tuple[int, int]]:
    """Cache file -> (mode, inode): a file rewritten is a new inode (written aside, then renamed)."""
    return {path.name: (stat.S_IMODE(path.lstat().st_mode), path.lstat().st_ino) for path in cache.iterdir()}


@pytest.mark.parametrize("python", interpreters())
def test_the_next_payload_loads_the_cached_code_under_its_own_path(python: str, archive: Path, tmp_path: Path) -> None:
    cache = tmp_path / "pycache"
    first = probe(python, archive, True, cache)
    assert first["counts"] == dict.fromkeys([f"{archive}/pkg/__init__.py", f"{archive}/pkg/a.py", f"{archive}/pkg/b.py",
                                             f"{archive}/top.py"], 1)
    moved = tmp_path / "next" / "payload.zip"  # AnsiballZ unpacks each run's payload at a new path
    moved.parent.mkdir()
    moved.write_bytes(archive.read_bytes())
    second, plain = probe(python, moved, True, cache), probe(python, moved, False)
    assert second["b"] == "from b" and second["missing"] == "pkg.missing"
    assert {name: values[:2] + values[3:] for name, values in second["modules"].items()} == \
           {name: values[:2] + values[3:] for name, values in plain["modules"].items()}
    # A traceback names the file where the source is now, at the right line.
    assert second["where"] == plain["where"] == [f"{moved}/pkg/a.py", 5]
    if version(python) < (3, 10):  # zipimport loads without get_code there: compiled once, no cache
        assert second["counts"] == dict.fromkeys([f"{moved}/pkg/__init__.py", f"{moved}/pkg/a.py", f"{moved}/pkg/b.py",
                                                  f"{moved}/top.py"], 1)
        assert not cache.exists()
        return
    assert second["counts"] == {}
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    found = entries(cache)
    assert sorted(name.rpartition("-")[0].rpartition("-")[0] for name in found) == ["pkg", "pkg.a", "pkg.b", "top"], found
    assert {entry[0] for entry in found.values()} == {0o600}


def test_a_small_source_is_compiled_not_cached(archive: Path, tmp_path: Path) -> None:
    """Under 1 KB a file read costs more than the compile, and the package stubs of two kinds of archive
    (AnsiballZ's, the restore's) would replace each other's entry in turn."""
    small = tmp_path / "small.zip"
    with zipfile.ZipFile(archive) as big, zipfile.ZipFile(small, "w") as out:
        for name in big.namelist():
            out.writestr(name, big.read(name) if name != "top.py" else b"X = 1\n")
    cache = tmp_path / "pycache"
    assert len(probe(sys.executable, small, True, cache)["counts"]) == 4
    assert probe(sys.executable, small, True, cache)["counts"] == {f"{small}/top.py": 1}
    assert sorted(name.rpartition("-")[0].rpartition("-")[0] for name in entries(cache)) == ["pkg", "pkg.a", "pkg.b"]


def test_a_check_mode_run_writes_nothing(archive: Path, tmp_path: Path) -> None:
    """Until the run calls keep_compiled() it writes nothing, not even the directory: --check writes nothing."""
    cache = tmp_path / "pycache"
    assert probe(sys.executable, archive, True, cache, keep="never")["b"] == "from b"
    assert not cache.exists()
    probe(sys.executable, archive, True, cache)  # what it compiled before keep_compiled() and after
    assert sorted(name.rpartition("-")[0].rpartition("-")[0] for name in entries(cache)) == ["pkg", "pkg.a", "pkg.b", "top"]
    assert probe(sys.executable, archive, True, cache, keep="never")["counts"] == {}  # check mode reads it


def test_a_changed_source_is_compiled_and_replaces_its_entry(archive: Path, tmp_path: Path) -> None:
    cache = tmp_path / "pycache"
    probe(sys.executable, archive, True, cache)
    before = entries(cache)
    changed = tmp_path / "changed.zip"
    with zipfile.ZipFile(archive) as old, zipfile.ZipFile(changed, "w") as new:
        for name in old.namelist():
            new.writestr(name, "VALUE = 'changed'\n" + PADDING if name == "pkg/b.py" else old.read(name))
    out = probe(sys.executable, changed, True, cache)
    assert out["counts"] == {f"{changed}/pkg/b.py": 1} and out["b"] == "changed"
    after = entries(cache)
    gone, new = set(before) - set(after), set(after) - set(before)
    assert len(gone) == len(new) == 1 and next(iter(gone)).startswith("pkg.b-") and next(iter(new)).startswith("pkg.b-")
    assert probe(sys.executable, changed, True, cache)["counts"] == {}


def _spoil(cache: Path, entry: Path, how: str) -> None:
    data = entry.read_bytes()
    if how == "garbage after the header":  # 4 bytes of magic, 32 of the source's digest
        entry.write_bytes(data[:36] + b"garbage!")
    elif how == "the header of another source":
        entry.write_bytes(data[:4] + bytes(32) + data[36:])
    elif how == "truncated":
        entry.write_bytes(data[:-10])
    elif how == "others may write the file":
        entry.chmod(0o666)
    elif how == "a symlink":
        target = cache.parent / "elsewhere.pyc"
        entry.rename(target)
        entry.symlink_to(target)
    elif how == "others may write the directory":
        cache.chmod(0o757)
    elif how == "another user's directory":
        os.chown(cache, 65534, 65534)


# Only root can give the directory away; the other cases hold for any user.
SPOILS = ["garbage after the header", "the header of another source", "truncated", "others may write the file", "a symlink",
          "others may write the directory"] + (["another user's directory"] if os.geteuid() == 0 else [])


@pytest.mark.parametrize("how", SPOILS)
def test_a_cache_entry_it_cannot_trust_is_compiled_again(archive: Path, tmp_path: Path, how: str) -> None:
    cache = tmp_path / "pycache"
    probe(sys.executable, archive, True, cache)
    _spoil(cache, next(cache.glob("pkg.b-*")), how)
    out = probe(sys.executable, archive, True, cache)
    assert out["b"] == "from b"
    if how.endswith("directory"):  # the whole cache is not used: everything compiled, nothing written
        assert out["counts"] == dict.fromkeys([f"{archive}/pkg/__init__.py", f"{archive}/pkg/a.py", f"{archive}/pkg/b.py",
                                               f"{archive}/top.py"], 1)
        return
    assert out["counts"] == {f"{archive}/pkg/b.py": 1}
    # ... and written anew in place of the bad one: the next run compiles nothing.
    entry = next(cache.glob("pkg.b-*"))
    assert not entry.is_symlink() and stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert probe(sys.executable, archive, True, cache)["counts"] == {}


def test_the_cache_sits_under_the_run_directory() -> None:
    from ansible_collections.linuxnet.bridge.plugins.module_utils._ownership import RUN_DIR

    assert os.path.dirname(_zipimport.CACHE_DIR) == RUN_DIR


def _partials(directory: Path) -> tuple[Path, Path]:
    """A partial file a killed writer left an hour ago, and one a writer is writing now."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    old, new = directory / ".m-0123.cpython-311.pyc.4242", directory / ".m-4567.cpython-311.pyc.4343"
    for path in (old, new):
        path.write_bytes(b"half")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    return old, new


def test_storing_drops_the_partial_files_of_killed_writers(tmp_path: Path) -> None:
    cache = tmp_path / "pycache"
    old, new = _partials(cache)
    _zipimport.CodeCache(str(cache)).store("m", b"\0" * 32, compile("X = 1", "m.py", "exec"))
    assert not old.exists() and new.exists()
    assert len(list(cache.glob("m-*"))) == 1
