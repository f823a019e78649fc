"""The deployment planner of the role bridge_network and the filters around it (pure; no root,
no kernel).

``plan_deployment(networks, endpoints, current_veths)`` (``_topology``) turns the role's variables
into the ``config`` of every module; ``reachability()`` (``_reachability``) derives the checks
verify.yml runs, ``matrix`` and ``mismatches`` render their results; ``tree`` and ``mermaid``
(``_diagram``) draw a plan. ``current_veths`` is built
here in the shape the veth module's ``gathered`` returns (as the role passes it), so address
stability is pinned without a kernel. The role against a kernel is in tests/integration/test_role.py.

Run: ``.venv/bin/python -m pytest tests/unit/test_topology.py -q``
"""

from __future__ import annotations

import copy
import ipaddress
import re
import sys
from pathlib import Path

import pytest

_COLLECTIONS = str(Path(__file__).resolve().parents[2] / ".collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

from ansible.errors import AnsibleFilterError

from ansible_collections.linuxnet.bridge.plugins.filter import deployment as deployment_filter
from ansible_collections.linuxnet.bridge.plugins.filter import diagram as diagram_filter
from ansible_collections.linuxnet.bridge.plugins.filter import reachability as reachability_filter
from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._diagram import mermaid, tree
from ansible_collections.linuxnet.bridge.plugins.module_utils._reachability import listener, matrix, mismatches, reachability
from ansible_collections.linuxnet.bridge.plugins.module_utils._topology import plan_deployment, veth_name
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import expand_hosts
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError

BRIDGE = {"name": "bridge", "subnet": "172.17.0.0/16"}
USERNET = {"name": "usernet", "subnet": "172.18.0.0/16"}
BACKNET = {"name": "backnet", "subnet": "10.30.0.0/24"}
PRIVNET = {"name": "privnet", "subnet": "10.40.0.0/24", "internal": True}

# The reference topology of `make lab` (tests/lab/playbooks/vars/topology.yml).
SEED_NETWORKS = [dict(BRIDGE, bridge="docker0"), dict(USERNET, bridge="br-usernet")]
SEED_ENDPOINTS = [
    {"name": "c1", "network": "bridge"},
    {"name": "c2", "network": "bridge"},
    {"name": "web", "networks": [{"name": "bridge", "address": "172.17.0.5"}], "ports": ["172.16.211.128:81:80"]},
    {"name": "c3", "network": "usernet"},
]


# --------------------------------------------------------------------------------- helpers


def plan(networks, endpoints, current=None) -> dict:
    return plan_deployment(copy.deepcopy(networks), copy.deepcopy(endpoints), copy.deepcopy(current))


def rejected(networks, endpoints, current=None) -> str:
    with pytest.raises(ValidationError) as err:
        plan(networks, endpoints, current)
    return str(err.value)


def addresses(p: dict) -> dict[str, dict[str, str]]:
    return {ep["name"]: ep["networks"] for ep in p["endpoints"]}


def veths_of(p: dict, endpoint: str) -> list[dict]:
    return [vt for vt in p["veths"] if vt["peer_netns"] == endpoint]


def netns_of(p: dict, endpoint: str) -> dict:
    (item,) = [n for n in p["netns"] if n["name"] == endpoint]
    return item


def hosts_file(p: dict, item: dict) -> list[tuple[str, list[str]]]:
    """The entries the netns module writes for ``item`` (its own, then its host groups)."""
    groups = {g["name"]: g["hosts"] for g in p["host_groups"]}
    return [(h["ip"], h["names"]) for h in expand_hosts(item["hosts"], [groups[g] for g in item["host_groups"]])]


def mac_for(cidr: str) -> str:
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.ip_interface(cidr).ip.packed)


