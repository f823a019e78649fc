"""Dual-stack networks in the role's planner (issue 14): ``subnet6``/``gateway6`` on networks,
``address6`` on endpoints' network items, stable IPv6 allocation from the live veths (pure).

The same plan against a kernel, with IPv6 traffic: tests/integration/test_dual_stack.py.

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_topology_dual_stack.py -q``
"""

from __future__ import annotations

import pytest

from .fixtures.topology import gathered, plan, rejected, veths_of

DUAL = {"name": "dual", "subnet": "172.20.0.0/16", "subnet6": "fd00:20::/64"}
V4 = {"name": "v4only", "subnet": "172.21.0.0/16"}


def six(p: dict) -> dict:
    return {e["name"]: e.get("networks6", {}) for e in p["endpoints"]}


def test_gateway6_defaults_to_the_first_address_and_bridge_and_veths_get_ipv6():
    p = plan([DUAL, V4], [{"name": "a", "network": "dual"}, {"name": "b", "networks": ["v4only", "dual"]}])
    assert p["bridge"][0]["addresses"] == ["172.20.0.1/16", "fd00:20::1/64"]
    assert p["bridge"][1]["addresses"] == ["172.21.0.1/16"]
    assert six(p) == {"a": {"dual": "fd00:20::2"}, "b": {"dual": "fd00:20::3"}}
    a, = veths_of(p, "a")
    assert (a["addresses"], a["gateway"], a["gateway6"], a["ipv6"]) == (
        ["172.20.0.2/16", "fd00:20::2/64"], "172.20.0.1", "fd00:20::1", True)
    b0, b1 = veths_of(p, "b")
    # IPv4 routes through the first network, IPv6 through the first one with IPv6 (Docker 28)
    assert (b0["addresses"], b0.get("gateway"), b0.get("gateway6"), b0.get("ipv6")) == (["172.21.0.2/16"], "172.21.0.1", None, None)
    assert (b1.get("gateway"), b1["gateway6"], b1["ipv6"]) == (None, "fd00:20::1", True)
    assert [n["subnet6"] for n in p["networks"]] == ["fd00:20::/64", None]


def test_explicit_gateway6_and_address6_are_honoured_and_the_rest_allocated_around_them():
    net = dict(DUAL, gateway6="fd00:20::fe")
    p = plan([net], [{"name": "a", "network": "dual"}, {"name": "b", "networks": [{"name": "dual", "address6": "fd00:20::2"}]}])
    assert p["bridge"][0]["addresses"][1] == "fd00:20::fe/64"
    assert six(p) == {"a": {"dual": "fd00:20::1"}, "b": {"dual": "fd00:20::2"}}


def test_ipv6_addresses_are_stable_across_a_run_that_adds_an_endpoint_before_the_others():
    first = plan([DUAL], [{"name": "a", "network": "dual"}, {"name": "b", "network": "dual"}])
    endpoints = [{"name": "z", "network": "dual"}, {"name": "a", "network": "dual"}, {"name": "b", "network": "dual"}]
    second = plan([DUAL], endpoints, gathered(first))
    assert six(second) == {"z": {"dual": "fd00:20::4"}, "a": {"dual": "fd00:20::2"}, "b": {"dual": "fd00:20::3"}}
    assert plan([DUAL], endpoints, gathered(second)) == second


def test_a_network_that_gains_ipv6_keeps_the_ipv4_addresses():
    first = plan([V4], [{"name": "a", "network": "v4only"}, {"name": "b", "network": "v4only"}])
    second = plan([dict(V4, subnet6="fd00:21::/64")], [{"name": "b", "network": "v4only"}, {"name": "a", "network": "v4only"}],
                  gathered(first))
    assert {e["name"]: (e["networks"], e["networks6"]) for e in second["endpoints"]} == {
        "b": ({"v4only": "172.21.0.3"}, {"v4only": "fd00:21::2"}), "a": ({"v4only": "172.21.0.2"}, {"v4only": "fd00:21::3"})}


BAD = [
    ({"subnet6": "fd00:20::1/64"}, "linuxnet_networks[0].subnet6: 'fd00:20::1/64' is not a valid subnet"),
    ({"subnet6": "fd00:20::/48"}, "linuxnet_networks[0].subnet6: 'fd00:20::/48' has a prefix length outside /64../120"),
    ({"subnet6": "fd00:20::/124"}, "linuxnet_networks[0].subnet6: 'fd00:20::/124' has a prefix length outside /64../120"),
    ({"subnet6": "fe80::/64"}, "linuxnet_networks[0].subnet6: 'fe80::/64' is a link-local, multicast, loopback or reserved range"),
    ({"subnet6": "ff05::/64"}, "linuxnet_networks[0].subnet6: 'ff05::/64' is a link-local"),
    ({"subnet6": "172.30.0.0/16"}, "linuxnet_networks[0].subnet6: '172.30.0.0/16' is not an IPv6 subnet"),
    ({"subnet6": "fd00:20::/64\n"}, "linuxnet_networks[0].subnet6: 'fd00:20::/64\\n' is not a valid subnet"),
    ({"subnet6": "fd00:20::/64", "gateway6": "fd00:21::1"}, "linuxnet_networks[0].gateway6: fd00:21::1 is outside fd00:20::/64"),
    ({"subnet6": "fd00:20::/64", "gateway6": "fd00:20::"}, "linuxnet_networks[0].gateway6: fd00:20:: is the subnet-router anycast"),
    ({"subnet6": "fd00:20::/64", "gateway6": "172.20.0.1"}, "linuxnet_networks[0].gateway6: '172.20.0.1' is not an IPv6 address"),
    ({"gateway6": "fd00:20::1"}, "linuxnet_networks[0].gateway6: given without subnet6"),
]


