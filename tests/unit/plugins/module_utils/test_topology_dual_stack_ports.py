"""Published ports of dual-stack endpoints in the role's planner (issue 14), as Docker 27+ publishes
them: no host address -> one port_mapping item per family, an IPv4 host address -> IPv4 only, an
IPv6 one -> IPv6 only; ``sources`` split by family (pure).

Through the role with real packets: tests/integration/test_dual_stack.py (published ports test).

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_topology_dual_stack_ports.py -q``
"""

from __future__ import annotations

import pytest

from .fixtures.topology import gathered, plan, rejected

DUAL = {"name": "dual", "subnet": "172.20.0.0/16", "subnet6": "fd00:20::/64"}
V4 = {"name": "v4only", "subnet": "172.21.0.0/16"}
INTERNAL6 = {"name": "back", "subnet": "172.22.0.0/16", "subnet6": "fd00:22::/64", "internal": True}


def mappings(ports, networks=(DUAL,), network="dual") -> list[tuple]:
    on = {"networks": network} if isinstance(network, list) else {"network": network}
    p = plan(list(networks), [{"name": "web", **on, "ports": ports}])
    return [(m["container_ip"], m.get("publish") or m.get("host_ip"), m.get("sources", "-")) for m in p["port_mapping"]]


def test_no_host_address_publishes_on_both_families_with_the_same_publish():
    p = plan([DUAL], [{"name": "web", "network": "dual", "ports": ["8080:80", "5353:53/udp", "9000-9002:9000-9002/sctp"]}])
    assert p["port_mapping"] == [
        {"publish": "8080:80", "bridge": "br-dual", "container_ip": "172.20.0.2", "network": "dual"},
        {"publish": "8080:80", "bridge": "br-dual", "container_ip": "fd00:20::2", "network": "dual"},
        {"publish": "5353:53/udp", "bridge": "br-dual", "container_ip": "172.20.0.2", "network": "dual"},
        {"publish": "5353:53/udp", "bridge": "br-dual", "container_ip": "fd00:20::2", "network": "dual"},
        {"publish": "9000-9002:9000-9002/sctp", "bridge": "br-dual", "container_ip": "172.20.0.2", "network": "dual"},
        {"publish": "9000-9002:9000-9002/sctp", "bridge": "br-dual", "container_ip": "fd00:20::2", "network": "dual"},
    ]


def test_an_ipv4_host_address_publishes_on_ipv4_only_and_an_ipv6_one_on_ipv6_only():
    ports = ["127.0.0.1:8080:80", "0.0.0.0:8081:80", "172.16.211.128:81:80", "[::]:8082:80", "[2001:db8::1]:8083:80",
             "[2001:DB8::1]:8084:80"]
    assert mappings(ports) == [
        ("172.20.0.2", "127.0.0.1:8080:80", "-"), ("172.20.0.2", "0.0.0.0:8081:80", "-"),
        ("172.20.0.2", "172.16.211.128:81:80", "-"), ("fd00:20::2", "[::]:8082:80", "-"),
        ("fd00:20::2", "[2001:db8::1]:8083:80", "-"), ("fd00:20::2", "[2001:DB8::1]:8084:80", "-")]


def test_dict_entries_follow_their_host_ip_or_publish():
    ports = [{"host_port": 8080, "container_port": 80}, {"host_ip": "", "host_port": 8081, "container_port": 80},
             {"host_ip": "0.0.0.0", "host_port": 8082, "container_port": 80},
             {"host_ip": "::", "host_port": 8083, "container_port": 80, "protocol": "udp"},
             {"publish": "[::]:8084:80"}]
    p = plan([DUAL], [{"name": "web", "network": "dual", "ports": ports}])
    assert [(m["container_ip"], m["host_port"] if "host_port" in m else m["publish"]) for m in p["port_mapping"]] == [
        ("172.20.0.2", 8080), ("fd00:20::2", 8080), ("172.20.0.2", 8081), ("fd00:20::2", 8081),
        ("172.20.0.2", 8082), ("fd00:20::2", 8083), ("fd00:20::2", "[::]:8084:80")]
    assert p["port_mapping"][5] == {"host_ip": "::", "host_port": 8083, "container_port": 80, "protocol": "udp",
                                    "bridge": "br-dual", "container_ip": "fd00:20::2", "network": "dual"}


def test_ports_go_to_the_first_non_internal_network_and_its_families():
    # the IPv4-only network comes first: IPv4 only, exactly as before
    assert mappings(["8080:80"], (V4, DUAL), ["v4only", "dual"]) == [("172.21.0.2", "8080:80", "-")]
    # an internal dual-stack network first: the ports go to the next one, on both of its families
    assert mappings(["8080:80"], (INTERNAL6, DUAL), ["back", "dual"]) == [
        ("172.20.0.2", "8080:80", "-"), ("fd00:20::2", "8080:80", "-")]


