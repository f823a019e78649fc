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
The requests are encoded by ``_rtnl`` and :meth:`NetlinkResource.apply` sends them in batches
(:func:`schedule`): one datagram of many requests per namespace, acks read after.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from dataclasses import dataclass
from typing import Any, Callable

from ansible_collections.linuxnet.bridge.plugins.module_utils import _ownership, _rtnl, _validate
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
    namespace_fd,
    remove_namespace,
    write_sysctl,
)

LINK_OPERATIONS = Vocabulary()


def ip(netns: str | None, rest: str) -> str:
    return f"ip -n {netns} {rest}" if netns else f"ip {rest}"


def request(command: str, netns: str | None, name: str | None, method: str, verb: str, **attrs) -> Operation:
    """An operation done by one netlink request on link ``name`` (None: no link), ``call`` naming it
    as pyroute2 did (``IPRoute.<method>(verb, **attrs)``), encoded by :func:`_encode_request`.

    A link is named in the request when the kernel takes a name, else its index is read from
    the namespace's dump when the request is sent: the link may not exist when it is planned.
    """
    return Operation(command, "request", {"netns": netns, "name": name, "call": (method, verb), "attrs": attrs})


@dataclass
class Request:
    """One operation as the kernel gets it: the message, on the socket of ``netns``; ``fd`` (a
    namespace the message names) is closed once it is answered; ``before`` runs before it is sent,
    ``after`` once it succeeded."""

    netns: str | None
    message: _rtnl.Message
    fd: int | None = None
    before: Callable[[], None] | None = None
    after: Callable[[], None] | None = None
    #: the link that ``message`` deletes (``ip link del NAME``): consecutive ones go as one group delete
    deletes: str | None = None


# action -> the Request of an operation of that action (the index of a link it names is read now)
ENCODERS: dict[str, Callable[[Netlink, Operation], Request]] = {}


def _encode_request(nl: Netlink, op: Operation) -> Request:
    a = op.args
    attrs = a["attrs"]
    method, verb = a["call"]
    if method == "link" and verb == "del":
        return Request(a["netns"], _rtnl.del_link(a["name"]), deletes=a["name"])
    elif method == "link":
        state = attrs.get("state")
        stp = attrs.get("br_stp_state")
        message = _rtnl.set_link(a["name"], attrs.get("index", 0), up=None if state is None else state == "up",
                                 mtu=attrs.get("mtu"), address=attrs.get("address"), alias=attrs.get("ifalias"),
                                 stp=None if stp is None else bool(stp))
    elif method == "brport":  # AF_BRIDGE requests name the port by index only
        message = _rtnl.set_hairpin(nl.index(a["name"], a["netns"], op.command), bool(attrs["mode"]))
    elif method == "addr":  # so do address requests
        message = _rtnl.address(verb == "add", nl.index(a["name"], a["netns"], op.command),
                                f"{attrs['address']}/{attrs['prefixlen']}")
    elif method == "route":
        message = _rtnl.replace_default_route(attrs["gateway"])
    else:  # pragma: no cover - every request built in this file is one of the above
        raise ApplyError(f"{op.command}: no netlink request for {method} {verb}")
    return Request(a["netns"], message)


def send(nl: Netlink, request: Request, command: str) -> None:
    """One request, sent alone and answered (the operations done one at a time use this)."""
    try:
        if request.before:
            request.before()
        nl.call(request.netns, command, request.message)
    finally:
        if request.fd is not None:
            os.close(request.fd)
    if request.after:
        request.after()


def _sends(action: str) -> Callable[[Callable[[Netlink, Operation], Request]], Callable]:
    """Register an encoder for ``action`` and, as its vocabulary function, sending it alone."""
    def register(encoder: Callable[[Netlink, Operation], Request]) -> Callable:
        ENCODERS[action] = encoder
        LINK_OPERATIONS[action] = lambda nl, op: send(nl, encoder(nl, op), op.command)
        return encoder
    return register


_sends("request")(_encode_request)


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


