"""The deployment planner of the role bridge_network and the filters around it (pure; no root,
no kernel).

``plan_deployment(networks, endpoints, current_veths)`` (``_topology``) turns the role's variables
into the ``config`` of every module; ``reachability()`` (``_reachability``) derives the checks
verify.yml runs, ``matrix`` and ``mismatches`` render their results; ``tree`` and ``mermaid``
(``_diagram``) draw a plan. ``current_veths`` is built
here in the shape the veth module's ``gathered`` returns (as the role passes it), so address
stability is pinned without a kernel. The role against a kernel is in tests/integration/test_role.py.

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_topology.py -q``
"""

from __future__ import annotations

import re

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._reachability import reachability
from ansible_collections.linuxnet.bridge.plugins.module_utils._topology import veth_name

from .fixtures.topology import (
    BACKNET,
    BRIDGE,
    PRIVNET,
    SEED_ENDPOINTS,
    SEED_NETWORKS,
    USERNET,
    addresses,
    gathered,
    hosts_file,
    netns_of,
    plan,
    rejected,
    veths_of,
)

# --------------------------------------------------------------------------------- networks


def test_gateway_defaults_to_the_first_address_and_explicit_is_honoured():
    p = plan([BRIDGE, dict(USERNET, gateway="172.18.0.254"), {"name": "tiny", "subnet": "192.0.2.8/29"}], [])
    assert {n["name"]: n["gateway"] for n in p["networks"]} == {
        "bridge": "172.17.0.1", "usernet": "172.18.0.254", "tiny": "192.0.2.9"}
    assert [b["addresses"] for b in p["bridge"]] == [["172.17.0.1/16"], ["172.18.0.254/16"], ["192.0.2.9/29"]]


def test_an_explicit_gateway_is_not_allocated_to_an_endpoint():
    p = plan([dict(BACKNET, gateway="10.30.0.2")], [{"name": "a", "network": "backnet"}, {"name": "b", "network": "backnet"}])
    assert addresses(p) == {"a": {"backnet": "10.30.0.1"}, "b": {"backnet": "10.30.0.3"}}


@pytest.mark.parametrize("gateway, message", [
    ("10.31.0.1", "linuxnet_networks[1].gateway: 10.31.0.1 is outside 10.30.0.0/24"),
    ("10.30.0.0", "linuxnet_networks[1].gateway: 10.30.0.0 is the network or broadcast address"),
    ("10.30.0.255", "linuxnet_networks[1].gateway: 10.30.0.255 is the network or broadcast address"),
    ("nope", "linuxnet_networks[1].gateway:"),
])
def test_bad_gateway_is_rejected_naming_the_field(gateway, message):
    assert rejected([BRIDGE, dict(BACKNET, gateway=gateway)], []).startswith(message)


def test_bridge_default_names():
    p = plan([BRIDGE, USERNET, {"name": "a-rather-long-network-name", "subnet": "10.1.0.0/16"},
              {"name": "named", "subnet": "10.2.0.0/16", "bridge": "mybr0"}], [])
    names = [b["name"] for b in p["bridge"]]
    assert names == ["docker0", "br-usernet", "br-a-rather-lon", "mybr0"]
    assert len(names[2].encode()) == 15
    assert [f["bridge"] for f in p["firewall"]] == names


@pytest.mark.parametrize("networks, message", [
    ([{"name": "x", "subnet": "10.0.0.0/8", "bridge": "br0"}, {"name": "y", "subnet": "10.1.0.0/16", "bridge": "br0"}],
     "linuxnet_networks[1].bridge: bridge br0 is already used by network x"),
    # two long names cut to the same 15 bytes
    ([{"name": "application-front", "subnet": "10.0.0.0/16"}, {"name": "application-back", "subnet": "10.1.0.0/16"}],
     "linuxnet_networks[1].bridge: bridge br-application- is already used by network application-front"),
    ([BRIDGE, dict(USERNET, name="bridge")], "linuxnet_networks[1].name: duplicate network bridge"),
    ([{"name": "x"}], "linuxnet_networks[0].subnet:"),
    ([{"name": "x", "subnet": "10.0.0.0/33"}], "linuxnet_networks[0].subnet:"),
    ([{"name": "bad name", "subnet": "10.0.0.0/8"}], "linuxnet_networks[0].name:"),
    ([{"name": "x", "subnet": "10.0.0.0/8", "bridge": "a-very-long-bridge"}], "linuxnet_networks[0].bridge:"),
    ([{"name": "x", "subnet": "10.0.0.0/8", "mtu": 40}], "linuxnet_networks[0].mtu: MTU 40 is outside 68..65535"),
])
def test_bad_networks_are_rejected_naming_the_field(networks, message):
    assert rejected(networks, []).startswith(message)


