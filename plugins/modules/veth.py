#!/usr/bin/python
# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: veth
short_description: Manage veth pairs that attach namespaces to bridges
version_added: 0.1.0
description:
  - Creates veth pairs (the "cable" of a container), moves the peer end into a namespace, attaches
    the host end to a bridge, and configures the peer's addresses, MAC, MTU and default route.
  - Changing an attribute of an existing pair updates it in place; only a changed O(config[].peer) or
    O(config[].peer_netns) recreates the pair, and RV(commands) says so.
  - The host end of a pair the collection creates carries an alias that records ownership and
    where the peer lives. The kernel ignores an alias in the request that creates a link, so a
    run killed between creating the pair and setting its alias leaves a note under
    C(/run/linuxnet/creating); the next run adopts the pair instead of refusing it as foreign.
  - A veth of a name in O(config) that the collection did not create (its peer in a namespace or
    on the host, as made by C(ip link add va type veth peer name vb)) is never changed, adopted or
    recreated. O(state=merged), O(state=replaced) and O(state=overridden) fail before anything
    changes, with an error naming the item's field; O(state=deleted) leaves it alone with a warning.
  - The other end of a pair the collection created with both ends on the host (O(config[].peer) without
    O(config[].peer_netns)) carries no alias; O(config[].name) naming it fails in every state but
    O(state=gathered), before anything changes, with an error naming the host end to give instead.
extends_documentation_fragment:
  - linuxnet.bridge.resource