def gathered(p: dict) -> list[dict]:
    """What ``linuxnet.bridge.veth: state=gathered`` reports on a host where *p* was applied."""
    mtus = {n["bridge"]: n["mtu"] or 1500 for n in p["networks"]}
    out = []
    for vt in p["veths"]:
        item = {"name": vt["name"], "peer": vt["peer"], "peer_netns": vt["peer_netns"], "master": vt["master"],
                "addresses": list(vt["addresses"]), "mac": mac_for(vt["addresses"][0]), "mtu": mtus[vt["master"]],
                "hairpin": True}
        if vt.get("gateway"):
            item["gateway"] = vt["gateway"]
        out.append(item)
    return out


# --------------------------------------------------------------------------------- networks


def test_gateway_defaults_to_the_first_address_and_explicit_is_honoured():
    p = plan([BRIDGE, dict(USERNET, gateway="172.18.0.254"), {"name": "tiny", "subnet": "192.0.2.8/29"}], [])
    assert {n["name"]: n["gateway"] for n in p["networks"]} == {
        "bridge": "172.17.0.1", "usernet": "172.18.0.254", "tiny": "192.0.2.9"}
    assert [b["addresses"] for b in p["bridges"]] == [["172.17.0.1/16"], ["172.18.0.254/16"], ["192.0.2.9/29"]]


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
    names = [b["name"] for b in p["bridges"]]
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
])
def test_bad_endpoints_are_rejected_naming_the_field(endpoint, message):
    assert rejected([BRIDGE], [{"name": "x", "network": "bridge"}, endpoint]).startswith(message)


def test_filter_turns_validation_errors_into_filter_errors():
    filters = {}
    for module in (deployment_filter, reachability_filter, diagram_filter):
        assert not set(filters) & set(module.FilterModule().filters())
        filters.update(module.FilterModule().filters())
    assert set(filters) == {"deployment", "reachability", "listener", "matrix", "mismatches", "mermaid", "tree"}
    with pytest.raises(AnsibleFilterError, match=r"linuxnet_endpoints\[0\]\.networks\[0\]\.address: 10\.0\.0\.1 is outside"):
        filters["deployment"]([BRIDGE], [{"name": "a", "networks": [{"name": "bridge", "address": "10.0.0.1"}]}], [])
    assert filters["deployment"](SEED_NETWORKS, SEED_ENDPOINTS) == plan(SEED_NETWORKS, SEED_ENDPOINTS)


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
    assert plan([BRIDGE, USERNET], list(reversed(endpoints)), gathered(first))["veths"] == sorted(
        first["veths"], key=lambda vt: [e["name"] for e in reversed(endpoints)].index(vt["peer_netns"]))


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
    assert p["ports"][0]["network"] == "bridge"
    assert [c["expect"] for c in reachability(p, "172.16.211.1") if c["target"] == "probe"] == [True]
    assert [(vt["peer"], vt.get("gateway")) for vt in veths_of(p, "m")] == [("eth0", None), ("eth1", "172.17.0.1")]


def test_veth_names_are_deterministic_short_and_unique():
    networks = [BRIDGE, USERNET, BACKNET]
    endpoints = [{"name": f"endpoint-with-a-long-name-{i:03}", "networks": ["bridge", "usernet", "backnet"]} for i in range(40)]
    p = plan(networks, endpoints)
    names = [vt["name"] for vt in p["veths"]]
    assert len(names) == 120 and len(set(names)) == 120
    for name in names:
        assert len(name.encode()) <= 15 and re.fullmatch(r"veth[0-9a-f]{7}", name)
        assert v.interface_name(name, "x") == name
    # the name depends on endpoint and network only: not on order, other endpoints or runs
    again = plan(networks, list(reversed(endpoints[:5])))
    assert {(vt["peer_netns"], vt["master"]): vt["name"] for vt in again["veths"]} == {
        (vt["peer_netns"], vt["master"]): vt["name"] for vt in p["veths"] if vt["peer_netns"] in {e["name"] for e in endpoints[:5]}}
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
    names = [vt["name"] for vt in p["veths"]]
    assert len(set(names)) == 2, f"endpoints {a} and {b} both get veth {names[0]}"
    assert all(len(n.encode()) <= 15 for n in names)


