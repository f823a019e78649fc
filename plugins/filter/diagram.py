# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Documentation: one file per filter, mermaid.yml, tree.yml and dot.yml.

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.linuxnet.bridge.plugins.module_utils._diagram import dot, mermaid, tree
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError


def dot_filter(hosts, probe=None, probe_address=None):
    try:
        return dot(hosts, probe or None, probe_address or None)
    except ValidationError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"mermaid": mermaid, "tree": tree, "dot": dot_filter}
