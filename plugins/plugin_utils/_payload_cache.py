# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins!
"""The collection's module payloads (AnsiballZ) kept on the controller from one ansible-playbook run
to the next.

Ansible builds a module's payload once per run (and keeps it in ``ansiballz_cache`` under the run's
own temporary directory, removed when the run ends): it parses every module_utils file the module
imports to find what to ship. For the collection's modules that is about 480 KB of module_utils,
0.2-0.25 s of every run (``tests.bench.timeline``, the ``ansiballz`` column), against 0.1 s for
``ansible.builtin.ping``.

:class:`PayloadCache` keeps what Ansible built in a directory beside the runs' temporary
directories (``local_tmp``, ``~/.ansible/tmp`` by default), and puts it into the next run's
``ansiballz_cache`` before Ansible looks there. Ansible's entries are copied as they are (their
names and contents are Ansible's: a pickle in ansible-core 2.19, the zip before), so nothing here
depends on their format. An entry is used only for the very sources it was built from
(:func:`payload_key`: the module, every module_utils file of the collection, ansible-core's version
and module_utils, the controller's Python), and only if the directory and the file are this user's
alone, as for the bytecode cache on the managed host (the payload runs there, often as root).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from ansible.module_utils.ansible_release import __version__ as ansible_version

from ansible_collections.linuxnet.bridge.plugins.module_utils._zipimport import (
    drop_partials,
    private_directory,
    read_private,
    write_private,
)

PLUGINS = Path(__file__).resolve().parents[1]
CACHE_NAME = "linuxnet.bridge-ansiballz"
# Ansible names an entry "<module fqn>-<compression>[-<extensions>]"; its lock and partial files end so.
_PARTIAL = (".lock", "-part")
_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.~-")


def _module_utils_roots() -> list[Path]:
    """Where ``ansible.module_utils`` comes from: ansible-core's own, and the directories configured
    for module_utils (files there can stand in for ansible-core's)."""
    import ansible.module_utils  # pylint: disable=import-outside-toplevel

    roots = [Path(ansible.module_utils.__file__).parent]
    try:
        from ansible.plugins.loader import module_utils_loader  # pylint: disable=import-outside-toplevel

        roots += [Path(path) for path in module_utils_loader._get_paths(subdirs=False)]  # pylint: disable=protected-access
    except (ImportError, AttributeError):  # (a private helper of ansible-core: the key only gets coarser)
        pass
    return roots


def module_path(short_name: str) -> Path:
    """The file of the collection's module ``short_name``."""
    return PLUGINS / "modules" / f"{short_name}.py"


def payload_key(module_file: Path, module_utils: Path) -> str:
    """A digest of everything a module's payload is built from: the module file, every ``.py`` under
    the collection's ``module_utils`` (contents), ansible-core's version and the name, size and
    modification time of every ``.py`` under the directories ``ansible.module_utils`` comes from,
    and the controller's Python version."""
    digest = hashlib.sha256()
    for part in (ansible_version, f"{sys.version_info[0]}.{sys.version_info[1]}", str(module_file)):
        digest.update(part.encode() + b"\0")
    digest.update(module_file.read_bytes())
    for path in sorted(module_utils.rglob("*.py")):
        digest.update(f"\0{path.relative_to(module_utils)}\0".encode())
        digest.update(path.read_bytes())
    for root in _module_utils_roots():
        digest.update(f"\0{root}\0".encode())
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(".py"):
                    found = os.stat(os.path.join(folder, name))
                    digest.update(f"{os.path.relpath(folder, root)}/{name}:{found.st_size}:{found.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:32]


class PayloadCache:
    """The kept payloads of the module ``module_file`` (Ansible's entries named ``<module_fqn>-...``)
    built from the sources with digest ``key``, in ``directory``: one file ``<key>.<entry name>`` per
    entry."""

    def __init__(self, directory: str, module_file: Path, module_fqn: str, key: str) -> None:
        self.directory = directory
        self.module_file = module_file
        self.prefix = f"{module_fqn}-"
        self.key = key

    @classmethod
    def for_module(cls, local_tmp: str, short_name: str) -> PayloadCache | None:
        """The cache of the collection's module ``short_name`` beside the run's temporary directory
        ``local_tmp`` (Ansible's ``DEFAULT_LOCAL_TMP``); None if the module's sources cannot be read."""
        module_file = module_path(short_name)
        try:
            key = payload_key(module_file, PLUGINS / "module_utils")
        except OSError:
            return None
        fqn = f"ansible_collections.linuxnet.bridge.plugins.modules.{short_name}"
        return cls(os.path.join(os.path.dirname(local_tmp), CACHE_NAME), module_file, fqn, key)

    def _ours(self, name: str) -> bool:
        return name.startswith(self.prefix) and _NAME_OK.issuperset(name) and not name.endswith(_PARTIAL)

    def seed(self, run_cache: str) -> int:
        """Put the kept entries of this module into ``run_cache`` (the run's ``ansiballz_cache``) where it
        has none. How many it put there."""
        if not private_directory(self.directory):
            return 0
        mine = f"{self.key}."
        seeded = 0
        try:
            os.makedirs(run_cache, exist_ok=True)  # (as Ansible makes it, in the run's own private directory)
            listed = sorted(os.listdir(self.directory))
        except OSError:  # (removed since the check: no cache)
            return 0
        for kept in listed:
            name = kept[len(mine):]
            if not kept.startswith(mine) or not self._ours(name) or os.path.lexists(os.path.join(run_cache, name)):
                continue
            data = read_private(os.path.join(self.directory, kept))
            if data is not None and write_private(os.path.join(run_cache, name), data):
                seeded += 1
        return seeded

    def keep(self, run_cache: str) -> int:
        """Keep the entries of this module that Ansible has in ``run_cache`` and this cache has not, and
        drop the ones kept for other sources. How many it kept."""
        try:
            built = [name for name in os.listdir(run_cache) if self._ours(name)]
            if not built or not private_directory(self.directory, make=True):
                return 0
            present = set(os.listdir(self.directory))
        except OSError:  # (removed since the check: no cache)
            return 0
        drop_partials(self.directory, sorted(present))
        kept = 0
        for name in built:
            target = f"{self.key}.{name}"
            if target in present:
                continue
            data = read_private(os.path.join(run_cache, name))
            if data is None or not write_private(os.path.join(self.directory, target), data):
                continue
            kept += 1
            for stale in present:  # the same entry for other sources
                if stale.partition(".")[2] == name:
                    try:
                        os.unlink(os.path.join(self.directory, stale))
                    except OSError:
                        pass
        return kept
