# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: deployment
short_description: Turn linuxnet networks and endpoints into the config of every module
version_added: 0.1.0
description:
  - Used by the role M(linuxnet.bridge.bridge_network). Allocates missing endpoint addresses
    (keeping the addresses endpoints already have), names veths, and returns the C(config) lists of
    the netns, bridge, veth, firewall and port_mapping modules.
options:
  _input:
    description: The networks (C(linuxnet_networks)).
    type: list
    elements: dict
    required: true
  endpoints:
    description: The endpoints (C(linuxnet_endpoints)).
    type: list
    elements: dict
    required: true
  current_veths:
    description: Output of the veth module with O(state=gathered), to keep addresses stable.
    type: list
    elements: dict
"""

EXAMPLES = r"""
- name: Plan
  ansible.builtin.set_fact:
    plan: "{{ linuxnet_networks | linuxnet.bridge.deployment(linuxnet_endpoints, current.gathered) }}"
"""

RETURN = r"""
_value:
  description: Keys netns, bridges, veths, firewall, ports (module configs), endpoints, networks, warnings.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.linuxnet.bridge.plugins.module_utils._topology import (
    listener,
    matrix,
    mermaid,
    mismatches,
    plan_deployment,
    reachability,
    tree,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError


def deployment(networks, endpoints, current_veths=None):
    try:
        return plan_deployment(networks, endpoints, current_veths)
    except ValidationError as exc:
        raise AnsibleFilterError(str(exc)) from None


def reachability_checks(plan, probe_address=None, host_address=None):
    return reachability(plan, probe_address, host_address)


class FilterModule:
    def filters(self):
        return {
            "deployment": deployment,
            "reachability": reachability_checks,
            "listener": listener,
            "matrix": matrix,
            "mismatches": mismatches,
            "mermaid": mermaid,
            "tree": tree,
        }
