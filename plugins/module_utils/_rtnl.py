# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""A small rtnetlink client of our own: the link, address and route dumps, and every write request.

pyroute2 decodes every attribute of every message through its asyncio core (about 3 ms per
namespace read, 2 ms per request): reading the few attributes needed, and encoding the few
requests the collection sends, from a plain netlink socket costs a tenth of that. Writes are
encoded here as pure functions (:func:`new_bridge`, :func:`set_link`, ...; each returns the
message type, flags and body) and sent many at a time by :meth:`Reader.transact`.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Iterator, Tuple

NETLINK_ROUTE = 0
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLA_F_NESTED = 0x8000
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS = 1, 3, 4, 5, 10, 18, 20
IFLA_PROTINFO, IFLA_AF_SPEC, IFLA_GROUP, IFLA_NET_NS_FD, IFLA_LINK_NETNSID = 12, 26, 27, 28, 37
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_DATA = 1, 2, 5
VETH_INFO_PEER = 1
IFLA_BR_STP_STATE = 5  # in IFLA_INFO_DATA of a bridge
IFLA_BRPORT_MODE = 4  # hairpin, in IFLA_INFO_SLAVE_DATA of a bridge port (and IFLA_PROTINFO of AF_BRIDGE)
AF_BRIDGE = 7
AF_INET6, IFLA_INET6_CONF = 10, 2  # IFLA_AF_SPEC > AF_INET6 > IFLA_INET6_CONF: s32 devconf[DEVCONF_*]
DEVCONF_ACCEPT_RA, DEVCONF_DISABLE_IPV6 = 3, 26
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
IFA_F_NODAD = 0x02
RT_SCOPE_UNIVERSE = 0
RTPROT_BOOT, RTN_UNICAST = 3, 1
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN = 254
IFF_UP = 1

_HEADER = struct.Struct("=IHHII")  # nlmsghdr
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg


_NLA = struct.Struct("=HH")  # nlattr
_AF_INET6, _INET6_CONF = frozenset({AF_INET6}), frozenset({IFLA_INET6_CONF})  # what _inet6_conf reads


def attributes(data: bytes, offset: int = 0, wanted: frozenset[int] | None = None) -> dict[int, bytes]:
    """The netlink attributes in ``data`` from ``offset``: type -> payload (first one wins);
    ``wanted``: only those types (a link has about 40 attributes, a reader needs a few)."""
    found: dict[int, bytes] = {}
    end, unpack = len(data) - 4, _NLA.unpack_from  # (a dump of 1000 namespaces parses ~30k of them)
    if wanted is None:
        while offset <= end:
            length, kind = unpack(data, offset)
            if length < 4:
                break
            kind &= 0x3FFF  # without the NESTED/BYTEORDER flags
            if kind not in found:
                found[kind] = data[offset + 4:offset + length]
            offset += (length + 3) & ~3
        return found
    left = len(wanted)
    while offset <= end:  # (the loop of every link of a dump: kept to the fewest steps)
        length, kind = unpack(data, offset)
        if length < 4:
            break
        kind &= 0x3FFF
        if kind in wanted and kind not in found:
            found[kind] = data[offset + 4:offset + length]
            left -= 1
            if not left:
                break  # (a bridge port's IFLA_INFO_SLAVE_DATA has about 40, the hairpin mode is the 4th)
        offset += (length + 3) & ~3
    return found


def _string(raw: bytes | None) -> str | None:
    return None if raw is None else raw.split(b"\0", 1)[0].decode("utf-8", "replace")


_U32, _I32 = struct.Struct("=I").unpack_from, struct.Struct("=i").unpack_from


def _u32(raw: bytes | None) -> int | None:
    return None if raw is None or len(raw) < 4 else _U32(raw)[0]


def _i32(raw: bytes | None) -> int | None:
    return None if raw is None or len(raw) < 4 else _I32(raw)[0]


