"""Dual-stack names (issue 14): ``/etc/netns/<endpoint>/hosts`` of endpoints with IPv6 lists both
families, with Docker's standard lines; IPv6-only networks are refused naming the field (pure).

The same files against a kernel, resolved with ``getent`` in the namespaces:
tests/integration/test_dual_stack_hosts.py.

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_hosts_dual_stack.py -q``
"""

from __future__ import annotations

import pytest

from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import (
    HOSTS_HEADER,
    NetnsResource,
    expand_hosts,
    parse_hosts,
    render_hosts,
)

from .fixtures.netlink import FakeModule, ns_current
from .fixtures.netlink import plan as plan_netns
from .fixtures.topology import hosts_file, netns_of, plan, rejected

DUAL = {"name": "dual", "subnet": "172.20.0.0/16", "subnet6": "fd00:20::/64"}
V4 = {"name": "v4only", "subnet": "172.21.0.0/16"}
ENDPOINTS = [
    {"name": "d1", "network": "dual"},
    {"name": "d2", "network": "dual"},
    {"name": "m1", "networks": ["v4only", "dual"]},
    {"name": "v1", "network": "v4only"},
]


def test_dual_stack_endpoints_list_both_families_one_line_each():
    p = plan([DUAL, V4], ENDPOINTS)
    hosts = {n["name"]: hosts_file(p, n) for n in p["netns"]}
    # own name: IPv4 of the first network, IPv6 of the first network with IPv6; then the peers per
    # network, an IPv4 and an IPv6 line each on the dual-stack one
    assert hosts["d1"] == [("172.20.0.2", ["d1"]), ("fd00:20::2", ["d1"]),
                           ("172.20.0.3", ["d2"]), ("fd00:20::3", ["d2"]), ("172.20.0.4", ["m1"]), ("fd00:20::4", ["m1"])]
    # m1 is on both: its peers' first network wins per family, as before for IPv4
    assert hosts["m1"] == [("172.21.0.2", ["m1"]), ("fd00:20::4", ["m1"]), ("172.21.0.3", ["v1"]),
                           ("172.20.0.2", ["d1"]), ("fd00:20::2", ["d1"]), ("172.20.0.3", ["d2"]), ("fd00:20::3", ["d2"])]
    # an IPv4-only endpoint: IPv4 lines only, as before
    assert hosts["v1"] == [("172.21.0.3", ["v1"]), ("172.21.0.2", ["m1"])]
    group = {g["name"]: g["hosts"] for g in p["host_groups"]}
    assert group["v4only"] == [{"ip": "172.21.0.2", "names": ["m1"]}, {"ip": "172.21.0.3", "names": ["v1"]}]
    assert [h["ip"] for h in group["dual"]] == ["172.20.0.2", "fd00:20::2", "172.20.0.3", "fd00:20::3",
                                                "172.20.0.4", "fd00:20::4"]


def test_expand_hosts_keeps_one_line_per_family_and_name():
    own = [{"ip": "10.0.0.2", "names": ["a"]}]
    first = [{"ip": "10.0.0.3", "names": ["b"]}, {"ip": "fd00::3", "names": ["b"]}]
    second = [{"ip": "10.1.0.3", "names": ["b"]}, {"ip": "fd01::3", "names": ["b"]}, {"ip": "fd01::4", "names": ["c"]}]
    assert [h["ip"] for h in expand_hosts(own, [first, second])] == ["10.0.0.2", "10.0.0.3", "fd00::3", "fd01::4"]
    # an IPv6 line of a name known only over IPv4 is added, not merged away
    assert expand_hosts(own, [[{"ip": "fd00::2", "names": ["a"]}]]) == own + [{"ip": "fd00::2", "names": ["a"]}]