def test_docker_mac_hairpin_and_mtu():
    p = plan([BRIDGE, dict(USERNET, mtu=1400)], [{"name": "a", "networks": ["bridge", "usernet"]}])
    assert all(vt["mac"] == "docker" and vt["hairpin"] is True for vt in p["veths"])
    assert {b["name"]: b.get("mtu") for b in p["bridges"]} == {"docker0": None, "br-usernet": 1400}
    assert [(vt["master"], vt.get("mtu")) for vt in p["veths"]] == [("docker0", None), ("br-usernet", 1400)]
    assert [n["mtu"] for n in p["networks"]] == [None, 1400]


# --------------------------------------------------------------------------------- modes, names, dns


def test_host_and_none_modes():
    p = plan([BRIDGE], [{"name": "h", "mode": "host", "networks": ["bridge"]}, {"name": "n", "mode": "none", "network": "bridge"},
                        {"name": "b", "network": "bridge"}])
    assert [n["name"] for n in p["netns"]] == ["n", "b"]  # host mode: no namespace
    assert netns_of(p, "n") == {"name": "n", "hosts": [], "host_groups": []}
    assert [vt["peer_netns"] for vt in p["veths"]] == ["b"]  # none: only lo
    assert addresses(p) == {"h": {}, "n": {}, "b": {"bridge": "172.17.0.2"}}  # b gets the first address
    assert [(e["name"], e["mode"]) for e in p["endpoints"]] == [("h", "host"), ("n", "none"), ("b", "bridge")]
    assert p["warnings"] == [] and p["ports"] == []


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
    assert [port["publish"] for port in p["ports"]] == ["8083:80"]


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
    assert p["ports"][:4] == [
        {"publish": "172.16.211.128:81:80", "bridge": "docker0", "container_ip": "172.17.0.5", "network": "bridge"},
        {"publish": "8443:443/tcp", "bridge": "docker0", "container_ip": "172.17.0.5", "network": "bridge"},
        {"publish": "5353:53/udp", "bridge": "docker0", "container_ip": "172.17.0.5", "network": "bridge"},
        {"publish": "9000-9002:9000-9002", "bridge": "docker0", "container_ip": "172.17.0.5", "network": "bridge"},
    ]
    # the first network of api is usernet: its ports go there
    assert p["ports"][4:] == [
        {"host_port": 8080, "container_port": 80, "bridge": "br-usernet", "container_ip": "172.18.0.2", "network": "usernet"},
        {"publish": "8081:80", "bridge": "br-usernet", "container_ip": "172.18.0.2", "network": "usernet"},
    ]


def test_bare_port_numbers_are_refused_like_random_host_ports():
    assert rejected([BRIDGE], [{"name": "a", "network": "bridge", "ports": [8082]}]).startswith(
        "linuxnet_endpoints[0].ports[0]: '8082' leaves the host port to be chosen at random")


def test_ports_bind_to_the_first_non_internal_network():
    p = plan([PRIVNET, BACKNET, USERNET], [{"name": "a", "networks": ["privnet", "backnet", "usernet"], "ports": ["81:80"]}])
    assert p["ports"] == [{"publish": "81:80", "bridge": "br-backnet", "container_ip": "10.30.0.2", "network": "backnet"}]
    assert p["warnings"] == []


def test_firewall_config_follows_the_networks():
    p = plan([BRIDGE, dict(USERNET, icc=False, masquerade=False, snat_source="192.0.2.1"), PRIVNET], [])
    assert p["firewall"] == [
        {"name": "bridge", "bridge": "docker0", "subnet": "172.17.0.0/16", "icc": True, "internal": False, "masquerade": True},
        {"name": "usernet", "bridge": "br-usernet", "subnet": "172.18.0.0/16", "icc": False, "internal": False,
         "masquerade": False, "snat_source": "192.0.2.1"},
        {"name": "privnet", "bridge": "br-privnet", "subnet": "10.40.0.0/24", "icc": True, "internal": True, "masquerade": True},
    ]


