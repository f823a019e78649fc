# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action of linuxnet.bridge.netns: Ansible's module action, the garbage collector collecting less often (plugin_utils._action)."""

from __future__ import annotations

from ansible_collections.linuxnet.bridge.plugins.plugin_utils._action import ModuleAction


class ActionModule(ModuleAction):
    """Runs the module linuxnet.bridge.netns."""
