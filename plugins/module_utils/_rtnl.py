# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""A minimal, read-only rtnetlink reader for the endpoint side of veth pairs.

A gather visits every endpoint namespace for a few small answers: the peer link, its addresses
and the default routes (IPv4 and IPv6). pyroute2 decodes every attribute of every message through its
asyncio core (about 3 ms per namespace); reading the few attributes needed from a plain netlink
socket costs a tenth of that, which is what a no-change run over a thousand endpoints is made of.
Everything that writes (but the loopback of a namespace being made), and every other read, goes
through pyroute2.
"""

from __future__ import annotations

import os
import socket
import struct

NETLINK_ROUTE = 0
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS = 1, 3, 4, 5, 10, 18, 20
IFLA_AF_SPEC, IFLA_LINK_NETNSID = 26, 37
IFLA_INFO_KIND = 1
AF_INET6, IFLA_INET6_CONF = 10, 2  # IFLA_AF_SPEC > AF_INET6 > IFLA_INET6_CONF: s32 devconf[DEVCONF_*]
DEVCONF_ACCEPT_RA, DEVCONF_DISABLE_IPV6 = 3, 26
IFA_ADDRESS = 1
RT_SCOPE_UNIVERSE = 0
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN = 254
IFF_UP = 1

_HEADER = struct.Struct("=IHHII")  # nlmsghdr
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg


def attributes(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """The netlink attributes in ``data`` from ``offset``: type -> payload (first one wins)."""
    found: dict[int, bytes] = {}
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found.setdefault(kind & 0x3FFF, data[offset + 4:offset + length])  # without the NESTED/BYTEORDER flags
        offset += (length + 3) & ~3
    return found


def _string(raw: bytes | None) -> str | None:
    return None if raw is None else raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _u32(raw: bytes | None) -> int | None:
    return None if raw is None or len(raw) < 4 else struct.unpack_from("=I", raw)[0]


def _i32(raw: bytes | None) -> int | None:
    return None if raw is None or len(raw) < 4 else struct.unpack_from("=i", raw)[0]


def ipv6_devconf(af_spec: bytes | None, index: int) -> int | None:
    """Entry ``index`` (DEVCONF_*) of a link's IPv6 settings, from its IFLA_AF_SPEC; None when the
    kernel reports no IPv6 for it (booted with ipv6.disable=1)."""
    inet6 = attributes(attributes(af_spec).get(AF_INET6, b"")) if af_spec else {}
    conf = inet6.get(IFLA_INET6_CONF, b"")
    if len(conf) < 4 * (index + 1):
        return None
    return struct.unpack_from("=i", conf, 4 * index)[0]


def ipv6_enabled(af_spec: bytes | None) -> bool | None:
    """Whether IPv6 is on for a link (``disable_ipv6`` is 0); None: the kernel has no IPv6."""
    disabled = ipv6_devconf(af_spec, DEVCONF_DISABLE_IPV6)
    return None if disabled is None else disabled == 0


def parse_link(body: bytes) -> dict:
    """An RTM_NEWLINK body as :func:`_netlink.link_summary` describes a link (bridge details left out)."""
    _family, _type, index, flags, _change = _IFINFO.unpack_from(body)
    attrs = attributes(body, _IFINFO.size)
    mac = attrs.get(IFLA_ADDRESS)
    linkinfo = attributes(attrs[IFLA_LINKINFO]) if IFLA_LINKINFO in attrs else {}
    master = _u32(attrs.get(IFLA_MASTER))
    return {
        "index": index,
        "name": _string(attrs.get(IFLA_IFNAME)),
        "kind": _string(linkinfo.get(IFLA_INFO_KIND)),
        "mtu": _u32(attrs.get(IFLA_MTU)),
        "mac": ":".join(f"{b:02x}" for b in mac) if mac else None,
        "up": bool(flags & IFF_UP),
        "master": master or None,
        "alias": _string(attrs.get(IFLA_IFALIAS)),
        "link": _u32(attrs.get(IFLA_LINK)),
        "link_netnsid": _i32(attrs.get(IFLA_LINK_NETNSID)),
        "stp": None,
        "hairpin": None,
        "ipv6": ipv6_enabled(attrs.get(IFLA_AF_SPEC)),
        "accept_ra": ipv6_devconf(attrs.get(IFLA_AF_SPEC), DEVCONF_ACCEPT_RA),
    }


_SIZES = {socket.AF_INET: 4, socket.AF_INET6: 16}
_ANY = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}


def _ntop(family: int, raw: bytes | None) -> str | None:
    return socket.inet_ntop(family, raw) if raw is not None and len(raw) == _SIZES.get(family) else None


def parse_address(body: bytes) -> tuple[int, str] | None:
    """(link index, ``address/len``) of an RTM_NEWADDR body: IPv4, and IPv6 of global scope (the
    link-local addresses are the kernel's own, one per link); None for the rest."""
    family, prefixlen, _flags, scope, index = _IFADDR.unpack_from(body)
    address = _ntop(family, attributes(body, _IFADDR.size).get(IFA_ADDRESS))
    if address is None or (family == socket.AF_INET6 and (scope != RT_SCOPE_UNIVERSE or address.startswith("fe80:"))):
        return None
    return index, f"{address}/{prefixlen}"


def parse_default_gateway(body: bytes, family: int = socket.AF_INET) -> str | None:
    """The gateway of an RTM_NEWROUTE body if it is a default route of ``family`` in the main table."""
    got, dst_len, _src_len, _tos, table, _proto, _scope, _type, _flags = _RTMSG.unpack_from(body)
    attrs = attributes(body, _RTMSG.size)
    table = _u32(attrs.get(RTA_TABLE)) or table
    if got != family or dst_len != 0 or table != RT_TABLE_MAIN:
        return None
    return _ntop(family, attrs.get(RTA_GATEWAY))


def parse_route(body: bytes) -> dict | None:
    """``{"dst": "address/len", "oif": index or None}`` of an RTM_NEWROUTE body of the main table
    (IPv4 or IPv6); None for other tables and families."""
    family, dst_len, _src_len, _tos, table, _proto, _scope, _type, _flags = _RTMSG.unpack_from(body)
    attrs = attributes(body, _RTMSG.size)
    table = _u32(attrs.get(RTA_TABLE)) or table
    if family not in _SIZES or table != RT_TABLE_MAIN:
        return None
    address = _ntop(family, attrs.get(RTA_DST)) or _ANY[family]
    return {"dst": f"{address}/{dst_len}", "oif": _u32(attrs.get(RTA_OIF))}


class Reader:
    """Requests on one rtnetlink socket (bound to the namespace it was opened in)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, msg_type: int, body: bytes, dump: bool, flags: int = 0) -> list[tuple[int, bytes]]:
        """(type, body) of the answers; an error answer raises OSError (ENODEV for a missing link)."""
        self.seq += 1
        flags |= NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
        self.sock.send(_HEADER.pack(_HEADER.size + len(body), msg_type, flags, self.seq, 0) + body)
        answers: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(1 << 17)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    break
                if seq == self.seq:
                    if kind == NLMSG_DONE:
                        return answers
                    if kind == NLMSG_ERROR:
                        error = -struct.unpack_from("=i", data, offset + _HEADER.size)[0]
                        if error:
                            raise OSError(error, os.strerror(error))
                        return answers
                    answers.append((kind, data[offset + _HEADER.size:offset + length]))
                offset += (length + 3) & ~3
            if answers and not dump:
                return answers

    def link(self, index: int) -> dict | None:
        try:
            answers = self.request(RTM_GETLINK, _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0), dump=False)
        except OSError:  # ENODEV: no link with that index
            return None
        return next((parse_link(body) for kind, body in answers if kind == RTM_NEWLINK), None)

    def set_up(self, index: int) -> None:
        """``ip link set <index> up`` (the one write here: the loopback of a namespace being made)."""
        self.request(RTM_NEWLINK, _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP), dump=False, flags=NLM_F_ACK)

    def addresses(self) -> dict[int, list[str]]:
        """Addresses per link index as :func:`parse_address` gives them, IPv4 first (kernel order)."""
        table: dict[int, list[str]] = {}
        for kind, body in self.request(RTM_GETADDR, _IFADDR.pack(socket.AF_UNSPEC, 0, 0, 0, 0), dump=True):
            parsed = parse_address(body) if kind == RTM_NEWADDR else None
            if parsed:
                table.setdefault(parsed[0], []).append(parsed[1])
        return table

    def routes(self) -> list[dict]:
        """The routes of the main IPv4 and IPv6 tables, as :func:`parse_route` gives them."""
        found = []
        for kind, body in self.request(RTM_GETROUTE, _RTMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0), dump=True):
            route = parse_route(body) if kind == RTM_NEWROUTE else None
            if route:
                found.append(route)
        return found

    def default_gateway(self, family: int = socket.AF_INET) -> str | None:
        for kind, body in self.request(RTM_GETROUTE, _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0), dump=True):
            gateway = parse_default_gateway(body, family) if kind == RTM_NEWROUTE else None
            if gateway:
                return gateway
        return None
