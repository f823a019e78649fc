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

import ctypes
import errno
import os
import socket
import threading
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
try:  # where every version defines the IPRoute methods (0.9's IPRoute forwards them at runtime)
    from pyroute2.iproute.linux import RTNL_API
except ImportError:  # pragma: no cover - then IPRoute itself must have them
    RTNL_API = None

# The oldest pyroute2 proven to work (Debian 11's); older ones are refused by what they lack.
PYROUTE2_MINIMUM = "0.5.14"
# Everything the collection calls, checked by presence: version strings lie (Debian 12's 0.7.2
# reports "unknown") and distributions backport. Keyword differences are handled where used.
IPROUTE_METHODS = ("get_links", "get_addr", "get_default_routes", "link_lookup", "link", "addr", "route", "brport")
NETNS_FUNCTIONS = ("pushns", "popns", "setns", "attach", "remove")

NETNS_RUN_DIR = "/run/netns"
IFF_UP = 1
# Delete requests as (message type, NLM_F_REQUEST | NLM_F_ACK), which every pyroute2 accepts in
# place of a command word. pyroute2 before 0.7 sends deletes with NLM_F_CREATE | NLM_F_EXCL, and
# since Linux 5.19 NLM_F_EXCL on a delete means NLM_F_BULK, refused with EOPNOTSUPP.
PLAIN_DELETE = {"link": (_rtnl.RTM_DELLINK, 0x5), "addr": (_rtnl.RTM_DELADDR, 0x5), "route": (_rtnl.RTM_DELROUTE, 0x5)}


def missing_pyroute2_features(iproute_classes: tuple, netns: Any) -> list[str]:
    """The pyroute2 functions the collection needs that none of ``iproute_classes`` (or ``netns``) has."""
    missing = [
        f"IPRoute.{name}" for name in IPROUTE_METHODS
        if not any(callable(getattr(cls, name, None)) for cls in iproute_classes if cls is not None)
    ]
    return missing + [f"pyroute2.netns.{name}" for name in NETNS_FUNCTIONS if not callable(getattr(netns, name, None))]


def require_pyroute2(module: Any) -> None:
    """Fail the module with one message unless the managed host's pyroute2 can do the job."""
    if PYROUTE2_IMPORT_ERROR is not None:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(
            msg=missing_required_lib(
                "pyroute2", reason="on the managed host (Debian/Ubuntu: apt install python3-pyroute2)"
            ),
            exception=PYROUTE2_IMPORT_ERROR,
        )
    missing = missing_pyroute2_features((IPRoute, RTNL_API), pyroute2_netns)
    if missing:
        module.fail_json(
            msg=f"pyroute2 {pyroute2_version()} on the managed host is too old: linuxnet.bridge needs pyroute2 >= "
            f"{PYROUTE2_MINIMUM} (this one lacks {', '.join(missing)})"
        )


def pyroute2_version() -> str:
    """The installed pyroute2's version for messages only (the distribution metadata, else the module's)."""
    try:
        from importlib.metadata import version  # Python 3.8+

        return version("pyroute2")
    except Exception:  # metadata missing or unreadable: a message must not fail
        import pyroute2

        return str(getattr(pyroute2, "__version__", "unknown"))


# Keyword arguments for IPRoute(): before 0.7.3 it takes no ``groups`` (and joins no multicast
# group unless bind() is called); from 0.9 it joins the default groups unless told groups=0, and
# events this module never reads would only fill the socket buffer. Learnt at the first socket.
_iproute_kwargs: dict | None = None


def new_iproute() -> Any:
    """A rtnetlink socket subscribed to no multicast group, whatever the pyroute2 version."""
    global _iproute_kwargs
    if _iproute_kwargs is None:
        try:
            sock = IPRoute(groups=0)
        except TypeError as exc:
            if "groups" not in str(exc):
                raise
            _iproute_kwargs = {}
        else:
            _iproute_kwargs = {"groups": 0}
            return sock
    return IPRoute(**_iproute_kwargs)


def list_namespaces() -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_RUN_DIR) if not n.startswith("."))
    except FileNotFoundError:
        return []


class NamespaceMissing(LookupError):
    pass


CLONE_NEWNET = 0x40000000


