"""The firewall traffic topology and its IPv4 traffic expectations, shared by ``test_firewall.py`` (the
iptables-nft, iptables-legacy and nftables labs) and ``test_nftables.py`` (its nftables lab with foreign
tables and published ports).

* ``NETWORKS``/``ENDPOINTS``: four networks (plain, ``icc: false``, internal, ``snat_source``) on
  ``linuxnet1``, two endpoints each (one on the snat network); ``SNAT_ADDR``, the snat network's source
  address, an extra address of ``linuxnet1`` on the lab LAN.
* ``TRAFFIC_CHECKS``: each a check of what passes and what does not, given the lab's
  :class:`helpers.Traffic` (listeners in every endpoint and on ``outside``, which has routes to the subnets).
"""

from __future__ import annotations

from tests.integration.helpers import ADDR, HOST, OUT_ADDR, OUTSIDE, PORT, Traffic

SNAT_ADDR = "172.16.211.130"

NETWORKS = [
    {"name": "front", "bridge": "lnx-front", "subnet": "172.18.0.0/16"},
    {"name": "back", "bridge": "lnx-back", "subnet": "172.19.0.0/16", "icc": False},
    {"name": "intern", "bridge": "lnx-int", "subnet": "172.20.0.0/16", "internal": True},
    {"name": "snat", "bridge": "lnx-snat", "subnet": "172.21.0.0/16", "snat_source": SNAT_ADDR},
]
ENDPOINTS = {  # netns: (bridge, address)
    "f1": ("lnx-front", "172.18.0.2"), "f2": ("lnx-front", "172.18.0.3"),
    "b1": ("lnx-back", "172.19.0.2"), "b2": ("lnx-back", "172.19.0.3"),
    "i1": ("lnx-int", "172.20.0.2"), "i2": ("lnx-int", "172.20.0.3"),
    "s1": ("lnx-snat", "172.21.0.2"),
}


def check_same_network_reaches_each_other_and_outside(traffic: Traffic) -> None:
    traffic.expect(HOST, {
        ("f1", "tcp", "172.18.0.3", PORT): "172.18.0.2",  # bridged, no NAT inside the network
        ("f2", "tcp", "172.18.0.2", PORT): "172.18.0.3",
        ("f1", "udp", "172.18.0.3", PORT): "172.18.0.2",
        ("f1", "tcp", OUT_ADDR, PORT): ADDR,  # masqueraded to the LAN address
        ("f2", "udp", OUT_ADDR, PORT): ADDR,
    })


def check_icc_off_blocks_the_network_but_not_the_way_out(traffic: Traffic) -> None:
    traffic.expect(HOST, {
        ("b1", "tcp", "172.19.0.3", PORT): False,
        ("b2", "tcp", "172.19.0.2", PORT): False,
        ("b1", "udp", "172.19.0.3", PORT): False,
        ("b1", "tcp", OUT_ADDR, PORT): ADDR,
        ("b2", "tcp", OUT_ADDR, PORT): ADDR,
    })


def check_networks_are_isolated_in_both_directions(traffic: Traffic) -> None:
    traffic.expect(HOST, {
        ("f1", "tcp", "172.19.0.2", PORT): False,
        ("b1", "tcp", "172.18.0.2", PORT): False,
        ("f1", "udp", "172.19.0.2", PORT): False,
        ("b1", "udp", "172.18.0.2", PORT): False,
        ("s1", "tcp", "172.18.0.2", PORT): False,
        ("f1", "tcp", "172.21.0.2", PORT): False,
    })


def check_internal_network_reaches_only_itself(traffic: Traffic) -> None:
    traffic.expect(HOST, {
        ("i1", "tcp", "172.20.0.3", PORT): "172.20.0.2",
        ("i2", "udp", "172.20.0.2", PORT): "172.20.0.3",
        ("i1", "tcp", OUT_ADDR, PORT): False,
        ("i1", "udp", OUT_ADDR, PORT): False,
        ("i1", "tcp", "172.18.0.2", PORT): False,
        ("f1", "tcp", "172.20.0.2", PORT): False,
        ("b1", "tcp", "172.20.0.2", PORT): False,
    })


def check_snat_source_is_what_outside_sees(traffic: Traffic) -> None:
    traffic.expect(HOST, {("s1", "tcp", OUT_ADDR, PORT): SNAT_ADDR, ("s1", "udp", OUT_ADDR, PORT): SNAT_ADDR})


def check_outside_and_unpublished_endpoints(traffic: Traffic) -> None:
    """outside has a route to every subnet. Internal networks are closed either way. The others are
    in gateway_mode nat (the default): Docker 28/29's per-network DROP closes them whatever the
    FORWARD policy (DROP on the iptables-nft host, ACCEPT on the iptables-legacy one). The
    nat-unprotected side (dockerd 20.10-27's behaviour) is in test_firewall_protection.py."""
    traffic.expect(OUTSIDE, {
        (None, "tcp", "172.20.0.2", PORT): False,
        (None, "udp", "172.20.0.3", PORT): False,
        (None, "tcp", "172.18.0.2", PORT): False,
        (None, "tcp", "172.19.0.2", PORT): False,
        (None, "udp", "172.21.0.2", PORT): False,
    })


#: The checks above in their order in test_firewall.py (test_nftables.py runs them all against its lab).
TRAFFIC_CHECKS = (
    check_same_network_reaches_each_other_and_outside,
    check_icc_off_blocks_the_network_but_not_the_way_out,
    check_networks_are_isolated_in_both_directions,
    check_internal_network_reaches_only_itself,
    check_snat_source_is_what_outside_sees,
    check_outside_and_unpublished_endpoints,
)
