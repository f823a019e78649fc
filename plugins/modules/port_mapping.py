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
  - On a bridge whose network M(linuxnet.bridge.firewall) protects (O(linuxnet.bridge.firewall#module:config[].gateway_mode=nat),
    the default), each published port also gets Docker 28.0's raw PREROUTING rule
    C(-d <container_ip>/32 ! -i <bridge> -p <proto> -m <proto> --dport <container_port> -j DROP). The
    port is then reachable through the DNAT only, not by routing to the container's address. The
    module reads the protection from the firewall's FORWARD rules, so run the firewall first.
  - A port range is one rule per place, so a 1000-port range costs four rules and no process.
  - Publishing on C(127.0.0.1) works from the host itself through the OUTPUT jump and
    C(route_localnet), which M(linuxnet.bridge.firewall) enables on its bridges together with a guard
    rule against CVE-2020-8558.
  - The chains belong to M(linuxnet.bridge.firewall), which must have run with the same
    O(chain_prefix). All changes go in one C(iptables-restore --noflush) per table (with
    O(firewall_backend=nftables), in one C(nft -f)).
  - With O(state=merged) and O(state=replaced), O(config[].network) and O(config[].sources) left out keep
    the mapping's current values (a port open to some sources stays so). With O(state=overridden) the
    config is the whole list of mappings, and O(config[].sources) left out means every source.
  - When a UDP mapping is added, removed, moved to another endpoint or given other O(config[].sources),
    the module deletes the conntrack entries of its host port (C(conntrack -D -p udp --orig-port-dst <port>),
    one per port of a range, after the new rules are in), as CNI's portmap does. Otherwise a UDP flow
    that never pauses would keep its old destination. Without the C(conntrack) tool (package
    C(conntrack), C(conntrack-tools) on RHEL) the module warns and goes on. The cleanup is listed
    in RV(commands) and skipped in check mode.
  - Unlike Docker, the module binds no host socket, so it cannot refuse a host port that a host service
    already uses. The DNAT takes that port's traffic from outside before the service sees it (publishing
    C(22) would cut off SSH, including the connection Ansible uses). When a run adds a mapping whose host
    port (any port of a range) a socket of the host serves, the module warns, naming the port and the
    socket's address. That is a TCP socket in LISTEN state or an unconnected UDP socket, read from
    C(/proc/net/tcp), C(tcp6), C(udp) and C(udp6), or a listening SCTP endpoint, read from
    C(/proc/net/sctp/eps) (there only while the C(sctp) kernel module is loaded; without it no SCTP socket
    exists and nothing is checked), bound to the wildcard address or to the mapping's host address (to any
    address of its family, C(127.0.0.1) included, for a mapping on all of them; any address of a multi-homed
    SCTP endpoint). The check runs only when a mapping is added, so a re-run with nothing to change warns no
    more and reads no socket table.