def test_sources_are_split_by_family_and_each_list_normalized():
    ports = [{"publish": "8080:80", "sources": ["198.51.100.7", "2001:db8:1::/64", "192.0.2.0/24", "2001:DB8::5"]},
             {"publish": "[::]:8081:80", "sources": ["2001:db8::/64"]},
             {"publish": "127.0.0.1:8082:80", "sources": ["10.0.0.0/8"]},
             {"publish": "8083:80", "sources": None}]
    assert mappings(ports) == [
        ("172.20.0.2", "8080:80", ["192.0.2.0/24", "198.51.100.7/32"]),
        ("fd00:20::2", "8080:80", ["2001:db8::5/128", "2001:db8:1::/64"]),
        ("fd00:20::2", "[::]:8081:80", ["2001:db8::/64"]),
        ("172.20.0.2", "127.0.0.1:8082:80", ["10.0.0.0/8"]),
        ("172.20.0.2", "8083:80", None), ("fd00:20::2", "8083:80", None)]


BAD = [
    (V4, ["[::]:8080:80"], "linuxnet_endpoints[0].ports[0]: host address :: is IPv6 but network v4only has no subnet6"),
    (V4, ["[2001:db8::1]:8080:80"],
     "linuxnet_endpoints[0].ports[0]: host address 2001:db8::1 is IPv6 but network v4only has no subnet6"),
    (V4, [{"host_ip": "::", "host_port": 8080, "container_port": 80}],
     "linuxnet_endpoints[0].ports[0].host_ip: host address :: is IPv6 but network v4only has no subnet6"),
    # what port_mapping refuses is refused by the plan too (before: planned, then refused by the deployment)
    (DUAL, ["[::1]:9000:9000"], "linuxnet_endpoints[0].ports[0]: ::1 cannot be published with kernel NAT (IPv6 has no "
                                "route_localnet)"),
    (DUAL, [{"host_ip": "fe80::1", "host_port": 8080, "container_port": 80}],
     "linuxnet_endpoints[0].ports[0].host_ip: fe80::1 is a link-local or multicast address"),
    (DUAL, ["[::ffff:192.0.2.1]:8080:80"], "linuxnet_endpoints[0].ports[0]: ::ffff:c000:201 is an IPv4-mapped address"),
    (DUAL, [{"host_ip": "fd00::zz", "host_port": 8080, "container_port": 80}],
     "linuxnet_endpoints[0].ports[0].host_ip: 'fd00::zz' is not a valid IP address"),
    (DUAL, [{"publish": "8080:80", "sources": ["192.0.2.0/24"]}],
     "linuxnet_endpoints[0].ports[0].sources: lists no IPv6 network, so the endpoint's IPv6 mapping would accept every "
     "source; add IPv6 sources, or publish on one family only (host address 0.0.0.0:...)"),
    (DUAL, [{"publish": "8080:80", "sources": ["2001:db8::/64"]}],
     "linuxnet_endpoints[0].ports[0].sources: lists no IPv4 network, so the endpoint's IPv4 mapping would accept every "
     "source; add IPv4 sources, or publish on one family only (host address [::]:...)"),
    (DUAL, [{"publish": "8080:80", "sources": ["192.0.2.0/24", "2001:db8::zz/64"]}],
     "linuxnet_endpoints[0].ports[0].sources[1]: '2001:db8::zz/64' is not an IPv6 network such as"),
    (DUAL, [{"publish": "8080:80", "sources": ["192.0.2.0/24", "::/0"]}],
     "linuxnet_endpoints[0].ports[0].sources[1]: '::/0' is every source"),
    (DUAL, [{"publish": "8080:80", "sources": []}], "linuxnet_endpoints[0].ports[0].sources: must be a non-empty list"),
    (DUAL, [{"publish": "[::]:8080:80", "sources": ["192.0.2.0/24"]}],
     "linuxnet_endpoints[0].ports[0].sources[0]: '192.0.2.0/24' is not a valid IPv6 network"),
    (DUAL, [{"publish": "0.0.0.0:8080:80", "sources": ["2001:db8::/64"]}],
     "linuxnet_endpoints[0].ports[0].sources[0]: '2001:db8::/64' is not an IPv4 network"),
]


@pytest.mark.parametrize("network, ports, message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_ports_of_dual_stack_or_ipv4_only_endpoints_name_the_field(network, ports, message):
    got = rejected([network], [{"name": "web", "network": network["name"], "ports": ports}])
    assert got.startswith(message), got


def test_ipv4_only_endpoints_keep_their_plan_and_a_dual_stack_plan_is_a_fixed_point():
    endpoints = [{"name": "a", "network": "v4only", "ports": ["8080:80", {"publish": "8081:80", "sources": ["10.0.0.0/8"]}]},
                 {"name": "b", "network": "dual", "ports": ["8082:80", {"publish": "8083:80", "sources": ["10.0.0.0/8", "fd00::/8"]}]}]
    p = plan([V4, DUAL], endpoints)
    assert [m for m in p["port_mapping"] if m["network"] == "v4only"] == [
        {"publish": "8080:80", "bridge": "br-v4only", "container_ip": "172.21.0.2", "network": "v4only"},
        {"publish": "8081:80", "sources": ["10.0.0.0/8"], "bridge": "br-v4only", "container_ip": "172.21.0.2", "network": "v4only"}]
    assert len([m for m in p["port_mapping"] if m["network"] == "dual"]) == 4
    assert plan([V4, DUAL], endpoints, gathered(p)) == p
