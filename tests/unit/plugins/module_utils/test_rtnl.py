"""The parsers of the lightweight rtnetlink reader (pure; no root, no kernel).

Messages are built here byte by byte as the kernel lays them out. That the reader agrees with
pyroute2 on a real kernel is checked by the veth gathers of tests/integration (every idempotence
and drift test reads endpoints through it).

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_rtnl.py -q``
"""

from __future__ import annotations

import socket
import struct

import pytest

from ansible_collections.linuxnet.bridge.plugins.module_utils import _rtnl

NLA_F_NESTED = 0x8000


def nla(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def link_body(index: int, flags: int, *attrs: bytes) -> bytes:
    return struct.pack("=BxHiII", socket.AF_UNSPEC, 1, index, flags, 0) + b"".join(attrs)


def test_link_attributes_nested_kind_and_padding():
    body = link_body(
        2, 0x1 | 0x40,  # IFF_UP | IFF_RUNNING
        nla(_rtnl.IFLA_IFNAME, b"eth0\0"),  # 5 bytes: padded to 8
        nla(_rtnl.IFLA_MTU, struct.pack("=I", 1400)),
        nla(_rtnl.IFLA_ADDRESS, bytes([2, 0x42, 10, 100, 0, 2])),
        nla(_rtnl.IFLA_LINK, struct.pack("=I", 7)),
        nla(_rtnl.IFLA_LINKINFO | NLA_F_NESTED, nla(_rtnl.IFLA_INFO_KIND, b"veth\0")),
        nla(_rtnl.IFLA_LINK_NETNSID, struct.pack("=i", 0)),
        nla(_rtnl.IFLA_GROUP, struct.pack("=I", 0)),
    )
    assert _rtnl.parse_link(body) == {
        "index": 2, "name": "eth0", "kind": "veth", "mtu": 1400, "mac": "02:42:0a:64:00:02", "up": True,
        "master": None, "alias": None, "link": 7, "link_netnsid": 0, "group": 0, "stp": None, "hairpin": None, "ipv6": None, "accept_ra": None,
    }


def test_link_down_without_optional_attributes():
    link = _rtnl.parse_link(link_body(1, 0, nla(_rtnl.IFLA_IFNAME, b"lo\0")))
    assert (link["name"], link["up"], link["kind"], link["mac"], link["link"]) == ("lo", False, None, None, None)


def test_truncated_attribute_stops_parsing():
    body = nla(_rtnl.IFLA_IFNAME, b"eth0\0") + struct.pack("=HH", 2, _rtnl.IFLA_MTU)  # length < 4
    assert _rtnl.attributes(body) == {_rtnl.IFLA_IFNAME: b"eth0\0"}


def address_body(family: int, prefixlen: int, scope: int, index: int, address: str) -> bytes:
    return struct.pack("=BBBBI", family, prefixlen, 0, scope, index) + nla(_rtnl.IFA_ADDRESS, socket.inet_pton(family, address))


def test_addresses_ipv4_and_global_ipv6_only():
    assert _rtnl.parse_address(address_body(socket.AF_INET, 16, 0, 2, "10.100.0.2")) == (2, "10.100.0.2/16")
    assert _rtnl.parse_address(address_body(socket.AF_INET6, 64, 0, 2, "fd00:1::2")) == (2, "fd00:1::2/64")
    # the kernel's own: link-local (scope link, 253) and ::1 (scope host, 254)
    assert _rtnl.parse_address(address_body(socket.AF_INET6, 64, 253, 2, "fe80::42:acff:fe11:2")) is None
    assert _rtnl.parse_address(address_body(socket.AF_INET6, 128, 254, 1, "::1")) is None
    assert _rtnl.parse_address(address_body(socket.AF_INET6, 64, 0, 2, "fe80::1")) is None  # link-local whatever the scope
    truncated = struct.pack("=BBBBI", socket.AF_INET6, 64, 0, 0, 2) + nla(_rtnl.IFA_ADDRESS, b"\xfd" * 4)
    assert _rtnl.parse_address(truncated) is None


def test_ipv6_default_gateway_and_routes():
    def body6(dst_len: int, table: int, *attrs: bytes) -> bytes:
        return struct.pack("=BBBBBBBBI", socket.AF_INET6, dst_len, 0, 0, table, 3, 0, 1, 0) + b"".join(attrs)

    gateway = nla(_rtnl.RTA_GATEWAY, socket.inet_pton(socket.AF_INET6, "fd00:1::1"))
    assert _rtnl.parse_default_gateway(body6(0, 254, gateway), socket.AF_INET6) == "fd00:1::1"
    assert _rtnl.parse_default_gateway(body6(0, 254, gateway)) is None  # asked for IPv4
    assert _rtnl.parse_default_gateway(route_body(0, 254, nla(_rtnl.RTA_GATEWAY, socket.inet_aton("10.0.0.1"))),
                                       socket.AF_INET6) is None
    assert _rtnl.parse_default_gateway(body6(64, 254, gateway), socket.AF_INET6) is None
    dst = nla(_rtnl.RTA_DST, socket.inet_pton(socket.AF_INET6, "fd00:1::"))
    oif = nla(_rtnl.RTA_OIF, struct.pack("=I", 3))
    assert _rtnl.parse_route(body6(64, 254, dst, oif)) == {"dst": "fd00:1::/64", "oif": 3}
    assert _rtnl.parse_route(body6(0, 254, gateway, oif)) == {"dst": "::/0", "oif": 3}
    assert _rtnl.parse_route(body6(64, 255, dst, oif)) is None  # local table


def route_body(dst_len: int, table: int, *attrs: bytes) -> bytes:
    return struct.pack("=BBBBBBBBI", socket.AF_INET, dst_len, 0, 0, table, 3, 0, 1, 0) + b"".join(attrs)


def test_default_gateway_of_the_main_table_only():
    gateway = nla(_rtnl.RTA_GATEWAY, socket.inet_aton("10.100.0.1"))
    assert _rtnl.parse_default_gateway(route_body(0, 254, gateway)) == "10.100.0.1"
    # the table in RTA_TABLE wins over the 8-bit field (tables above 255 only exist there)
    assert _rtnl.parse_default_gateway(route_body(0, 252, nla(_rtnl.RTA_TABLE, struct.pack("=I", 254)), gateway)) == "10.100.0.1"
    assert _rtnl.parse_default_gateway(route_body(0, 255, gateway)) is None  # local table
    assert _rtnl.parse_default_gateway(route_body(16, 254, gateway)) is None  # not a default route
    assert _rtnl.parse_default_gateway(route_body(0, 254)) is None  # default route without gateway (dev only)


@pytest.mark.parametrize("disabled, expected", [(1, False), (0, True)])
def test_ipv6_state_from_the_devconf_array(disabled, expected):
    """IFLA_AF_SPEC > AF_INET6 > IFLA_INET6_CONF, s32 per DEVCONF_*; disable_ipv6 is entry 26."""
    conf = [0] * 60
    conf[_rtnl.DEVCONF_DISABLE_IPV6] = disabled
    inet6 = nla(_rtnl.IFLA_INET6_CONF, struct.pack("=60i", *conf))
    af_spec = nla(socket.AF_INET, b"\0" * 8) + nla(_rtnl.AF_INET6 | NLA_F_NESTED, nla(1, b"\0\0\0\0") + inet6)
    body = link_body(3, 0, nla(_rtnl.IFLA_IFNAME, b"eth0\0"), nla(_rtnl.IFLA_AF_SPEC | NLA_F_NESTED, af_spec))
    assert _rtnl.parse_link(body)["ipv6"] is expected


def test_accept_ra_from_the_devconf_array():
    conf = [0] * 60
    conf[_rtnl.DEVCONF_ACCEPT_RA] = 2
    af_spec = nla(_rtnl.AF_INET6 | NLA_F_NESTED, nla(_rtnl.IFLA_INET6_CONF, struct.pack("=60i", *conf)))
    link = _rtnl.parse_link(link_body(3, 0, nla(_rtnl.IFLA_AF_SPEC | NLA_F_NESTED, af_spec)))
    assert (link["ipv6"], link["accept_ra"]) == (True, 2)


def test_ipv6_unknown_without_inet6_or_with_a_short_array():
    short = nla(_rtnl.AF_INET6, nla(_rtnl.IFLA_INET6_CONF, struct.pack("=4i", 0, 64, 1500, 1)))
    for af_spec in ([], [nla(_rtnl.IFLA_AF_SPEC | NLA_F_NESTED, nla(socket.AF_INET, b"\0" * 8))],
                    [nla(_rtnl.IFLA_AF_SPEC | NLA_F_NESTED, short)]):
        link = _rtnl.parse_link(link_body(3, 0, nla(_rtnl.IFLA_IFNAME, b"eth0\0"), *af_spec))
        assert link["ipv6"] is None


def test_routes_of_the_main_table_with_destination_and_device():
    dst, oif = nla(_rtnl.RTA_DST, socket.inet_aton("10.55.0.0")), nla(_rtnl.RTA_OIF, struct.pack("=I", 2))
    assert _rtnl.parse_route(route_body(16, 254, dst, oif)) == {"dst": "10.55.0.0/16", "oif": 2}
    assert _rtnl.parse_route(route_body(0, 254, oif)) == {"dst": "0.0.0.0/0", "oif": 2}
    assert _rtnl.parse_route(route_body(16, 255, dst, oif)) is None  # local table
    assert _rtnl.parse_route(route_body(16, 254, dst)) == {"dst": "10.55.0.0/16", "oif": None}  # multipath: no single device


def test_routes_of_other_tables_as_the_kernel_encodes_them_are_not_main():
    """A table that fits 8 bits is in rtm_table (and RTA_TABLE), a larger one in RTA_TABLE behind
    RT_TABLE_COMPAT: neither is the main table, whether or not its attributes are read."""
    dst, gateway = nla(_rtnl.RTA_DST, socket.inet_aton("10.55.0.0")), nla(_rtnl.RTA_GATEWAY, socket.inet_aton("10.0.0.1"))
    for table, header in ((100, 100), (1000, 252), (255, 255)):
        in_table = nla(_rtnl.RTA_TABLE, struct.pack("=I", table))
        assert _rtnl.parse_route(route_body(16, header, in_table, dst)) is None
        assert _rtnl.parse_default_gateway(route_body(0, header, in_table, gateway)) is None
    main = nla(_rtnl.RTA_TABLE, struct.pack("=I", 254))
    assert _rtnl.parse_route(route_body(16, 254, main, dst)) == {"dst": "10.55.0.0/16", "oif": None}
    assert _rtnl.parse_default_gateway(route_body(0, 254, main, gateway)) == "10.0.0.1"


# ------------------------------------------------------------------------------ write requests
# Each encoder's message is compared, byte for byte, with what pyroute2's message classes encode
# for the same request (the classes only, no socket), or with the kernel's layout where pyroute2
# leaves a flag to its request builders. That the kernel does what the commands say is proven by
# tests/integration (test_netlink_modules.py and the rest, which read back with ``ip``).

def pyroute2_bytes(cls_path: str, msg_type: int, flags: int, fields: dict, attrs: list) -> bytes:
    module, _sep, name = cls_path.rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    msg = cls()
    for key, value in fields.items():
        msg[key] = value
    msg["attrs"] = attrs
    msg["header"]["type"], msg["header"]["flags"] = msg_type, flags
    msg.encode()
    return bytes(msg.data[16:])  # the body: the header is the socket's


IFINFO = "pyroute2.netlink.rtnl.ifinfmsg.ifinfmsg"
IFADDR = "pyroute2.netlink.rtnl.ifaddrmsg.ifaddrmsg"
RTMSG = "pyroute2.netlink.rtnl.rtmsg.rtmsg"
CREATE = _rtnl.NLM_F_REQUEST | _rtnl.NLM_F_ACK | _rtnl.NLM_F_CREATE | _rtnl.NLM_F_EXCL
PLAIN = _rtnl.NLM_F_REQUEST | _rtnl.NLM_F_ACK


def test_new_bridge():
    kind, flags, body = _rtnl.new_bridge("br0")
    assert (kind, flags) == (_rtnl.RTM_NEWLINK, CREATE)
    assert body == pyroute2_bytes(IFINFO, kind, flags, {"index": 0}, [
        ("IFLA_IFNAME", "br0"), ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge")]})])


@pytest.mark.parametrize("mtu, fd", [(None, None), (1400, 7)])
def test_new_veth_with_its_peer_in_a_namespace(mtu, fd):
    kind, flags, body = _rtnl.new_veth("v1", "eth0", mtu, fd)
    assert (kind, flags) == (_rtnl.RTM_NEWLINK, CREATE)
    size = [("IFLA_MTU", mtu)] if mtu else []
    peer = [("IFLA_IFNAME", "eth0")] + size + ([("IFLA_NET_NS_FD", fd)] if fd is not None else [])
    assert body == pyroute2_bytes(IFINFO, kind, flags, {"index": 0}, [("IFLA_IFNAME", "v1")] + size + [
        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth"),
                                     ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"index": 0, "attrs": peer})]})]})])