def _inet6_conf(af_spec: bytes | None) -> bytes:
    """The s32 devconf[DEVCONF_*] array of a link's IFLA_AF_SPEC (empty: no IPv6 reported)."""
    inet6 = attributes(attributes(af_spec, 0, _AF_INET6).get(AF_INET6, b""), 0, _INET6_CONF) if af_spec else {}
    return inet6.get(IFLA_INET6_CONF, b"")


def _devconf(conf: bytes, index: int) -> int | None:
    return None if len(conf) < 4 * (index + 1) else struct.unpack_from("=i", conf, 4 * index)[0]


def _u8(raw: bytes | None) -> int | None:
    return raw[0] if raw else None


# the attributes of a link that parse_link reads
_LINK_ATTRIBUTES = frozenset({IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS,
                              IFLA_AF_SPEC, IFLA_GROUP, IFLA_LINK_NETNSID})
_STP, _HAIRPIN = frozenset({IFLA_BR_STP_STATE}), frozenset({IFLA_BRPORT_MODE})


def parse_link(body: bytes) -> dict:
    """An RTM_NEWLINK body: the attributes of a link the modules care about, with a bridge's STP
    state and a bridge port's hairpin mode, and the link's IPv6 settings."""
    _family, _type, index, flags, _change = _IFINFO.unpack_from(body)
    attrs = attributes(body, _IFINFO.size, _LINK_ATTRIBUTES)
    mac = attrs.get(IFLA_ADDRESS)
    linkinfo = attributes(attrs[IFLA_LINKINFO]) if IFLA_LINKINFO in attrs else {}
    kind = _string(linkinfo.get(IFLA_INFO_KIND))
    stp = _u32(attributes(linkinfo.get(IFLA_INFO_DATA, b""), 0, _STP).get(IFLA_BR_STP_STATE)) if kind == "bridge" else None
    hairpin = _u8(attributes(linkinfo.get(IFLA_INFO_SLAVE_DATA, b""), 0, _HAIRPIN).get(IFLA_BRPORT_MODE))
    master = _u32(attrs.get(IFLA_MASTER))
    conf = _inet6_conf(attrs.get(IFLA_AF_SPEC))
    disabled = _devconf(conf, DEVCONF_DISABLE_IPV6)
    return {
        "index": index,
        "name": _string(attrs.get(IFLA_IFNAME)),
        "kind": kind,
        "mtu": _u32(attrs.get(IFLA_MTU)),
        "mac": mac.hex(":") if mac else None,  # (Python >= 3.8)
        "up": bool(flags & IFF_UP),
        "master": master or None,
        "alias": _string(attrs.get(IFLA_IFALIAS)),
        "link": _u32(attrs.get(IFLA_LINK)),
        "link_netnsid": _i32(attrs.get(IFLA_LINK_NETNSID)),
        "group": _u32(attrs.get(IFLA_GROUP)),
        "stp": None if stp is None else bool(stp),
        "hairpin": None if hairpin is None else bool(hairpin),
        "ipv6": None if disabled is None else disabled == 0,
        "accept_ra": _devconf(conf, DEVCONF_ACCEPT_RA),
    }


_SIZES = {socket.AF_INET: 4, socket.AF_INET6: 16}
_ANY = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}


def _ntop(family: int, raw: bytes | None) -> str | None:
    return socket.inet_ntop(family, raw) if raw is not None and len(raw) == _SIZES.get(family) else None


_ADDRESS, _ROUTE = frozenset({IFA_ADDRESS}), frozenset({RTA_TABLE, RTA_DST, RTA_OIF, RTA_GATEWAY})  # what is read of them


def parse_address(body: bytes) -> tuple[int, str] | None:
    """(link index, ``address/len``) of an RTM_NEWADDR body: IPv4, and IPv6 of global scope (the
    link-local addresses are the kernel's own, one per link); None for the rest."""
    family, prefixlen, _flags, scope, index = _IFADDR.unpack_from(body)
    address = _ntop(family, attributes(body, _IFADDR.size, _ADDRESS).get(IFA_ADDRESS))
    if address is None or (family == socket.AF_INET6 and (scope != RT_SCOPE_UNIVERSE or address.startswith("fe80:"))):
        return None
    return index, f"{address}/{prefixlen}"


