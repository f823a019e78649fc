#!/usr/bin/python
# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: firewall
short_description: Docker-style iptables chains for bridge networks
version_added: 0.1.0
description:
  - Manages the iptables rules Docker's bridge driver creates for its networks, with the userland
    proxy off. That is isolation between networks, inter-container communication (ICC), internal
    networks, masquerade or SNAT, and the forwarding sysctls Docker's daemon sets.
  - Chains C(<P>), C(<P>-USER), C(<P>-ISOLATION-STAGE-1) and C(<P>-ISOLATION-STAGE-2) in the filter
    table and C(<P>) in the nat table, where C(<P>) is O(chain_prefix). C(<P>-USER) belongs to the
    administrator; it is created once with a C(RETURN) rule and never flushed.
  - All changes of one run go in one C(iptables-restore --noflush) transaction per table; rules
    and chains the collection does not own are never touched. If the nat transaction fails, the
    filter table is put back as it was.
  - Also sets C(net.ipv4.ip_forward=1) (and, if it had to, the FORWARD policy to DROP, as Docker
    does), C(net.bridge.bridge-nf-call-iptables=1), and C(route_localnet=1) on managed bridges
    that exist, together with kube-proxy's guard rule against CVE-2020-8558 in INPUT.
author:
  - linuxnet.bridge developers (@linuxnet)
extends_documentation_fragment:
  - linuxnet.bridge.resource
  - linuxnet.bridge.iptables
options:
  config:
    description: The networks.
    type: list
    elements: dict
    suboptions:
      name:
        description: Network name (a label, like a Docker network name).
        type: str
        required: true
      bridge:
        description: Bridge interface of the network.
        type: str
        required: true
      subnet:
        description: IPv4 subnet of the network, for example C(172.18.0.0/16).
        type: str
        required: true
      icc:
        description: Let endpoints of this network talk to each other.
        type: bool
        default: true
      internal:
        description: No traffic in or out of the network, no NAT (Docker's C(--internal)).
        type: bool
        default: false
      masquerade:
        description: Masquerade traffic leaving the network (Docker's C(enable_ip_masquerade)).
        type: bool
        default: true
      snat_source:
        description: SNAT to this address instead of MASQUERADE (Docker's C(host_ipv4)).
        type: str
notes:
  - O(state=rendered) returns the C(iptables-restore) payload that builds O(config) on an empty host.
  - The networks the collection manages are recorded in C(/run/linuxnet/firewall/<prefix>.json),
    so rules of networks removed from O(config) are found and removed exactly.
  - Concurrent runs on one host are serialised by a lock file; the result has no duplicates.
seealso:
  - module: linuxnet.bridge.port_mapping
  - module: linuxnet.bridge.bridge
"""

EXAMPLES = r"""
- name: Docker's default network and an isolated user-defined network
  linuxnet.bridge.firewall:
    config:
      - name: bridge
        bridge: docker0
        subnet: 172.17.0.0/16
      - name: usernet
        bridge: br-usernet
        subnet: 172.18.0.0/16
        icc: false

- name: Exactly these networks; rules of other managed networks are removed
  linuxnet.bridge.firewall:
    state: overridden
    config:
      - name: backend
        bridge: br-backend
        subnet: 172.20.0.0/16
        internal: true

- name: Show the iptables-restore payload
  linuxnet.bridge.firewall:
    state: rendered
    chain_prefix: DOCKER
    config:
      - name: bridge
        bridge: docker0
        subnet: 172.17.0.0/16
  register: payload
"""

RETURN = r"""
before:
  description: Networks found in the live ruleset before the run.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
after:
  description: Networks after the run; in check mode, the prediction.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
commands:
  description: The changes as C(iptables) and C(sysctl) command lines (applied as one restore per table).
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: str
  sample: ["iptables -t filter -N LINUXNET", "iptables -t filter -I FORWARD 1 -j LINUXNET-USER"]
gathered:
  description: Networks rebuilt from the live ruleset, in the shape of O(config).
  returned: when state is gathered
  type: list
  elements: dict
rendered:
  description: Lines of the C(iptables-restore) payload that builds O(config) on an empty host.
  returned: when state is rendered
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine
from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import ITEM_OPTIONS, MODULE_OPTIONS, FirewallResource


def main() -> None:
    module = AnsibleModule(
        argument_spec=_engine.config_argument_spec(ITEM_OPTIONS, MODULE_OPTIONS), supports_check_mode=True
    )
    _engine.run(module, FirewallResource(module))


if __name__ == "__main__":
    main()