# --------------------------------------------------------------------------------- addresses


def test_explicit_addresses_are_honoured_and_the_rest_get_the_lowest_free():
    p = plan([BRIDGE], [
        {"name": "a", "network": "bridge"},
        {"name": "b", "networks": [{"name": "bridge", "address": "172.17.0.2"}]},  # explicit wins, even later in the list
        {"name": "c", "network": "bridge"},
        {"name": "d", "networks": [{"name": "bridge", "address": "172.17.9.9"}]},
    ])
    assert addresses(p) == {"a": {"bridge": "172.17.0.3"}, "b": {"bridge": "172.17.0.2"},
                            "c": {"bridge": "172.17.0.4"}, "d": {"bridge": "172.17.9.9"}}
    assert veths_of(p, "d")[0]["addresses"] == ["172.17.9.9/16"]


def test_seed_topology_addresses():
    p = plan(SEED_NETWORKS, SEED_ENDPOINTS)
    assert addresses(p) == {"c1": {"bridge": "172.17.0.2"}, "c2": {"bridge": "172.17.0.3"},
                            "web": {"bridge": "172.17.0.5"}, "c3": {"usernet": "172.18.0.2"}}


def test_a_full_network_is_reported():
    small = {"name": "small", "subnet": "192.0.2.0/30"}  # two hosts: the gateway and one endpoint
    assert addresses(plan([small], [{"name": "a", "network": "small"}])) == {"a": {"small": "192.0.2.2"}}
    assert rejected([small], [{"name": "a", "network": "small"}, {"name": "b", "network": "small"}]) == (
        "linuxnet_endpoints[1]: network small (192.0.2.0/30) has no free address left")


@pytest.mark.parametrize("address, message", [
    ("172.18.0.5", "linuxnet_endpoints[1].networks[0].address: 172.18.0.5 is outside 172.17.0.0/16"),
    ("172.17.0.1", "linuxnet_endpoints[1].networks[0].address: 172.17.0.1 is the gateway of bridge"),
    ("172.17.0.0", "linuxnet_endpoints[1].networks[0].address: 172.17.0.0 is the network or broadcast address"),
    ("172.17.255.255", "linuxnet_endpoints[1].networks[0].address: 172.17.255.255 is the network or broadcast address"),
    ("172.17.0.300", "linuxnet_endpoints[1].networks[0].address:"),
    ("172.17.0.2/16", "linuxnet_endpoints[1].networks[0].address:"),
    ("fd00::2", "linuxnet_endpoints[1].networks[0].address:"),
    # the same address as endpoint 0 (explicit there)
    ("172.17.0.7", "linuxnet_endpoints[1].networks[0].address: address 172.17.0.7 on bridge is already used by endpoint a"),
])
def test_bad_addresses_are_rejected_naming_the_field(address, message):
    endpoints = [{"name": "a", "networks": [{"name": "bridge", "address": "172.17.0.7"}]},
                 {"name": "b", "networks": [{"name": "bridge", "address": address}]}]
    assert rejected([BRIDGE], endpoints).startswith(message)


def test_duplicate_address_in_a_later_network_names_that_network():
    endpoints = [{"name": "a", "networks": [{"name": "usernet", "address": "172.18.0.9"}]},
                 {"name": "b", "networks": ["bridge", {"name": "usernet", "address": "172.18.0.9"}]}]
    assert rejected([BRIDGE, USERNET], endpoints).startswith("linuxnet_endpoints[1].networks[1].address: ")


