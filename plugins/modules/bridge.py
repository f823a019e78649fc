#!/usr/bin/python
# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: bridge
short_description: Manage Linux bridges such as Docker's docker0
version_added: 0.1.0
description:
  - Creates, updates and removes Linux bridges over netlink, in the host's network namespace or
    in a named one. All bridges of one task are handled in one run.
  - Bridges the collection creates carry the interface alias C(linuxnet.bridge); only those are
    removed by O(state=overridden) and by O(state=deleted) without O(config).
  - A bridge the collection did not create is never changed or adopted. When O(config) names one
    (in the host or in O(config[].netns)), O(state=merged), O(state=replaced) and O(state=overridden)
    fail before anything changes, with an error naming the item's field; O(state=deleted) leaves it
    alone with a warning. The kernel ignores an alias in the request that creates a link, so a run
    killed between creating a bridge and setting its alias leaves a note under C(/run/linuxnet/creating);
    the next run adopts that bridge.
extends_documentation_fragment:
  - linuxnet.bridge.resource
options:
  config:
    description: The bridges.
    type: list
    elements: dict
    suboptions:
      name:
        description: Interface name (at most 15 bytes of letters, digits and C(_.-@+); not starting with C(-) or ending with C(+), an iptables wildcard).
        type: str
        required: true
      addresses:
        description:
          - IPv4 and IPv6 addresses in CIDR form, for example C(172.17.0.1/16) and C(fd00:17::1/64) (the
            network's gateways). IPv6 addresses (prefix /48 or longer, not link-local, multicast or loopback)
            are added without duplicate address detection (C(nodad)), and a bridge given one gets IPv6 on and
            C(accept_ra=0) first (C(net.ipv6.conf.<bridge>.*)).
          - An IPv4 address gets its subnet's broadcast address (as C(ip addr add ... brd +)) up to a /30; a /31
            (RFC 3021) or /32 gets none, so the other address of a /31 is the peer.
          - Gathered with the IPv6 addresses of global scope; the kernel's link-local ones are not reported.
          - Reported (RV(before), RV(after), RV(gathered)) in the kernel's order, in check mode too. That is IPv4
            before IPv6, IPv4 primary addresses before the secondary ones (those in the subnet of an earlier one),
            and IPv6 newest first.
          - Deleting an IPv4 primary address also deletes its secondary ones (or promotes one, with
            C(net.ipv4.conf.<bridge>.promote_secondaries=1)). So O(state=replaced) and O(state=overridden) delete
            the secondary addresses first and, when a primary goes while one of its secondary ones stays, delete
            that one too and add it again after the primary (RV(commands) says why). The result is the one asked,
            whatever C(promote_secondaries) says.
        type: list
        elements: str
      mtu:
        description: MTU, 68..65535.
        type: int
      mac:
        description: MAC address of the bridge.
        type: str
      stp:
        description: Spanning tree protocol on or off.
        type: bool
      link_state:
        description: Administrative state.
        type: str
        choices: [up, down]
        default: up
      allow_overlap:
        description:
          - Allow O(config[].addresses) whose subnet overlaps a route or an address of the host on a link
            the collection did not create (the uplink LAN, a VPN route). Without it such an address is
            refused before anything changes (the bridge would take that traffic, or lose its own).
        type: bool
        default: false
      netns:
        description: Create the bridge in this named network namespace instead of the host's.
        type: str
seealso:
  - module: linuxnet.bridge.veth
  - module: linuxnet.bridge.firewall
"""

EXAMPLES = r"""
- name: Docker's default bridge and a user-defined network's bridge
  linuxnet.bridge.bridge:
    config:
      - name: docker0
        addresses: [172.17.0.1/16]
        mtu: 1500
      - name: br-usernet
        addresses: [172.18.0.1/16, "fd00:18::1/64"]  # dual-stack

- name: Show the ip commands for a bridge in the namespace router, without touching the host
  linuxnet.bridge.bridge:
    state: rendered
    config:
      - name: br0
        netns: router
        addresses: [10.0.0.1/24]

- name: Exactly these addresses on docker0 (other addresses on it are removed)
  linuxnet.bridge.bridge:
    state: replaced
    config:
      - name: docker0
        addresses: [172.17.0.1/16]

- name: Only docker0 and br-usernet (addresses and MTU left alone); every other bridge this collection created is removed
  linuxnet.bridge.bridge:
    state: overridden
    config:
      - name: docker0
      - name: br-usernet

- name: Remove br-usernet (left alone, with a warning, if this collection did not create it)
  linuxnet.bridge.bridge:
    state: deleted
    config:
      - name: br-usernet

- name: Read the live bridges
  linuxnet.bridge.bridge:
    state: gathered
  register: bridges
"""

RETURN = r"""
before:
  description: The bridges before the run, in the shape of RV(gathered).
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
  sample: []
after:
  description: The bridges after the run; in check mode, the prediction (a bridge yet to be created has no C(mac) then).
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
  sample:
    - {name: docker0, addresses: [172.17.0.1/16], link_state: up, mac: "6a:34:6c:a0:2b:1c", mtu: 1500, stp: false}
commands:
  description: Operations done (in check mode, that would be done) as C(ip) command lines.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: str
  sample: ["ip link add docker0 type bridge", "ip link set docker0 alias 'linuxnet.bridge'", "ip addr add 172.17.0.1/16 dev docker0",
           "ip link set docker0 up"]
gathered:
  description: The live bridges of the host, and of the named namespaces that hold one the collection created, in the shape of O(config).
  returned: when state is gathered
  type: list
  elements: dict
  sample:
    - {name: br-backend, addresses: [172.18.0.1/16], link_state: up, mac: "2a:34:f8:38:bc:b2", mtu: 1500, stp: false}
    - {name: docker0, addresses: [172.17.0.1/16], link_state: up, mac: "6a:34:6c:a0:2b:1c", mtu: 1500, stp: false}
rendered:
  description: The C(ip) commands that build O(config) on an empty host.
  returned: when state is rendered
  type: list
  elements: str
  sample:
    - ip link add br-backend type bridge
    - ip link set br-backend alias 'linuxnet.bridge'
    - ip link set br-backend mtu 1500
    - ip addr add 172.18.0.1/16 dev br-backend
    - ip link set br-backend up
"""

from ansible_collections.linuxnet.bridge.plugins.module_utils._zipimport import compile_once

compile_once()  # first: the module_utils imported below come from the AnsiballZ zip, compiled once each

from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine
from ansible_collections.linuxnet.bridge.plugins.module_utils._bridge import ITEM_OPTIONS, BridgeResource


def main() -> None:
    _engine.main(BridgeResource, ITEM_OPTIONS)


if __name__ == "__main__":
    main()
