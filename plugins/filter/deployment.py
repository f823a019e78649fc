# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Documentation: deployment.yml.

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.linuxnet.bridge.plugins.module_utils._topology import plan_deployment
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError


def deployment(networks, endpoints, current_veths=None):
    try:
        return plan_deployment(networks, endpoints, current_veths)
    except ValidationError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"deployment": deployment}