@pytest.mark.parametrize("kwargs, fields, attrs", [
    ({"up": True}, {"flags": 1, "change": 1}, []),
    ({"up": False}, {"flags": 0, "change": 1}, []),
    ({"mtu": 1400}, {}, [("IFLA_MTU", 1400)]),
    ({"address": "02:42:ac:11:00:02"}, {}, [("IFLA_ADDRESS", "02:42:ac:11:00:02")]),
    ({"alias": "linuxnet.bridge veth peer=eth0 netns=c1"}, {}, [("IFLA_IFALIAS", "linuxnet.bridge veth peer=eth0 netns=c1")]),
    ({"master": 4}, {}, [("IFLA_MASTER", 4)]),
    ({"stp": True}, {}, [("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "bridge"),
                                                      ("IFLA_INFO_DATA", {"attrs": [("IFLA_BR_STP_STATE", 1)]})]})]),
])
def test_set_link_by_name(kwargs, fields, attrs):
    """``ip link set NAME ...``: index 0 and IFLA_IFNAME, the kernel finds the link by its name."""
    kind, flags, body = _rtnl.set_link("br0", **kwargs)
    assert (kind, flags) == (_rtnl.RTM_NEWLINK, PLAIN)
    assert body == pyroute2_bytes(IFINFO, kind, flags, {"index": 0, **fields}, [("IFLA_IFNAME", "br0")] + attrs)