# --------------------------------------------------------------------------------- reachability


REACH_NETWORKS = [BRIDGE, dict(USERNET, icc=False), BACKNET, PRIVNET]
REACH_ENDPOINTS = [
    {"name": "b1", "network": "bridge"},
    {"name": "b2", "network": "bridge", "ports": ["172.16.211.128:81:80"]},
    {"name": "u1", "network": "usernet"},
    {"name": "u2", "network": "usernet", "ports": ["8080:80", "5353:53/udp", "127.0.0.1:9000:9000", "0.0.0.0:8443:443"]},
    {"name": "k1", "networks": ["backnet", "privnet"], "ports": [{"host_port": "7000-7001", "container_port": "7000-7001"}]},
    {"name": "p1", "network": "privnet"},
    {"name": "n1", "mode": "none"},
    {"name": "h1", "mode": "host"},
]


def checks_by_pair(checks) -> dict[tuple[str, str], dict]:
    return {(c["source"], c["target"]): c for c in checks if c["source"] != "probe"}


def test_reachability_between_endpoints():
    p = plan(REACH_NETWORKS, REACH_ENDPOINTS)
    pairs = checks_by_pair(reachability(p))
    bridged = ["b1", "b2", "u1", "u2", "k1", "p1"]  # none and host mode take no part
    assert set(pairs) == {(a, b) for a in bridged for b in bridged if a != b}
    assert all(c["kind"] == "icmp" and c["port"] is None for c in pairs.values())

    def outcome(a, b):
        return pairs[(a, b)]["expect"], pairs[(a, b)]["why"], pairs[(a, b)]["address"]

    assert outcome("b1", "b2") == (True, "same network bridge", "172.17.0.3")
    assert outcome("u1", "u2") == (False, "same network usernet with icc off", "172.18.0.3")
    assert outcome("b1", "u1") == (False, "different networks (isolation)", "172.18.0.2")
    assert outcome("u1", "b1") == (False, "different networks (isolation)", "172.17.0.2")
    assert outcome("k1", "p1") == (True, "same network privnet", "10.40.0.3")  # internal: inside traffic is fine
    assert outcome("p1", "k1") == (True, "same network privnet", "10.40.0.2")
    assert outcome("b1", "k1") == (False, "different networks (isolation)", "10.30.0.2")


def test_reachability_egress_to_the_probe():
    p = plan(REACH_NETWORKS, REACH_ENDPOINTS)
    egress = {c["source"]: (c["expect"], c["why"]) for c in reachability(p, "172.16.211.1") if c["target"] == "probe"}
    assert egress == {
        "b1": (True, "egress through masquerade"), "b2": (True, "egress through masquerade"),
        "u1": (True, "egress through masquerade"), "u2": (True, "egress through masquerade"),
        "k1": (True, "egress through masquerade"),  # backnet is not internal
        "p1": (False, "internal network: no egress"),
    }
    assert all(c["address"] == "172.16.211.1" for c in reachability(p, "172.16.211.1") if c["target"] == "probe")
    assert not [c for c in reachability(p) if c["target"] == "probe"]  # no probe host, no egress checks


def test_reachability_of_published_ports():
    p = plan(REACH_NETWORKS, REACH_ENDPOINTS)
    published = [c for c in reachability(p, "172.16.211.1", "172.16.211.128") if c["source"] == "probe"]
    assert [(c["target"], c["kind"], c["address"], c["port"], c["container_port"], c["expect"]) for c in published] == [
        ("b2", "tcp", "172.16.211.128", 81, 80, True),
        ("u2", "tcp", "172.16.211.128", 8080, 80, True),  # no host_ip: the host's address
        ("u2", "udp", "172.16.211.128", 5353, 53, True),
        # 127.0.0.1:9000 is not reachable from the LAN: no check
        ("u2", "tcp", "172.16.211.128", 8443, 443, True),  # 0.0.0.0 = every address of the host
        ("k1", "tcp", "172.16.211.128", 7000, 7000, True),  # a range: its first port
    ]
    assert [c["why"] for c in published][:2] == ["published 172.16.211.128:81:80", "published 8080:80"]
    assert listener(published[2]) == {"netns": "u2", "kind": "udp", "port": 53}
    assert listener(published[4]) == {"netns": "k1", "kind": "tcp", "port": 7000}
    # without the host's address only ports published on an explicit address can be checked
    assert [c["port"] for c in reachability(p, "172.16.211.1") if c["source"] == "probe"] == [81]


