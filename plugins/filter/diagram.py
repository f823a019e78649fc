# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Documentation: one file per filter, mermaid.yml and tree.yml.

from __future__ import annotations

from ansible_collections.linuxnet.bridge.plugins.module_utils._diagram import mermaid, tree


class FilterModule:
    def filters(self):
        return {"mermaid": mermaid, "tree": tree}