options:
  config:
    description: The veth pairs.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the host end (at most 15 bytes).
        type: str
        required: true
      peer:
        description: Name of the other end. Defaults to C(eth0) when O(config[].peer_netns) is set.
        type: str
      peer_netns:
        description:
          - Named network namespace the peer end lives in. Required unless O(config[].peer) is
            given and both ends stay on the host.
        type: str
      master:
        description: Bridge the host end joins. It must exist (checked before any change).
        type: str
      addresses:
        description:
          - IPv4 and IPv6 addresses (CIDR) of the peer end. IPv6 ones are added without duplicate address
            detection (C(nodad), as Docker does) and need IPv6 on (O(config[].ipv6)).
          - Gathered with the IPv6 addresses of global scope; the kernel's link-local ones are not reported.
          - Replaced as on a bridge (see P(linuxnet.bridge.bridge#module)), so an IPv4 secondary address that stays
            while its primary goes is deleted and added again after it.
        type: list
        elements: str
      gateway:
        description: IPv4 default route of the peer namespace. Left alone when omitted, in every state (several pairs may share one namespace).
        type: str
      gateway6:
        description:
          - IPv6 default route of the peer namespace (C(ip -6 route replace default via ...)), inside a
            subnet of the IPv6 addresses given for that namespace. Left alone when omitted, like O(config[].gateway).
        type: str
      mtu:
        description: MTU of both ends.
        type: int
      mac:
        description:
          - MAC address of the peer end. V(docker) applies Docker's rule, C(02:42) followed by the
            four bytes of the first IPv4 address (an error without one).
        type: str
      hairpin:
        description: Hairpin mode of the host end's bridge port (needed for hairpin NAT).
        type: bool
      ipv6:
        description:
          - IPv6 on the peer end (C(net.ipv6.conf.<peer>.disable_ipv6) inside its namespace).
          - When omitted, it is on for an item with IPv6 addresses or O(config[].gateway6); otherwise pairs
            the collection creates or owns get IPv6 off, as Docker does for containers on networks without
            IPv6 (set before the peer goes up, so it never has a link-local address that would let endpoints
            talk past the IPv4-only ICC and isolation rules).
          - On comes with C(accept_ra=0) on the peer end (also before it goes up), so that an endpoint cannot give
            its neighbours addresses or routes with router advertisements (CVE-2020-13401).
          - V(false) with IPv6 addresses or O(config[].gateway6) is an error.
          - Gathered as the live setting; omitted when the kernel has no IPv6.
        type: bool
notes:
  - In check mode a missing O(config[].master) bridge or O(config[].peer_netns) namespace is a
    warning instead of an error, because an earlier task of the same play would create it.
seealso:
  - module: linuxnet.bridge.bridge
  - module: linuxnet.bridge.netns
"""

EXAMPLES = r"""
- name: Attach the namespace web to docker0 like a Docker container
  linuxnet.bridge.veth:
    config:
      - name: veth-web
        peer_netns: web
        master: docker0
        addresses: [172.17.0.5/16]
        gateway: 172.17.0.1
        mac: docker
        hairpin: true

- name: A dual-stack endpoint (IPv6 on, accept_ra=0, an IPv6 default route)
  linuxnet.bridge.veth:
    config:
      - name: veth-api
        peer_netns: api
        master: br-usernet
        addresses: [172.18.0.2/16, "fd00:18::2/64"]
        gateway: 172.18.0.1
        gateway6: "fd00:18::1"
        mac: docker

- name: veth-web exactly as given (its addresses become exactly this list; options left out stay as they are)
  linuxnet.bridge.veth:
    state: replaced
    config:
      - name: veth-web
        peer_netns: web
        addresses: [172.17.0.6/16]

- name: Only veth-web and veth-api; every other veth pair this collection created is removed
  linuxnet.bridge.veth:
    state: overridden
    config:
      - {name: veth-web, peer_netns: web}
      - {name: veth-api, peer_netns: api}

- name: Detach web (removes the pair; left alone, with a warning, if this collection did not create it)
  linuxnet.bridge.veth:
    state: deleted
    config:
      - name: veth-web

- name: Read the live veth pairs
  linuxnet.bridge.veth:
    state: gathered
  register: veths

- name: Show the commands for a pair with both ends on the host, without touching the host
  linuxnet.bridge.veth:
    state: rendered
    config:
      - name: veth-a
        peer: veth-b
        master: docker0
"""

RETURN = r"""
before:
  description: The veth pairs before the run, in the shape of RV(gathered).
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
  sample: []
after:
  description: The veth pairs after the run, with their peers' addresses and routes; in check mode, the prediction.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
  sample:
    - {name: veth28425b5, peer: eth0, peer_netns: web, master: docker0, addresses: [172.17.0.2/16],
       gateway: 172.17.0.1, mac: "02:42:ac:11:00:02", hairpin: true, mtu: 1500, ipv6: false}
commands:
  description: Operations done (in check mode, that would be done) as C(ip) command lines; here, moving a pair to another bridge.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: str
  sample: ["ip link set veth28425b5 master br-backend"]
gathered:
  description:
    - Live veth pairs in the shape of O(config); the peer of a pair the collection did not create is read only
      when O(config) names it.
  returned: when state is gathered
  type: list
  elements: dict
  sample:
    - {name: veth-api, peer: eth0, peer_netns: api, master: br-usernet, addresses: [172.18.0.2/16, "fd00:18::2/64"],
       gateway: 172.18.0.1, gateway6: "fd00:18::1", mac: "02:42:ac:12:00:02", hairpin: false, mtu: 1500, ipv6: true}
    - {name: veth28425b5, peer: eth0, peer_netns: web, master: docker0, addresses: [172.17.0.2/16],
       gateway: 172.17.0.1, mac: "02:42:ac:11:00:02", hairpin: true, mtu: 1500, ipv6: false}
rendered:
  description: The commands (C(ip), C(bridge) and, for IPv6, C(sysctl)) that build O(config) on an empty host.
  returned: when state is rendered
  type: list
  elements: str
  sample:
    - ip link add veth28425b5 mtu 1500 type veth peer name eth0 mtu 1500 netns web
    - ip link set veth28425b5 alias 'linuxnet.bridge veth peer=eth0 netns=web'
    - ip netns exec web sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1
    - ip link set veth28425b5 master docker0
    - bridge link set dev veth28425b5 hairpin on
    - ip link set veth28425b5 up
    - ip -n web link set eth0 address 02:42:ac:11:00:02
    - ip -n web addr add 172.17.0.2/16 dev eth0
    - ip -n web link set eth0 up
    - ip -n web route replace default via 172.17.0.1
"""

from ansible_collections.linuxnet.bridge.plugins.module_utils._zipimport import compile_once

compile_once()  # first: the module_utils imported below come from the AnsiballZ zip, compiled once each

from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine
from ansible_collections.linuxnet.bridge.plugins.module_utils._veth import ITEM_OPTIONS, VethResource


def main() -> None:
    _engine.main(VethResource, ITEM_OPTIONS)


if __name__ == "__main__":
    main()
