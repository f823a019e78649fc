# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Link operations shared by the bridge and veth resources: one vocabulary of operations, each
rendered as the ``ip`` command a human would type and applied through one netlink executor."""

from __future__ import annotations

import ipaddress

from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import (
    OWNER_MARK,
    ApplyError,
    Operation,
    Resource,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._netlink import Netlink, NamespaceMissing


def ip(netns: str | None, rest: str) -> str:
    return f"ip -n {netns} {rest}" if netns else f"ip {rest}"


def op_set_mtu(name: str, netns: str | None, mtu: int) -> Operation:
    return Operation(ip(netns, f"link set {name} mtu {mtu}"), "mtu", {"name": name, "netns": netns, "mtu": mtu})


def op_set_mac(name: str, netns: str | None, mac: str) -> Operation:
    return Operation(ip(netns, f"link set {name} address {mac}"), "mac", {"name": name, "netns": netns, "mac": mac})


def op_set_state(name: str, netns: str | None, up: bool) -> Operation:
    word = "up" if up else "down"
    return Operation(ip(netns, f"link set {name} {word}"), "state", {"name": name, "netns": netns, "up": up})


def op_set_alias(name: str, netns: str | None, alias: str) -> Operation:
    return Operation(
        ip(netns, f"link set {name} alias '{alias}'"), "alias", {"name": name, "netns": netns, "alias": alias}
    )


def op_addr(name: str, netns: str | None, cidr: str, add: bool) -> Operation:
    verb = "add" if add else "del"
    return Operation(
        ip(netns, f"addr {verb} {cidr} dev {name}"),
        "addr_add" if add else "addr_del",
        {"name": name, "netns": netns, "cidr": cidr},
    )


def op_delete(name: str, netns: str | None, why: str = "") -> Operation:
    suffix = f"  # {why}" if why else ""
    return Operation(ip(netns, f"link del {name}") + suffix, "delete", {"name": name, "netns": netns})


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


class LinkResource(Resource):
    """Base for link resources: owns the netlink adapter and the shared executor."""

    def __init__(self, module) -> None:
        super().__init__(module)
        self.netlink = Netlink()

    def close(self) -> None:
        self.netlink.close()

    def owned(self, link: dict) -> bool:
        return bool(link.get("alias")) and link["alias"].split(" ", 1)[0] == OWNER_MARK

    def apply(self, operations: list[Operation]) -> None:
        for op in operations:
            try:
                self.execute(op)
            except NamespaceMissing as exc:
                raise ApplyError(f"{op.command}: network namespace {exc} does not exist") from None

    def execute(self, op: Operation) -> None:
        nl = self.netlink
        a = op.args
        netns = a.get("netns")
        if op.action == "bridge_add":
            nl.call(netns, op.command, "link", "add", ifname=a["name"], kind="bridge")
            return
        if op.action == "veth_add":
            peer = {"ifname": a["peer"]}
            if a.get("peer_netns"):
                peer["net_ns_fd"] = a["peer_netns"]
            if a.get("mtu"):
                peer["mtu"] = a["mtu"]
            kwargs = {"ifname": a["name"], "kind": "veth", "peer": peer}
            if a.get("mtu"):
                kwargs["mtu"] = a["mtu"]
            nl.call(None, op.command, "link", "add", **kwargs)
            if a.get("peer_netns"):
                nl.invalidate(a["peer_netns"])
            return
        if op.action == "route_default":
            if a.get("gateway"):
                nl.call(netns, op.command, "route", "replace", dst="0.0.0.0/0", gateway=a["gateway"])
            else:
                nl.call(netns, op.command, "route", "del", dst="0.0.0.0/0")
            return
        index = nl.index(a["name"], netns, op.command)
        if op.action == "delete":
            nl.call(netns, op.command, "link", "del", index=index)
        elif op.action == "mtu":
            nl.call(netns, op.command, "link", "set", index=index, mtu=a["mtu"])
        elif op.action == "mac":
            nl.call(netns, op.command, "link", "set", index=index, address=a["mac"])
        elif op.action == "state":
            nl.call(netns, op.command, "link", "set", index=index, state="up" if a["up"] else "down")
        elif op.action == "alias":
            nl.call(netns, op.command, "link", "set", index=index, ifalias=a["alias"])
        elif op.action in ("addr_add", "addr_del"):
            iface = ipaddress.ip_interface(a["cidr"])
            verb = "add" if op.action == "addr_add" else "del"
            extra = {"broadcast": str(iface.network.broadcast_address)} if verb == "add" and iface.version == 4 else {}
            nl.call(
                netns, op.command, "addr", verb, index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen, **extra
            )
        elif op.action == "stp":
            nl.call(netns, op.command, "link", "set", index=index, kind="bridge", br_stp_state=1 if a["on"] else 0)
        elif op.action == "master":
            master = nl.index(a["master"], netns, op.command) if a.get("master") else 0
            nl.call(netns, op.command, "link", "set", index=index, master=master)
        elif op.action == "hairpin":
            nl.call(netns, op.command, "brport", "set", index=index, mode=1 if a["on"] else 0)
        else:  # pragma: no cover
            raise ApplyError(f"unknown operation {op.action}")
