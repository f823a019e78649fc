# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins!
"""The controller side of the collection's modules: Ansible's own module action
(``ansible.builtin.normal``), run with CPython's cyclic garbage collector paused.

Each task runs in a worker process forked from ansible-playbook, which holds the inventory, the play
and every variable. Building a module's payload (AnsiballZ) parses every module_utils file the
module imports (about 480 KB here, 80,000 AST nodes), and what that allocates triggers collections
that scan the heap the worker inherited, touching, and so copying, its pages. Measured at N=100 and
N=1000 (``tests.bench.timeline``): the payload took 0.32-0.55 s to build with the collector and
0.19 s without it. The worker ends with its task, and what cycles it made go with it.
"""

from __future__ import annotations

import gc
from typing import Any

from ansible.plugins.action.normal import ActionModule as NormalAction


class ModuleAction(NormalAction):
    """``ansible.builtin.normal`` with the garbage collector paused while it runs."""

    def run(self, tmp: Any = None, task_vars: dict | None = None) -> dict:
        paused = gc.isenabled()
        gc.disable()
        try:
            return super().run(tmp, task_vars)
        finally:
            if paused:
                gc.enable()
