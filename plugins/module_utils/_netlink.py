# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Kernel adapter for links, addresses, routes and namespaces (pyroute2 netlink).

One socket per namespace per module run, one dump per namespace: the cost of a run grows with
the number of namespaces touched, never with the number of items times the number of links.
"""

from __future__ import annotations

import os
import traceback
from typing import Any, Callable

from ansible_collections.linuxnet.bridge.plugins.module_utils import _rtnl
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError

PYROUTE2_IMPORT_ERROR: str | None
try:
    from pyroute2 import IPRoute
    from pyroute2 import netns as pyroute2_netns
    from pyroute2.netlink.exceptions import NetlinkError
except ImportError:  # pragma: no cover - reported by the module with missing_required_lib
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()
    IPRoute = None
    NetlinkError = OSError
    pyroute2_netns = None
else:
    PYROUTE2_IMPORT_ERROR = None

NETNS_RUN_DIR = "/run/netns"
IFF_UP = 1


def require_pyroute2(module: Any) -> None:
    if PYROUTE2_IMPORT_ERROR is not None:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(
            msg=missing_required_lib(
                "pyroute2", reason="on the managed host (Debian/Ubuntu: apt install python3-pyroute2)"
            ),
            exception=PYROUTE2_IMPORT_ERROR,
        )


def list_namespaces() -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_RUN_DIR) if not n.startswith("."))
    except FileNotFoundError:
        return []


class NamespaceMissing(LookupError):
    pass


def _nested(msg: Any, *names: str) -> Any:
    for name in names:
        if msg is None:
            return None
        msg = msg.get_attr(name)
    return msg


def link_summary(msg: Any) -> dict:
    """The attributes of one RTM_NEWLINK message the modules care about."""
    kind = _nested(msg, "IFLA_LINKINFO", "IFLA_INFO_KIND")
    stp = None
    if kind == "bridge":
        stp = _nested(msg, "IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_BR_STP_STATE")
    hairpin = _nested(msg, "IFLA_LINKINFO", "IFLA_INFO_SLAVE_DATA", "IFLA_BRPORT_MODE")
    return {
        "index": msg["index"],
        "name": msg.get_attr("IFLA_IFNAME"),
        "kind": kind,
        "mtu": msg.get_attr("IFLA_MTU"),
        "mac": msg.get_attr("IFLA_ADDRESS"),
        "up": bool(msg["flags"] & IFF_UP),
        "master": msg.get_attr("IFLA_MASTER"),
        "alias": msg.get_attr("IFLA_IFALIAS"),
        "link": msg.get_attr("IFLA_LINK"),
        "link_netnsid": msg.get_attr("IFLA_LINK_NETNSID"),
        "stp": None if stp is None else bool(stp),
        "hairpin": None if hairpin is None else bool(hairpin),
    }


def open_in_namespace(netns: str, opener: Callable[[], Any]) -> Any:
    """``opener()`` run inside named namespace ``netns``: a socket it opens stays bound there.

    The thread enters the namespace just long enough to open the socket, so no helper process
    is forked (pyroute2's netns= option forks one per socket). Never creates a namespace.
    """
    try:
        fd = os.open(os.path.join(NETNS_RUN_DIR, netns), os.O_RDONLY)
    except FileNotFoundError:
        raise NamespaceMissing(netns) from None
    pyroute2_netns.pushns()
    try:
        pyroute2_netns.setns(fd)
        return opener()
    finally:
        pyroute2_netns.popns()
        os.close(fd)


class Netlink:
    """Lazily opened netlink sockets per namespace with cached dumps."""

    def __init__(self) -> None:
        self._sockets: dict[str | None, Any] = {}
        self._links: dict[str | None, dict[str, dict]] = {}
        self._addrs: dict[str | None, dict[int, list[str]]] = {}
        self._indexes: dict[tuple[str | None, str], int] = {}

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
        self.invalidate()

    def invalidate(self, netns: str | None = ...) -> None:  # type: ignore[assignment]
        if netns is ...:
            self._links.clear()
            self._addrs.clear()
            self._indexes.clear()
        else:
            self._links.pop(netns, None)
            self._addrs.pop(netns, None)

    def ipr(self, netns: str | None = None) -> Any:
        """Socket for ``netns`` (None: the module's own namespace); never creates a namespace."""
        if netns not in self._sockets:
            self._sockets[netns] = IPRoute(groups=0) if netns is None else open_in_namespace(netns, lambda: IPRoute(groups=0))
        return self._sockets[netns]

    def links(self, netns: str | None = None) -> dict[str, dict]:
        if netns not in self._links:
            self._links[netns] = {}
            for msg in self.ipr(netns).get_links():
                info = link_summary(msg)
                self._links[netns][info["name"]] = info
        return self._links[netns]

    def link(self, name: str, netns: str | None = None) -> dict | None:
        return self.links(netns).get(name)

    def endpoint(self, netns: str, index: int) -> tuple[dict | None, list[str], str | None]:
        """Link ``index`` of ``netns``, its IPv4 addresses and the namespace's default gateway.

        Read with the lightweight reader of ``_rtnl`` (a tenth of pyroute2's cost), on a socket
        opened inside the namespace like :meth:`ipr` does; nothing is cached.
        """
        reader = open_in_namespace(netns, _rtnl.Reader)
        try:
            link = reader.link(index)
            if link is None:
                return None, [], None
            return link, reader.addresses().get(index, []), reader.default_gateway()
        finally:
            reader.close()

    def addresses(self, netns: str | None = None) -> dict[int, list[str]]:
        """IPv4 addresses per link index, as ``a.b.c.d/len`` in kernel order."""
        if netns not in self._addrs:
            table: dict[int, list[str]] = {}
            for msg in self.ipr(netns).get_addr(family=2):
                table.setdefault(msg["index"], []).append(f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}")
            self._addrs[netns] = table
        return self._addrs[netns]

    def default_gateway(self, netns: str | None = None) -> str | None:
        for msg in self.ipr(netns).get_default_routes(family=2, table=254):
            if msg["dst_len"] == 0 and msg.get_attr("RTA_GATEWAY"):
                return msg.get_attr("RTA_GATEWAY")
        return None

    # -- writes ------------------------------------------------------------------------------
    def call(self, netns: str | None, command: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run one netlink request; turn kernel errors into ApplyError naming the command."""
        try:
            sock = self.ipr(netns)
            return getattr(sock, method)(*args, **kwargs)
        except NamespaceMissing as exc:
            raise ApplyError(f"{command}: network namespace {exc} does not exist") from None
        except (NetlinkError, OSError) as exc:
            raise ApplyError(f"{command}: {exc}") from None
        finally:
            self.invalidate(netns)
            if method == "link" and args[:1] == ("del",):
                # A deleted link frees its name (a deleted veth takes its peer along, in another
                # namespace): forget every cached index.
                self._indexes.clear()

    def index(self, name: str, netns: str | None, command: str) -> int:
        """Index of link ``name`` in ``netns``, looked up once per run: a link keeps its index for
        its whole life, links are never renamed or moved here, and deletions clear the cache."""
        key = (netns, name)
        if key not in self._indexes:
            found = self.ipr(netns).link_lookup(ifname=name)
            if not found:
                raise ApplyError(f"{command}: interface {name} not found")
            self._indexes[key] = found[0]
        return self._indexes[key]