def test_set_link_by_index_names_no_link():
    """lo is index 1 in every namespace: by index, no IFLA_IFNAME (with an index it would rename)."""
    assert _rtnl.set_link(None, 1, up=True)[2] == pyroute2_bytes(IFINFO, 0, 0, {"index": 1, "flags": 1, "change": 1}, [])


def test_del_link_without_excl():
    kind, flags, body = _rtnl.del_link("v1")
    assert (kind, flags) == (_rtnl.RTM_DELLINK, PLAIN)  # NLM_F_EXCL on a delete is NLM_F_BULK since Linux 5.19
    assert body == pyroute2_bytes(IFINFO, kind, flags, {"index": 0}, [("IFLA_IFNAME", "v1")])


def test_set_group_by_name_and_delete_a_group():
    """``ip link set NAME group G`` and ``ip link del group G`` (no index, no name: the kernel deletes the group)."""
    kind, flags, body = _rtnl.set_group("br0", 0x4C4E5844)
    assert (kind, flags) == (_rtnl.RTM_NEWLINK, PLAIN)
    assert body == pyroute2_bytes(IFINFO, kind, flags, {"index": 0}, [("IFLA_IFNAME", "br0"), ("IFLA_GROUP", 0x4C4E5844)])
    kind, flags, body = _rtnl.del_group(0x4C4E5844)
    assert (kind, flags) == (_rtnl.RTM_DELLINK, PLAIN)
    assert body == pyroute2_bytes(IFINFO, kind, flags, {"index": 0}, [("IFLA_GROUP", 0x4C4E5844)])