@pytest.mark.parametrize("endpoint, message", [
    ({"name": "a", "network": "nonet"}, "linuxnet_endpoints[1].networks[0].name: unknown network 'nonet'"),
    ({"name": "a", "networks": ["bridge", "bridge"]}, "linuxnet_endpoints[1].networks[1].name: endpoint attached twice to bridge"),
    ({"name": "a"}, "linuxnet_endpoints[1].networks: an endpoint in bridge mode needs at least one network"),
    ({"name": "a", "network": "bridge", "mode": "container"}, "linuxnet_endpoints[1].mode: 'container' is not one of"),
    ({"name": "x", "network": "bridge"}, "linuxnet_endpoints[1].name: duplicate endpoint x"),
    ({"name": "../etc", "network": "bridge"}, "linuxnet_endpoints[1].name:"),
    ({"name": "a", "network": "bridge", "dns": {"nameservers": ["dns.example"]}}, "linuxnet_endpoints[1].dns.nameservers:"),
    ({"name": "a", "network": "bridge", "dns": {"search": ["bad domain"]}}, "linuxnet_endpoints[1].dns.search:"),
    ({"name": "a", "network": "bridge", "ports": ["80"]}, "linuxnet_endpoints[1].ports[0]: '80' leaves the host port"),
    ({"name": "a", "network": "bridge", "ports": ["81:80", "x:y"]}, "linuxnet_endpoints[1].ports[1]:"),
    ({"name": "a", "network": "bridge", "ports": [{"publish": "81:80", "sources": ["10.0.0.1/8"]}]},
     "linuxnet_endpoints[1].ports[0].sources[0]: '10.0.0.1/8' is not a valid IPv4 network"),
    ({"name": "a", "network": "bridge", "ports": [{"publish": "81:80", "sources": "10.0.0.0/8"}]},
     "linuxnet_endpoints[1].ports[0].sources: must be a non-empty list"),
])
def test_bad_endpoints_are_rejected_naming_the_field(endpoint, message):
    assert rejected([BRIDGE], [{"name": "x", "network": "bridge"}, endpoint]).startswith(message)


# --------------------------------------------------------------------------------- stability


def test_an_endpoint_keeps_its_address_when_another_is_added_before_it():
    first = plan([BRIDGE, USERNET], [{"name": "c1", "network": "bridge"}, {"name": "c2", "networks": ["bridge", "usernet"]}])
    assert addresses(first) == {"c1": {"bridge": "172.17.0.2"}, "c2": {"bridge": "172.17.0.3", "usernet": "172.18.0.2"}}
    endpoints = [{"name": "c0", "networks": ["usernet", "bridge"]}, {"name": "c1", "network": "bridge"},
                 {"name": "c2", "networks": ["bridge", "usernet"]}]
    second = plan([BRIDGE, USERNET], endpoints, gathered(first))
    assert addresses(second) == {
        "c0": {"usernet": "172.18.0.3", "bridge": "172.17.0.4"},  # newcomers get what is free
        "c1": {"bridge": "172.17.0.2"},
        "c2": {"bridge": "172.17.0.3", "usernet": "172.18.0.2"},
    }
    # without the live state the list order decides (what stability protects against)
    assert addresses(plan([BRIDGE, USERNET], endpoints))["c1"] == {"bridge": "172.17.0.3"}


def test_an_endpoint_keeps_its_address_when_another_before_it_is_removed():
    first = plan([BRIDGE], [{"name": f"c{i}", "network": "bridge"} for i in range(1, 5)])
    second = plan([BRIDGE], [{"name": "c1", "network": "bridge"}, {"name": "c3", "network": "bridge"},
                             {"name": "c4", "network": "bridge"}], gathered(first))
    assert addresses(second) == {"c1": {"bridge": "172.17.0.2"}, "c3": {"bridge": "172.17.0.4"}, "c4": {"bridge": "172.17.0.5"}}
    # the freed address goes to the next newcomer, the others stay
    third = plan([BRIDGE], [{"name": "c5", "network": "bridge"}, {"name": "c1", "network": "bridge"},
                            {"name": "c3", "network": "bridge"}, {"name": "c4", "network": "bridge"}], gathered(second))
    assert addresses(third) == {"c5": {"bridge": "172.17.0.3"}, "c1": {"bridge": "172.17.0.2"},
                                "c3": {"bridge": "172.17.0.4"}, "c4": {"bridge": "172.17.0.5"}}