def test_seed_topology_reachability():
    p = plan(SEED_NETWORKS, SEED_ENDPOINTS)
    checks = reachability(p, "172.16.211.1", "172.16.211.128")
    expected = {(c["source"], c["target"]): c["expect"] for c in checks}
    assert expected == {
        ("c1", "c2"): True, ("c1", "web"): True, ("c1", "c3"): False, ("c1", "probe"): True,
        ("c2", "c1"): True, ("c2", "web"): True, ("c2", "c3"): False, ("c2", "probe"): True,
        ("web", "c1"): True, ("web", "c2"): True, ("web", "c3"): False, ("web", "probe"): True,
        ("c3", "c1"): False, ("c3", "c2"): False, ("c3", "web"): False, ("c3", "probe"): True,
        ("probe", "web"): True,
    }


# --------------------------------------------------------------------------------- reports and pictures


def test_matrix_and_mismatches():
    p = plan(SEED_NETWORKS, SEED_ENDPOINTS)
    checks = reachability(p, "172.16.211.1", "172.16.211.128")
    results = [dict(c, observed=c["expect"]) for c in checks]
    results[0]["observed"] = not results[0]["expect"]  # c1 -> c2 blocked although expected
    results[-1]["observed"] = None  # the published port did not answer
    lines = matrix(results)
    assert len(lines) == len(results) + 1 and lines[0].split()[:2] == ["verdict", "from"]
    assert lines[1].startswith("MISMATCH") and "c1 -> c2" in lines[1] and "expected reach   observed blocked" in lines[1]
    assert "172.17.0.3 (icmp)" in lines[1] and "(same network bridge)" in lines[1]
    assert lines[-1].startswith("MISMATCH") and "172.16.211.128:81/tcp" in lines[-1]
    assert all(line.startswith("ok ") for line in lines[2:-1])
    assert [line for line in lines if "c3" in line and "c1" in line and "expected blocked observed blocked" in line]

    bad = mismatches(results)
    assert [(m["source"], m["target"]) for m in bad] == [("c1", "c2"), ("probe", "web")]
    assert [m["line"] for m in bad] == [lines[1], lines[-1]]
    assert mismatches([dict(c, observed=c["expect"]) for c in checks]) == []


def test_tree():
    p = plan(REACH_NETWORKS, REACH_ENDPOINTS)
    lines = tree(p, "linuxnet1", "172.16.211.128")
    assert lines == [
        "linuxnet1 (172.16.211.128)",
        "├── docker0 172.17.0.1 [bridge 172.17.0.0/16]",
        "│   ├── b1 172.17.0.2",
        "│   └── b2 172.17.0.3  -p 172.16.211.128:81:80",
        "├── br-usernet 172.18.0.1 [usernet 172.18.0.0/16, icc off]",
        "│   ├── u1 172.18.0.2",
        "│   └── u2 172.18.0.3  -p 8080:80, 5353:53/udp, 127.0.0.1:9000:9000, 0.0.0.0:8443:443",
        "├── br-backnet 10.30.0.1 [backnet 10.30.0.0/24]",
        "│   └── k1 10.30.0.2  -p 7000-7001",
        "└── br-privnet 10.40.0.1 [privnet 10.40.0.0/24, internal]",
        "    ├── k1 10.40.0.2",
        "    └── p1 10.40.0.3",
    ]
    assert tree(plan([], []), "h") == ["h"]