def create_namespace(name: str) -> None:
    """``ip netns add NAME`` inside this process.

    pyroute2.netns.create forks a helper process per namespace (about 20 ms each). Instead this
    thread unshares its network namespace, brings its lo up, pyroute2.netns.attach bind-mounts it
    to /run/netns/NAME (making /run/netns a shared mount first, as iproute2 does), and the thread
    returns to its own namespace. Killed before the mount, the new namespace simply goes away.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    path = os.path.join(NETNS_RUN_DIR, name)
    if os.path.exists(path) and not os.path.ismount(path):
        os.unlink(path)  # the mountpoint of an attach that a killed run never finished
    pyroute2_netns.pushns()
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"unshare: {os.strerror(code)}")
        # lo goes up before the namespace gets its name: a namespace that can be seen is whole
        reader = _rtnl.Reader()
        try:
            reader.set_up(1)  # LOOPBACK_IFINDEX
        finally:
            reader.close()
        try:
            pyroute2_netns.attach(name, f"{os.getpid()}/task/{threading.get_native_id()}")
        except OSError:
            if os.path.exists(path) and not os.path.ismount(path):
                os.unlink(path)  # the empty mountpoint attach made before its mount failed
            raise
    finally:
        pyroute2_netns.popns()


def remove_namespace(name: str) -> None:
    """``ip netns delete NAME``: unmount and unlink /run/netns/NAME."""
    pyroute2_netns.remove(name)


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


def write_sysctl(netns: str | None, path: str, value: str) -> None:
    """Write ``value`` to ``/proc/sys/<path>`` as seen from namespace ``netns`` (None: this one).

    /proc/sys/net shows the namespace of the thread that opens the file, so the file is opened
    while the thread is inside ``netns``, as :func:`open_in_namespace` does for sockets.
    """
    def write() -> None:
        with open(os.path.join("/proc/sys", path), "w", encoding="ascii") as handle:
            handle.write(value)

    if netns is None:
        write()
    else:
        open_in_namespace(netns, write)


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

    def forget(self, netns: str | None) -> None:
        """Close the socket of ``netns`` and drop what is cached about it (before it is deleted)."""
        sock = self._sockets.pop(netns, None)
        if sock is not None:
            sock.close()
        self.invalidate(netns)

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
            self._sockets[netns] = new_iproute() if netns is None else open_in_namespace(netns, new_iproute)
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

    def endpoint(self, netns: str, index: int) -> tuple[dict | None, list[str], str | None, str | None]:
        """Link ``index`` of ``netns``, its addresses (IPv4, then global IPv6) and the namespace's
        default gateways (IPv4, IPv6; the IPv6 one only read when the link has IPv6 on).

        Read with the lightweight reader of ``_rtnl`` (a tenth of pyroute2's cost), on a socket
        opened inside the namespace like :meth:`ipr` does; nothing is cached.
        """
        reader = open_in_namespace(netns, _rtnl.Reader)
        try:
            link = reader.link(index)
            if link is None:
                return None, [], None, None
            gateway6 = reader.default_gateway(socket.AF_INET6) if link["ipv6"] else None
            return link, reader.addresses().get(index, []), reader.default_gateway(), gateway6
        finally:
            reader.close()

    def ipv6(self, netns: str | None, index: int) -> dict:
        """IPv6 settings of link ``index`` of ``netns``: ``ipv6`` (on; None: no IPv6 in the kernel,
        or no such link) and ``accept_ra``."""
        reader = _rtnl.Reader() if netns is None else open_in_namespace(netns, _rtnl.Reader)
        try:
            link = reader.link(index) or {}
            return {"ipv6": link.get("ipv6"), "accept_ra": link.get("accept_ra")}
        finally:
            reader.close()

    def routes(self, netns: str | None = None) -> list[dict]:
        """The main IPv4 and IPv6 tables of ``netns``: ``{"dst": "address/len", "oif": index or None}`` (not cached)."""
        reader = _rtnl.Reader() if netns is None else open_in_namespace(netns, _rtnl.Reader)
        try:
            return reader.routes()
        finally:
            reader.close()

    def addresses(self, netns: str | None = None) -> dict[int, list[str]]:
        """Addresses per link index as ``address/len`` in kernel order: IPv4, then IPv6 of global
        scope (link-local ones are the kernel's own)."""
        if netns not in self._addrs:
            table: dict[int, list[str]] = {}
            for family in (socket.AF_INET, socket.AF_INET6):
                for msg in self.ipr(netns).get_addr(family=family):
                    address = msg.get_attr("IFA_ADDRESS")
                    if family == socket.AF_INET6 and (msg["scope"] != 0 or address.lower().startswith("fe80:")):
                        continue
                    table.setdefault(msg["index"], []).append(f"{address}/{msg['prefixlen']}")
            self._addrs[netns] = table
        return self._addrs[netns]

    def default_gateway(self, netns: str | None = None, family: int = socket.AF_INET) -> str | None:
        for msg in self.ipr(netns).get_default_routes(family=family, table=254):
            if msg["dst_len"] == 0 and msg.get_attr("RTA_GATEWAY"):
                return msg.get_attr("RTA_GATEWAY")
        return None

    # -- writes ------------------------------------------------------------------------------
    def call(self, netns: str | None, command: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run one netlink request; turn kernel errors into ApplyError naming the command."""
        try:
            sock = self.ipr(netns)
            try:
                return getattr(sock, method)(*args, **kwargs)
            except NetlinkError as exc:
                if not (args[:1] == ("del",) and method in PLAIN_DELETE and getattr(exc, "code", None) == errno.EOPNOTSUPP):
                    raise
                return getattr(sock, method)(PLAIN_DELETE[method], *args[1:], **kwargs)
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
