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
    administrator; it is created with a C(RETURN) rule and never flushed (a C(RETURN) lost to a
    foreign C(iptables -F) is appended again).
  - Networks in O(config[].gateway_mode=nat) (the default) are protected as Docker 28/29 does it.
    C(! -i <bridge> -o <bridge> -j DROP) after the jump into C(<P>) drops everything that enters the
    bridge from outside it unless a published port accepted it, whatever the FORWARD policy (it stays
    as it was after a foreign C(nft flush ruleset), and the next run closes the endpoints again).
  - DNATed packets from other networks reach the ports published in a network (Docker 28+,
    moby#49509); packets sent from another network to an endpoint's address stay isolated.
  - All changes of one run go in one C(iptables-restore --noflush) transaction per table (with
    O(firewall_backend=nftables), in one C(nft -f) for both families); rules and chains the collection
    does not own are never touched. If the nat transaction fails, the filter table is put back as it was.
  - Also sets C(net.ipv4.ip_forward=1) (and, if it had to, the FORWARD policy to DROP, as Docker
    does), C(net.bridge.bridge-nf-call-iptables=1), and C(route_localnet=1) on managed bridges
    that exist, together with kube-proxy's guard rule against CVE-2020-8558 in INPUT. The guard is
    removed with the last network of the last O(chain_prefix) only if this collection inserted it. An
    identical rule that was there before (kube-proxy's, an administrator's) is used and left in place.
  - With O(state=merged) and O(state=replaced), options left out keep the network's current value (an
    internal network stays internal); a new network gets the defaults. With O(state=overridden) the
    config is the whole list of networks, and options left out take their defaults.