# The kernel puts a route's table in rtm_table when it fits 8 bits, else RT_TABLE_COMPAT there and the
# id in RTA_TABLE (always given too): a route whose rtm_table is none of these is in no main table,
# and its attributes are not read (a host's local tables hold several routes per link).
RT_TABLE_UNSPEC, RT_TABLE_COMPAT = 0, 252
_MAYBE_MAIN = frozenset({RT_TABLE_UNSPEC, RT_TABLE_COMPAT, RT_TABLE_MAIN})


def parse_default_gateway(body: bytes, family: int = socket.AF_INET) -> str | None:
    """The gateway of an RTM_NEWROUTE body if it is a default route of ``family`` in the main table."""
    got, dst_len, _src_len, _tos, table, _proto, _scope, _type, _flags = _RTMSG.unpack_from(body)
    if got != family or dst_len != 0 or table not in _MAYBE_MAIN:
        return None
    attrs = attributes(body, _RTMSG.size, _ROUTE)
    if (_u32(attrs.get(RTA_TABLE)) or table) != RT_TABLE_MAIN:
        return None
    return _ntop(family, attrs.get(RTA_GATEWAY))


def parse_route(body: bytes) -> dict | None:
    """``{"dst": "address/len", "oif": index or None}`` of an RTM_NEWROUTE body of the main table
    (IPv4 or IPv6); None for other tables and families."""
    family, dst_len, _src_len, _tos, table, _proto, _scope, _type, _flags = _RTMSG.unpack_from(body)
    if family not in _SIZES or table not in _MAYBE_MAIN:
        return None
    attrs = attributes(body, _RTMSG.size, _ROUTE)
    table = _u32(attrs.get(RTA_TABLE)) or table
    if table != RT_TABLE_MAIN:
        return None
    address = _ntop(family, attrs.get(RTA_DST)) or _ANY[family]
    return {"dst": f"{address}/{dst_len}", "oif": _u32(attrs.get(RTA_OIF))}


# -- write requests ----------------------------------------------------------------------------
# Each encoder returns (message type, flags, body) of one request; NLM_F_REQUEST | NLM_F_ACK are
# always set. The layouts are the kernel's (include/uapi/linux/rtnetlink.h, if_link.h) and what
# pyroute2's message classes encode for the same request (tests/unit/.../test_rtnl.py).
Message = Tuple[int, int, bytes]
_REQUEST = NLM_F_REQUEST | NLM_F_ACK