@pytest.mark.parametrize("extra, message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_subnet6_and_gateway6_name_the_field(extra, message):
    got = rejected([{"name": "n", "subnet": "172.20.0.0/16", **extra}], [])
    assert got.startswith(message), got


def test_overlapping_subnet6_names_the_other_network():
    got = rejected([DUAL, dict(V4, subnet6="fd00:20::100/120")], [])
    assert got == "linuxnet_networks[1].subnet6: fd00:20::100/120 overlaps the subnet6 of network dual"


BAD_ADDRESS6 = [
    ("fd00:21::2", "linuxnet_endpoints[0].networks[0].address6: fd00:21::2 is outside fd00:20::/64"),
    ("fd00:20::1", "linuxnet_endpoints[0].networks[0].address6: fd00:20::1 is the gateway6 of dual"),
    ("fd00:20::", "linuxnet_endpoints[0].networks[0].address6: fd00:20:: is the subnet-router anycast address"),
    ("172.20.0.5", "linuxnet_endpoints[0].networks[0].address6: '172.20.0.5' is not an IPv6 address"),
    ("fd00:20::2\n", "linuxnet_endpoints[0].networks[0].address6: 'fd00:20::2\\n' is not a valid IP address"),
]


@pytest.mark.parametrize("address6, message", BAD_ADDRESS6, ids=[str(i) for i in range(len(BAD_ADDRESS6))])
def test_bad_address6_names_the_field(address6, message):
    got = rejected([DUAL], [{"name": "a", "networks": [{"name": "dual", "address6": address6}]}])
    assert got.startswith(message), got


def test_address6_on_an_ipv4_only_network_and_duplicates_are_refused():
    assert rejected([V4], [{"name": "a", "networks": [{"name": "v4only", "address6": "fd00::2"}]}]) == (
        "linuxnet_endpoints[0].networks[0].address6: network v4only has no subnet6")
    twice = [{"name": "a", "networks": [{"name": "dual", "address6": "fd00:20::9"}]},
             {"name": "b", "networks": [{"name": "dual", "address6": "fd00:20::9"}]}]
    assert rejected([DUAL], twice) == (
        "linuxnet_endpoints[1].networks[0].address6: address fd00:20::9 on dual is already used by endpoint a")


def test_firewall_items_carry_subnet6_of_dual_stack_networks_only():
    p = plan([DUAL, V4], [])
    assert [(f["name"], f.get("subnet6")) for f in p["firewall"]] == [("dual", "fd00:20::/64"), ("v4only", None)]
    assert "subnet6" not in p["firewall"][1]  # IPv4-only items keep the keys they had


def test_ports_of_a_dual_stack_endpoint_are_published_on_both_families():
    """More cases (host addresses, sources per family): test_topology_dual_stack_ports.py."""
    p = plan([DUAL], [{"name": "web", "network": "dual", "ports": ["8080:80"]}])
    assert [(m["container_ip"], m["publish"]) for m in p["port_mapping"]] == [("172.20.0.2", "8080:80"), ("fd00:20::2", "8080:80")]


def test_reachability_adds_ipv6_pairs_between_endpoints_that_both_have_ipv6():
    from ansible_collections.linuxnet.bridge.plugins.module_utils._reachability import reachability

    other = {"name": "other", "subnet": "172.22.0.0/16", "subnet6": "fd00:22::/64", "icc": False}
    p = plan([DUAL, V4, other], [{"name": "a", "network": "dual"}, {"name": "b", "network": "dual"},
                                 {"name": "c", "network": "v4only"}, {"name": "o1", "network": "other"},
                                 {"name": "o2", "network": "other"}])
    six = {(c["source"], c["target"]): (c["expect"], c["why"]) for c in reachability(p) if ":" in c["address"]}
    assert six == {
        ("a", "b"): (True, "same network dual over IPv6"), ("b", "a"): (True, "same network dual over IPv6"),
        ("o1", "o2"): (False, "same network other over IPv6 with icc off"),
        ("o2", "o1"): (False, "same network other over IPv6 with icc off"),
        ("a", "o1"): (False, "different networks over IPv6 (isolation)"), ("a", "o2"): (False, "different networks over IPv6 (isolation)"),
        ("b", "o1"): (False, "different networks over IPv6 (isolation)"), ("b", "o2"): (False, "different networks over IPv6 (isolation)"),
        ("o1", "a"): (False, "different networks over IPv6 (isolation)"), ("o1", "b"): (False, "different networks over IPv6 (isolation)"),
        ("o2", "a"): (False, "different networks over IPv6 (isolation)"), ("o2", "b"): (False, "different networks over IPv6 (isolation)"),
    }
    assert [c["address"] for c in reachability(p) if (c["source"], c["target"]) == ("a", "b")] == ["172.20.0.3", "fd00:20::3"]
