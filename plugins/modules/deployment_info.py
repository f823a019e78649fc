#!/usr/bin/python
# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: deployment_info
short_description: Plan a bridge-network deployment and tell which modules would change the host
version_added: 0.1.0
description:
  - Makes the plan that M(linuxnet.bridge.deployment) converges - the C(config) of each of its five
    modules, from the networks and endpoints of the role
    R(linuxnet.bridge.bridge_network,ansible_collections.linuxnet.bridge.bridge_network_role), keeping
    the addresses of existing endpoints.
  - Asks each of those modules, in one pass over the live host and without changing anything, what a
    run with O(ignore:state=overridden) would do, so a playbook can tell whether the host matches its
    inventory, or run only the modules that would change something.
  - When something would change, checks the kernel as M(linuxnet.bridge.deployment) does, and fails
    the same way.
extends_documentation_fragment:
  - linuxnet.bridge.deployment
  - linuxnet.bridge.iptables
attributes:  # support: the doc fragment linuxnet.bridge.deployment, but for diff_mode
  check_mode:
    description: The module never changes anything, in check mode or not.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  idempotent:
    description: Read-only.
options:
  return_plan:
    description: As O(linuxnet.bridge.deployment#module:return_plan); V(on_change) returns RV(plan) only when a module
      would change something.
    type: str
    choices: [always, on_change]
    default: always
"""

EXAMPLES = r"""
- name: Find out whether the host matches the inventory
  linuxnet.bridge.deployment_info:
    networks:
      - name: backend
        subnet: 172.18.0.0/16
    endpoints:
      - name: web
        networks: [{name: backend}]
        ports: ["8080:80"]
  register: live

- name: Converge only when needed
  linuxnet.bridge.veth:
    config: "{{ live.plan.veth }}"
    state: overridden
  when: "'veth' in live.pending"
"""

RETURN = r"""
plan:
  description:
    - The C(config) of each module under the module's name (keys C(netns), C(bridge), C(veth),
      C(firewall), C(port_mapping)), the netns module's C(host_groups), the C(warnings) about
      ignored input, and the resolved C(networks) and C(endpoints).
    - The same as the filter P(linuxnet.bridge.deployment#filter) given the host's current veths.
  returned: always, unless O(return_plan=on_change) and RV(pending) is empty
  type: dict
  sample:
    netns: [{name: web, hosts: [{ip: 172.18.0.2, names: [web]}], host_groups: [backend]}]
    host_groups: [{name: backend, hosts: [{ip: 172.18.0.2, names: [web]}]}]
    bridge: [{name: br-backend, addresses: [172.18.0.1/16]}]
    veth:
      - {name: veth2d146f3, peer: eth0, peer_netns: web, master: br-backend, addresses: [172.18.0.2/16],
         mac: docker, hairpin: true, gateway: 172.18.0.1}
    firewall:
      - {name: backend, bridge: br-backend, subnet: 172.18.0.0/16, icc: true, internal: false, masquerade: true,
         gateway_mode: nat}
    port_mapping: [{publish: "8080:80", bridge: br-backend, container_ip: 172.18.0.2, network: backend}]
    warnings: []
    endpoints: [{name: web, mode: bridge, networks: {backend: 172.18.0.2}}]
    networks:
      - {name: backend, bridge: br-backend, subnet: 172.18.0.0/16, gateway: 172.18.0.1, icc: true, internal: false,
         masquerade: true, mtu: null, snat_source: null, gateway_mode: nat, allow_overlap: false}
ignored:
  description: What of the input is ignored and why (the C(warnings) of RV(plan)).
  returned: always
  type: list
  elements: str
  sample: []
pending:
  description: Modules that would change something, in the order the role runs them.
  returned: always
  type: list
  elements: str
  sample: [port_mapping]
commands:
  description: For each module, the commands its run would apply now.
  returned: always
  type: dict
  sample:
    netns: []
    bridge: []
    veth: []
    firewall: []
    port_mapping:
      - iptables -t filter -F LINUXNET
      - iptables -t filter -A LINUXNET -d 172.18.0.2/32 ! -i br-backend -o br-backend -p tcp -m tcp --dport 80 -j ACCEPT
      - iptables -t nat -F LINUXNET
      - iptables -t nat -A LINUXNET -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.18.0.2:80
      - iptables -t nat -A POSTROUTING -s 172.18.0.2/32 -d 172.18.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE
"""

from ansible_collections.linuxnet.bridge.plugins.module_utils._zipimport import compile_once

compile_once()  # first: the module_utils imported below come from the AnsiballZ zip, compiled once each

from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine
from ansible_collections.linuxnet.bridge.plugins.module_utils._deployment import DEPLOYMENT_OPTIONS, kernel_probe, pending_changes
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError
from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import MODULE_OPTIONS
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError


def main() -> None:
    module = _engine.privileged_module({
        **DEPLOYMENT_OPTIONS,
        "return_plan": {"type": "str", "default": "always", "choices": ["always", "on_change"]},
        **MODULE_OPTIONS,
    })
    p = module.params
    try:
        result = pending_changes(module, p["networks"], p["endpoints"], p["chain_prefix"], p["iptables_variant"],
                                 p["firewall_backend"])
    except (ValidationError, ApplyError) as exc:
        module.fail_json(msg=str(exc))
    if result["pending"]:
        try:
            kernel_probe(module, p["firewall_backend"])
        except ApplyError as exc:
            module.fail_json(msg=str(exc), **result)
    result["ignored"] = result["plan"]["warnings"]
    if p["return_plan"] == "on_change" and not result["pending"]:
        del result["plan"]
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