@_sends("alias")
def _alias(nl: Netlink, op: Operation) -> Request:
    request = _encode_request(nl, op)
    request.after = lambda: _ownership.link_marked(op.args["netns"], op.args["name"])
    return request


def op_stp(name: str, netns: str | None, on: bool) -> Operation:
    return link_set(name, netns, f"type bridge stp_state {int(on)}", br_stp_state=int(on))


def op_hairpin(name: str, on: bool) -> Operation:
    return request(f"bridge link set dev {name} hairpin {'on' if on else 'off'}", None, name, "brport", "set", mode=int(on))


def op_delete(name: str, netns: str | None, why: str = "") -> Operation:
    suffix = f"  # {why}" if why else ""
    return request(ip(netns, f"link del {name}") + suffix, netns, name, "link", "del")


def op_addr(name: str, netns: str | None, cidr: str, add: bool, why: str = "") -> Operation:
    """The broadcast (up to /30) and IFA_F_NODAD come with the request (_rtnl.address)."""
    iface = ipaddress.ip_interface(cidr)
    verb = "add" if add else "del"
    # As Docker does: the addresses are planned unique on the network, and an address
    # waiting for duplicate address detection (about 2 s) cannot be used yet.
    words = " nodad" if add and iface.version == 6 else ""
    suffix = f"  # {why}" if why else ""
    return request(ip(netns, f"addr {verb} {cidr} dev {name}{words}") + suffix, netns, name, "addr", verb,
                   address=str(iface.ip), prefixlen=iface.network.prefixlen)


def op_default_route(netns: str, gateway: str) -> Operation:
    if ipaddress.ip_address(gateway).version == 6:
        return request(ip(netns, f"-6 route replace default via {gateway}"), netns, None, "route", "replace", gateway=gateway)
    return request(ip(netns, f"route replace default via {gateway}"), netns, None, "route", "replace", gateway=gateway)


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


@_sends("master")
def _master(nl: Netlink, op: Operation) -> Request:
    return Request(None, _rtnl.set_link(op.args["name"], master=nl.index(op.args["master"], None, op.command)))


def op_bridge_add(name: str, netns: str | None) -> Operation:
    return Operation(ip(netns, f"link add {name} type bridge"), "bridge_add", {"name": name, "netns": netns})


@_sends("bridge_add")
def _bridge_add(nl: Netlink, op: Operation) -> Request:
    netns, name = op.args["netns"], op.args["name"]

    def intend() -> None:
        # Both before the request: a run killed after the kernel's ack leaves a bridge the next
        # run's gather finds (the namespace recorded) and adopts (the creation note).
        if netns:
            _ownership.record_bridge_namespace(netns)
        _ownership.intend_link(netns, name, _ownership.OWNER_MARK)

    return Request(netns, _rtnl.new_bridge(name), before=intend)


def op_veth_add(name: str, peer: str, peer_netns: str | None, mtu: int | None) -> Operation:
    size = f" mtu {mtu}" if mtu else ""
    where = f" netns {peer_netns}" if peer_netns else ""
    return Operation(
        f"ip link add {name}{size} type veth peer name {peer}{size}{where}",
        "veth_add",
        {"name": name, "peer": peer, "peer_netns": peer_netns, "mtu": mtu},
    )


@_sends("veth_add")
def _veth_add(nl: Netlink, op: Operation) -> Request:
    a = op.args
    fd = namespace_fd(a["peer_netns"]) if a["peer_netns"] else None

    def made() -> None:
        nl.invalidate(a["peer_netns"])
        nl.pair(a["name"], a["peer"], a["peer_netns"])  # the peer's index is read from the host's dump

    return Request(None, _rtnl.new_veth(a["name"], a["peer"], a["mtu"], fd), fd,
                   before=lambda: _ownership.intend_link(None, a["name"], _ownership.owner_alias(a["peer"], a["peer_netns"])),
                   after=made)


def op_netns_add(name: str) -> Operation:
    return Operation(f"ip netns add {name}", "netns_add", {"name": name})


