# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins!
"""The controller side of the collection's modules: Ansible's own module action
(``ansible.builtin.normal``), run with CPython's cyclic garbage collector collecting less often.

Each task runs in a worker process forked from ansible-playbook. Building a module's payload
(AnsiballZ) parses every module_utils file the module imports (about 480 KB here, 80,000 AST
nodes), and with the default threshold (a collection every 700 allocations) the collector scanned
those young objects again and again. Measured (``tests.bench.timeline``, N=100 and N=1000): the
payload took 0.32-0.55 s to build by default, 0.23-0.25 s with a collection every 100,000
allocations, 0.19 s with no collection at all; that last one left the worker 17 MB larger at
N=100, the threshold below 3 MB. The worker's own thresholds are back when the action ends.
"""

from __future__ import annotations

import gc
from typing import Any

from ansible.plugins.action.normal import ActionModule as NormalAction

# (allocations before a young collection, young collections before a middle one, middle before a full one)
THRESHOLDS = (100_000, 50, 1000)


class ModuleAction(NormalAction):
    """``ansible.builtin.normal`` with the garbage collector at :data:`THRESHOLDS` while it runs."""

    def run(self, tmp: Any = None, task_vars: dict | None = None) -> dict:
        before = gc.get_threshold()
        gc.set_threshold(*THRESHOLDS)
        try:
            return super().run(tmp, task_vars)
        finally:
            gc.set_threshold(*before)