def test_stable_plans_are_a_fixed_point():
    endpoints = [{"name": "a", "network": "bridge"}, {"name": "b", "networks": ["usernet", "bridge"]}, {"name": "n", "mode": "none"}]
    first = plan([BRIDGE, USERNET], endpoints)
    assert plan([BRIDGE, USERNET], endpoints, gathered(first)) == first
    assert plan([BRIDGE, USERNET], list(reversed(endpoints)), gathered(first))["veth"] == sorted(
        first["veth"], key=lambda vt: [e["name"] for e in reversed(endpoints)].index(vt["peer_netns"]))


def test_live_addresses_yield_to_explicit_ones_and_to_a_changed_network():
    first = plan([BRIDGE, BACKNET], [{"name": "a", "network": "bridge"}, {"name": "b", "networks": ["bridge", "backnet"]}])
    live = gathered(first)  # a: 172.17.0.2, b: 172.17.0.3 and 10.30.0.2
    # c claims a's address explicitly: a moves, b stays
    p = plan([BRIDGE, BACKNET], [{"name": "a", "network": "bridge"}, {"name": "b", "networks": ["bridge", "backnet"]},
                                 {"name": "c", "networks": [{"name": "bridge", "address": "172.17.0.2"}]}], live)
    assert addresses(p) == {"a": {"bridge": "172.17.0.4"}, "b": {"bridge": "172.17.0.3", "backnet": "10.30.0.2"},
                            "c": {"bridge": "172.17.0.2"}}
    # backnet renumbered, its gateway moved onto b's old address: b is re-allocated there, a keeps its address
    p = plan([BRIDGE, {"name": "backnet", "subnet": "10.30.0.0/24", "gateway": "10.30.0.2"}],
             [{"name": "a", "network": "bridge"}, {"name": "b", "networks": ["bridge", "backnet"]}], live)
    assert addresses(p) == {"a": {"bridge": "172.17.0.2"}, "b": {"bridge": "172.17.0.3", "backnet": "10.30.0.1"}}
    p = plan([BRIDGE, {"name": "backnet", "subnet": "10.31.0.0/24"}],
             [{"name": "a", "network": "bridge"}, {"name": "b", "networks": ["bridge", "backnet"]}], live)
    assert addresses(p)["b"] == {"bridge": "172.17.0.3", "backnet": "10.31.0.2"}


def test_foreign_and_odd_live_veths_are_ignored():
    live = [{"name": "vethforeign", "peer": "eth0", "peer_netns": "x", "addresses": ["172.17.0.2/16"]},
            {"name": "vha", "peer": "vhb"},
            {"name": veth_name("a", "bridge"), "peer": "eth0", "peer_netns": "a", "addresses": []}]
    assert addresses(plan([BRIDGE], [{"name": "a", "network": "bridge"}], live)) == {"a": {"bridge": "172.17.0.2"}}


# --------------------------------------------------------------------------------- veths


def test_several_networks_eth_order_and_gateway_only_on_the_first():
    p = plan([BRIDGE, USERNET, BACKNET], [{"name": "m", "networks": ["usernet", "backnet", "bridge"]}])
    vts = veths_of(p, "m")
    assert [(vt["peer"], vt["master"], vt["addresses"]) for vt in vts] == [
        ("eth0", "br-usernet", ["172.18.0.2/16"]), ("eth1", "br-backnet", ["10.30.0.2/24"]), ("eth2", "docker0", ["172.17.0.2/16"])]
    assert [vt.get("gateway") for vt in vts] == ["172.18.0.1", None, None]
    assert p["endpoints"] == [{"name": "m", "mode": "bridge",
                               "networks": {"usernet": "172.18.0.2", "backnet": "10.30.0.2", "bridge": "172.17.0.2"}}]
    assert list(p["endpoints"][0]["networks"]) == ["usernet", "backnet", "bridge"]


def test_no_default_route_on_internal_networks():
    p = plan([PRIVNET, dict(BACKNET, internal=True)], [{"name": "m", "networks": ["privnet", "backnet"]}, {"name": "i", "network": "privnet"}])
    assert [vt.get("gateway") for vt in veths_of(p, "m")] == [None, None]
    assert [vt.get("gateway") for vt in veths_of(p, "i")] == [None]