@LINK_OPERATIONS.does("netns_add")
def _netns_add(nl: Netlink, op: Operation) -> None:
    # Marked first: a run killed in between leaves a mark without a namespace, which the next
    # run's create makes true, rather than a namespace nobody owns.
    _ownership.mark_namespace(op.args["name"])
    try:
        nl.adopt(op.args["name"], create_namespace(op.args["name"]))
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


def _network(cidr: str) -> Any:
    return _validate.interface(cidr).network  # parsed once per process


def primaries(addresses: list[str]) -> set[str]:
    """The IPv4 primaries of a link's ``addresses`` (in the kernel's dump order): the first address
    of each prefix (same subnet and length); the kernel lists the others, its secondaries, after it."""
    seen: set = set()
    found = set()
    for address in addresses:
        if ":" not in address and _network(address) not in seen:
            seen.add(_network(address))
            found.add(address)
    return found


def address_steps(have: list[str], want: list[str] | None, exact: bool) -> list[tuple[str, bool, str]]:
    """(address, add, why) in the order the requests go that make a link's addresses ``want``
    (merged into ``have``, the addresses as gathered, or exactly ``want``).

    Deleting an IPv4 primary also deletes its secondaries (``promote_secondaries=0``, the default)
    or makes one of them the primary (``=1``). So the secondaries are deleted before the primaries,
    and those of a primary that goes which are kept (a wanted one) are deleted too and added again
    after it, in ``want``'s order: the kernel then ends with the same addresses, in the same order,
    whatever ``promote_secondaries`` says (see :func:`kernel_after`)."""
    if want is None:
        return []
    want = list(dict.fromkeys(want))  # an address given twice is added once
    if want == have:
        return []  # (every run that changes nothing: none goes, none comes)
    first = primaries(have)
    gone = [a for a in have if exact and a not in want]
    lost = {_network(a): a for a in gone if a in first}  # prefix -> its primary that goes
    again = {a: lost[_network(a)] for a in have if a not in gone and a not in first and ":" not in a
             and _network(a) in lost}
    deletes = sorted((a for a in have if a in gone or a in again), key=lambda a: a in first)  # stable
    steps = [(a, False, f"added again: deleting primary {again[a]} deletes it" if a in again else "") for a in deletes]
    return steps + [(a, True, "") for a in want if a not in have or a in again]


def address_ops(name: str, netns: str | None, have: list[str], want: list[str] | None, exact: bool) -> list[Operation]:
    return [op_addr(name, netns, a, add, why) for a, add, why in address_steps(have, want, exact)]


def kernel_after(have: list[str], steps: list[tuple[str, bool, str]], promote: bool = False,
                 strict: bool = False) -> list[str]:
    """A link's addresses as the kernel dumps them once ``steps`` (:func:`address_steps`) are done
    to ``have`` (as gathered), as its address lists do (net/ipv4/devinet.c, ``promote``: the
    link's ``promote_secondaries``): IPv4 before IPv6; a new IPv4 address goes after the last
    primary, unless it is a secondary (its prefix has a primary), which goes last; deleting a
    primary deletes its secondaries or promotes the first (which moves after the last primary);
    a new IPv6 address goes first (all ours are of global scope). A step the kernel would refuse
    (deleting an address it does not have, adding one it has) changes nothing, or raises ValueError
    when ``strict`` (the tests of the plans)."""
    v4 = [a for a in have if ":" not in a]
    v6 = [a for a in have if ":" in a]
    for address, add, _why in steps:
        family = v6 if ":" in address else v4
        if add == (address in family):
            if not strict:  # the real run fails there, naming the request
                continue
            raise ValueError(f"{'adding' if add else 'deleting'} {address}: the link {'has' if add else 'lacks'} it")
        if family is v6:
            if add:
                v6.insert(0, address)
            else:
                v6.remove(address)
            continue
        first = primaries(v4)
        if add:
            same = _network(address) in {_network(a) for a in v4}
            v4.insert(len(v4) if same else len(first), address)
            continue
        v4.remove(address)
        if address in first:
            secondaries = [a for a in v4 if _network(a) == _network(address)]
            if secondaries and promote:
                v4.remove(secondaries[0])
                v4.insert(len(first) - 1, secondaries[0])
            elif secondaries:
                v4 = [a for a in v4 if a not in secondaries]
    return v4 + v6


