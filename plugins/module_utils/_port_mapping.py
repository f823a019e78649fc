# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Published ports like ``docker run -p``, as kernel NAT only (Docker with the userland proxy off).

A port range is one rule per place (``--dport a:b``), so a 1000-port range costs four rules and no
process. The module owns the contents of ``<P>`` in the filter and nat tables and its per-port
hairpin rules in nat POSTROUTING; the chains and jumps themselves belong to the firewall module.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import re
import struct
from typing import Any, Callable, Iterable

from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import Foreseen, Operation
from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import (
    KEEPING_STATES,
    OMITTED,
    TablesResource,
    chain_prefix,
    render_marker,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._iptables import parse_rule
from ansible_collections.linuxnet.bridge.plugins.module_utils._fwmodel import BuiltinRules, DesiredTable, Model, Rule, read_sysctl
from ansible_collections.linuxnet.bridge.plugins.module_utils._netlink import Netlink

ITEM_OPTIONS = {
    "bridge": {"type": "str", "required": True},
    "container_ip": {"type": "str", "required": True},
    "container_port": {"type": "str"},
    "host_port": {"type": "str"},
    "host_ip": {"type": "str"},
    "protocol": {"type": "str", "choices": ["tcp", "udp", "sctp"]},
    "publish": {"type": "str"},
    "network": {"type": "str"},
    "sources": {"type": "list", "elements": "str"},
}
PUBLIC_KEYS = ("bridge", "container_ip", "container_port", "host_ip", "host_port", "protocol", "network", "sources")
PROTOCOLS = tuple(ITEM_OPTIONS["protocol"]["choices"])
#: options that, left out with merged or replaced, keep the mapping's current value (the rest make its key)
OMITTABLE = ("network", "sources")
_SOURCE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?")  # fullmatch: no "\n" reaches a rule
_SOURCE6 = re.compile(r"[0-9A-Fa-f:.]{2,45}(?:/\d{1,3})?")
CONNTRACK = "conntrack"  # Operation.action of the UDP flow cleanup
# entries in this network namespace's connection tracking table (both families): 0, no flow to clean
CONNTRACK_COUNT = "/proc/sys/net/netfilter/nf_conntrack_count"
# conntrack -D exits 1 with this when nothing matched (kube-proxy tests the same text)
_NOTHING_DELETED = "0 flow entries have been deleted"
_PUBLISH = re.compile(r"(?:(?:(?P<ip>[0-9.]+)|\[(?P<ip6>[0-9A-Fa-f:.]+)\]):)?(?P<hp>\d+(?:-\d+)?):(?P<cp>\d+(?:-\d+)?)"
                      r"(?:/(?P<proto>[a-z]+))?")
UNSPECIFIED = {"ipv4": "0.0.0.0", "ipv6": "::"}
#: the fields of a mapping that a deployment's plan gives, not the user's port (PortMappingResource.where)
PLANNED = ("bridge", "container_ip", "network")


def family_of(address: str) -> str:
    """The address family of a (validated) address: a mapping's is its container_ip's."""
    return "ipv6" if ":" in address else "ipv4"


def mapping_family(item: dict) -> str:
    return family_of(item["container_ip"])


# Port texts read before (a run reads each of N mappings' ports several times); emptied when full,
# so a process that plans many times keeps no more than RANGES_MAX of them.
_RANGES: dict[str, tuple[int, int]] = {}
RANGES_MAX = 1 << 15
_PORT_RANGE = re.compile(r"([0-9]{1,5})(?:-([0-9]{1,5}))?")  # ASCII: \d takes "８０"; int() fails past 4300 digits


def port_range(value: object, field: str) -> tuple[int, int]:
    """``80`` or ``"8000-8010"`` → (first, last); rejects 0, >65535 and reversed ranges."""
    text = str(value).strip()
    if text in _RANGES:
        return _RANGES[text]
    match = _PORT_RANGE.fullmatch(text)
    if not match:
        raise v.ValidationError(f"{field}: {value!r} is not a port or a port range such as 8000-8010")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else first
    for port in (first, last):
        if not 1 <= port <= 65535:
            raise v.ValidationError(f"{field}: port {port} is outside 1-65535")
    if last < first:
        raise v.ValidationError(f"{field}: range {text} is reversed")
    if len(_RANGES) >= RANGES_MAX:
        _RANGES.clear()
    _RANGES[text] = (first, last)
    return first, last


def parse_sources(value: object, field: str, family: str = "ipv4") -> list[str] | None:
    """``sources``: networks of the mapping's family (an address alone is a /32 or /128), sorted and
    without duplicates; None: any source."""
    if value is None:
        return None
    name, example = ("IPv4", "192.0.2.0/24") if family == "ipv4" else ("IPv6", "2001:db8::/64")
    if not isinstance(value, list) or not value:
        raise v.ValidationError(f"{field}: must be a non-empty list of {name} networks such as {example} "
                                "(leave sources out to allow every source)")
    nets = set()
    for k, text in enumerate(value):
        at = f"{field}[{k}]"
        if not isinstance(text, str) or not (_SOURCE if family == "ipv4" else _SOURCE6).fullmatch(text):
            raise v.ValidationError(f"{at}: {text!r} is not an {name} network such as {example} or an address "
                                    "(a mapping's sources have the family of its container_ip)")
        try:
            net = ipaddress.IPv4Network(text, strict=True) if family == "ipv4" else ipaddress.IPv6Network(text, strict=True)
        except ValueError as exc:
            raise v.ValidationError(f"{at}: {text!r} is not a valid {name} network ({exc})") from None
        if net.prefixlen == 0:
            raise v.ValidationError(f"{at}: {text!r} is every source: leave sources out instead")
        nets.add(net)
    return [net.with_prefixlen for net in sorted(nets, key=lambda n: (n.network_address, n.prefixlen))]


def container_address(value: object, field: str) -> str:
    """An endpoint's IPv4 or IPv6 address (the mapping's family)."""
    text = v.unicast(value, field, version=None)  # a DNAT to 0.0.0.0, 127.x or 224/4 reaches no endpoint
    addr = v.address(text)
    if addr.version == 6 and (addr.is_link_local or addr.ipv4_mapped is not None):  # (the rest: unicast())
        raise v.ValidationError(f"{field}: {text!r} is a link-local or IPv4-mapped address, not an endpoint's address")
    return text


def host_address(value: object, family: str, field: str) -> str | None:
    """The host address a mapping listens on (None: all of its family); it must be of the container's family."""
    if value in (None, "", UNSPECIFIED[family]):
        return None
    text = v.ip_address(value, field, version=None)
    addr = ipaddress.ip_address(text)
    if family_of(text) != family:
        raise v.ValidationError(
            f"{field}: host address {text} is {'IPv6' if addr.version == 6 else 'IPv4'} but container_ip is "
            f"{'IPv6' if family == 'ipv6' else 'IPv4'}: kernel NAT cannot translate between families (publish "
            "each family with a mapping of its own)")
    if addr.is_multicast or (addr.version == 4 and (addr in v._THIS_NETWORK or addr == v._LIMITED_BROADCAST)):
        # never a local destination: a DNAT on it is a rule no packet meets (Docker: cannot assign requested address)
        raise v.ValidationError(f"{field}: {text} is a multicast, broadcast or 0.0.0.0/8 address, never an address "
                                "of the host; publish on one of the host's addresses (or leave host_ip out: all of them)")
    if addr.version == 6 and addr.is_loopback:
        # IPv6 has no route_localnet: a packet from ::1 is never routed to another interface
        raise v.ValidationError(f"{field}: {text} cannot be published with kernel NAT (IPv6 has no route_localnet); "
                                "publish on 127.0.0.1, or on the host's own IPv6 address")
    if addr.version == 6 and (addr.is_link_local or addr.is_multicast):
        raise v.ValidationError(f"{field}: {text} is a link-local or multicast address")
    if addr.version == 6 and addr.ipv4_mapped is not None:  # no IPv6 packet is addressed to one: a rule never used
        raise v.ValidationError(f"{field}: {text} is an IPv4-mapped address; publish on {addr.ipv4_mapped} (IPv4) instead")
    return text


# The sockets a published port can take traffic from: TCP listeners (state 0A) and unconnected UDP sockets
# (07: a server's; a connected one, 01, takes only its peer's replies), and listening SCTP endpoints
# (/proc/net/sctp/eps: only while the sctp module is loaded; one table for both families).
PROC_NET = "/proc/net"
SOCKET_TABLES = {"tcp": ("tcp", "tcp6"), "udp": ("udp", "udp6"), "sctp": ("sctp/eps",)}
_SERVING = {"tcp": "0A", "udp": "07"}
WILDCARDS = ("0.0.0.0", "::")


def _proc_address(text: str) -> str:
    """``0100007F`` → ``127.0.0.1``: the kernel prints each 32-bit word of the address in host order;
    an IPv4-mapped IPv6 address (a dual-stack socket's) is given as its IPv4 address."""
    raw = b"".join(struct.pack("=I", int(text[i:i + 8], 16)) for i in range(0, len(text), 8))
    addr = ipaddress.ip_address(raw)
    if addr.version == 6 and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def parse_sockets(text: str, protocol: str) -> dict[int, set[str]]:
    """Port → local addresses of the serving sockets of one ``/proc/net/{tcp,tcp6,udp,udp6}`` table."""
    found: dict[int, set[str]] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != _SERVING[protocol]:
            continue
        address, _sep, port = fields[1].rpartition(":")
        try:
            found.setdefault(int(port, 16), set()).add(_proc_address(address))
        except ValueError:  # not a socket line (never seen): nothing to warn about
            continue
    return found


def parse_sctp_endpoints(text: str) -> dict[int, set[str]]:
    """Port → local addresses of the listening endpoints in ``/proc/net/sctp/eps`` (``ENDPT SOCK STY
    SST HBKT LPORT UID INODE LADDRS``: a decimal port, then every bound address, IPv6 in full
    ``%pI6`` form; state 10 is LISTEN, the only state the kernel hashes an endpoint in)."""
    found: dict[int, set[str]] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 9 or fields[3] != "10":
            continue
        try:
            port = int(fields[5])
            addresses = [ipaddress.ip_address(word.lstrip("*")) for word in fields[8:]]
        except ValueError:  # not an endpoint line (never seen): nothing to warn about
            continue
        found.setdefault(port, set()).update(
            str(a.ipv4_mapped) if a.version == 6 and a.ipv4_mapped is not None else str(a) for a in addresses)
    return found


def sockets_in_the_way(item: dict, sockets: dict[str, dict[int, set[str]]]) -> list[tuple[str, int]]:
    """(address, port) of the serving sockets whose traffic mapping ``item`` would take: on a port of its
    host range and its protocol, bound to the wildcard (``::`` is dual-stack unless IPV6_V6ONLY, which
    /proc does not show) or to its host address (any of its family when it has none: the DNAT of all
    addresses takes the host's own connections to 127.0.0.0/8 too, through the OUTPUT jump and
    route_localnet; IPv6 has no route_localnet, so ::1 stays the listener's)."""
    ports = sockets.get(item["protocol"]) or {}
    first, last = item["_hp"]
    family, host = mapping_family(item), item["host_ip"]
    wanted = range(first, last + 1) if last - first < len(ports) else sorted(p for p in ports if first <= p <= last)
    hits = []
    for port in wanted:
        for address in sorted(ports.get(port, ())):
            if address in WILDCARDS:
                hit = address == "::" or family == "ipv4"
            elif family_of(address) != family:
                hit = False
            else:
                hit = address == host if host else not (family == "ipv6" and v.address(address).is_loopback)
            if hit:
                hits.append((address, port))
    return hits


def in_use_warning(index: int, item: dict, hits: list[tuple[str, int]], where: str | None = None) -> str:
    """The warning for a published port that sockets of the host listen on (``hits``, not empty);
    ``where``: its host_port field as the user named it (default ``config[N] (...).host_port``)."""
    address, port = hits[0]
    what = "a listening socket" if item["protocol"] == "tcp" else "a bound socket"
    on = f"[{address}]" if ":" in address else address
    more = f" and {len(hits) - 1} more socket(s) on ports of {item['host_port']}" if len(hits) > 1 else ""
    return (f"{where or v.where(index, item, 'host_port')}: port {port}/{item['protocol']} is in use on this host ({what} on "
            f"{on}{more}): the published port {mapping_key(item)} -> {item['container_ip']} takes its traffic "
            "(that service no longer answers from outside); publish another host port or move the service")


def format_range(ports: tuple[int, int], sep: str = "-") -> str:
    return str(ports[0]) if ports[0] == ports[1] else f"{ports[0]}{sep}{ports[1]}"


def parse_publish(text: str, field: str) -> dict:
    """Docker's ``-p [host_ip:]host_port[-end]:container_port[-end][/proto]`` (host port required)."""
    text = text.strip()
    # Docker accepts the protocol in any case (/TCP) and lower-cases it.
    if text.lower() != text:  # (else there is nothing to lower: most texts)
        text = re.sub(r"/([A-Za-z]+)$", lambda m: "/" + m.group(1).lower(), text)
    match = _PUBLISH.fullmatch(text)
    if not match:
        if re.fullmatch(r"(\d+(-\d+)?)(/[a-z]+)?", text.strip()) or "::" in re.sub(r"^\[[^\]]*\]", "", text):
            raise v.ValidationError(
                f"{field}: {text!r} leaves the host port to be chosen at random; give it explicitly, e.g. 8080:80"
            )
        raise v.ValidationError(f"{field}: {text!r} is not of the form [host_ip:]host_port:container_port[/protocol]")
    return {
        "host_ip": match.group("ip") or match.group("ip6"),
        "host_port": match.group("hp"),
        "container_port": match.group("cp"),
        "protocol": match.group("proto") or "tcp",
    }


def mapping_key(item: dict) -> str:
    """``0.0.0.0:8080/tcp``, ``[::]:8080/tcp``: an IPv4 and an IPv6 mapping may share a host port (Docker's dual publishing)."""
    family = mapping_family(item)
    host = item["host_ip"] or UNSPECIFIED[family]
    return f"{host if family == 'ipv4' else '[' + host + ']'}:{item['host_port']}/{item['protocol']}"


def mapping_rules(item: dict) -> dict:
    """The rules of one mapping: lists ``dnat`` and ``accept`` (one per source), single ``hairpin`` and
    ``direct``, and ``loopback`` (None unless the host address is a loopback one)."""
    proto, cip, hp, cp = item["protocol"], item["container_ip"], format_range(item["_hp"]), format_range(item["_cp"])
    # A DNAT port range alone maps every port to a free one of the range (the first), not host
    # port + offset: "/base" shifts by (port - base) (xt_DNAT rev 2, Linux >= 5.9, iptables >= 1.8.6).
    base = str(item["_hp"][0]) if item["_hp"][0] != item["_hp"][1] and item["_hp"] != item["_cp"] else None
    # sources: only they are DNATed and accepted. The raw DROP stays one rule for everyone: a
    # published port is reached through the DNAT only, from an allowed source too.
    sources = item.get("sources") or [None]
    bridge, host_ip = item["bridge"], item["host_ip"]
    # (Rule.ordered: the fields in the order of their names, as Rule.of sorts them)
    return {
        "dnat": [Rule.ordered("dnat", (("base", base), ("container_ip", cip), ("dport", hp), ("host_ip", host_ip),
                                       ("proto", proto), ("source", src), ("to_ports", cp))) for src in sources],
        "accept": [Rule.ordered("accept_port", (("bridge", bridge), ("container_ip", cip), ("dport", cp), ("proto", proto),
                                                ("source", src))) for src in sources],
        "hairpin": Rule.ordered("hairpin", (("container_ip", cip), ("dport", cp), ("proto", proto))),
        "direct": Rule.ordered("direct_drop", (("bridge", bridge), ("container_ip", cip), ("dport", cp), ("proto", proto))),
        "loopback": _loopback_rule(item),
    }


def _loopback_rule(item: dict) -> Rule | None:
    """Docker's raw DROP of a port published on 127.0.0.0/8 (validated IPv4 text: "127." says loopback)
    for packets that did not come in on lo; None for other host addresses."""
    if not (item["host_ip"] or "").startswith("127."):
        return None
    return Rule.of("loopback_drop", host_ip=item["host_ip"], proto=item["protocol"], dport=format_range(item["_hp"]))


def _overlap_in(ranges: list[tuple[int, int]]) -> bool:
    """Do any two of these ranges, sorted by first port, overlap? (Then two neighbours do.)"""
    return any(nxt[0] <= cur[1] for cur, nxt in zip(ranges, ranges[1:]))


def _any_conflict(items: list[dict]) -> bool:
    """Whether :func:`check_conflicts` would refuse ``items``, in O(n log n) instead of O(n²)."""
    by_protocol: dict[tuple[str, str], list[dict]] = {}
    for item in items:
        by_protocol.setdefault((mapping_family(item), item["protocol"]), []).append(item)
    for group in by_protocol.values():
        anywhere = sorted(item["_hp"] for item in group if not item["host_ip"])
        if _overlap_in(anywhere):
            return True
        firsts = [first for first, _last in anywhere]
        by_address: dict[str, list[tuple[int, int]]] = {}
        for item in group:
            if item["host_ip"]:
                by_address.setdefault(item["host_ip"], []).append(item["_hp"])
        for ranges in by_address.values():
            ranges.sort()
            if _overlap_in(ranges):
                return True
            # `anywhere` is sorted and disjoint, so its last ports ascend too: of the ranges that
            # start at or before `last`, the last one reaches furthest.
            for first, last in ranges:
                index = bisect.bisect_right(firsts, last) - 1
                if index >= 0 and anywhere[index][1] >= first:
                    return True
    return False


def check_conflicts(items: list[dict], where: str = "") -> None:
    """Two mappings may not claim one protocol and host port on overlapping host addresses."""
    if not _any_conflict(items):
        return
    # Name the first conflicting pair in input order (the same message as always).
    for a in range(len(items)):
        for b in range(a + 1, len(items)):
            x, y = items[a], items[b]
            if x["protocol"] != y["protocol"] or mapping_family(x) != mapping_family(y):
                continue
            if x["host_ip"] and y["host_ip"] and x["host_ip"] != y["host_ip"]:
                continue
            if x["_hp"][0] <= y["_hp"][1] and y["_hp"][0] <= x["_hp"][1]:
                raise v.ValidationError(
                    f"mapping {where}{mapping_key(y)} -> {y['container_ip']} conflicts with "
                    f"{mapping_key(x)} -> {x['container_ip']}: same protocol and host port on overlapping host addresses"
                )


def mapping_model(items: list[dict], managed: list[dict], prefix: str, protected: set[str] | None = None,
                  family: str = "ipv4") -> Model:
    """Our rules for ``items``; the hairpin and raw rules of ``managed`` (mappings of before) are ours too.

    ``protected``: the bridges whose network is in gateway_mode nat (None: all), whose published
    ports get Docker 28's raw DROP against direct routing to the container's address.
    """
    ordered = sorted(items, key=lambda it: (it["bridge"], it["container_ip"], it["protocol"], it["_hp"]))
    rules = [mapping_rules(it) for it in ordered]
    filt, nat, raw = DesiredTable(), DesiredTable(), DesiredTable()
    # Two host ports published for one container port share the ACCEPT, hairpin and raw rules.
    filt.owned = {prefix: _unique(rule for r in rules for rule in r["accept"])}
    nat.owned = {prefix: [rule for r in rules for rule in r["dnat"]]}
    nat.builtin = {"POSTROUTING": BuiltinRules(bottom=_unique(r["hairpin"] for r in rules))}
    direct = [r["direct"] for r, it in zip(rules, ordered) if protected is None or it["bridge"] in protected]
    # every loopback-published port, in any gateway mode (Docker: unprotected networks too)
    loopback = [r["loopback"] for r in rules if r["loopback"]]
    raw.builtin = {"PREROUTING": BuiltinRules(bottom=_unique(direct + loopback))}
    # The hairpin and raw rules of a mapping depend on these fields only: a managed mapping that
    # shares them with a wanted one (every mapping on a no-change run) adds no rule to compute.
    wanted = {(it["container_ip"], it["bridge"], it["protocol"], it["_cp"]) for it in items}
    every = rules + [mapping_rules(it) for it in managed
                     if (it["container_ip"], it["bridge"], it["protocol"], it["_cp"]) not in wanted]
    # a loopback rule follows the host address and port, which the shortcut above does not compare
    loopbacks = set(loopback) | {rule for rule in map(_loopback_rule, managed) if rule}
    claimed = {"POSTROUTING": {r["hairpin"] for r in every}, "PREROUTING": {r["direct"] for r in every} | loopbacks}
    return Model({"filter": filt, "nat": nat, "raw": raw}, claimed=claimed, family=family)


def of_family(items, family: str) -> list[dict]:
    return [item for item in items if mapping_family(item) == family]


def protected_bridges(forward: list[str], parse: Callable[[str], Rule | None]) -> set[str]:
    """Bridges whose network the firewall module protects (its per-network DROP is in FORWARD)."""
    return {r.get("bridge") for r in map(parse, forward) if r is not None and r.kind == "protect"}


def _unique(rules) -> list[Rule]:
    return list(dict.fromkeys(rules))


def with_internal(item: dict) -> dict:
    """Add the parsed port tuples used by the renderers."""
    item = {key: item.get(key) for key in PUBLIC_KEYS}
    item["_hp"] = port_range(item["host_port"], "host_port")
    item["_cp"] = port_range(item["container_port"], "container_port")
    return item


def parse_mappings(nat_rules: list[str], filter_rules: list[str], known: dict[str, dict],
                   parse: Callable[[str], Rule | None]) -> dict[str, dict]:
    """Rebuild mappings from the live ``<P>`` chains; ``known`` (the state file) supplies labels."""
    bridges = {}
    for rule in map(parse, filter_rules):
        if rule is not None and rule.kind == "accept_port":
            fields = dict(rule.fields)  # (as Rule.get reads them, made once per rule: thousands of rules)
            bridges[(fields.get("container_ip"), fields.get("proto"), fields.get("dport"))] = fields.get("bridge")
    found = {}
    for rule in map(parse, nat_rules):
        if rule is None or rule.kind != "dnat":
            continue
        fields = dict(rule.fields)
        item = {
            "host_ip": fields.get("host_ip"),
            "host_port": fields.get("dport"),
            "protocol": fields.get("proto"),
            "container_ip": fields.get("container_ip"),
            "container_port": fields.get("to_ports"),
            "bridge": bridges.get((fields.get("container_ip"), fields.get("proto"), fields.get("to_ports"))),
        }
        key = mapping_key(item)
        item["network"] = known.get(key, {}).get("network")
        source = fields.get("source")
        item["sources"] = [source] if source else None
        if key in found:  # one DNAT per source
            earlier = found[key]["sources"]
            item["sources"] = parse_sources(earlier + [source], "sources", mapping_family(item)) if earlier and source else None
        found[key] = item
    return found


def _target(item: dict | None) -> tuple | None:
    """Where a mapping sends packets, and from whom: a UDP flow must follow any change of it."""
    if item is None:
        return None
    return item["container_ip"], str(item["container_port"]), tuple(item.get("sources") or ())


def conntrack_ops(current: dict[str, dict], final: dict[str, dict]) -> list[Operation]:
    """Delete the conntrack entries of every UDP host port whose mapping is added, removed or moved.

    As CNI portmap does (containernetworking/plugins#553): an entry outlives the rule that made it,
    so without this a UDP sender that never pauses keeps reaching the old endpoint (or, for a new
    mapping, the host itself) however the rules change. TCP connections end by themselves.
    """
    ops = []
    for key in sorted(set(current) | set(final)):
        old, new = current.get(key), final.get(key)
        item = new or old
        if item["protocol"] != "udp" or _target(old) == _target(new):
            continue
        args = {"host_ip": item.get("host_ip") or None, "ports": port_range(item["host_port"], "host_port")}
        if mapping_family(item) == "ipv6":
            args["family"] = "ipv6"  # conntrack lists and deletes IPv4 flows unless told otherwise
        ops.append(Operation(conntrack_command(args), CONNTRACK, args))
    return ops


def conntrack_argvs(binary: str, args: dict) -> list[list[str]]:
    """One ``conntrack -D`` per host port: it filters by one port only."""
    where = ["--orig-dst", args["host_ip"]] if args.get("host_ip") else []
    where = (["-f", "ipv6"] if args.get("family") == "ipv6" else []) + where
    first, last = args["ports"]
    return [[binary, "-D", *where, "-p", "udp", "--orig-port-dst", str(port)] for port in range(first, last + 1)]


_ORIG_DPORT = re.compile(r"\bdport=(\d+)")


def udp_flow_ports(listing: str) -> set[int]:
    """The original-direction destination ports in ``conntrack -L -p udp`` output (the first
    ``dport=`` of a line; the second is the reply's)."""
    return {int(m.group(1)) for m in map(_ORIG_DPORT.search, listing.splitlines()) if m}


def conntrack_command(args: dict) -> str:
    """The cleanup as a shell command line, for humans (``commands``)."""
    first, last = args["ports"]
    where = f"--orig-dst {args['host_ip']} " if args.get("host_ip") else ""
    where = ("-f ipv6 " if args.get("family") == "ipv6" else "") + where
    if first == last:
        return f"conntrack -D {where}-p udp --orig-port-dst {first}"
    return f"for p in $(seq {first} {last}); do conntrack -D {where}-p udp --orig-port-dst $p; done"


class PortMappingResource(TablesResource):
    state_dir = "port_mapping"
    public_keys = PUBLIC_KEYS
    tables = ("filter", "nat", "raw")
    #: sockets and dumps to read the bridges from; None opens (and closes) its own
    netlink: Netlink | None = None
    #: bridge name -> its addresses, as a step before this one of the same run left them (the
    #: deployment's bridge step); a bridge not in it is read from the kernel
    bridges: dict[str, list[str]] | None = None
    #: where the socket tables are read from (the host namespace's, as the module runs there)
    proc_net = PROC_NET
    #: protocol -> port -> addresses of the serving sockets, as read in this run (None: nothing read)
    sockets: dict[str, dict[int, set[str]]] | None = None
    #: the user's name of each config item where a run plans them from other input (the
    #: deployment's linuxnet_endpoints[N].ports[K]); None: config[N]
    fields: list[str] | None = None

    def key(self, item: dict) -> str:
        return mapping_key(item)

    def where(self, index: int, item: dict | None, field: str) -> str:
        """Field ``field`` of config item ``index`` as warnings name it: ``config[0] (bridge=br0).host_ip``
        (``config[0].host_ip`` when ``item`` is None), or in a deployment the port it was planned from
        (``linuxnet_endpoints[0].ports[1].host_ip``; the port alone for a field the port does not give:
        one in its publish string, the endpoint's address)."""
        if self.fields is None:
            return v.where(index, item, field)
        given = (self.params.get("config") or [])[index]
        return f"{self.fields[index]}.{field}" if field in given and field not in PLANNED else self.fields[index]

    def normalize(self, config: list[dict], state: str) -> list[dict]:
        self.prefix = chain_prefix(self.params.get("chain_prefix", "LINUXNET"))
        items = []
        # A value checked before is not checked again: a deployment names each endpoint's address and
        # bridge for each of its ports. The checks are pure; the first failing item fails as before.
        seen: dict[tuple, object] = {}

        def once(what: object, value: object, check: Callable[[], object]) -> Any:
            if value is not None and not isinstance(value, str):  # (None too: most mappings give no host_ip)
                return check()
            if (what, value) not in seen:
                seen[(what, value)] = check()
            return seen[(what, value)]

        for i, raw in enumerate(config):
            at = v.where(i, raw, "").__add__  # at(field) is where(i, raw, field): its label made once per item
            fields = dict(raw)
            if raw.get("publish"):
                given = [k for k in ("host_ip", "host_port", "container_port") if raw.get(k) not in (None, "")]
                if given:
                    raise v.ValidationError(f"{at('publish')}: give either publish or {', '.join(given)}, not both")
                parsed = parse_publish(str(raw["publish"]), at("publish"))
                if raw.get("protocol") and raw["protocol"] != parsed["protocol"]:
                    raise v.ValidationError(f"{at('protocol')}: conflicts with the protocol in publish")
                fields.update(parsed)
            protocol = fields.get("protocol") or "tcp"
            if protocol not in PROTOCOLS:
                raise v.ValidationError(f"{at('protocol')}: {protocol!r} is not one of {', '.join(PROTOCOLS)}")
            if fields.get("container_port") in (None, ""):
                raise v.ValidationError(f"{at('container_port')}: required (or give publish)")
            cp = once("port", fields["container_port"], lambda: port_range(fields["container_port"], at("container_port")))
            hp = once("port", fields["host_port"], lambda: port_range(fields["host_port"], at("host_port"))) \
                if fields.get("host_port") not in (None, "") else cp
            if hp[1] - hp[0] != cp[1] - cp[0]:
                raise v.ValidationError(
                    f"{at('host_port')}: range {format_range(hp)} and container range {format_range(cp)} differ in length"
                )
            container_ip = once("container_ip", fields.get("container_ip"),
                                lambda: container_address(fields.get("container_ip"), at("container_ip")))
            family = family_of(container_ip)
            item = {
                "bridge": once("bridge", fields.get("bridge"), lambda: v.interface_name(fields.get("bridge"), at("bridge"))),
                "container_ip": container_ip,
                "container_port": format_range(cp),
                "host_port": format_range(hp),
                "host_ip": once(("host_ip", family), fields.get("host_ip"),
                                lambda: host_address(fields.get("host_ip"), family, at("publish" if raw.get("publish") else "host_ip"))),
                "protocol": protocol,
                "network": once("network", fields["network"], lambda: v.label(fields["network"], at("network"), "network label"))
                if fields.get("network") else None,
                "sources": parse_sources(fields["sources"], at("sources"), family) if fields.get("sources") is not None else None,
                "_hp": hp,
                "_cp": cp,
            }
            if state in KEEPING_STATES:  # merged/replaced: left out keeps the mapping's value; merged adds sources
                item[OMITTED] = tuple(key for key in OMITTABLE if fields.get(key) is None)
            items.append(item)
        check_conflicts(items)
        return items

    def check_references(self, desired: list[dict], state: str, foreseen: Foreseen | None = None) -> None:
        if state in ("deleted", "gathered"):
            return
        known = dict(self.bridges or {})
        if foreseen:  # the bridge step before this one of the run makes them (a new one with no address)
            known.update({name: cidrs for name, cidrs in foreseen.bridges.items() if cidrs is not None})
        netlink = self.netlink or Netlink()
        links: dict | None = None
        addresses: dict[int, list[str]] | None = None
        # by bridge: its subnets (None: no such bridge); by (bridge, container_ip): inside one of them
        subnets_of: dict[str, list | None] = {}
        inside: dict[tuple[str, str], bool] = {}
        try:
            for index, item in enumerate(desired):
                if item["bridge"] not in subnets_of:
                    if item["bridge"] in known:
                        cidrs = known[item["bridge"]]
                    else:
                        if links is None:
                            links, addresses = netlink.links(None), netlink.addresses(None)
                        link = links.get(item["bridge"])
                        cidrs = None if link is None else addresses.get(link["index"], [])
                        if cidrs is None and foreseen and item["bridge"] in foreseen.bridges:
                            cidrs = []
                    subnets_of[item["bridge"]] = None if cidrs is None else [ipaddress.ip_interface(a).network for a in cidrs]
                subnets = subnets_of[item["bridge"]]
                if subnets is None:
                    self.warnings.append(f"{self.where(index, None, 'bridge')}: bridge {item['bridge']} not found; container_ip not checked")
                    continue
                where = (item["bridge"], item["container_ip"])
                if where not in inside:
                    inside[where] = any(v.address(item["container_ip"]) in net for net in subnets)
                if not inside[where]:
                    problem = (
                        f"{self.where(index, None, 'container_ip')}: {item['container_ip']} is outside every subnet of bridge "
                        f"{item['bridge']} ({', '.join(map(str, subnets)) or 'no addresses'})"
                    )
                    # the bridge task of the same play may be about to give it that subnet
                    self.missing(problem, "an earlier task may change the bridge")
            # A host address that is not the host's takes no traffic (Docker refuses it: cannot assign
            # requested address); a warning only, as a keepalived/VRRP virtual address comes and goes.
            hosts = {item["host_ip"]: index for index, item in reversed(list(enumerate(desired)))
                     if item["host_ip"] and not v.address(item["host_ip"]).is_loopback}
            if hosts:
                if addresses is None:  # (read with the links above, or not yet)
                    addresses = netlink.addresses(None)
                by_link: dict = addresses
                if foreseen:  # the host's addresses as the bridge step before this one leaves them
                    links = netlink.links(None) if links is None else links
                    by_link = foreseen.host_addresses({name: addresses.get(link["index"], []) for name, link in links.items()})
                local = {str(v.interface(a).ip) for addrs in by_link.values() for a in addrs}
                for host, index in sorted(hosts.items(), key=lambda pair: pair[1]):
                    if host not in local:
                        self.warnings.append(
                            f"{self.where(index, desired[index], 'host_ip')}: {host} is not an address of this host now: "
                            "the published port takes no traffic until it is (fine for a virtual address that "
                            "keepalived/VRRP adds later)")
        finally:
            if netlink is not self.netlink:
                netlink.close()

    def is_ipv6(self, item: dict) -> bool:
        return mapping_family(item) == "ipv6"

    def gather(self, desired: list[dict], state: str) -> dict:
        self.load_live(desired)
        # after apply the state file is not written yet
        return self.from_live({**self.known, **self.final}, self.adapter.parse)

    def from_live(self, known: dict[str, dict], parse: Callable[[str], Rule | None]) -> dict:
        found = parse_mappings(self.live_table("nat").chain_rules(self.prefix), self.live_table("filter").chain_rules(self.prefix),
                               known, parse)
        if self.ipv6:
            parse6 = functools.partial(parse_rule, family="ipv6") if parse is parse_rule else self.adapter6.parse
            found.update(parse_mappings(self.live_table("nat", "ipv6").chain_rules(self.prefix),
                                        self.live_table("filter", "ipv6").chain_rules(self.prefix), known, parse6))
        return found

    def from_state(self, item: dict) -> dict:
        return with_internal(item)

    def describe(self, key: str) -> str:
        return f"port mapping {key}"

    def fill(self, index: int, item: dict, base: dict | None, omitted: tuple[str, ...], state: str) -> dict:
        """merged, replaced: network and sources left out stay as they are (a port open to some
        sources stays so); merged adds given sources to the mapping's (none: every source before)."""
        if not base:
            return item
        if "network" in omitted:
            item["network"] = base.get("network")
        if "sources" in omitted:
            item["sources"] = list(base["sources"]) if base.get("sources") else None
        elif state == "merged" and base.get("sources"):
            item["sources"] = parse_sources(list(base["sources"]) + item["sources"], v.where(index, item, "sources"),
                                            mapping_family(item))
        return item

    def check_owned(self, items: list[dict]) -> None:
        check_conflicts(items, where="(with mappings managed earlier) ")

    def plan(self, desired: list[dict], current: dict, state: str) -> tuple[list[Operation], dict]:
        desired = self.complete(desired, current, state)
        final = self.final_owned(desired, state)
        self.final = {k: self.public(it) for k, it in final.items()}
        if state != "deleted":
            self.warn_in_use([(i, it) for i, it in enumerate(desired) if mapping_key(it) not in current])
        ops = self._plan_family("ipv4", desired, final, state)
        if self.ipv6:
            ops += self._plan_family("ipv6", desired, final, state)
        ops += self.switch_ops(self.cleanup_model)
        # (the same public items as self.final, each a dict of its own)
        return ops + conntrack_ops(current, final), {k: dict(it) for k, it in self.final.items()}

    def warn_in_use(self, added: list[tuple[int, dict]]) -> None:
        """Warn about the mappings this run adds whose host port a socket of the host serves: the DNAT
        takes its traffic before the socket sees it. Read only when there are such mappings (a run
        that changes nothing reads no socket table), each table once per run."""
        if not added:
            return
        sockets = self.read_sockets({item["protocol"] for _index, item in added})
        for index, item in added:
            hits = sockets_in_the_way(item, sockets)
            warning = in_use_warning(index, item, hits, self.where(index, item, "host_port")) if hits else None
            if warning and warning not in self.warnings:  # (a deployment may plan twice)
                self.warnings.append(warning)

    def read_sockets(self, protocols: Iterable[str]) -> dict[str, dict[int, set[str]]]:
        """Port → addresses of the serving sockets, by protocol (tcp, udp, sctp), of the tables not read before
        in this run; a table that cannot be read (no IPv6, no sctp module) is empty."""
        if self.sockets is None:
            self.sockets = {}
        cache = self.sockets
        for protocol in sorted(set(protocols) & set(SOCKET_TABLES) - set(cache)):
            merged: dict[int, set[str]] = {}
            for table in SOCKET_TABLES[protocol]:
                try:
                    with open(f"{self.proc_net}/{table}", encoding="ascii", errors="replace") as handle:
                        text = handle.read()
                except OSError:
                    continue
                parsed = parse_sctp_endpoints(text) if protocol == "sctp" else parse_sockets(text, protocol)
                for port, addresses in parsed.items():
                    merged.setdefault(port, set()).update(addresses)
            cache[protocol] = merged
        return cache

    def _plan_family(self, family: str, desired: list[dict], final: dict[str, dict], state: str) -> list[Operation]:
        """The changes in one family's ruleset (ip6tables / our ip6 table for IPv6 container addresses)."""
        check_mode = self.module is not None and self.module.check_mode
        adapter, live = (self.adapter, self.live) if family == "ipv4" else (self.adapter6, self.live6)
        wanted, desired = of_family(final.values(), family), of_family(desired, family)
        where = "" if family == "ipv4" else " of ip6tables (IPv6; a network with subnet6)"
        protected = protected_bridges(self.live_table("filter", family).chain_rules("FORWARD"), adapter.parse)
        for table in ("filter", "nat"):
            if self.prefix in self.live_table(table, family).chains:
                continue
            if state != "deleted" and desired and not check_mode:
                raise v.ValidationError(
                    f"chain {self.prefix} is missing in the {table} table{where}: run linuxnet.bridge.firewall "
                    f"with chain_prefix {self.prefix} first" + (" and subnet6 on the network" if family == "ipv6" else "")
                )
            if state != "deleted" and desired:
                # Check mode of a whole play: the firewall task before us would create the chain.
                self.warnings.append(f"chain {self.prefix} is missing in the {table} table{where}; predicted as if "
                                     "linuxnet.bridge.firewall had created it")
                live[table] = self.live_table(table, family)
                live[table].chains[self.prefix] = "-"
                live[table].rules[self.prefix] = []
                # ... and the networks in their default gateway_mode (nat)
                protected |= {item["bridge"] for item in wanted}
        model = mapping_model(wanted, of_family((with_internal(k) for k in self.known.values()), family), self.prefix,
                              protected, family)
        for table in ("filter", "nat"):
            if self.prefix not in self.live_table(table, family).chains:
                model.tables[table].owned = {}  # the firewall module creates and removes the chains
        return adapter.plan(model, live)

    def apply_other(self, operations: list[Operation]) -> None:
        """Delete the UDP flows of changed mappings, after the new rules are committed (no flow
        can be recreated through the old DNAT). Without the tool: a warning, not a failure."""
        operations = [op for op in operations if op.action == CONNTRACK]
        if not operations:
            return
        binary = self.module.get_bin_path("conntrack")
        if not binary:
            ports = ", ".join(f"{op.args['host_ip'] or '0.0.0.0'}:{format_range(op.args['ports'])}" for op in operations)
            self.warnings.append(
                f"conntrack not found on the managed host: existing UDP flows to {ports} keep their old destination "
                "until they are idle (net.netfilter.nf_conntrack_udp_timeout*); install the conntrack package "
                "(conntrack-tools on RHEL)")
            return
        if read_sysctl(CONNTRACK_COUNT) == "0":
            return  # no flow at all (a fresh host, or conntrack unused in this namespace): nothing to list
        # One listing first: a delete per port is a process each (thousands in a teardown), and
        # most ports have no flow. If the listing fails, every port is deleted as before.
        flowing: dict[str, set[int] | None] = {}
        for family in dict.fromkeys(op.args.get("family", "ipv4") for op in operations):
            rc, out, _err = self.module.run_command([binary, "-L", "-p", "udp"] + (["-f", "ipv6"] if family == "ipv6" else []))
            flowing[family] = udp_flow_ports(out) if rc == 0 else None
        for op in operations:
            ports = flowing[op.args.get("family", "ipv4")]
            for argv in conntrack_argvs(binary, op.args):
                if ports is not None and int(argv[-1]) not in ports:
                    continue
                rc, out, err = self.module.run_command(argv)
                if rc != 0 and _NOTHING_DELETED not in err + out:
                    self.warnings.append(f"{' '.join(argv)} failed: {(err or out).strip()}")

    def cleanup_model(self, adapter, live: dict) -> Model:
        """On a backend not chosen: no mapping, and <P> flushed where it still exists."""
        managed = [with_internal(k) for k in list(self.known.values()) + list(self.final.values())]
        model = mapping_model([], of_family(managed, adapter.family), self.prefix, family=adapter.family)
        for table, want in model.tables.items():
            if self.prefix not in (live.get(table) or adapter.empty(table)).chains:
                want.owned = {}
        return model

    def render(self, desired: list[dict]) -> list[str]:
        """The payload for an empty host whose networks are all in gateway_mode nat, or, when a
        live ruleset was read, as protected as the firewall module made them there."""
        lines: list[str] = []
        for family, adapter in (("ipv4", self.adapter), ("ipv6", self.adapter6)):
            items = of_family(desired, family)
            if family == "ipv6" and not items:
                break
            live = self.live if family == "ipv4" else self.live6
            forward = self.live_table("filter", family).chain_rules("FORWARD") if live else None
            protected = None if forward is None else protected_bridges(forward, adapter.parse)
            lines += (render_marker(adapter) if family == "ipv6" else []) + adapter.render_model(
                mapping_model(items, [], self.prefix, protected, family))
        return lines
