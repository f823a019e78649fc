# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Modules imported from a zip archive compiled once instead of twice, and at most once per host.

CPython's zipimport (3.8 to 3.13 at least) compiles a module's source to answer ``get_filename``,
which ``find_spec`` asks, and again in ``get_code``; and it writes no bytecode, so every run
compiles everything again. Every module runs from a zip (AnsiballZ), and so does the boot-time
restore (a zip application): compiling the collection's module_utils (about 450 KB) was most of a
module process's start-up.

:func:`compile_once` makes the zip importers of this process

* work the file name out from the archive's listing instead, as zipimport does for a source file
  (``archive/prefix/name.py`` or ``.../name/__init__.py``);
* on Python 3.10 and later (where imports ask ``get_code``), keep each module's code in a bytecode
  cache keyed by the module's name and the SHA-256 of its source, as ``__pycache__`` does for a
  file on disk. The cache is a directory on tmpfs (``/run``: a boot empties it) that only this
  user can write; a file in it is used only if this user owns it, nobody else can write it and its
  header names this Python's bytecode and the very source. Each AnsiballZ payload sits at a new
  temporary path: the file name in the code (tracebacks) is set to where the source is now.
  Anything amiss in the cache means a plain compile, never a failed import. A run writes what it
  compiled only once it knows it is not in check mode (:func:`keep_compiled`), so ``--check``
  writes nothing, and a run that finds everything cached writes nothing either.

A module calls :func:`compile_once` first thing; the collection's action plugins also put a hook
into the AnsiballZ wrapper that calls it before the wrapper imports Ansible's own module_utils
(``plugins/plugin_utils/_prelude.py``), so those go through the cache too. Sources under 1 KB are
compiled, not cached.

Everything else is zipimport's own.
"""

from __future__ import annotations

import _imp
import hashlib
import marshal
import os
import stat
import sys
import time
import types
import zipimport
from importlib.util import MAGIC_NUMBER

# Under _ownership.RUN_DIR (not imported: this module is imported before any other of ours).
CACHE_DIR = "/run/linuxnet/pycache"
# Python 3.9's zipimport loads modules without get_code (load_module): no cache there.
_CACHEABLE = hasattr(zipimport.zipimporter, "exec_module") and hasattr(_imp, "_fix_co_filename") \
    and sys.implementation.cache_tag is not None
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
# Smaller sources are compiled, not cached: that costs less than a file read, and package stubs that
# differ from one kind of archive to the other (AnsiballZ's ``ansible/__init__.py``, the restore's
# empty ones) do not take turns replacing each other's entry.
_CACHED_FROM = 1024
PARTIAL_AGE = 600  # seconds


def private_directory(directory: str, make: bool = False) -> bool:
    """Whether ``directory`` is a directory (not a symlink) that this user (the effective uid) owns and
    nobody else can use; with ``make``, created (0700) first where missing."""
    try:
        if make:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        found = os.lstat(directory)
    except OSError:
        return False
    return stat.S_ISDIR(found.st_mode) and found.st_uid == os.geteuid() and not found.st_mode & 0o077


def read_private(path: str) -> bytes | None:
    """The contents of ``path`` if it is a regular file (not a symlink) that this user owns and nobody
    else can write; otherwise None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as opened:
        found = os.fstat(opened.fileno())
        if not stat.S_ISREG(found.st_mode) or found.st_uid != os.geteuid() or found.st_mode & 0o022:
            return None
        try:
            return opened.read()
        except OSError:
            return None


def write_private(path: str, data: bytes) -> bool:
    """Write ``data`` to ``path`` (0600) aside first, then rename it there: a reader never sees half a
    file. Whether it worked."""
    directory, name = os.path.split(path)
    partial = os.path.join(directory, f".{name}.{os.getpid()}")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(partial, path)
    except OSError:
        try:
            os.unlink(partial)
        except OSError:
            pass
        return False
    return True


def drop_partials(directory: str, names: list[str]) -> None:
    """Remove the partial files of :func:`write_private` (``.<name>.<pid>``) among ``names`` in
    ``directory`` that a killed writer left: older than :data:`PARTIAL_AGE` (a writer takes
    milliseconds). Best effort."""
    now = time.time()
    for name in names:
        if name.startswith("."):
            path = os.path.join(directory, name)
            try:
                if now - os.lstat(path).st_mtime > PARTIAL_AGE:
                    os.unlink(path)
            except OSError:
                pass