def test_hairpin_is_a_nested_protinfo_of_af_bridge():
    kind, flags, body = _rtnl.set_hairpin(5, True)
    assert (kind, flags) == (_rtnl.RTM_SETLINK, PLAIN)
    plain = pyroute2_bytes(IFINFO, kind, flags, {"family": _rtnl.AF_BRIDGE, "index": 5},
                           [("IFLA_PROTINFO", {"attrs": [("IFLA_BRPORT_MODE", 1)]})])
    # the kernel reads an IFLA_PROTINFO without NLA_F_NESTED as a port's STP state (br_setlink)
    nested = plain[:18] + struct.pack("=H", _rtnl.IFLA_PROTINFO | NLA_F_NESTED) + plain[20:]
    assert body == nested
    assert body[16:] == nla(_rtnl.IFLA_PROTINFO | NLA_F_NESTED, nla(_rtnl.IFLA_BRPORT_MODE, b"\x01"))
    assert _rtnl.set_hairpin(5, False)[2][-4] == 0


def test_ipv4_address_add_with_broadcast_and_delete():
    kind, flags, body = _rtnl.address(True, 3, "172.17.0.2/16")
    assert (kind, flags) == (_rtnl.RTM_NEWADDR, CREATE)
    assert body == pyroute2_bytes(IFADDR, kind, flags, {"family": socket.AF_INET, "prefixlen": 16, "index": 3}, [
        ("IFA_LOCAL", "172.17.0.2"), ("IFA_ADDRESS", "172.17.0.2"), ("IFA_BROADCAST", "172.17.255.255")])
    kind, flags, body = _rtnl.address(False, 3, "172.17.0.2/16")
    assert (kind, flags) == (_rtnl.RTM_DELADDR, PLAIN)
    assert body == pyroute2_bytes(IFADDR, kind, flags, {"family": socket.AF_INET, "prefixlen": 16, "index": 3}, [
        ("IFA_LOCAL", "172.17.0.2"), ("IFA_ADDRESS", "172.17.0.2")])


