#!/usr/bin/python
# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: port_mapping
short_description: Published ports like docker run -p, as kernel NAT
version_added: 0.1.0
description:
  - Publishes ports of endpoints on bridge networks the way Docker does with the userland proxy
    off, DNAT in nat C(<P>), a forward ACCEPT in filter C(<P>) and a per-port hairpin MASQUERADE in
    nat POSTROUTING. No proxy process is started.
  - A port range is one rule per place, so a 1000-port range costs three rules and no process.
  - Publishing on C(127.0.0.1) works from the host itself through the OUTPUT jump and
    C(route_localnet), which M(linuxnet.bridge.firewall) enables on its bridges together with a guard
    rule against CVE-2020-8558.
  - The chains belong to M(linuxnet.bridge.firewall), which must have run with the same
    O(chain_prefix). All changes go in one C(iptables-restore --noflush) per table.
author:
  - linuxnet.bridge developers (@linuxnet)
extends_documentation_fragment:
  - linuxnet.bridge.resource
  - linuxnet.bridge.iptables
options:
  config:
    description:
      - The mappings. A mapping is identified by host address, host port and protocol.
    type: list
    elements: dict
    suboptions:
      bridge:
        description: Bridge the endpoint is attached to.
        type: str
        required: true
      container_ip:
        description: IPv4 address of the endpoint; must be inside a subnet of the bridge's addresses.
        type: str
        required: true
      container_port:
        description: Port or range such as C(8000-8010). Not with O(config[].publish).
        type: str
      host_port:
        description: Port or range of the same length; defaults to O(config[].container_port).
        type: str
      host_ip:
        description: Host address the port is published on; default every local address.
        type: str
      protocol:
        description: Protocol; default V(tcp).
        type: str
        choices: [tcp, udp, sctp]
      publish:
        description:
          - Docker's syntax C([host_ip:]host_port[-end]:container_port[-end][/protocol]), for example
            C(81:80), C(127.0.0.1:8080:80/udp) or C(20000-20999:20000-20999). The host port is required
            (no random host ports).
        type: str
      network:
        description: A label shown in O(state=gathered) and messages.
        type: str
seealso:
  - module: linuxnet.bridge.firewall
"""

EXAMPLES = r"""
- name: Seed 001's web container on port 81, and a UDP service on 127.0.0.1 only
  linuxnet.bridge.port_mapping:
    config:
      - bridge: docker0
        container_ip: 172.17.0.5
        publish: "172.16.211.128:81:80"
      - bridge: br-usernet
        container_ip: 172.18.0.2
        publish: "127.0.0.1:8080:80/udp"

- name: A 1000-port range (three rules, no process)
  linuxnet.bridge.port_mapping:
    config:
      - bridge: docker0
        container_ip: 172.17.0.6
        container_port: "20000-20999"
        host_port: "20000-20999"
        protocol: udp
"""

RETURN = r"""
before:
  description: Mappings found in the live ruleset before the run.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
after:
  description: Mappings after the run; in check mode, the prediction.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
commands:
  description: The changes as C(iptables) command lines (applied as one restore per table).
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: str
gathered:
  description: Mappings rebuilt from the live ruleset, in the shape of O(config).
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
from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import MODULE_OPTIONS
from ansible_collections.linuxnet.bridge.plugins.module_utils._port_mapping import ITEM_OPTIONS, PortMappingResource


def main() -> None:
    module = AnsibleModule(
        argument_spec=_engine.config_argument_spec(ITEM_OPTIONS, MODULE_OPTIONS), supports_check_mode=True
    )
    _engine.run(module, PortMappingResource(module))


if __name__ == "__main__":
    main()