def nla(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _asciiz(text: str) -> bytes:
    return text.encode() + b"\0"


def _u32_attr(kind: int, value: int) -> bytes:
    return nla(kind, struct.pack("=I", value))


def _linkinfo(kind: str, data: bytes = b"", slave_data: bytes = b"") -> bytes:
    inner = nla(IFLA_INFO_KIND, _asciiz(kind))
    if data:
        inner += nla(IFLA_INFO_DATA, data)
    if slave_data:
        inner += nla(IFLA_INFO_SLAVE_DATA, slave_data)
    return nla(IFLA_LINKINFO, inner)


def _mac(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


def new_bridge(name: str) -> Message:
    """``ip link add NAME type bridge``."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + nla(IFLA_IFNAME, _asciiz(name)) + _linkinfo("bridge")
    return RTM_NEWLINK, _REQUEST | NLM_F_CREATE | NLM_F_EXCL, body


def new_veth(name: str, peer: str, mtu: int | None = None, peer_netns_fd: int | None = None) -> Message:
    """``ip link add NAME [mtu M] type veth peer name PEER [mtu M] [netns FD]``: the peer is made
    directly in the namespace of ``peer_netns_fd`` (an open /run/netns/NAME)."""
    size = _u32_attr(IFLA_MTU, mtu) if mtu else b""
    peer_attrs = nla(IFLA_IFNAME, _asciiz(peer)) + size
    if peer_netns_fd is not None:
        peer_attrs += _u32_attr(IFLA_NET_NS_FD, peer_netns_fd)
    peer_info = nla(VETH_INFO_PEER, _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + peer_attrs)
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + nla(IFLA_IFNAME, _asciiz(name)) + size + _linkinfo("veth", peer_info)
    return RTM_NEWLINK, _REQUEST | NLM_F_CREATE | NLM_F_EXCL, body


def set_link(name: str | None = None, index: int = 0, *, up: bool | None = None, mtu: int | None = None,
             address: str | None = None, alias: str | None = None, master: int | None = None,
             stp: bool | None = None) -> Message:
    """``ip link set NAME ...`` (by name: the kernel finds the link by IFLA_IFNAME when the index is
    0; ``index`` for a link known by index, such as lo): only what is given is changed."""
    flags = IFF_UP if up else 0
    attrs = b""
    if name is not None and not index:
        attrs += nla(IFLA_IFNAME, _asciiz(name))
    if mtu is not None:
        attrs += _u32_attr(IFLA_MTU, mtu)
    if address is not None:
        attrs += nla(IFLA_ADDRESS, _mac(address))
    if alias is not None:
        attrs += nla(IFLA_IFALIAS, _asciiz(alias))
    if master is not None:
        attrs += _u32_attr(IFLA_MASTER, master)
    if stp is not None:
        attrs += _linkinfo("bridge", _u32_attr(IFLA_BR_STP_STATE, int(stp)))
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, IFF_UP if up is not None else 0) + attrs
    return RTM_NEWLINK, _REQUEST, body


def del_link(name: str) -> Message:
    """``ip link del NAME`` (no NLM_F_EXCL: since Linux 5.19 it means NLM_F_BULK on a delete)."""
    return RTM_DELLINK, _REQUEST, _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + nla(IFLA_IFNAME, _asciiz(name))


def set_group(name: str, group: int) -> Message:
    """``ip link set NAME group GROUP``."""
    body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + nla(IFLA_IFNAME, _asciiz(name)) + _u32_attr(IFLA_GROUP, group)
    return RTM_NEWLINK, _REQUEST, body


def del_group(group: int) -> Message:
    """``ip link del group GROUP``: every link of the group in one batch of the kernel (one
    unregister, one wait for RCU readers, instead of one per link)."""
    return RTM_DELLINK, _REQUEST, _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _u32_attr(IFLA_GROUP, group)


def set_hairpin(index: int, on: bool) -> Message:
    """``bridge link set dev INDEX hairpin on|off``: IFLA_PROTINFO must be flagged nested, else the
    kernel reads it as a port's STP state."""
    protinfo = nla(IFLA_PROTINFO | NLA_F_NESTED, nla(IFLA_BRPORT_MODE, bytes([int(on)])))
    return RTM_SETLINK, _REQUEST, _IFINFO.pack(AF_BRIDGE, 0, index, 0, 0) + protinfo


def address(add: bool, index: int, cidr: str) -> Message:
    """``ip addr add|del CIDR dev INDEX``: an IPv4 address added with its broadcast (as ``ip addr
    add ... brd +``: only up to /30; on a /31 or /32 the "broadcast" would be the peer or the
    address itself), an IPv6 one with IFA_F_NODAD."""
    ip, _sep, length = cidr.partition("/")
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    packed = socket.inet_pton(family, ip)
    flags = IFA_F_NODAD if add and family == socket.AF_INET6 else 0
    attrs = nla(IFA_ADDRESS, packed)
    if family == socket.AF_INET:
        attrs = nla(IFA_LOCAL, packed) + attrs
        if add and int(length) <= 30:
            host_bits = 32 - int(length)
            broadcast = (int.from_bytes(packed, "big") | ((1 << host_bits) - 1)).to_bytes(4, "big")
            attrs += nla(IFA_BROADCAST, broadcast)
    body = _IFADDR.pack(family, int(length), flags, RT_SCOPE_UNIVERSE, index) + attrs
    if add:
        return RTM_NEWADDR, _REQUEST | NLM_F_CREATE | NLM_F_EXCL, body
    return RTM_DELADDR, _REQUEST, body


def replace_default_route(gateway: str) -> Message:
    """``ip [-6] route replace default via GATEWAY`` in the main table."""
    family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
    body = _RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
    body += nla(RTA_GATEWAY, socket.inet_pton(family, gateway))
    return RTM_NEWROUTE, _REQUEST | NLM_F_CREATE | NLM_F_REPLACE, body


# Requests sent before their answers are read: the acks of a window must fit in the receive
# buffer (an ack is a small message, but counted at its buffer size, about 1 KiB).
WINDOW = 64


def _messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, sequence number, body) of each netlink message of a datagram."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            return
        yield kind, seq, data[offset + _HEADER.size:offset + length]
        offset += (length + 3) & ~3


def _errno(body: bytes) -> int:
    """The errno an NLMSG_ERROR answer carries (0: an ack)."""
    return -struct.unpack_from("=i", body)[0]


class Reader:
    """Requests on one rtnetlink socket (bound to the namespace it was opened in): dumps, reads and
    batches of writes."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, msg_type: int, body: bytes, dump: bool, flags: int = 0) -> list[tuple[int, bytes]]:
        """(type, body) of the answers; an error answer raises OSError (ENODEV for a missing link)."""
        answers = self.requests([(msg_type, body, dump)], flags)[0]
        if isinstance(answers, OSError):
            raise answers  # (requests leaves no None: every answer is read)  pylint: disable=raising-bad-type
        return answers

    def requests(self, asked: list[tuple[int, bytes, bool]], flags: int = 0) -> list[list[tuple[int, bytes]] | OSError]:
        """Each (type, body, dump) of ``asked``, sent in one datagram and read together: per request its
        answers, or the OSError of its error answer. A socket runs one dump at a time: a dump of several
        asked that the kernel refuses (EBUSY) because the one before it had more than a datagram to
        give is asked again on its own, once the others are answered."""
        first = self.seq + 1
        self.seq += len(asked)
        self.sock.send(b"".join(_HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST | flags | (NLM_F_DUMP if dump else 0),
                                             first + i, 0) + body for i, (kind, body, dump) in enumerate(asked)))
        answers: list[list[tuple[int, bytes]]] = [[] for _request in asked]
        results: list[list[tuple[int, bytes]] | OSError | None] = [None] * len(asked)
        pending = len(asked)
        while pending:
            for kind, seq, body in _messages(self.sock.recv(1 << 17)):
                i = seq - first
                if not 0 <= i < len(asked) or results[i] is not None:
                    continue
                if kind == NLMSG_ERROR:
                    error = _errno(body)
                    results[i] = OSError(error, os.strerror(error)) if error else answers[i]
                elif kind == NLMSG_DONE:
                    results[i] = answers[i]
                else:
                    answers[i].append((kind, body))
                    if not asked[i][2]:  # a plain get has one answer (no ack asked)
                        results[i] = answers[i]
                if results[i] is not None:
                    pending -= 1
        for i, (kind, body, dump) in enumerate(asked):
            refused = results[i]
            if dump and len(asked) > 1 and isinstance(refused, OSError) and refused.errno == errno.EBUSY:
                results[i] = self.requests([(kind, body, dump)])[0]
        return results  # type: ignore[return-value]  (none is None any more)

    def transact(self, messages: list[Message]) -> list[int]:
        """Send ``messages`` (each with NLM_F_ACK), :data:`WINDOW` to a datagram, and read their acks:
        the errno of each, in order (0: done). The kernel handles the requests of a datagram one
        after the other, in order, and answers each even when one before it failed."""
        errors: list[int] = []
        for start in range(0, len(messages), WINDOW):
            chunk = messages[start:start + WINDOW]
            first = self.seq + 1
            self.seq += len(chunk)
            self.sock.send(b"".join(_HEADER.pack(_HEADER.size + len(body), kind, flags, first + i, 0) + body
                                    for i, (kind, flags, body) in enumerate(chunk)))
            answers: dict[int, int] = {}
            while len(answers) < len(chunk):
                for kind, seq, body in _messages(self.sock.recv(1 << 17)):
                    if kind == NLMSG_ERROR and first <= seq <= self.seq:
                        answers[seq] = _errno(body)
            errors += [answers[first + i] for i in range(len(chunk))]
        return errors

    def links(self) -> list[dict]:
        """Every link of the namespace, as :func:`parse_link` gives them."""
        return [parse_link(body) for kind, body in self.request(RTM_GETLINK, _link_request(0), dump=True)
                if kind == RTM_NEWLINK]

    def link(self, index: int) -> dict | None:
        try:
            answers = self.request(RTM_GETLINK, _link_request(index), dump=False)
        except OSError:  # ENODEV: no link with that index
            return None
        return next((parse_link(body) for kind, body in answers if kind == RTM_NEWLINK), None)

    def set_up(self, index: int) -> None:
        """``ip link set <index> up`` (the one write here: the loopback of a namespace being made)."""
        self.request(RTM_NEWLINK, _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP), dump=False, flags=NLM_F_ACK)

    def addresses(self) -> dict[int, list[str]]:
        """Addresses per link index as :func:`parse_address` gives them, IPv4 first (kernel order)."""
        return _address_table(self.request(RTM_GETADDR, _ALL_ADDRESSES, dump=True))

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

    def endpoints(self, indexes: list[int]) -> dict[int, tuple[dict | None, list[str], str | None, str | None]]:
        """Per link index: the link (None: no such link), its addresses as :meth:`addresses`, and the
        namespace's default gateways as :meth:`default_gateway` gives them (IPv4; IPv6 only for a
        link with IPv6 on, else None). The links and the addresses are asked in one datagram
        (:meth:`requests`), the routes after them when a link is found: a dump asked while another
        runs is refused, and a dump runs until its reader has taken its last answer."""
        asked = [(RTM_GETLINK, _link_request(index), False) for index in indexes] + [(RTM_GETADDR, _ALL_ADDRESSES, True)]
        *links, addresses = self.requests(asked)
        found: dict[int, tuple[dict | None, list[str], str | None, str | None]] = {}
        table: dict[int, list[str]] | None = None
        gateway: str | None = None
        gateway6: list[str | None] = []  # the IPv6 one, once asked
        for index, answer in zip(indexes, links):
            # (an error answer, ENODEV: no link with that index, as :meth:`link`)
            link = None if isinstance(answer, OSError) else next((parse_link(body) for kind, body in answer if kind == RTM_NEWLINK), None)
            if link is None:
                found[index] = (None, [], None, None)
                continue
            if link["ipv6"] and not gateway6:
                gateway6.append(self.default_gateway(socket.AF_INET6))
            if table is None:
                if isinstance(addresses, OSError):
                    raise addresses
                table, gateway = _address_table(addresses), self.default_gateway()
            found[index] = (link, table.get(index, []), gateway, gateway6[0] if link["ipv6"] else None)
        return found


_ALL_ADDRESSES = _IFADDR.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS = 29, 1 << 3
# No counters in a link's answer (IFLA_STATS64, IFLA_STATS, IPv6's stats in IFLA_AF_SPEC): nothing
# here reads them, and summing them is most of the kernel's work per link (older kernels ignore the bit).
_SKIP_STATS = nla(IFLA_EXT_MASK, struct.pack("=I", RTEXT_FILTER_SKIP_STATS))


def _link_request(index: int) -> bytes:
    """The body of RTM_GETLINK for link ``index`` (0, dumped: every link)."""
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, 0, 0) + _SKIP_STATS


def _address_table(answers: list[tuple[int, bytes]]) -> dict[int, list[str]]:
    table: dict[int, list[str]] = {}
    for kind, body in answers:
        parsed = parse_address(body) if kind == RTM_NEWADDR else None
        if parsed:
            table.setdefault(parsed[0], []).append(parsed[1])
    return table