@pytest.mark.parametrize("cidr, broadcast", [
    ("10.9.0.0/30", "10.9.0.3"), ("10.9.0.0/31", None), ("10.9.0.1/31", None), ("10.9.0.5/32", None)])
def test_ipv4_broadcast_only_up_to_a_30(cidr, broadcast):
    """As ``ip addr add ... brd +``: a /31's other address is the peer (RFC 3021), a /32's the
    address itself; a broadcast there makes the kernel route the peer as broadcast."""
    ip, _sep, length = cidr.partition("/")
    kind, flags, body = _rtnl.address(True, 3, cidr)
    attrs = [("IFA_LOCAL", ip), ("IFA_ADDRESS", ip)] + ([("IFA_BROADCAST", broadcast)] if broadcast else [])
    assert body == pyroute2_bytes(IFADDR, kind, flags, {"family": socket.AF_INET, "prefixlen": int(length), "index": 3}, attrs)


def test_ipv6_address_add_is_nodad():
    kind, flags, body = _rtnl.address(True, 3, "fd00:1::2/64")
    assert body == pyroute2_bytes(IFADDR, kind, flags, {"family": socket.AF_INET6, "prefixlen": 64, "index": 3,
                                                        "flags": _rtnl.IFA_F_NODAD}, [("IFA_ADDRESS", "fd00:1::2")])
    assert _rtnl.address(False, 3, "fd00:1::2/64")[2][2] == 0  # no flag on a delete


@pytest.mark.parametrize("gateway, family", [("172.17.0.1", socket.AF_INET), ("fd00:1::1", socket.AF_INET6)])
def test_default_route_replace(gateway, family):
    kind, flags, body = _rtnl.replace_default_route(gateway)
    assert (kind, flags) == (_rtnl.RTM_NEWROUTE, PLAIN | _rtnl.NLM_F_CREATE | _rtnl.NLM_F_REPLACE)
    assert body == pyroute2_bytes(RTMSG, kind, flags, {"family": family, "table": 254, "proto": 3, "scope": 0, "type": 1},
                                  [("RTA_GATEWAY", gateway)])


def test_bridge_and_port_details_are_parsed():
    bridge = _rtnl.parse_link(link_body(4, 0, nla(_rtnl.IFLA_IFNAME, b"br0\0"), nla(
        _rtnl.IFLA_LINKINFO | NLA_F_NESTED, nla(_rtnl.IFLA_INFO_KIND, b"bridge\0")
        + nla(_rtnl.IFLA_INFO_DATA | NLA_F_NESTED, nla(_rtnl.IFLA_BR_STP_STATE, struct.pack("=I", 1))))))
    assert (bridge["kind"], bridge["stp"], bridge["hairpin"]) == ("bridge", True, None)
    port = _rtnl.parse_link(link_body(5, 0, nla(_rtnl.IFLA_IFNAME, b"v1\0"), nla(_rtnl.IFLA_MASTER, struct.pack("=I", 4)), nla(
        _rtnl.IFLA_LINKINFO | NLA_F_NESTED, nla(_rtnl.IFLA_INFO_KIND, b"veth\0")
        + nla(_rtnl.IFLA_INFO_SLAVE_DATA | NLA_F_NESTED, nla(_rtnl.IFLA_BRPORT_MODE, b"\x01")))))
    assert (port["kind"], port["stp"], port["hairpin"], port["master"]) == ("veth", None, True, 4)


def test_wanted_attributes_are_the_same_payloads_and_the_first_one_wins():
    """``wanted`` (what parse_link reads of a link's ~40 attributes) gives what the full read gives
    for those types; a bridge port's hairpin mode is read from its many IFLA_BRPORT_* attributes."""
    body = b"".join(nla(kind, struct.pack("=I", kind)) for kind in range(1, 40)) + nla(4, b"late")
    full = _rtnl.attributes(body)
    for wanted in (frozenset({4}), frozenset({3, 30, 39}), frozenset({2, 99})):
        assert _rtnl.attributes(body, 0, wanted) == {k: full[k] for k in wanted if k in full}
    port = nla(_rtnl.IFLA_LINKINFO | NLA_F_NESTED, nla(_rtnl.IFLA_INFO_KIND, b"veth\0") + nla(
        _rtnl.IFLA_INFO_SLAVE_DATA | NLA_F_NESTED,
        b"".join(nla(kind, b"\1") for kind in range(1, 40) if kind != _rtnl.IFLA_BRPORT_MODE) + nla(_rtnl.IFLA_BRPORT_MODE, b"\1")))
    assert _rtnl.parse_link(link_body(3, 0, nla(_rtnl.IFLA_IFNAME, b"veth1\0"), port))["hairpin"] is True
