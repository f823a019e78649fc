# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins!
"""The controller side of the collection's modules: Ansible's own module action
(``ansible.builtin.normal``), run with CPython's cyclic garbage collector collecting less often and
with the module's payload kept from one run to the next (:mod:`._payload_cache`) and its wrapper
importing Ansible's own module_utils through the host's bytecode cache, as the module's own
(:mod:`._prelude`).

Each task runs in a worker process forked from ansible-playbook. Building a module's payload
(AnsiballZ) parses every module_utils file the module imports (about 480 KB here, 80,000 AST
nodes), and with the default threshold (a collection every 700 allocations) the collector scanned
those young objects again and again. Measured (``tests.bench.timeline``, N=100 and N=1000): the
payload took 0.32-0.55 s to build by default, 0.23-0.25 s with a collection every 100,000
allocations, 0.19 s with no collection at all; that last one left the worker 17 MB larger at
N=100, the threshold below 3 MB. The worker's own thresholds are back when the action ends.
"""

from __future__ import annotations

import dataclasses
import gc
import os
from typing import Any

from ansible import constants as C
from ansible.plugins.action.normal import ActionModule as NormalAction

from ansible_collections.linuxnet.bridge.plugins.plugin_utils._payload_cache import PayloadCache, module_path
from ansible_collections.linuxnet.bridge.plugins.plugin_utils._prelude import with_compile_once

# (allocations before a young collection, young collections before a middle one, middle before a full one)
THRESHOLDS = (100_000, 50, 1000)


class ModuleAction(NormalAction):
    """``ansible.builtin.normal`` with the garbage collector at :data:`THRESHOLDS` while it runs, and the
    payload of the module of its own name (``plugins/action/<name>.py`` runs ``plugins/modules/<name>.py``)
    taken from the :class:`PayloadCache` when it has it, its wrapper given :mod:`._prelude`'s hook."""

    def run(self, tmp: Any = None, task_vars: dict | None = None) -> dict:
        before = gc.get_threshold()
        gc.set_threshold(*THRESHOLDS)
        try:
            return super().run(tmp, task_vars)
        finally:
            gc.set_threshold(*before)

    def _configure_module(self, module_name: str, module_args: dict, task_vars: dict) -> tuple:
        short_name = type(self).__module__.rpartition(".")[2]
        payloads = PayloadCache.for_module(C.DEFAULT_LOCAL_TMP, short_name)
        run_cache = os.path.join(C.DEFAULT_LOCAL_TMP, "ansiballz_cache")  # where Ansible keeps this run's payloads
        if payloads is not None:
            payloads.seed(run_cache)
        built = super()._configure_module(module_name, module_args, task_vars)
        if os.path.realpath(built[-1]) != os.path.realpath(module_path(short_name)):
            return built  # (another module: the async wrapper)
        if payloads is not None:
            payloads.keep(run_cache)
        return _compiled_once(built)


def _compiled_once(built: tuple) -> tuple:
    """What ``_configure_module`` returned, a new-style module's wrapper with :mod:`._prelude`'s hook:
    ``(_BuiltModule, path)`` from ansible-core 2.19 on, ``(style, shebang, data, path)`` before; any
    other shape as it is."""
    if len(built) == 2 and dataclasses.is_dataclass(built[0]):
        bits = built[0]
        if bits.module_style != "new":
            return built
        return dataclasses.replace(bits, b_module_data=with_compile_once(bits.b_module_data)), built[1]
    if len(built) == 4 and built[0] == "new":
        return (*built[:2], with_compile_once(built[2]), built[3])
    return built
