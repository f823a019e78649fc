"""Input validation of the netns, bridge and veth resources (pure; no root, no kernel).

Every bad value must be refused by ``normalize()`` *before* anything touches the host, with a
message that names the item and the field, e.g. ``config[1] (name=x).mtu``.

Run: ``.venv/bin/python -m pytest tests/unit -q``
"""

from __future__ import annotations

import re

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._bridge import (
    BridgeResource,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import (
    NetnsResource,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import (
    ValidationError,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._veth import VethResource


class FakeModule:
    """The little of AnsibleModule that a Resource reads in its pure parts."""

    def __init__(self, check_mode: bool = False, **params) -> None:
        self.params = {"state": "merged", "config": None, **params}
        self.check_mode = check_mode
        self._diff = False


def bridges(config, state="merged"):
    return BridgeResource(FakeModule()).normalize(config, state)


def veths(config, state="merged"):
    return VethResource(FakeModule()).normalize(config, state)


def namespaces(config, state="merged"):
    return NetnsResource(FakeModule()).normalize(config, state)


def refused(func, config, state="merged") -> str:
    with pytest.raises(ValidationError) as info:
        func(config, state)
    return str(info.value)


# ------------------------------------------------------------------------------------------ names

BAD_IFNAMES = {
    "16 bytes": "a" * 16,
    "16 bytes of utf-8": "\u00e9" * 8,
    "slash": "br/0",
    "space": "br 0",
    "tab": "br\t0",
    "colon": "br0:1",
    "newline": "br0\nx",
    "dot": ".",
    "dotdot": "..",
    "non-printable": "br\x010",
    "shell metachar": "br$(id)",
}


@pytest.mark.parametrize("bad", BAD_IFNAMES.values(), ids=BAD_IFNAMES.keys())
def test_interface_name_refused_everywhere(bad):
    # bridge name, veth host end, veth peer, veth master
    message = refused(bridges, [{"name": "ok0"}, {"name": bad}])
    assert re.match(r"config\[1\] \(name=.*\)\.name: ", message, re.DOTALL), message
    message = refused(veths, [{"name": bad, "peer_netns": "ns1"}])
    assert re.match(r"config\[0\] \(name=.*\)\.name: ", message, re.DOTALL), message
    message = refused(veths, [{"name": "v1", "peer": bad, "peer_netns": "ns1"}])
    assert message.startswith("config[0] (name=v1).peer:"), message
    message = refused(veths, [{"name": "v1", "peer_netns": "ns1", "master": bad}])
    assert message.startswith("config[0] (name=v1).master:"), message


def test_interface_name_length_limit_is_15_bytes():
    assert bridges([{"name": "a" * 15}])[0]["name"] == "a" * 15
    message = refused(bridges, [{"name": "a" * 16}])
    assert "longer than 15 bytes" in message
    # bytes, not characters: 8 two-byte characters are 16 bytes
    assert "15 bytes" in refused(bridges, [{"name": "\u00e9" * 8}])


@pytest.mark.parametrize("bad", ["/", "a b", "a:b", "a\nb", "a\tb"])
def test_interface_name_message_mentions_the_rule(bad):
    message = refused(bridges, [{"name": bad}])
    assert "must not contain" in message or "may only use" in message, message


def test_interface_name_required():
    assert refused(bridges, [{"name": ""}]).startswith("config[0].name:")
    assert refused(bridges, [{"name": None}]).startswith("config[0].name:")


BAD_NETNS = {
    "empty": "",
    "dot": ".",
    "dotdot": "..",
    "leading dot": ".hidden",
    "slash": "a/b",
    "traversal": "../etc",
    "newline": "ns\n1",
    "space": "ns 1",
    "nul": "ns\x001",
    "control": "ns\x1b1",
    "del": "ns\x7f",
    "too long": "n" * 65,
}


@pytest.mark.parametrize("bad", BAD_NETNS.values(), ids=BAD_NETNS.keys())
def test_namespace_name_refused_everywhere(bad):
    message = refused(namespaces, [{"name": "good"}, {"name": bad}])
    assert message.startswith("config[1]"), message
    assert message.split(": ", 1)[0].endswith(".name"), message
    if bad:  # the empty name is only "required"; the veth/bridge option is then simply unset
        message = refused(bridges, [{"name": "br0", "netns": bad}])
        assert message.startswith("config[0] (name=br0).netns:"), message
        message = refused(veths, [{"name": "v1", "peer_netns": bad}])
        assert message.startswith("config[0] (name=v1).peer_netns:"), message


def test_namespace_name_accepted_forms():
    names = ["a", "web-1", "db_2", "x.y", "a@b", "c+d", "n" * 64]
    assert [n["name"] for n in namespaces([{"name": n} for n in names])] == names


def test_hidden_namespace_name_is_refused_with_the_rule():
    """/run/netns/.hidden exists but listing the namespaces skips it: a second run would fail with
    "File exists" after the first had created it (and persist had dropped its ownership mark)."""
    message = refused(namespaces, [{"name": ".hidden"}])
    assert message == ("config[0] (name=.hidden).name: namespace name '.hidden' must be 1-64 characters of letters,"
                       " digits and '_.@+-', not starting with '-' or '.'"), message
    with pytest.raises(ValidationError, match=r"^linuxnet_endpoints\[0\]\.name: namespace name '\.x'"):
        v.netns_name(".x", "linuxnet_endpoints[0].name")
    assert v.netns_name("a.", "f") == "a." and v.netns_name("_x", "f") == "_x"
    # Labels (network names, mapping labels) name no namespace: they keep a leading '.'.
    assert v.label(".net", "f") == ".net"


def test_empty_namespace_name_is_required():
    assert refused(namespaces, [{"name": ""}]) == "config[0].name: a namespace name is required"


# ------------------------------------------------------------------------------------------ values

BAD_CIDRS = {
    "no prefix": "172.17.0.1",
    "octet 300": "172.17.0.300/16",
    "prefix 33": "172.17.0.1/33",
    "negative prefix": "172.17.0.1/-1",
    "words": "gateway/16",
    "empty": "",
    "trailing junk": "172.17.0.1/16 dev eth0",
    # accepted by the kernel, but nonsense on an interface (the prefix route of /0 takes over routing)
    "prefix 0": "10.0.0.1/0",
    "prefix 7": "10.0.0.1/7",
    "multicast": "224.0.0.5/24",
    "loopback": "127.0.0.5/8",
    "this network": "0.0.0.0/8",
    "limited broadcast": "255.255.255.255/32",
    "ipv6 without prefix": "fd00::1",
    "ipv6 prefix 129": "fd00::1/129",
    "ipv6 prefix 32 (the prefix route would swallow the host's routing)": "fd00::1/32",
    "ipv6 link-local (the kernel's own)": "fe80::1/64",
    "ipv6 multicast": "ff02::1/64",
    "ipv6 loopback": "::1/128",
    "ipv6 unspecified": "::/64",
    "ipv6 v4-mapped": "::ffff:10.0.0.1/120",
    "ipv6 zone": "fe80::1%eth0/64",
}


@pytest.mark.parametrize("bad", BAD_CIDRS.values(), ids=BAD_CIDRS.keys())
def test_bad_cidr_names_item_field_and_index(bad):
    message = refused(bridges, [{"name": "br0", "addresses": ["10.0.0.1/24", bad]}])
    assert message.startswith("config[0] (name=br0).addresses[1]:"), message
    message = refused(veths, [{"name": "v1", "peer_netns": "ns1", "addresses": [bad]}])
    assert message.startswith("config[0] (name=v1).addresses[0]:"), message


def test_cidr_normalisation():
    item = bridges([{"name": "br0", "addresses": ["172.17.0.1/255.255.0.0", "10.1.2.3/32", "FD00:0:0:1::0001/64"]}])[0]
    assert item["addresses"] == ["172.17.0.1/16", "10.1.2.3/32", "fd00:0:0:1::1/64"]


BAD_SUBNETS6 = {
    "ipv4": "10.0.0.0/24", "host bits": "fd00::1/64", "prefix 63": "fd00::/63", "prefix 121": "fd00::/121",
    "link-local": "fe80::/64", "multicast": "ff02::/64", "loopback range": "::/120", "v4-mapped": "::ffff:0:0/96",
    "no prefix": "fd00::", "newline": "fd00::/64\n", "words": "subnet6",
}


@pytest.mark.parametrize("bad", BAD_SUBNETS6.values(), ids=BAD_SUBNETS6.keys())
def test_bad_ipv6_subnet_names_the_field(bad):
    with pytest.raises(ValidationError, match=r"^net\.subnet6: "):
        v.network6(bad, "net.subnet6")


def test_ipv6_subnet_normalised():
    assert v.network6("FD00:1:0::/64", "f") == "fd00:1::/64" and v.network6("2001:db8::100/120", "f") == "2001:db8::100/120"


def test_veth_ipv6_options():
    item = veths([{"name": "v1", "peer_netns": "ns1", "addresses": ["fd00::2/64", "10.0.0.2/24"], "gateway6": "fd00::1",
                   "mac": "docker"}])[0]
    assert item["mac"] == "02:42:0a:00:00:02"  # from the first IPv4 address
    assert refused(veths, [{"name": "v1", "peer_netns": "ns1", "addresses": ["fd00::2/64"], "gateway6": "fd01::1"}]) == (
        "config[0] (name=v1).gateway6: fd01::1 is in no subnet of the addresses given for namespace ns1 (fd00::/64)")
    assert refused(veths, [{"name": "v1", "peer_netns": "ns1", "gateway6": "10.0.0.1"}]).startswith("config[0] (name=v1).gateway6:")
    assert refused(veths, [{"name": "v1", "peer_netns": "ns1", "gateway": "fd00::1"}]).startswith("config[0] (name=v1).gateway:")
    assert refused(veths, [{"name": "v1", "peer_netns": "ns1", "addresses": ["fd00::2/64"], "ipv6": False}]).startswith(
        "config[0] (name=v1).ipv6: false, but")
    assert refused(veths, [{"name": "v1", "peer_netns": "ns1", "addresses": ["fd00::2/64"], "mac": "docker"}]).startswith(
        "config[0] (name=v1).mac:")


BAD_MACS = {
    "short": "02:42:ac:11:00",
    "long": "02:42:ac:11:00:02:03",
    "not hex": "02:42:ac:11:00:zz",
    "no separators": "0242ac110002",
    "multicast": "01:00:5e:00:00:01",
    "broadcast": "ff:ff:ff:ff:ff:ff",
    "all zero (the kernel refuses it)": "00:00:00:00:00:00",
    "word": "random",
}


@pytest.mark.parametrize("bad", BAD_MACS.values(), ids=BAD_MACS.keys())
def test_bad_mac(bad):
    message = refused(bridges, [{"name": "br0"}, {"name": "br1", "mac": bad}])
    assert message.startswith("config[1] (name=br1).mac:"), message
    message = refused(veths, [{"name": "v1", "peer_netns": "ns1", "addresses": ["10.0.0.2/24"], "mac": bad}])
    assert message.startswith("config[0] (name=v1).mac:"), message


def test_mac_normalisation():
    assert bridges([{"name": "br0", "mac": "02-42-AC-11-00-02"}])[0]["mac"] == "02:42:ac:11:00:02"


def test_docker_mac_keyword_only_for_veth():
    assert refused(bridges, [{"name": "br0", "mac": "docker"}]).startswith("config[0] (name=br0).mac:")


@pytest.mark.parametrize("bad", [67, 65536, 0, -1, "big"])
def test_mtu_out_of_range(bad):
    message = refused(bridges, [{"name": "a"}, {"name": "x", "mtu": bad}])
    assert message.startswith("config[1] (name=x).mtu:"), message
    message = refused(veths, [{"name": "v1", "peer_netns": "ns1", "mtu": bad}])
    assert message.startswith("config[0] (name=v1).mtu:"), message


def test_mtu_message_states_the_range():
    assert refused(bridges, [{"name": "a"}, {"name": "x", "mtu": 67}]) == "config[1] (name=x).mtu: MTU 67 is outside 68..65535"


@pytest.mark.parametrize("good", [68, 1500, 9000, 65535])
def test_mtu_in_range(good):
    assert bridges([{"name": "br0", "mtu": good}])[0]["mtu"] == good
    assert veths([{"name": "v1", "peer_netns": "ns1", "mtu": good}])[0]["mtu"] == good


@pytest.mark.parametrize("name", ["all", "default"])
def test_names_the_kernel_reserves(name):
    """``ip link add all type bridge``: EINVAL (they are net.ipv4.conf's entries for every link)."""
    assert "reserved by the kernel" in refused(bridges, [{"name": name}])
    assert refused(veths, [{"name": "v1", "peer": name, "peer_netns": "ns1"}]).startswith("config[0] (name=v1).peer:")


def test_gateway_outside_the_namespaces_subnets():
    """The kernel refuses the default route midway ("Nexthop has invalid gateway"): refused first."""
    message = refused(veths, [{"name": "v1", "peer_netns": "ns1", "addresses": ["10.0.0.2/24"], "gateway": "10.9.0.1"}])
    assert message == "config[0] (name=v1).gateway: 10.9.0.1 is in no subnet of the addresses given for namespace ns1 (10.0.0.0/24)"
    # another pair of the same namespace may carry the subnet; a namespace given no addresses is not judged
    assert veths([{"name": "v1", "peer_netns": "ns1", "addresses": ["10.0.0.2/24"]},
                  {"name": "v2", "peer": "eth1", "peer_netns": "ns1", "addresses": ["10.9.0.2/24"], "gateway": "10.9.0.1"}])
    assert veths([{"name": "v1", "peer_netns": "ns1", "gateway": "10.9.0.1"}])


@pytest.mark.parametrize("bad", ["10.0.0", "10.0.0.1/24", "fd00::1", "host"])
def test_bad_gateway(bad):
    message = refused(veths, [{"name": "v1", "peer_netns": "ns1", "gateway": bad}])
    assert message.startswith("config[0] (name=v1).gateway:"), message


# ------------------------------------------------------------------------------------------ items


def test_duplicate_bridges():
    message = refused(bridges, [{"name": "br0"}, {"name": "br1"}, {"name": "br0"}])
    assert message.startswith("config[2]:") and "duplicate" in message and "'br0'" in message
    assert "config[0]" in message


def test_same_bridge_name_in_different_namespaces_is_not_a_duplicate():
    items = bridges([{"name": "br0"}, {"name": "br0", "netns": "ns1"}, {"name": "br0", "netns": "ns2"}])
    assert [i["netns"] for i in items] == [None, "ns1", "ns2"]
    assert "duplicate" in refused(bridges, [{"name": "br0", "netns": "ns1"}, {"name": "br0", "netns": "ns1"}])


def test_duplicate_veths():
    message = refused(veths, [{"name": "v1", "peer_netns": "a"}, {"name": "v1", "peer_netns": "b"}])
    assert message.startswith("config[1]:") and "duplicate" in message and "'v1'" in message


def test_duplicate_peer_in_same_namespace():
    # two pairs cannot both put their eth0 into namespace a
    message = refused(veths, [{"name": "v1", "peer_netns": "a"}, {"name": "v2", "peer_netns": "a"}])
    assert message.startswith("config[1]:") and "duplicate" in message
    assert len(veths([{"name": "v1", "peer_netns": "a"}, {"name": "v2", "peer_netns": "b"}])) == 2


def test_duplicate_namespaces():
    message = refused(namespaces, [{"name": "a"}, {"name": "b"}, {"name": "a"}])
    assert message.startswith("config[2]:") and "duplicate" in message and "'a'" in message


def test_veth_needs_peer_netns_or_host_peer():
    message = refused(veths, [{"name": "v1"}])
    assert message.startswith("config[0] (name=v1).peer_netns:"), message
    # a host-only pair names its other end
    item = veths([{"name": "v1", "peer": "v1p"}])[0]
    assert (item["peer"], item["peer_netns"]) == ("v1p", None)
    # deleting by name needs neither
    assert veths([{"name": "v1"}], "deleted")[0]["name"] == "v1"


def test_veth_peer_defaults_to_eth0():
    assert veths([{"name": "v1", "peer_netns": "ns1"}])[0]["peer"] == "eth0"


def test_veth_host_pair_cannot_share_a_name():
    assert refused(veths, [{"name": "v1", "peer": "v1"}]).startswith("config[0] (name=v1).peer:")
    # in another namespace the same name is fine
    assert veths([{"name": "v1", "peer": "v1", "peer_netns": "ns1"}])[0]["peer"] == "v1"


def test_docker_mac_needs_an_address():
    message = refused(veths, [{"name": "v1", "peer_netns": "ns1", "mac": "docker"}])
    assert message.startswith("config[0] (name=v1).mac:"), message


def test_docker_mac_rule():
    item = veths([{"name": "v1", "peer_netns": "ns1", "addresses": ["172.17.0.2/16"], "mac": "docker"}])[0]
    assert item["mac"] == "02:42:ac:11:00:02"
    # the first address counts
    item = veths([{"name": "v1", "peer_netns": "ns1", "addresses": ["10.255.0.17/8", "172.17.0.2/16"], "mac": "docker"}])[0]
    assert item["mac"] == "02:42:0a:ff:00:11"


def test_netns_hosts_entries():
    item = namespaces([{"name": "web", "hosts": [{"ip": "172.18.0.3", "names": ["db", "db.local"]}, {"ip": "fd00::3", "names": "x"}]}])[0]
    assert item["hosts"] == [{"ip": "172.18.0.3", "names": ["db", "db.local"]}, {"ip": "fd00::3", "names": ["x"]}]
    message = refused(namespaces, [{"name": "web", "hosts": [{"ip": "1.2.3.4", "names": ["ok"]}, {"ip": "nope", "names": ["db"]}]}])
    assert message.startswith("config[0] (name=web).hosts[1].ip:"), message
    message = refused(namespaces, [{"name": "web", "hosts": [{"ip": "1.2.3.4", "names": []}]}])
    assert message.startswith("config[0] (name=web).hosts[0].names:"), message
    message = refused(namespaces, [{"name": "web", "hosts": [{"ip": "1.2.3.4", "names": ["bad name"]}]}])
    assert message.startswith("config[0] (name=web).hosts[0].names:"), message
    message = refused(namespaces, [{"name": "web", "hosts": [{"ip": "1.2.3.4", "names": ["x\ny"]}]}])
    assert message.startswith("config[0] (name=web).hosts[0].names:"), message


def test_netns_host_groups_expand_after_own_entries():
    groups = [
        {"name": "front", "hosts": [{"ip": "172.18.0.2", "names": ["web"]}, {"ip": "172.18.0.3", "names": ["db"]}]},
        {"name": "back", "hosts": [{"ip": "10.0.0.3", "names": ["db"]}, {"ip": "10.0.0.4", "names": ["cache"]}]},
    ]
    module = FakeModule(host_groups=groups)
    items = NetnsResource(module).normalize(
        [{"name": "web", "hosts": [{"ip": "172.18.0.2", "names": ["web"]}], "host_groups": ["front", "back"]},
         {"name": "cache", "host_groups": ["back"]},
         {"name": "bare"}],
        "merged",
    )
    # own entry first; db only once (first group wins); cache from the second group
    assert items[0]["hosts"] == [
        {"ip": "172.18.0.2", "names": ["web"]},
        {"ip": "172.18.0.3", "names": ["db"]},
        {"ip": "10.0.0.4", "names": ["cache"]},
    ]
    assert items[1]["hosts"] == groups[1]["hosts"]
    assert items[2]["hosts"] is None  # neither hosts nor host_groups: the file is left alone


def test_netns_host_groups_refused():
    def with_groups(groups, config):
        return NetnsResource(FakeModule(host_groups=groups)).normalize(config, "merged")

    with pytest.raises(ValidationError, match=r"^config\[0\] \(name=web\)\.host_groups\[0\]: no host group 'nope'"):
        with_groups([], [{"name": "web", "host_groups": ["nope"]}])
    with pytest.raises(ValidationError, match=r"^host_groups\[1\]\.name: duplicate host group g"):
        with_groups([{"name": "g", "hosts": []}, {"name": "g", "hosts": []}], [])
    with pytest.raises(ValidationError, match=r"^host_groups\[0\]\.hosts\[0\]\.names:"):
        with_groups([{"name": "g", "hosts": [{"ip": "10.0.0.1", "names": ["x\ny"]}]}], [])


def test_netns_resolv_conf():
    item = namespaces([{"name": "web", "resolv_conf": "nameserver 9.9.9.9"}])[0]
    assert item["resolv_conf"] == "nameserver 9.9.9.9\n"
    message = refused(namespaces, [{"name": "web", "resolv_conf": "nameserver\x009.9.9.9"}])
    assert message.startswith("config[0] (name=web).resolv_conf:"), message
    assert namespaces([{"name": "web", "resolv_conf": "nameserver 9.9.9.9\t# tab\n"}])[0]["resolv_conf"] == "nameserver 9.9.9.9\t# tab\n"


@pytest.mark.parametrize("text", ["nameserver 192.0.2.53\r\nsearch example\r\n", "nameserver 192.0.2.53\r", "a\rb\n"])
def test_netns_resolv_conf_with_a_carriage_return_is_refused(text):
    """The file is read back in text mode ("\\r\\n" -> "\\n"): it would never equal the wanted text,
    and every run would write it again."""
    message = refused(namespaces, [{"name": "web", "resolv_conf": text}])
    assert message == "config[0] (name=web).resolv_conf: text must not contain carriage returns (\\r); use \\n line ends"
    with pytest.raises(ValidationError, match=r"^field: text must not contain carriage returns"):
        v.file_text(text, "field")


def test_validation_happens_for_the_first_bad_item_only_with_its_own_index():
    # the good first items must not be blamed
    message = refused(bridges, [{"name": "br0", "mtu": 1500}, {"name": "br1", "mtu": 1500}, {"name": "br2", "mtu": 70000}])
    assert message.startswith("config[2] (name=br2).mtu:")


def test_where_helper():
    assert v.where(1, {"name": "x"}, "mtu") == "config[1] (name=x).mtu"
    assert v.where(0, {}, "name") == "config[0].name"
    assert v.where(3, {"name": "y" * 60}, "mac") == f"config[3] (name={'y' * 40}).mac"


# `$` matches before a trailing newline: a validator written with match() and `$` lets
# "name\n" through, and the newline then starts a line of its own in a hosts file or in
# restore text. Every validator must refuse a trailing newline.
TRAILING = {"newline": "\n", "crlf": "\r\n", "cr": "\r"}


@pytest.mark.parametrize("tail", TRAILING.values(), ids=TRAILING.keys())
def test_trailing_newline_is_refused_by_every_validator(tail):
    for check, good in (
        (v.netns_name, "evil"),
        (v.label, "evil"),
        (v.hostname, "evil.example"),
        (v.interface_name, "eth0"),
        (v.mac, "02:42:ac:11:00:02"),
    ):
        assert check(good, "field") == good
        if check is v.mac:  # the MAC is normalised (stripped), never pasted as given
            assert check(good + tail, "field") == good
            continue
        with pytest.raises(ValidationError, match=r"^field: "):
            check(good + tail, "field")


def test_trailing_newline_never_reaches_a_namespace_or_hosts_file():
    message = refused(namespaces, [{"name": "evil\n"}])
    assert message.startswith("config[0]"), message
    message = refused(namespaces, [{"name": "web", "hosts": [{"ip": "1.2.3.4", "names": ["db\n"]}]}])
    assert message.startswith("config[0] (name=web).hosts[0].names:"), message
    message = refused(namespaces, [{"name": "web", "hosts": [{"ip": "1.2.3.4", "names": ["db\n6.6.6.6 evil.example"]}]}])
    assert message.startswith("config[0] (name=web).hosts[0].names:"), message


@pytest.mark.parametrize(
    "subnet",
    ["0.0.0.0/0", "10.0.0.0/7", "172.18.0.0/31", "172.18.0.1/32", "127.0.0.0/8", "224.0.0.0/8", "169.254.0.0/16",
     "240.0.0.0/8", "0.0.0.0/8", "172.18.0.0/16\n"],
)
def test_subnets_that_make_no_sense_are_refused(subnet):
    with pytest.raises(ValidationError, match=r"^net\.subnet: "):
        v.network(subnet, "net.subnet")


@pytest.mark.parametrize("subnet", ["10.0.0.0/8", "172.17.0.0/16", "192.168.5.0/24", "10.1.2.0/30"])
def test_usual_subnets_are_accepted(subnet):
    assert v.network(subnet, "net.subnet") == subnet


def test_an_address_text_is_parsed_once_and_a_bad_one_raises_every_time():
    """The bounded cache of address texts (a run names each endpoint's address several times) gives
    ipaddress's value; a text that does not parse is not kept, and a value that is no text is never looked up."""
    import ipaddress

    v._address.cache_clear()
    assert v.address("10.0.0.2") == ipaddress.ip_address("10.0.0.2") and v.address("10.0.0.2") is v.address("10.0.0.2")
    assert v.interface("fd00::2/64") == ipaddress.ip_interface("fd00::2/64")
    for attempt in range(2):
        with pytest.raises(ValueError):
            v.address("10.0.0.256")
        assert v._address.cache_info().currsize == 1, attempt
    assert v._address.cache_info().currsize == 1
    assert v.address(1) == ipaddress.ip_address(1) and v._address.cache_info().currsize == 1
    with pytest.raises(ValidationError, match=r"^x: '10.0.0.256' is not a valid IP address"):
        v.ip_address("10.0.0.256", "x")
    assert v.unicast("10.0.0.2", "y") == "10.0.0.2" and v.cidr("10.0.0.2/16", "z") == "10.0.0.2/16"
