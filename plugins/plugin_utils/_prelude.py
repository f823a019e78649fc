# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins!
"""Ansible's own module_utils in a module process compiled once, and at most once per host, as the
collection's are.

A module's payload (AnsiballZ) is a wrapper script that writes the module's zip archive to a
temporary file, puts it on ``sys.path`` and imports Ansible's ``basic`` (about 160 KB of
``ansible.module_utils`` in ansible-core 2.19) before the module's own code runs. The collection's
modules install their bytecode cache (``_zipimport.compile_once``) first thing, which is too late
for those: CPython's zipimport compiled each of them twice, in every run (about 0.06 s of a
0.14 s ``ansible.builtin.ping`` process here).

:func:`with_compile_once` puts :data:`PRELUDE` into the wrapper, before its ``_ansiballz_main``
(ansible-core 2.16 to 2.20): a path hook that, for the first archive on ``sys.path`` holding the
collection's ``_zipimport``, imports that module from it and calls its ``compile_once``, so every
module of the archive, Ansible's too, goes through the same cache (with the same rules: nothing is
written before the module calls ``keep_compiled``, so check mode writes nothing). Whatever goes
wrong there, the hook steps aside and zipimport imports as before. A wrapper without the marker
is left as it is.
"""

from __future__ import annotations

# Before this line in the wrapper: the function that unpacks the archive and runs the module.
MARKER = b"\ndef _ansiballz_main("

# Runs on the managed host, in the wrapper's namespace (Python 3.8+ syntax: what ansible-core's
# wrappers run on). The hook is called while Python resolves a path entry; the only imports it makes
# then are _zipimport's own, once (``tried``), so it never recurses into itself.
PRELUDE = b'''
def _linuxnet_bridge_compile_once():
    """linuxnet.bridge: the archive's modules, Ansible's too, through the collection's bytecode cache."""
    import sys
    if sys.version_info < (3, 10):  # zipimporter.find_spec and exec_module
        return
    import importlib.util
    import zipimport
    name = "ansible_collections.linuxnet.bridge.plugins.module_utils._zipimport"
    tried = []

    def hook(path):
        if tried:  # once: importing _zipimport below resolves path entries again
            raise ImportError("tried", path=path)
        try:
            spec = zipimport.zipimporter(path + "/" + name.rpartition(".")[0].replace(".", "/")).find_spec(name)
        except Exception:  # not a zip archive, or not one with the collection's module_utils
            spec = None
        if spec is None:
            raise ImportError("not an archive with the collection's _zipimport", path=path)
        tried.append(path)
        try:
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            module.compile_once()
            finder = module.CompileOnce(path)
        except Exception:
            sys.modules.pop(name, None)
            raise ImportError("the collection's _zipimport did not load", path=path)
        sys.path_hooks.remove(hook)  # only now: CPython iterates sys.path_hooks while it calls them
        return finder

    sys.path_hooks.insert(0, hook)


_linuxnet_bridge_compile_once()
'''


def with_compile_once(module_data: bytes) -> bytes:
    """The wrapper ``module_data`` with :data:`PRELUDE` before its ``_ansiballz_main``; unchanged if
    it does not define that exactly once at the top level."""
    at = module_data.find(MARKER)
    if at < 0 or module_data.find(MARKER, at + 1) >= 0:  # (one pass over the ~1 MB wrapper)
        return module_data
    return module_data[:at] + b"\n" + PRELUDE + module_data[at:]