extends_documentation_fragment:
  - linuxnet.bridge.resource.parsed
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
      subnet6:
        description:
          - IPv6 subnet of a dual-stack network, for example C(fd00:18::/64) (C(/64) to C(/120); unique local
            addresses are fine, link-local, multicast, loopback and reserved ranges are refused; subnets of
            two networks must not overlap).
          - The network then gets the same rules in the IPv6 ruleset (ip6tables, or the table C(ip6 <prefix>)
            with O(firewall_backend=nftables)), that is ICC, isolation, O(config[].internal), masquerade and the
            O(config[].gateway_mode) protection. The module also sets C(net.ipv6.conf.all.forwarding=1) (and,
            as dockerd, the IPv6 FORWARD policy to DROP when forwarding was off) and
            C(net.bridge.bridge-nf-call-ip6tables=1). Hosts without a dual-stack network keep their IPv6 settings.
          - The bridge's IPv6 gateway address and the endpoints' addresses are not this module's.
          - Left out with O(state=merged) or O(state=replaced), the network keeps its subnet6; V("") makes it IPv4-only.
        type: str
      icc:
        description:
          - Let endpoints of this network talk to each other.
          - Default V(true) for a new network and with O(state=overridden); left out with O(state=merged)
            or O(state=replaced), the network's current value.
        type: bool
      internal:
        description:
          - No traffic in or out of the network, no NAT (Docker's C(--internal)).
          - Default V(false) for a new network and with O(state=overridden); left out with O(state=merged)
            or O(state=replaced), the network's current value.
        type: bool
      masquerade:
        description:
          - Masquerade traffic leaving the network (Docker's C(enable_ip_masquerade)).
          - Default V(true) for a new network and with O(state=overridden); left out with O(state=merged)
            or O(state=replaced), the network's current value.
        type: bool
      masquerade6:
        description:
          - Masquerade IPv6 traffic leaving the network (NAT66). Only with O(config[].subnet6).
          - Defaults to O(config[].masquerade), as Docker's one C(enable_ip_masquerade) covers both families
            (left out with O(state=merged) or O(state=replaced), the network's current value).
            V(false) gives routed IPv6, where outside hosts see the endpoints' own addresses; nothing
            unpublished enters the network from outside in O(config[].gateway_mode=nat) either way.
        type: bool
      snat_source:
        description:
          - SNAT to this address instead of MASQUERADE (Docker's C(host_ipv4)); IPv4 only (IPv6 masquerades).
          - Left out with O(state=merged) or O(state=replaced), the network's current value; V("") turns
            SNAT off (MASQUERADE).
        type: str
      gateway_mode:
        description:
          - Docker's C(com.docker.network.bridge.gateway_mode_ipv4).
          - V(nat) protects the network. Nothing enters the bridge from outside it unless it was published, and
            M(linuxnet.bridge.port_mapping) adds Docker 28's raw PREROUTING rule per published port. A host
            that routes the subnet via this host cannot reach container addresses directly.
          - V(nat-unprotected) leaves both to the FORWARD policy. These are exactly the rules of dockerd 20.10-27
            (userland proxy off), plus the way in for published ports from other networks.
          - Internal networks are closed either way.
          - Default V(nat) for a new network and with O(state=overridden); left out with O(state=merged)
            or O(state=replaced), the network's current value.
        type: str
        choices: [nat, nat-unprotected]
notes:
  - O(state=rendered) returns the payload that builds O(config) on an empty host, C(iptables-restore)
    lines (then, for dual-stack networks, C(ip6tables-restore) lines) or, with O(firewall_backend=nftables),
    the C(nft -f) script.
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
      - name: dualstack
        bridge: br-dual
        subnet: 172.21.0.0/16
        subnet6: fd00:21::/64

- name: Show the iptables-restore payload
  linuxnet.bridge.firewall:
    state: rendered
    chain_prefix: DOCKER
    config:
      - name: bridge
        bridge: docker0
        subnet: 172.17.0.0/16
  register: payload

- name: usernet exactly as given (attributes left out are not changed)
  linuxnet.bridge.firewall:
    state: replaced
    config:
      - name: usernet
        bridge: br-usernet
        subnet: 172.18.0.0/16
        icc: true

- name: Remove the rules of usernet; Docker's and other tools' rules stay
  linuxnet.bridge.firewall:
    state: deleted
    config:
      - name: usernet
        bridge: br-usernet
        subnet: 172.18.0.0/16

- name: Read the managed networks back from the live ruleset
  linuxnet.bridge.firewall:
    state: gathered
  register: networks

- name: Networks in a ruleset saved elsewhere (iptables-save), read offline
  linuxnet.bridge.firewall:
    state: parsed
    chain_prefix: DOCKER
    running_config: "{{ lookup('ansible.builtin.file', 'edge1-iptables-save.txt') }}"
  register: saved

- name: Networks of a host with the nftables backend, from its nft list ruleset text
  linuxnet.bridge.firewall:
    state: parsed
    running_config: "{{ lookup('ansible.builtin.file', 'edge2-nft-ruleset.txt') }}"
  register: saved_nft
"""

RETURN = r"""
before:
  description: The managed networks found in the live ruleset before the run, in the shape of RV(gathered).
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
  sample: []
after:
  description: Networks after the run, read back from the ruleset; in check mode, the prediction.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
  sample:
    - {name: usernet, bridge: br-usernet, subnet: 172.18.0.0/16, icc: false, internal: false, masquerade: true, gateway_mode: nat}
commands:
  description:
    - The changes as command lines, and the C(sysctl) (and C(modprobe)) commands the module runs after them.
    - C(iptables)/C(ip6tables) lines, applied as one C(iptables-restore --noflush) per table and family; with
      O(firewall_backend=nftables), C(nft) lines (for example C(nft 'add chain ip linuxnet filter-LINUXNET')),
      applied together in one C(nft -f). A switch of backend lists the removal of the other backend's rules too.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: str
  sample: ["iptables -t filter -N LINUXNET", "iptables -t filter -I FORWARD 1 -j LINUXNET-USER", "sysctl -w net.ipv4.ip_forward=1"]
gathered:
  description: Networks rebuilt from the live ruleset, in the shape of O(config).
  returned: when state is gathered
  type: list
  elements: dict
  sample:
    - {name: bridge, bridge: docker0, subnet: 172.17.0.0/16, icc: true, internal: false, masquerade: true, gateway_mode: nat}
    - {name: usernet, bridge: br-usernet, subnet: 172.18.0.0/16, icc: false, internal: false, masquerade: true, gateway_mode: nat}
parsed:
  description: Networks of the O(running_config) ruleset, in the shape of O(config) (named after their bridges).
  returned: when state is parsed
  type: list
  elements: dict
  sample:
    - {name: docker0, bridge: docker0, subnet: 172.17.0.0/16, icc: false, internal: false, masquerade: true,
       gateway_mode: nat-unprotected}
rendered:
  description:
    - Lines of the C(iptables-restore) payload that builds O(config) on an empty host (for dual-stack networks,
      followed by the C(ip6tables-restore) payload after the line C(# ip6tables-restore --noflush)).
    - With O(firewall_backend=nftables), the lines of the C(nft -f) script.
  returned: when state is rendered
  type: list
  elements: str
  sample:
    - "*filter"
    - ":LINUXNET - [0:0]"
    - ":LINUXNET-USER - [0:0]"
    - ":LINUXNET-ISOLATION-STAGE-1 - [0:0]"
    - ":LINUXNET-ISOLATION-STAGE-2 - [0:0]"
    - "-A LINUXNET-USER -j RETURN"
    - "-A LINUXNET-ISOLATION-STAGE-1 ! -s 172.18.0.0/16 -o br-backend -j DROP"
    - "-A LINUXNET-ISOLATION-STAGE-1 ! -d 172.18.0.0/16 -i br-backend -j DROP"
    - "-A LINUXNET-ISOLATION-STAGE-1 -j RETURN"
    - "-A LINUXNET-ISOLATION-STAGE-2 -m conntrack --ctstate DNAT --ctdir REPLY -j RETURN"
    - "-A LINUXNET-ISOLATION-STAGE-2 -j RETURN"
    - "-I INPUT 1 ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
    - "-I FORWARD 1 -j LINUXNET-USER"
    - "-I FORWARD 2 -j LINUXNET-ISOLATION-STAGE-1"
    - "-I FORWARD 3 -i br-backend -o br-backend -j ACCEPT"
    - "COMMIT"
    - "*nat"
    - ":LINUXNET - [0:0]"
    - "-I PREROUTING 1 -m addrtype --dst-type LOCAL -j LINUXNET"
    - "-I OUTPUT 1 -m addrtype --dst-type LOCAL -j LINUXNET"
    - "COMMIT"
"""

from ansible_collections.linuxnet.bridge.plugins.module_utils._zipimport import compile_once

compile_once()  # first: the module_utils imported below come from the AnsiballZ zip, compiled once each

from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine
from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import ITEM_OPTIONS, MODULE_OPTIONS, FirewallResource


def main() -> None:
    _engine.main(FirewallResource, ITEM_OPTIONS, MODULE_OPTIONS, parsed=True)


if __name__ == "__main__":
    main()