def test_default_route_goes_where_ports_and_egress_are_expected():
    """BUG: first network internal, a later one not: the plan gives no default route at all.

    The same plan publishes the endpoint's ports on the later network's address (_ports: first
    non-internal network) and reachability() expects egress to the probe; without a default route
    neither works (replies to the LAN have no route), so verify.yml reports mismatches on a
    deployment the role made. Docker takes the default gateway from a non-internal network.
    """
    p = plan([PRIVNET, BRIDGE], [{"name": "m", "networks": ["privnet", "bridge"], "ports": ["81:80"]}])
    assert p["port_mapping"][0]["network"] == "bridge"
    assert [c["expect"] for c in reachability(p, "172.16.211.1") if c["target"] == "probe"] == [True]
    assert [(vt["peer"], vt.get("gateway")) for vt in veths_of(p, "m")] == [("eth0", None), ("eth1", "172.17.0.1")]


def test_veth_names_are_deterministic_short_and_unique():
    networks = [BRIDGE, USERNET, BACKNET]
    endpoints = [{"name": f"endpoint-with-a-long-name-{i:03}", "networks": ["bridge", "usernet", "backnet"]} for i in range(40)]
    p = plan(networks, endpoints)
    names = [vt["name"] for vt in p["veth"]]
    assert len(names) == 120 and len(set(names)) == 120
    for name in names:
        assert len(name.encode()) <= 15 and re.fullmatch(r"veth[0-9a-f]{7}", name)
        assert v.interface_name(name, "x") == name
    # the name depends on endpoint and network only: not on order, other endpoints or runs
    again = plan(networks, list(reversed(endpoints[:5])))
    assert {(vt["peer_netns"], vt["master"]): vt["name"] for vt in again["veth"]} == {
        (vt["peer_netns"], vt["master"]): vt["name"] for vt in p["veth"] if vt["peer_netns"] in {e["name"] for e in endpoints[:5]}}
    assert veth_name("web", "bridge") == veth_name("web", "bridge") != veth_name("web", "usernet")
    assert veths_of(plan(SEED_NETWORKS, SEED_ENDPOINTS), "c1")[0]["name"] == veth_name("c1", "bridge")


def _colliding_endpoint_names() -> tuple[str, str]:
    """Two endpoint names whose veths on ``bridge`` hash to the same 7 hex digits (birthday search)."""
    seen: dict[str, str] = {}
    for i in range(1_000_000):
        name = f"e{i}"
        key = veth_name(name, "bridge")
        if key in seen:
            return seen[key], name
        seen[key] = name
    raise AssertionError("no collision found")


def test_veth_names_stay_unique_when_the_short_hashes_collide():
    """BUG: veth_name() keeps 28 bits of a hash and plan_deployment() never checks for collisions.

    Two endpoints whose names hash alike get the same host-side veth name; the veth module then
    refuses the whole list ("duplicate veth name") after the namespaces and bridges were made.
    """
    a, b = _colliding_endpoint_names()
    p = plan([{"name": "bridge", "subnet": "10.0.0.0/8"}], [{"name": a, "network": "bridge"}, {"name": b, "network": "bridge"}])
    names = [vt["name"] for vt in p["veth"]]
    assert len(set(names)) == 2, f"endpoints {a} and {b} both get veth {names[0]}"
    assert all(len(n.encode()) <= 15 for n in names)


def test_docker_mac_hairpin_and_mtu():
    p = plan([BRIDGE, dict(USERNET, mtu=1400)], [{"name": "a", "networks": ["bridge", "usernet"]}])
    assert all(vt["mac"] == "docker" and vt["hairpin"] is True for vt in p["veth"])
    assert {b["name"]: b.get("mtu") for b in p["bridge"]} == {"docker0": None, "br-usernet": 1400}
    assert [(vt["master"], vt.get("mtu")) for vt in p["veth"]] == [("docker0", None), ("br-usernet", 1400)]
    assert [n["mtu"] for n in p["networks"]] == [None, 1400]


# --------------------------------------------------------------------------------- modes, names, dns