def kernel_order(have: list[str], want: list[str], exact: bool) -> list[str]:
    """A link's addresses as the next gather reads them once ``want`` is applied (merged, or exact:
    see :func:`address_steps`) to ``have`` (as gathered), rather than in the config's order, so that
    check mode's ``after`` is the real run's."""
    return kernel_after(have, address_steps(have, want, exact))


def docker_mac(address: str) -> str:
    """Docker's container MAC: 02:42 followed by the four bytes of the IPv4 address."""
    packed = _validate.interface(address).ip.packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


# Namespace fds open at a time: a veth made into a namespace names it by an open fd until the kernel
# answered; a wave of more veths is sent in parts (a multiple of _rtnl.WINDOW: the same datagrams),
# so that with _netlink.MAX_SOCKETS a run stays far below a soft RLIMIT_NOFILE of 1024.
FD_BUDGET = 4 * _rtnl.WINDOW


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
        """Apply ``operations`` in the waves :func:`schedule` gives them. In a wave, the operations
        done alone (sysctls, namespaces, files) run first, in order; then every namespace's
        requests are encoded (indexes read from the dumps), sent in one go per namespace and
        answered. After a wave with a failure nothing more is sent; the error names the command
        of the first operation (in plan order) that failed, and what was applied."""
        waves = schedule(operations)
        applied: list[int] = []
        for wave in sorted(set(waves)):
            members = [i for i, w in enumerate(waves) if w == wave]
            failures: list[tuple[int, str]] = []
            for i in members:
                op = operations[i]
                if op.action in ENCODERS:
                    continue
                try:
                    self.operations[op.action](self.netlink, op)
                except NamespaceMissing as exc:
                    failures.append((i, f"{op.command}: network namespace {exc} does not exist"))
                except OSError as exc:
                    failures.append((i, f"{op.command}: {exc}"))
                except ApplyError as exc:
                    failures.append((i, str(exc)))
                else:
                    applied.append(i)
                if failures:
                    break
            if not failures:
                failures = self._send_wave(operations, [i for i in members if operations[i].action in ENCODERS], applied)
            if failures:
                i, message = min(failures)
                raise ApplyError(f"{message} ({applied_note(operations, i, applied)})")
            self.netlink.invalidate()  # links were made, deleted, moved: the next wave reads again

    def _send_wave(self, operations: list[Operation], members: list[int], applied: list[int]) -> list[tuple[int, str]]:
        """Encode, send and answer the requests ``members`` (indexes into ``operations``); the
        failures as (index, message); the successes appended to ``applied``. A wave whose requests
        hold more than :data:`FD_BUDGET` namespace fds (a veth each) is sent in parts, each encoded
        and answered before the next is encoded; after a part with a failure nothing more is sent."""
        lanes: dict[Any, list[tuple[int, Request]]] = {}
        held = 0
        for i in members:
            try:
                request = ENCODERS[operations[i].action](self.netlink, operations[i])
            except (ApplyError, NamespaceMissing, OSError) as exc:
                for pending in lanes.values():
                    for _i, request in pending:
                        if request.fd is not None:
                            os.close(request.fd)
                message = f"{operations[i].command}: network namespace {exc} does not exist" if isinstance(exc, NamespaceMissing) \
                    else str(exc) if isinstance(exc, ApplyError) else f"{operations[i].command}: {exc}"
                return [(i, message)]
            lanes.setdefault(request.netns, []).append((i, request))
            held += request.fd is not None
            if held >= FD_BUDGET:
                failures = self._send_lanes(operations, lanes, applied)
                if failures:
                    return failures
                lanes, held = {}, 0
        return self._send_lanes(operations, lanes, applied)

    def _send_lanes(self, operations: list[Operation], lanes: dict[Any, list[tuple[int, Request]]],
                    applied: list[int]) -> list[tuple[int, str]]:
        """Send each namespace's encoded requests in one go and read the answers (see _send_wave);
        every namespace fd the requests hold is closed."""
        failures: list[tuple[int, str]] = []
        for netns, pending in lanes.items():
            if failures:  # as one at a time would: nothing more is sent after a refusal
                for _i, request in pending:
                    if request.fd is not None:
                        os.close(request.fd)
                continue
            try:
                for _i, request in pending:
                    if request.before:
                        request.before()
                errors = self._transact(netns, [request for _i, request in pending])
            except NamespaceMissing as exc:
                failures.append((pending[0][0], f"{operations[pending[0][0]].command}: network namespace {exc} does not exist"))
                continue
            except OSError as exc:
                failures.append((pending[0][0], f"{operations[pending[0][0]].command}: {exc}"))
                continue
            finally:
                for _i, request in pending:
                    if request.fd is not None:
                        os.close(request.fd)
            for (i, request), error in zip(pending, errors):
                if error:
                    failures.append((i, f"{operations[i].command}: {os.strerror(error)} (errno {error})"))
                    continue
                applied.append(i)
                if request.after:
                    request.after()
        return failures

    def _transact(self, netns: Any, requests: list[Request]) -> list[int]:
        """The errno of each of ``requests`` sent on the socket of ``netns``, in order; consecutive
        link deletes go as one group delete (:func:`group_deletes`; the group is one that no link of
        the namespace's dump, read under the host's lock, is in), and if the kernel refuses a group
        delete, the links it left are deleted one by one."""
        deletes = sum(request.deletes is not None for request in requests)
        if deletes < 2:
            return self.netlink.transact(netns, [request.message for request in requests])
        messages, answered_by = group_deletes(requests, free_group(self.netlink.links(netns).values()))
        errors = self.netlink.transact(netns, messages)
        own = [next((errors[j] for j in answered_by[i] if errors[j]), 0) for i in range(len(requests))]
        # a group delete refused (a kernel without it): its links, in the group now, deleted one by one
        left = [i for i, request in enumerate(requests) if request.deletes is not None and own[i]
                and not errors[answered_by[i][0]]]
        if left:
            for i, error in zip(left, self.netlink.transact(netns, [requests[i].message for i in left])):
                own[i] = error
        return own