class CodeCache:
    """Code objects of modules by name and source digest, one file each in ``directory``, which must be
    this user's alone (checked once for reading, once before the first write)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        optimize = sys.flags.optimize
        self.suffix = f".{sys.implementation.cache_tag}{f'.opt-{optimize}' if optimize else ''}.pyc"
        self._readable: bool | None = None
        self._writable: bool | None = None
        self._before: list[str] | None = None  # the entries there before this process stored any

    def _file(self, fullname: str, digest: bytes) -> str:
        return os.path.join(self.directory, f"{fullname}-{digest.hex()[:32]}{self.suffix}")

    def load(self, fullname: str, digest: bytes, path: str) -> types.CodeType | None:
        """The cached code of ``fullname`` for a source with ``digest``, its file name set to ``path``."""
        if self._readable is None:
            self._readable = private_directory(self.directory)
        if not self._readable:
            return None
        data = read_private(self._file(fullname, digest))
        header = MAGIC_NUMBER + digest
        if data is None or not data.startswith(header):
            return None
        try:
            code = marshal.loads(memoryview(data)[len(header):])
        except (EOFError, ValueError, TypeError):
            return None
        if not isinstance(code, types.CodeType):
            return None
        _imp._fix_co_filename(code, path)
        return code

    def store(self, fullname: str, digest: bytes, code: types.CodeType) -> None:
        """Keep ``code`` and drop the entries of ``fullname`` for other sources. Best effort: a cache
        that cannot be written is no cache."""
        if self._writable is None:
            self._writable = private_directory(self.directory, make=True)
        target = self._file(fullname, digest)
        if not self._writable or not write_private(target, MAGIC_NUMBER + digest + marshal.dumps(code)):
            return
        try:
            if self._before is None:  # listed once: a process stores each module once
                listed = os.listdir(self.directory)
                drop_partials(self.directory, listed)
                self._before = [entry for entry in listed if entry.endswith(self.suffix) and not entry.startswith(".")]
            for entry in self._before:
                if entry[: -len(self.suffix)].rpartition("-")[0] == fullname and entry != os.path.basename(target):
                    os.unlink(os.path.join(self.directory, entry))
        except OSError:
            pass


class CompileOnce(zipimport.zipimporter):
    """A zipimporter whose ``get_filename`` does not compile the module (the archives hold sources
    only) and whose ``get_code`` reads the bytecode cache first (:attr:`cache`). What it compiles
    is written to the cache by :func:`keep_compiled`, and as it is compiled after that."""

    cache: CodeCache | None = None  # set by compile_once()
    compiled: list[tuple[str, bytes, types.CodeType]] = []  # not written yet
    keep = False

    def get_filename(self, fullname: str) -> str:
        package = self.is_package(fullname)  # (ZipImportError when the archive has no such module)
        name = fullname.rpartition(".")[2]
        return f"{self.archive}/{self.prefix}{name}{'/__init__.py' if package else '.py'}"

    def get_code(self, fullname: str) -> types.CodeType:
        cache = self.cache
        if cache is None or not _NAME_OK.issuperset(fullname):
            return super().get_code(fullname)
        path = self.get_filename(fullname)
        try:
            source = self.get_data(path)
        except OSError:  # no source in the archive (bytecode only): zipimport's way
            return super().get_code(fullname)
        if len(source) < _CACHED_FROM:
            return super().get_code(fullname)
        digest = hashlib.sha256(source).digest()
        code = cache.load(fullname, digest, path)
        if code is None:
            code = super().get_code(fullname)
            if CompileOnce.keep:
                cache.store(fullname, digest, code)
            else:
                CompileOnce.compiled.append((fullname, digest, code))
        return code


def compile_once(cache_dir: str | None = CACHE_DIR) -> None:
    """Use :class:`CompileOnce` for the zip archives on the path, and for the packages in them imported
    from now on, with the bytecode cache in ``cache_dir`` (None: none). Nothing is written before
    :func:`keep_compiled`. Nothing changes for a process that imports nothing from a zip."""
    CompileOnce.cache = CodeCache(cache_dir) if _CACHEABLE and cache_dir is not None else None
    if CompileOnce not in sys.path_hooks:
        sys.path_hooks.insert(0, CompileOnce)
    for path, finder in list(sys.path_importer_cache.items()):
        # zipimport's own importers only (a CompileOnce is one already; another subclass is someone else's)
        if type(finder) is zipimport.zipimporter:  # pylint: disable=unidiomatic-typecheck
            sys.path_importer_cache[path] = CompileOnce(path)


def keep_compiled() -> None:
    """Write what was compiled so far to the cache, and from now on what is compiled. A run calls it
    once it knows it is not in check mode: a check-mode run writes nothing, not even the cache."""
    CompileOnce.keep = True
    compiled, CompileOnce.compiled = CompileOnce.compiled, []
    if CompileOnce.cache is not None:
        for fullname, digest, code in compiled:
            CompileOnce.cache.store(fullname, digest, code)