def test_host_and_none_modes():
    p = plan([BRIDGE], [{"name": "h", "mode": "host"}, {"name": "n", "mode": "none"}, {"name": "b", "network": "bridge"}])
    assert [n["name"] for n in p["netns"]] == ["n", "b"]  # host mode: no namespace
    assert netns_of(p, "n") == {"name": "n", "hosts": [], "host_groups": []}
    assert [vt["peer_netns"] for vt in p["veth"]] == ["b"]  # none: only lo
    assert addresses(p) == {"h": {}, "n": {}, "b": {"bridge": "172.17.0.2"}}  # b gets the first address
    assert [(e["name"], e["mode"]) for e in p["endpoints"]] == [("h", "host"), ("n", "none"), ("b", "bridge")]
    assert p["warnings"] == [] and p["port_mapping"] == []


@pytest.mark.parametrize("endpoint, field", [
    ({"name": "h", "mode": "host", "networks": ["bridge"]}, "linuxnet_endpoints[0].networks"),
    ({"name": "n", "mode": "none", "network": "bridge"}, "linuxnet_endpoints[0].network"),
    ({"name": "n", "mode": "none", "networks": ["nosuchnet"]}, "linuxnet_endpoints[0].networks"),  # not silently dropped
    ({"name": "h", "mode": "host", "dns": {"nameservers": ["192.0.2.53"]}}, "linuxnet_endpoints[0].dns"),
])
def test_host_and_none_modes_refuse_networks_naming_the_field(endpoint, field):
    """Docker refuses --network none/host together with other networks: no silent drop."""
    message = rejected([BRIDGE], [endpoint])
    assert message.startswith(f"{field}: not allowed with mode {endpoint['mode']}"), message


def test_ignored_ports_are_warned_about():
    p = plan([BRIDGE, PRIVNET], [
        {"name": "h", "mode": "host", "ports": ["8080:80"]},
        {"name": "n", "mode": "none", "ports": ["8081:80"]},
        {"name": "i", "network": "privnet", "ports": ["8082:80"]},
        {"name": "ok", "network": "bridge", "ports": ["8083:80"]},
    ])
    assert p["warnings"] == [
        "linuxnet_endpoints[0].ports: ignored for endpoint h in host mode (as Docker does)",
        "linuxnet_endpoints[1].ports: ignored for endpoint n without network",
        "linuxnet_endpoints[2].ports: ignored, endpoint i is only on internal networks",
    ]
    assert [port["publish"] for port in p["port_mapping"]] == ["8083:80"]


def test_hosts_entries_on_user_defined_networks_only():
    p = plan([BRIDGE, USERNET, BACKNET], [
        {"name": "b1", "network": "bridge"},
        {"name": "b2", "network": "bridge"},
        {"name": "u1", "network": "usernet"},
        {"name": "u2", "networks": ["bridge", "usernet"]},
        {"name": "k1", "networks": ["backnet", "usernet"]},
        {"name": "k2", "network": "backnet"},
        {"name": "n1", "mode": "none"},
    ])
    hosts = {n["name"]: hosts_file(p, n) for n in p["netns"]}
    # each network's entries travel once (arguments grow with N, not N squared)
    assert [g["name"] for g in p["host_groups"]] == ["usernet", "backnet"]
    assert sum(len(n["hosts"]) for n in p["netns"]) == 6
    # on `bridge` only the endpoint's own name, as in Docker's default network
    assert hosts["b1"] == [("172.17.0.2", ["b1"])]
    assert hosts["b2"] == [("172.17.0.3", ["b2"])]
    # peers on shared user-defined networks, once each, with their address on a shared network
    assert hosts["u1"] == [("172.18.0.2", ["u1"]), ("172.18.0.3", ["u2"]), ("172.18.0.4", ["k1"])]
    assert hosts["u2"] == [("172.17.0.4", ["u2"]), ("172.18.0.2", ["u1"]), ("172.18.0.4", ["k1"])]
    # in the order of the endpoint's own networks (k1: backnet, then usernet)
    assert hosts["k1"] == [("10.30.0.2", ["k1"]), ("10.30.0.3", ["k2"]), ("172.18.0.2", ["u1"]), ("172.18.0.3", ["u2"])]
    assert hosts["k2"] == [("10.30.0.3", ["k2"]), ("10.30.0.2", ["k1"])]
    assert hosts["n1"] == []