def free_group(links: Any) -> int:
    """A link group (``ip link set NAME group GROUP``) that none of ``links`` (a namespace's dump) is in."""
    used = {link.get("group") for link in links}
    group = DELETE_GROUP
    while group in used:
        group += 1
    return group


# The first group tried for the links a batch deletes (``LNXD``); one no link of the namespace is in is used.
DELETE_GROUP = 0x4C4E5844


def group_deletes(requests: list[Request], group: int) -> tuple[list[_rtnl.Message], list[list[int]]]:
    """The messages that do ``requests`` in their order, each run of two or more consecutive link
    deletes as the links put in ``group`` (a group no link of the namespace is in: :func:`free_group`)
    and the group deleted: the kernel unregisters them in one batch, with one wait for RCU readers
    instead of one per link (a bridge costs about 40 ms alone, 20 in a batch). Also, per request, the
    indexes of the messages that answer for it: its own, and for a delete in a run the group delete
    (the first error among them is its own)."""
    messages: list[_rtnl.Message] = []
    answered_by: list[list[int]] = []
    run: list[int] = []  # the requests of the current run of deletes (their messages put the link in the group)

    def close_run() -> None:
        if len(run) > 1:
            messages.append(_rtnl.del_group(group))
            for i in run:
                answered_by[i].append(len(messages) - 1)
        elif run:  # a delete alone: as it is
            messages[answered_by[run[0]][0]] = requests[run[0]].message
        run.clear()

    for i, request in enumerate(requests):
        if request.deletes is None:
            close_run()
            answered_by.append([len(messages)])
            messages.append(request.message)
            continue
        run.append(i)
        answered_by.append([len(messages)])
        messages.append(_rtnl.set_group(request.deletes, group))
    close_run()
    return messages, answered_by


