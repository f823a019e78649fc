# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The vocabulary of ``ip`` operations shared by the netns, bridge and veth resources.

Each kind of operation is written once, in the function that builds it: the ``ip`` command a
human would type (the ``commands`` result) next to the netlink request that does it. Most are
one request (:func:`request`); the few that do more register their function under their action.
"""

from __future__ import annotations

import errno
import ipaddress
import os

from ansible_collections.linuxnet.bridge.plugins.module_utils import _ownership
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import (
    ApplyError,
    Operation,
    Resource,
    Vocabulary,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._netlink import (
    NamespaceMissing,
    Netlink,
    create_namespace,
    remove_namespace,
    write_sysctl,
)

LINK_OPERATIONS = Vocabulary()


def ip(netns: str | None, rest: str) -> str:
    return f"ip -n {netns} {rest}" if netns else f"ip {rest}"


def request(command: str, netns: str | None, name: str | None, method: str, verb: str, **attrs) -> Operation:
    """An operation done by one netlink request, ``IPRoute.<method>(verb, index=<name's index>, **attrs)``.

    ``name`` (None: no link) is looked up when the request is made: the link may not exist yet
    when the operation is planned.
    """
    return Operation(command, "request", {"netns": netns, "name": name, "call": (method, verb), "attrs": attrs})


@LINK_OPERATIONS.does("request")
def _request(nl: Netlink, op: Operation) -> None:
    a = op.args
    index = {"index": nl.index(a["name"], a["netns"], op.command)} if a["name"] else {}
    nl.call(a["netns"], op.command, *a["call"], **index, **a["attrs"])


def link_set(name: str, netns: str | None, words: str, **attrs) -> Operation:
    """``ip link set NAME WORDS``: ``attrs`` set on the link."""
    return request(ip(netns, f"link set {name} {words}"), netns, name, "link", "set", **attrs)


def op_set_mtu(name: str, netns: str | None, mtu: int) -> Operation:
    return link_set(name, netns, f"mtu {mtu}", mtu=mtu)


def op_set_mac(name: str, netns: str | None, mac: str) -> Operation:
    return link_set(name, netns, f"address {mac}", address=mac)


def op_set_state(name: str, netns: str | None, up: bool) -> Operation:
    return link_set(name, netns, "up" if up else "down", state="up" if up else "down")


def op_set_alias(name: str, netns: str | None, alias: str) -> Operation:
    op = link_set(name, netns, f"alias '{alias}'", ifalias=alias)
    return Operation(op.command, "alias", op.args)


@LINK_OPERATIONS.does("alias")
def _alias(nl: Netlink, op: Operation) -> None:
    _request(nl, op)
    _ownership.link_marked(op.args["netns"], op.args["name"])


def op_stp(name: str, netns: str | None, on: bool) -> Operation:
    return link_set(name, netns, f"type bridge stp_state {int(on)}", kind="bridge", br_stp_state=int(on))


def op_hairpin(name: str, on: bool) -> Operation:
    return request(f"bridge link set dev {name} hairpin {'on' if on else 'off'}", None, name, "brport", "set", mode=int(on))


def op_delete(name: str, netns: str | None, why: str = "") -> Operation:
    suffix = f"  # {why}" if why else ""
    return request(ip(netns, f"link del {name}") + suffix, netns, name, "link", "del")


IFA_F_NODAD = 0x02


def op_addr(name: str, netns: str | None, cidr: str, add: bool) -> Operation:
    iface = ipaddress.ip_interface(cidr)
    verb = "add" if add else "del"
    extra: dict = {}
    words = ""
    if add and iface.version == 4:
        extra = {"broadcast": str(iface.network.broadcast_address)}
    elif add:
        # As Docker does: the addresses are planned unique on the network, and an address
        # waiting for duplicate address detection (about 2 s) cannot be used yet.
        extra, words = {"flags": IFA_F_NODAD}, " nodad"
    return request(ip(netns, f"addr {verb} {cidr} dev {name}{words}"), netns, name, "addr", verb,
                   address=str(iface.ip), prefixlen=iface.network.prefixlen, **extra)


def op_default_route(netns: str, gateway: str) -> Operation:
    if ipaddress.ip_address(gateway).version == 6:
        return request(ip(netns, f"-6 route replace default via {gateway}"), netns, None, "route", "replace",
                       dst="::/0", gateway=gateway, family=10)  # AF_INET6
    return request(ip(netns, f"route replace default via {gateway}"), netns, None, "route", "replace", dst="0.0.0.0/0", gateway=gateway)


def op_lo_up(netns: str) -> Operation:
    # The loopback device is index 1 in every network namespace (LOOPBACK_IFINDEX).
    return request(ip(netns, "link set lo up"), netns, None, "link", "set", index=1, state="up")


def op_ipv6(name: str, netns: str | None, on: bool) -> Operation:
    """IPv6 on or off for one interface: Docker turns it off in containers whose networks have
    none, so that no link-local address lets endpoints talk past the IPv4-only ICC/isolation rules.
    On comes with ``accept_ra=0`` first: addresses and routes are ours, and a router advertisement
    sent by an endpoint would otherwise give its neighbours a route through it (CVE-2020-13401)."""
    base = f"net/ipv6/conf/{name}"
    writes = ([(f"{base}/accept_ra", "0")] if on else []) + [(f"{base}/disable_ipv6", "0" if on else "1")]
    keys = [path if "." in name else path.replace("/", ".") for path, _value in writes]  # sysctl reads a dotted key's dots as separators
    command = "sysctl -qw " + " ".join(f"{key}={value}" for key, (_path, value) in zip(keys, writes))
    return Operation(f"ip netns exec {netns} {command}" if netns else command, "ipv6",
                     {"name": name, "netns": netns, "writes": writes, "on": on})


@LINK_OPERATIONS.does("ipv6")
def _ipv6(nl: Netlink, op: Operation) -> None:
    a = op.args
    try:
        for path, value in a["writes"]:
            write_sysctl(a["netns"], path, value)
    except FileNotFoundError:
        if a["on"] or os.path.isdir("/proc/sys/net/ipv6"):
            raise OSError(errno.ENOENT, f"interface {a['name']} has no IPv6 settings") from None
        # a kernel without IPv6 (ipv6.disable=1): off already holds


def op_master(name: str, master: str) -> Operation:
    return Operation(f"ip link set {name} master {master}", "master", {"name": name, "master": master})


@LINK_OPERATIONS.does("master")
def _master(nl: Netlink, op: Operation) -> None:
    index = nl.index(op.args["name"], None, op.command)
    nl.call(None, op.command, "link", "set", index=index, master=nl.index(op.args["master"], None, op.command))


def op_bridge_add(name: str, netns: str | None) -> Operation:
    return Operation(ip(netns, f"link add {name} type bridge"), "bridge_add", {"name": name, "netns": netns})


@LINK_OPERATIONS.does("bridge_add")
def _bridge_add(nl: Netlink, op: Operation) -> None:
    _ownership.intend_link(op.args["netns"], op.args["name"], _ownership.OWNER_MARK)
    nl.call(op.args["netns"], op.command, "link", "add", ifname=op.args["name"], kind="bridge")
    if op.args["netns"]:
        _ownership.record_bridge_namespace(op.args["netns"])


def op_veth_add(name: str, peer: str, peer_netns: str | None, mtu: int | None) -> Operation:
    size = f" mtu {mtu}" if mtu else ""
    where = f" netns {peer_netns}" if peer_netns else ""
    return Operation(
        f"ip link add {name}{size} type veth peer name {peer}{size}{where}",
        "veth_add",
        {"name": name, "peer": peer, "peer_netns": peer_netns, "mtu": mtu},
    )


@LINK_OPERATIONS.does("veth_add")
def _veth_add(nl: Netlink, op: Operation) -> None:
    a = op.args
    peer = {"ifname": a["peer"]}
    if a["peer_netns"]:
        peer["net_ns_fd"] = a["peer_netns"]
    size = {"mtu": a["mtu"]} if a["mtu"] else {}
    _ownership.intend_link(None, a["name"], _ownership.owner_alias(a["peer"], a["peer_netns"]))
    nl.call(None, op.command, "link", "add", ifname=a["name"], kind="veth", peer={**peer, **size}, **size)
    if a["peer_netns"]:
        nl.invalidate(a["peer_netns"])


def op_netns_add(name: str) -> Operation:
    return Operation(f"ip netns add {name}", "netns_add", {"name": name})


@LINK_OPERATIONS.does("netns_add")
def _netns_add(nl: Netlink, op: Operation) -> None:
    # Marked first: a run killed in between leaves a mark without a namespace, which the next
    # run's create makes true, rather than a namespace nobody owns.
    _ownership.mark_namespace(op.args["name"])
    try:
        create_namespace(op.args["name"])
    except OSError:
        _ownership.unmark_namespace(op.args["name"])
        raise


def op_netns_delete(name: str) -> Operation:
    return Operation(f"ip netns delete {name}", "netns_delete", {"name": name})


@LINK_OPERATIONS.does("netns_delete")
def _netns_delete(nl: Netlink, op: Operation) -> None:
    nl.forget(op.args["name"])
    remove_namespace(op.args["name"])
    _ownership.unmark_namespace(op.args["name"])


def address_ops(name: str, netns: str | None, have: list[str], want: list[str] | None, exact: bool) -> list[Operation]:
    if want is None:
        return []
    ops = [op_addr(name, netns, a, True) for a in want if a not in have]
    if exact:
        ops = [op_addr(name, netns, a, False) for a in have if a not in want] + ops
    return ops


def docker_mac(address: str) -> str:
    """Docker's container MAC: 02:42 followed by the four bytes of the IPv4 address."""
    packed = ipaddress.ip_interface(address).ip.packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


class NetlinkResource(Resource):
    """Base of the resources that act through netlink: owns the sockets, applies by vocabulary."""

    operations: Vocabulary = LINK_OPERATIONS

    def __init__(self, module) -> None:
        super().__init__(module)
        self.netlink = Netlink()
        self._lock: int | None = None

    def hold_lock(self, state: str) -> None:
        """Before a writing run's gather: one writer at a time on the host (see _ownership)."""
        if self._lock is None and state != "gathered" and self.module is not None and not self.module.check_mode:
            try:
                self._lock = _ownership.host_lock()
            except OSError as exc:
                raise ApplyError(str(exc)) from None
            self.netlink.invalidate()  # what was read before the lock may be another run's past

    def persist(self) -> None:
        """Drop creation notes (see _ownership) whose link is gone or carries its alias."""
        def needed(netns: str | None, name: str) -> bool:
            try:
                link = self.netlink.link(name, netns)
            except NamespaceMissing:
                return False
            return link is not None and not link["alias"]

        _ownership.drop_stale_notes(needed)

    def close(self) -> None:
        self.netlink.close()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def apply(self, operations: list[Operation]) -> None:
        for done, op in enumerate(operations):
            try:
                try:
                    self.operations[op.action](self.netlink, op)
                except NamespaceMissing as exc:
                    raise ApplyError(f"{op.command}: network namespace {exc} does not exist") from None
                except OSError as exc:
                    raise ApplyError(f"{op.command}: {exc}") from None
            except ApplyError as exc:
                raise ApplyError(f"{exc} ({applied_note(operations, done)})") from None


def applied_note(operations: list[Operation], done: int) -> str:
    """What a failed apply left: each operation is one step the next run's gather sees, so it
    plans only what is still missing."""
    if not done:
        return f"nothing was applied: it was the first of {len(operations)} operations"
    return (f"{done} of {len(operations)} operations were applied before it, the last: "
            f"{operations[done - 1].command!r}; the next run goes on from there")