def _mermaid_ids(text: str) -> tuple[set[str], set[str]]:
    """(declared node ids, ids used in edges) of the flowchart text mermaid() writes."""
    declared, used = set(), set()
    for line in text.splitlines()[1:]:
        line = line.strip()
        if line == "end":
            continue
        if line.startswith("subgraph "):
            declared.add(re.match(r"subgraph (\S+?)\[", line).group(1))
            continue
        if " --- " in line or " .-> " in line:
            for part in re.split(r" --- | -\. \"[^\"]*\" \.-> ", line):
                node = re.match(r"([^\[\(\s]+)", part).group(1)
                used.add(node)
                if "[" in part or "(" in part:
                    declared.add(node)
            continue
        declared.add(re.match(r"([^\[\(\s]+)[\[\(]", line).group(1))
    return declared, used


def test_mermaid():
    p = plan(REACH_NETWORKS, REACH_ENDPOINTS)
    text = mermaid(p, "linuxnet1", "172.16.211.128", "outside", "172.16.211.1")
    lines = text.splitlines()
    assert text.endswith("\n") and lines[0] == "flowchart LR"
    assert lines.count('  subgraph linuxnet1["host linuxnet1"]') == 1 and lines.count("  end") == 1
    assert '    ep_k1 --- br_backnet' in lines and '    ep_k1 --- br_privnet' in lines
    assert '    ep_k1["k1<br/>eth0 10.30.0.2<br/>eth1 10.40.0.2"]' in lines
    assert '    br_usernet["br-usernet<br/>172.18.0.1<br/>network usernet<br/>icc off"]' in lines
    assert '    linuxnet1_address(["172.16.211.128"])' in lines
    assert '  outside["outside<br/>172.16.211.1"] --- linuxnet1_address' in lines
    assert '  linuxnet1_address -. "-p 172.16.211.128:81:80" .-> ep_b2' in lines
    assert '  linuxnet1_address -. "-p 7000-7001" .-> ep_k1' in lines
    declared, used = _mermaid_ids(text)
    assert used <= declared, used - declared
    assert all(re.fullmatch(r"\w+", node) for node in declared), declared


def test_mermaid_of_a_host_without_probe_or_address():
    """A real inventory may give neither: the host's name stands for its address, nothing else is drawn."""
    text = mermaid(plan(REACH_NETWORKS, REACH_ENDPOINTS), "edge1.example.net")
    assert '    edge1_example_net_address(["edge1.example.net"])' in text.splitlines()
    assert " --- edge1_example_net_address" not in text
    declared, used = _mermaid_ids(text)
    assert used <= declared, used - declared
    text = mermaid(plan([BRIDGE], [{"name": "a", "network": "bridge"}]), "h")
    assert text == 'flowchart LR\n  subgraph h["host h"]\n    docker0["docker0<br/>172.17.0.1<br/>network bridge"]\n' \
                   '    ep_a["a<br/>eth0 172.17.0.2"]\n    ep_a --- docker0\n  end\n'


def test_mermaid_node_ids_of_unusual_names():
    """Names may contain '.', '@', '+' and '-': every id in the chart is declared and plain."""
    networks = [{"name": "front.end", "subnet": "10.1.0.0/24", "bridge": "br.front@1"}, BRIDGE]
    endpoints = [{"name": "web.v2", "network": "front.end", "ports": ["81:80"]}, {"name": "db+1", "networks": ["bridge", "front.end"]},
                 {"name": "app-1", "network": "bridge", "ports": ["82:80"]}]
    text = mermaid(plan(networks, endpoints), "edge1.example.net", "192.0.2.10", "probe-1", "192.0.2.1")
    declared, used = _mermaid_ids(text)
    assert used <= declared, f"{used - declared} used but never declared:\n{text}"
    assert all(re.fullmatch(r"\w+", node) for node in declared), f"{declared}\n{text}"
    assert '"-p 81:80" .-> ep_web_v2' in text and '"-p 82:80" .-> ep_app_1' in text