# What an operation touches, for :func:`schedule`: key -> mode. Two operations on one key keep
# their order unless both hold it in the same shared mode ("r": reads or changes beside others,
# "d": deletes); "w" is exclusive. ("link", netns, name): a link; ("lane", netns): the namespace
# (its routes and its existence); ("deletes",): deleted links free names, in other namespaces too.
def _touches(op: Operation) -> tuple[Any, dict]:
    """(the namespace whose socket carries ``op``, or ... when it is done alone; its keys)."""
    a = op.args
    if op.action in ("request", "alias"):
        method, verb = a["call"]
        netns = a["netns"]
        if method == "route":
            return netns, {("lane", netns): "w", ("deletes",): "r"}
        name = a["name"] if a["name"] is not None else "lo"  # the one request by index: lo
        if (method, verb) == ("link", "del"):
            return netns, {("link", netns, name): "w", ("lane", netns): "r", ("deletes",): "d"}
        return netns, {("link", netns, name): "w", ("lane", netns): "r", ("deletes",): "r"}
    if op.action == "master":
        return None, {("link", None, a["name"]): "w", ("link", None, a["master"]): "r", ("lane", None): "r", ("deletes",): "r"}
    if op.action == "bridge_add":
        return a["netns"], {("link", a["netns"], a["name"]): "w", ("lane", a["netns"]): "r", ("deletes",): "r"}
    if op.action == "veth_add":
        return None, {("link", None, a["name"]): "w", ("link", a["peer_netns"], a["peer"]): "w", ("lane", None): "r",
                      ("lane", a["peer_netns"]): "r", ("deletes",): "r"}
    if op.action == "ipv6":
        return ..., {("link", a["netns"], a["name"]): "w", ("lane", a["netns"]): "r", ("deletes",): "r"}
    if op.action == "netns_add":
        return ..., {("lane", a["name"]): "w"}
    if op.action == "netns_delete":
        return ..., {("lane", a["name"]): "w", ("deletes",): "d"}
    if "path" in a:  # a file of ours (the namespaces' resolver files): ordered with that file only
        return ..., {("file", a["path"]): "w"}
    return ..., {("all",): "w"}  # anything else: after everything before it, before everything after


CREATES = ("bridge_add", "veth_add")


def schedule(operations: list[Operation]) -> list[int]:
    """The wave of each operation: an operation comes after every earlier one it shares a key
    with (see :func:`_touches`), in the same wave when both are requests on the same socket (the
    kernel handles them in order) and the earlier one creates nothing, else in a later wave.
    A link is thus configured only once its creation succeeded (a request naming a link that
    failed to be made could reach another one of that name), and a veth peer is configured in
    its namespace once the pair exists."""
    waves: list[int] = []
    lanes: list[Any] = []
    groups: dict[Any, tuple[str, list[int], list[int]]] = {}  # key -> (mode, holders, their predecessors)
    for i, op in enumerate(operations):
        lane, keys = _touches(op)
        keys.setdefault(("all",), "r")
        wave = 0
        for key, mode in keys.items():
            held = groups.get(key)
            if held is None:
                groups[key] = (mode, [i], [])
                continue
            held_mode, holders, before = held
            if mode == held_mode and mode != "w":
                after = before
                holders.append(i)
            else:
                after = holders
                groups[key] = (mode, [i], holders)
            for j in after:
                same_socket = lane is not ... and lanes[j] is not ... and lanes[j] == lane
                gap = 0 if same_socket and operations[j].action not in CREATES else 1
                wave = max(wave, waves[j] + gap)
        waves.append(wave)
        lanes.append(lane)
    return waves


def applied_note(operations: list[Operation], failed: int, applied: list[int] | None = None) -> str:
    """What a failed apply left: each operation is one step the next run's gather sees, so it
    plans only what is still missing. ``applied``: the operations done (indexes; default: every
    one before ``failed``), the last of them in plan order named."""
    done = sorted(range(failed) if applied is None else applied)
    if not done:
        return f"nothing was applied: it was the first of {len(operations)} operations" if failed == 0 else \
            f"nothing was applied of {len(operations)} operations"
    last = [i for i in done if i < failed] or done
    return (f"{len(done)} of {len(operations)} operations were applied before it, the last: "
            f"{operations[last[-1]].command!r}; the next run goes on from there")