def test_header_is_dockers_standard_content():
    assert HOSTS_HEADER == ("# managed by linuxnet.bridge\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                            "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
    entries = [{"ip": "172.20.0.2", "names": ["d1"]}, {"ip": "fd00:20::2", "names": ["d1"]}]
    assert parse_hosts(render_hosts(entries)) == entries


def test_written_file_is_idempotent_and_an_older_header_is_rewritten_once():
    config = [{"name": "d1", "hosts": [{"ip": "172.20.0.2", "names": ["d1"]}, {"ip": "fd00:20:0::2", "names": ["d1"]},
                                       {"ip": "fe00::0", "names": ["ip6-localnet"]}]}]  # a standard line: always written
    wanted = NetnsResource(FakeModule()).normalize(config, "merged")[0]["hosts"]
    assert wanted == [{"ip": "172.20.0.2", "names": ["d1"]}, {"ip": "fd00:20::2", "names": ["d1"]}]
    same = {"d1": ns_current("d1", hosts=parse_hosts(render_hosts(wanted)))}
    assert plan_netns(NetnsResource, config, same)[0] == []
    old = "# managed by linuxnet.bridge\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n172.20.0.2\td1\nfd00:20::2\td1\n"
    commands = plan_netns(NetnsResource, config, {"d1": ns_current("d1", hosts=parse_hosts(old))})[0]
    assert commands == [f"printf '%s' '{render_hosts(wanted)}' > /etc/netns/d1/hosts"]


@pytest.mark.parametrize(("ip", "error"), [
    ("fd00::2\n", "config[0] (name=d1).hosts[0].ip: 'fd00::2\\n' is not a valid IP address"),
    ("fd00::2 evil", "config[0] (name=d1).hosts[0].ip: 'fd00::2 evil' is not a valid IP address"),
    ("fd00::2%eth0", "config[0] (name=d1).hosts[0].ip: 'fd00::2%eth0' is not a valid IP address (no %zone)"),
    ("fd00::2%a\n1.2.3.4 evil", "config[0] (name=d1).hosts[0].ip: 'fd00::2%a\\n1.2.3.4 evil' is not a valid IP address (no %zone)"),
])
def test_hosts_entries_are_validated_as_whole_strings(ip, error):
    with pytest.raises(ValueError) as exc:
        NetnsResource(FakeModule()).normalize([{"name": "d1", "hosts": [{"ip": ip, "names": ["d1"]}]}], "merged")
    assert str(exc.value) == error


def test_own_entry_is_the_first_network_of_each_family():
    p = plan([V4, DUAL], [{"name": "a", "networks": ["v4only", "dual"]}])
    assert netns_of(p, "a")["hosts"] == [{"ip": "172.21.0.2", "names": ["a"]}, {"ip": "fd00:20::2", "names": ["a"]}]
    p = plan([V4], [{"name": "b", "network": "v4only"}])
    assert netns_of(p, "b")["hosts"] == [{"ip": "172.21.0.2", "names": ["b"]}]


@pytest.mark.parametrize("net", [{"name": "only6", "subnet6": "fd00:30::/64"},
                                 {"name": "only6", "subnet": "", "subnet6": "fd00:30::/64", "gateway6": "fd00:30::1"}])
def test_ipv6_only_network_is_refused_naming_subnet(net):
    assert rejected([V4, net], [{"name": "a", "network": "only6"}]) == (
        "linuxnet_networks[1].subnet: required; IPv6-only networks (subnet6 'fd00:30::/64' without subnet) are not "
        "supported: give an IPv4 subnet as well (the network is then dual-stack)")


@pytest.mark.parametrize(("endpoint", "error"), [
    ({"name": "a", "networks": [{"name": "dual", "address6": "fd00:20::9%x\nfd00:20::8"}]},
     "linuxnet_endpoints[0].networks[0].address6: 'fd00:20::9%x\\nfd00:20::8' is not a valid IP address (no %zone)"),
    ({"name": "a", "network": "dual", "dns": {"nameservers": ["fd00::53%x\nnameserver 203.0.113.9"]}},
     "linuxnet_endpoints[0].dns.nameservers: 'fd00::53%x\\nnameserver 203.0.113.9' is not a valid IP address (no %zone)"),
])
def test_an_ipv6_zone_cannot_carry_a_line_into_a_file_or_ruleset(endpoint, error):
    # Python's ipaddress keeps any text after '%' (newlines too) and gives it back in str()
    assert rejected([DUAL], [endpoint]) == error


def test_a_zone_in_a_port_mappings_container_ip_is_refused():
    from ansible_collections.linuxnet.bridge.plugins.module_utils._port_mapping import container_address

    with pytest.raises(ValueError, match=r"^config\[0\]\.container_ip: .* is not a valid IP address \(no %zone\)$"):
        container_address("fd00::2%x\n-A INPUT -j ACCEPT", "config[0].container_ip")


def test_a_zone_in_a_subnet6_is_refused():
    assert rejected([dict(DUAL, subnet6="fd00:20::%x\nb/64")], []) == (
        "linuxnet_networks[0].subnet6: 'fd00:20::%x\\nb/64' is not a valid subnet (no %zone)")