extends_documentation_fragment:
  - linuxnet.bridge.resource.parsed
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
        description:
          - IPv4 or IPv6 address of the endpoint; must be inside a subnet of the bridge's addresses.
          - Its family is the mapping's. An IPv6 mapping needs a network with C(subnet6) (M(linuxnet.bridge.firewall)),
            and its rules go to ip6tables (or the table C(ip6 <prefix>)).
          - Docker publishes C(-p 8080:80) of a dual-stack endpoint on both families. Here that is two
            mappings with the same host port, one per address of the endpoint. They do not conflict.
        type: str
        required: true
      container_port:
        description: Port or range such as C(8000-8010). Not with O(config[].publish).
        type: str
      host_port:
        description: Port or range of the same length; defaults to O(config[].container_port).
        type: str
      host_ip:
        description:
          - Host address the port is published on; default every local address of the mapping's family
            (V(0.0.0.0) and V(::) mean the same).
          - It must be of O(config[].container_ip)'s family (kernel NAT does not translate between families).
          - V(::1) is refused. IPv6 has no C(route_localnet), so a packet from the loopback address is never
            routed to a bridge. Publish on C(127.0.0.1) or on the host's own IPv6 address instead.
          - Multicast addresses (C(224.0.0.0/4), C(ff00::/8)), C(255.255.255.255) and C(0.0.0.0/8) other than
            V(0.0.0.0) are refused. They are never an address of the host (Docker fails with "cannot assign
            requested address").
          - An address that the host does not have at the time of the run gives a warning, not an error. A
            keepalived/VRRP virtual address, for example, may come later. Until it is there, the mapping takes no traffic.
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
          - An IPv6 host address is written in brackets, C([::]:8080:80) or C([2001:db8::1]:8080:80).
        type: str
      network:
        description:
          - A label shown in O(state=gathered) and messages.
          - Left out with O(state=merged) or O(state=replaced), the mapping's current label.
        type: str
      sources:
        description:
          - Beyond Docker (moby#22054, "Docker bypasses ufw"). Only packets from these networks
            (C(192.0.2.0/24), or C(2001:db8::/48) for an IPv6 mapping; an address alone is a C(/32) or C(/128)) are DNATed and accepted. There is one DNAT and
            one forward ACCEPT rule per source (C(-s <source>) with iptables, C(ip saddr <source>) with
            nftables). Other sources reach the host's own port, as if the port were not published.
          - Direct routing to O(config[].container_ip) stays closed for every source, allowed ones too
            (the raw PREROUTING DROP is one rule without a source).
          - Left out, every source may connect, as with Docker (a new mapping, O(state=overridden)). Left out
            with O(state=merged) or O(state=replaced), a mapping keeps its sources. O(state=merged) adds the
            given sources to the mapping's, O(state=replaced) and O(state=overridden) make them exactly the
            given ones; to open a limited port to every source, use O(state=overridden) or delete the mapping first.
          - An empty list and V(0.0.0.0/0) are refused. Sources are reported sorted and without duplicates.
          - For a filter that covers every published port at once, use the C(<P>-USER) chain of
            M(linuxnet.bridge.firewall) instead.
        type: list
        elements: str
seealso:
  - module: linuxnet.bridge.firewall
"""

EXAMPLES = r"""
- name: A web container on port 81 of one host address, and a UDP service on 127.0.0.1 only
  linuxnet.bridge.port_mapping:
    config:
      - bridge: docker0
        container_ip: 172.17.0.5
        publish: "172.16.211.128:81:80"
      - bridge: br-usernet
        container_ip: 172.18.0.2
        publish: "127.0.0.1:8080:80/udp"

- name: Docker's -p 8080:80 on a dual-stack endpoint (both families), and one port on IPv6 only
  linuxnet.bridge.port_mapping:
    config:
      - bridge: br-dual
        container_ip: 172.21.0.2
        publish: "8080:80"
      - bridge: br-dual
        container_ip: fd00:21::2
        publish: "8080:80"
      - bridge: br-dual
        container_ip: fd00:21::2
        publish: "[2001:db8::1]:8443:443"

- name: A 1000-port range (four rules, no process)
  linuxnet.bridge.port_mapping:
    config:
      - bridge: docker0
        container_ip: 172.17.0.6
        container_port: "20000-20999"
        host_port: "20000-20999"
        protocol: udp

- name: Host port 8080 now goes to 172.17.0.6 (a mapping is identified by host address, port and protocol)
  linuxnet.bridge.port_mapping:
    state: replaced
    config:
      - bridge: docker0
        container_ip: 172.17.0.6
        publish: "8080:80"

- name: Exactly these mappings; every other mapping this collection made is removed
  linuxnet.bridge.port_mapping:
    state: overridden
    config:
      - bridge: docker0
        container_ip: 172.17.0.5
        publish: "8080:80"

- name: Unpublish port 81 of 172.17.0.5
  linuxnet.bridge.port_mapping:
    state: deleted
    config:
      - bridge: docker0
        container_ip: 172.17.0.5
        publish: "172.16.211.128:81:80"

- name: Port 8443 of 172.17.0.7, reachable from the office LAN and one admin host only
  linuxnet.bridge.port_mapping:
    config:
      - bridge: docker0
        container_ip: 172.17.0.7
        publish: "8443:443"
        sources: [192.0.2.0/24, 198.51.100.7]

- name: Read the published ports back from the live ruleset
  linuxnet.bridge.port_mapping:
    state: gathered
  register: published

- name: Published ports in a ruleset saved elsewhere (iptables-save), read offline
  linuxnet.bridge.port_mapping:
    state: parsed
    chain_prefix: DOCKER
    running_config: "{{ lookup('ansible.builtin.file', 'edge1-iptables-save.txt') }}"
  register: saved

- name: Show the iptables-restore payload without touching the host
  linuxnet.bridge.port_mapping:
    state: rendered
    config:
      - bridge: docker0
        container_ip: 172.17.0.2
        publish: "8080:80"
"""

RETURN = r"""
before:
  description: The mappings found in the live ruleset before the run, in the shape of RV(gathered).
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
  sample: []
after:
  description: Mappings after the run, one per host address, port and protocol; in check mode, the prediction.
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: dict
  sample:
    - {bridge: docker0, container_ip: 172.17.0.2, container_port: "80", host_port: "8080", network: bridge, protocol: tcp}
commands:
  description:
    - The changes as C(iptables)/C(ip6tables) command lines, applied as one C(iptables-restore --noflush) per table
      and family; with O(firewall_backend=nftables), C(nft) lines applied together in one C(nft -f).
    - Then the C(conntrack -D) cleanup of changed UDP mappings (skipped in check mode).
  returned: when state is merged, replaced, overridden or deleted
  type: list
  elements: str
  sample:
    - iptables -t filter -F LINUXNET
    - iptables -t filter -A LINUXNET -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
    - iptables -t nat -F LINUXNET
    - iptables -t nat -A LINUXNET -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80
    - iptables -t nat -A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE
    - iptables -t raw -A PREROUTING -d 172.17.0.2/32 ! -i docker0 -p tcp -m tcp --dport 80 -j DROP
gathered:
  description: Mappings rebuilt from the live ruleset (IPv4 and IPv6), in the shape of O(config).
  returned: when state is gathered
  type: list
  elements: dict
  sample:
    - {bridge: docker0, container_ip: 172.17.0.2, container_port: "80", host_port: "8080", network: bridge, protocol: tcp}
    - {bridge: docker0, container_ip: 172.17.0.3, container_port: "53", host_ip: 127.0.0.1, host_port: "5353", network: bridge,
       protocol: udp}
parsed:
  description: Mappings of the O(running_config) ruleset, in the shape of O(config).
  returned: when state is parsed
  type: list
  elements: dict
  sample:
    - {bridge: docker0, container_ip: 172.17.0.2, container_port: "80", host_ip: 172.16.211.128, host_port: "81",
       protocol: tcp}
rendered:
  description:
    - The C(iptables-restore) payload, line by line, that publishes O(config) on a host without mappings (IPv6
      mappings follow after the line C(# ip6tables-restore --noflush)).
    - With O(firewall_backend=nftables), the lines of the C(nft -f) script.
  returned: when state is rendered
  type: list
  elements: str
  sample:
    - "*filter"
    - ":LINUXNET - [0:0]"
    - "-A LINUXNET -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT"
    - "COMMIT"
    - "*nat"
    - ":LINUXNET - [0:0]"
    - "-A LINUXNET -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80"
    - "-A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE"
    - "COMMIT"
    - "*raw"
    - "-A PREROUTING -d 172.17.0.2/32 ! -i docker0 -p tcp -m tcp --dport 80 -j DROP"
    - "COMMIT"
"""

from ansible_collections.linuxnet.bridge.plugins.module_utils._zipimport import compile_once

compile_once()  # first: the module_utils imported below come from the AnsiballZ zip, compiled once each

from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine
from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import MODULE_OPTIONS
from ansible_collections.linuxnet.bridge.plugins.module_utils._port_mapping import ITEM_OPTIONS, PortMappingResource


def main() -> None:
    _engine.main(PortMappingResource, ITEM_OPTIONS, MODULE_OPTIONS, parsed=True)


if __name__ == "__main__":
    main()