def test_dns_becomes_resolv_conf():
    p = plan([BRIDGE], [
        {"name": "a", "network": "bridge",
         "dns": {"nameservers": ["192.0.2.53", "2001:db8::53"], "search": ["lab.internal", "example.org"], "options": ["ndots:2", "rotate"]}},
        {"name": "b", "network": "bridge", "dns": {"nameservers": ["192.0.2.1"]}},
        {"name": "c", "network": "bridge"},
        {"name": "n", "mode": "none", "dns": {"search": ["only.search"]}},
    ])
    assert netns_of(p, "a")["resolv_conf"] == (
        "nameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch lab.internal example.org\noptions ndots:2 rotate\n")
    assert netns_of(p, "b")["resolv_conf"] == "nameserver 192.0.2.1\n"
    assert "resolv_conf" not in netns_of(p, "c")
    assert netns_of(p, "n")["resolv_conf"] == "search only.search\n"


# --------------------------------------------------------------------------------- ports


def test_ports_from_publish_strings_and_dicts():
    p = plan([BRIDGE, USERNET], [
        {"name": "web", "networks": [{"name": "bridge", "address": "172.17.0.5"}],
         "ports": ["172.16.211.128:81:80", "8443:443/tcp", "5353:53/udp", "9000-9002:9000-9002"]},
        {"name": "api", "networks": ["usernet", "bridge"],
         "ports": [{"host_port": 8080, "container_port": 80}, {"publish": "8081:80"}]},
    ])
    assert p["port_mapping"][:4] == [
        {"publish": "172.16.211.128:81:80", "bridge": "docker0", "container_ip": "172.17.0.5", "network": "bridge"},
        {"publish": "8443:443/tcp", "bridge": "docker0", "container_ip": "172.17.0.5", "network": "bridge"},
        {"publish": "5353:53/udp", "bridge": "docker0", "container_ip": "172.17.0.5", "network": "bridge"},
        {"publish": "9000-9002:9000-9002", "bridge": "docker0", "container_ip": "172.17.0.5", "network": "bridge"},
    ]
    # the first network of api is usernet: its ports go there
    assert p["port_mapping"][4:] == [
        {"host_port": 8080, "container_port": 80, "bridge": "br-usernet", "container_ip": "172.18.0.2", "network": "usernet"},
        {"publish": "8081:80", "bridge": "br-usernet", "container_ip": "172.18.0.2", "network": "usernet"},
    ]


def test_bare_port_numbers_are_refused_like_random_host_ports():
    assert rejected([BRIDGE], [{"name": "a", "network": "bridge", "ports": [8082]}]).startswith(
        "linuxnet_endpoints[0].ports[0]: '8082' leaves the host port to be chosen at random")


def test_ports_bind_to_the_first_non_internal_network():
    p = plan([PRIVNET, BACKNET, USERNET], [{"name": "a", "networks": ["privnet", "backnet", "usernet"], "ports": ["81:80"]}])
    assert p["port_mapping"] == [{"publish": "81:80", "bridge": "br-backnet", "container_ip": "10.30.0.2", "network": "backnet"}]
    assert p["warnings"] == []


def test_firewall_config_follows_the_networks():
    p = plan([BRIDGE, dict(USERNET, icc=False, masquerade=False, snat_source="192.0.2.1", gateway_mode="nat-unprotected"),
              PRIVNET], [])
    assert p["firewall"] == [
        {"name": "bridge", "bridge": "docker0", "subnet": "172.17.0.0/16", "icc": True, "internal": False, "masquerade": True,
         "gateway_mode": "nat"},
        {"name": "usernet", "bridge": "br-usernet", "subnet": "172.18.0.0/16", "icc": False, "internal": False,
         "masquerade": False, "snat_source": "192.0.2.1", "gateway_mode": "nat-unprotected"},
        {"name": "privnet", "bridge": "br-privnet", "subnet": "10.40.0.0/24", "icc": True, "internal": True, "masquerade": True,
         "gateway_mode": "nat"},
    ]
    with pytest.raises(v.ValidationError, match=r"gateway_mode: .routed. is not one of nat, nat-unprotected"):
        plan([dict(BRIDGE, gateway_mode="routed")], [])
