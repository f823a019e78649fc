# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Modules imported from a zip archive compiled once instead of twice.

CPython's zipimport (3.8 to 3.13 at least) compiles a module's source to answer ``get_filename``,
which ``find_spec`` asks, and again in ``get_code``. Every module runs from a zip (AnsiballZ), and
so does the boot-time restore (a zip application): each run compiled the collection's module_utils
(about 450 KB) twice, about 0.1 s of every run on a small host. :func:`compile_once` makes the
zip importers of this process work the file name out from the archive's listing instead, as
zipimport does for a source file (``archive/prefix/name.py`` or ``.../name/__init__.py``);
everything else is zipimport's own.
"""

from __future__ import annotations

import sys
import zipimport


class CompileOnce(zipimport.zipimporter):
    """A zipimporter whose ``get_filename`` does not compile the module (the archives hold sources only)."""

    def get_filename(self, fullname: str) -> str:
        package = self.is_package(fullname)  # (ZipImportError when the archive has no such module)
        name = fullname.rpartition(".")[2]
        return f"{self.archive}/{self.prefix}{name}{'/__init__.py' if package else '.py'}"


def compile_once() -> None:
    """Use :class:`CompileOnce` for the zip archives on the path, and for the packages in them imported
    from now on. Nothing changes for a process that imports nothing from a zip."""
    if CompileOnce not in sys.path_hooks:
        sys.path_hooks.insert(0, CompileOnce)
    for path, finder in list(sys.path_importer_cache.items()):
        # zipimport's own importers only (a CompileOnce is one already; another subclass is someone else's)
        if type(finder) is zipimport.zipimporter:  # pylint: disable=unidiomatic-typecheck
            sys.path_importer_cache[path] = CompileOnce(path)
