# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Kernel adapter for links, addresses, routes and namespaces (netlink).

One socket per namespace per module run, one dump per namespace: the cost of a run grows with
the number of namespaces touched, never with the number of items times the number of links. At
most :data:`MAX_SOCKETS` namespace sockets are open at a time (:class:`Sockets`): a module run
inherits a soft RLIMIT_NOFILE of 1024 from sshd or systemd, and a run may touch thousands of
namespaces.
Reads and writes go through the collection's own rtnetlink client (``_rtnl``), namespaces are
entered, made and named with libc (setns, unshare, mount): the managed host needs no pyroute2.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import socket
import struct
import threading
from typing import Any, Callable, Iterator

from ansible_collections.linuxnet.bridge.plugins.module_utils import _rtnl
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError

NETNS_RUN_DIR = "/run/netns"


def list_namespaces() -> list[str]:
    try:
        return sorted(n for n in os.listdir(NETNS_RUN_DIR) if not n.startswith("."))
    except FileNotFoundError:
        return []


class NamespaceMissing(LookupError):
    pass


CLONE_NEWNET = 0x40000000
_libc: Any = None  # the C library, loaded once per process (a handle, no state of the host)


def _setns(fd: int) -> None:
    _libc_call("setns", fd, CLONE_NEWNET)


@contextlib.contextmanager
def _thread_namespace() -> Iterator[None]:
    """This thread back in its own network namespace at the end, whatever it entered meanwhile
    (setns and unshare change the calling thread only)."""
    saved = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        yield
    finally:
        try:
            _setns(saved)
        finally:
            os.close(saved)


MS_BIND, MS_REC, MS_SHARED, MNT_DETACH = 4096, 16384, 1 << 20, 2


def _libc_call(name: str, *args: Any) -> None:
    """libc ``name(*args)`` (str arguments passed as C strings); OSError on failure."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if getattr(_libc, name)(*(a.encode() if isinstance(a, str) else a for a in args)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{name}: {os.strerror(code)}")


def _attach(name: str) -> None:
    """Bind-mount this thread's network namespace to /run/netns/NAME, as ``ip netns add`` (and
    pyroute2.netns.attach) do: /run/netns is made a shared mount first (bind-mounted onto
    itself when it is no mount yet), so the name is seen in every mount namespace."""
    path = os.path.join(NETNS_RUN_DIR, name)
    os.makedirs(NETNS_RUN_DIR, exist_ok=True)
    try:
        _libc_call("mount", "", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, None)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: not a mount point yet
            raise
        _libc_call("mount", NETNS_RUN_DIR, NETNS_RUN_DIR, "none", MS_BIND | MS_REC, None)
        _libc_call("mount", "", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, None)
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    try:
        _libc_call("mount", f"/proc/self/task/{threading.get_native_id()}/ns/net", path, "none", MS_BIND, None)
    except OSError:
        os.unlink(path)  # the empty mountpoint: absent, made again by the next run
        raise


def create_namespace(name: str) -> _rtnl.Reader:
    """``ip netns add NAME`` inside this process; returns an rtnetlink socket of the new namespace
    (the caller keeps or closes it: the requests that fill the namespace need one).

    Forking a helper per namespace (as ``ip netns add`` and pyroute2.netns.create do) costs about
    20 ms each. Instead this thread unshares its network namespace, brings its lo up, bind-mounts
    it to /run/netns/NAME (:func:`_attach`), and returns to its own namespace. Killed before the
    mount, the new namespace simply goes away.
    """
    path = os.path.join(NETNS_RUN_DIR, name)
    if os.path.exists(path) and not os.path.ismount(path):
        os.unlink(path)  # the mountpoint of an attach that a killed run never finished
    with _thread_namespace():
        _libc_call("unshare", CLONE_NEWNET)
        # lo goes up before the namespace gets its name: a namespace that can be seen is whole
        reader = _rtnl.Reader()
        try:
            reader.set_up(1)  # LOOPBACK_IFINDEX
            _attach(name)
        except BaseException:
            reader.close()
            raise
    return reader


def remove_namespace(name: str) -> None:
    """``ip netns delete NAME``: unmount (lazily, as iproute2) and unlink /run/netns/NAME."""
    path = os.path.join(NETNS_RUN_DIR, name)
    try:
        _libc_call("umount2", path, MNT_DETACH)
    except OSError:  # not mounted (a create killed midway): as iproute2, the name goes all the same
        pass
    os.unlink(path)


def namespaces_in_use(names: set[str]) -> set[str]:
    """Those of the named namespaces (in /run/netns) in which a process lives: deleting their name
    does not destroy them (nor the veths whose peer is in them). A namespace is a (device, inode)
    of nsfs: /run/netns/NAME and /proc/PID/ns/net of a process in it stat the same."""
    wanted = {}
    for name in names:
        try:
            found = os.stat(os.path.join(NETNS_RUN_DIR, name))
        except OSError:
            continue
        wanted[(found.st_dev, found.st_ino)] = name
    used: set[str] = set()
    if not wanted:
        return used
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            found = os.stat(f"/proc/{pid}/ns/net")
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        name = wanted.get((found.st_dev, found.st_ino))
        if name:
            used.add(name)
    return used


def namespace_fd(netns: str) -> int:
    """An open descriptor of named namespace ``netns`` (the caller closes it)."""
    try:
        return os.open(os.path.join(NETNS_RUN_DIR, netns), os.O_RDONLY)
    except FileNotFoundError:
        raise NamespaceMissing(netns) from None


RTM_NEWNSID, RTM_GETNSID = 88, 90
NETNSA_NSID, NETNSA_FD = 1, 3


def namespace_id(reader: _rtnl.Reader, fd: int) -> int:
    """The id (netnsid, as ``ip netns list-id`` shows them) the namespace of ``reader`` gives the
    namespace open at ``fd``: the IFLA_LINK_NETNSID of a link of ``reader``'s namespace whose peer is
    in it; -1 when it has none (then no link has its peer there). OSError: the kernel cannot tell."""
    body = struct.pack("=Bxxx", socket.AF_UNSPEC) + _rtnl.nla(NETNSA_FD, struct.pack("=I", fd))  # rtgenmsg, padded
    for kind, answer in reader.request(RTM_GETNSID, body, dump=False):
        raw = _rtnl.attributes(answer, 4).get(NETNSA_NSID) if kind == RTM_NEWNSID else None
        if raw is not None and len(raw) >= 4:
            return struct.unpack_from("=i", raw)[0]
    raise OSError(errno.EPROTO, "no netnsid in the answer")


def open_in_namespace(netns: str, opener: Callable[[], Any]) -> Any:
    """``opener()`` run inside named namespace ``netns``: a socket it opens stays bound there.

    The thread enters the namespace just long enough to open the socket, so no helper process
    is forked (pyroute2's netns= option forks one per socket). Never creates a namespace.
    """
    fd = namespace_fd(netns)
    try:
        with _thread_namespace():
            _setns(fd)
            return opener()
    finally:
        os.close(fd)


def _enter(netns: str) -> _rtnl.Reader:
    """This thread into named namespace ``netns`` (it stays there: the caller holds
    :func:`_thread_namespace`), and an rtnetlink socket of it."""
    fd = namespace_fd(netns)
    try:
        _setns(fd)
    finally:
        os.close(fd)
    return _rtnl.Reader()


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


# Namespace sockets open at a time: a module inherits a soft RLIMIT_NOFILE of 1024 (sshd,
# systemd), and the namespace fds of a batch of veths (_links.FD_BUDGET) need room beside them.
MAX_SOCKETS = 256


class Sockets:
    """The open sockets per namespace, the least recently used one closed when more than ``limit``
    namespaces have one (the host's, None, is always kept): the descriptors a run holds do not grow
    with the number of namespaces it touches. A closed one is opened again when next needed; its
    namespace's cached dumps stay valid (they are data, not the socket's)."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = MAX_SOCKETS if limit is None else limit
        self._open: dict[str | None, Any] = {}  # in order of use, the most recent last

    def get(self, netns: str | None) -> Any:
        """The open socket of ``netns`` (None: none), now the most recently used."""
        sock = self._open.pop(netns, None)
        if sock is not None:
            self._open[netns] = sock
        return sock

    def peek(self, netns: str | None) -> Any:
        """The open socket of ``netns`` (None: none), its place in the order unchanged."""
        return self._open.get(netns)

    def put(self, netns: str | None, sock: Any) -> None:
        """Keep ``sock`` for ``netns`` (closing one it replaces), then close the least recently used
        namespace sockets beyond ``limit``."""
        old = self._open.pop(netns, None)
        if old is not None and old is not sock:
            old.close()
        self._open[netns] = sock
        while len(self._open) > self.limit:
            oldest = next((key for key in self._open if key is not None and key != netns), None)
            if oldest is None:
                break
            self._open.pop(oldest).close()

    def close(self, netns: str | None) -> None:
        sock = self._open.pop(netns, None)
        if sock is not None:
            sock.close()

    def close_all(self) -> None:
        for sock in self._open.values():
            sock.close()
        self._open.clear()


class Netlink:
    """Lazily opened rtnetlink sockets per namespace (``_rtnl.Reader``, at most :data:`MAX_SOCKETS`
    open, see :class:`Sockets`) with cached dumps."""

    def __init__(self) -> None:
        self._sockets = Sockets()
        self._links: dict[str | None, dict[str, dict]] = {}
        self._addrs: dict[str | None, dict[int, list[str]]] = {}
        self._routes: dict[str | None, list[dict]] = {}
        # (namespace, peer) -> the host end of a veth pair this run made or read: the peer's index is
        # the host end's IFLA_LINK, read from the host's dump instead of a dump of every namespace
        self._pairs: dict[tuple[str, str], str] = {}
        self._ends: dict[str, tuple[str, str]] = {}  # the same, host end -> (namespace, peer)
        # namespace -> its id in the host's namespace (a live namespace keeps it; forget drops it)
        self._nsids: dict[str, int] = {}

    def close(self) -> None:
        self._sockets.close_all()
        self._pairs.clear()
        self._ends.clear()
        self._nsids.clear()
        self.invalidate()

    def forget(self, netns: str | None) -> None:
        """Close the socket of ``netns`` and drop what is cached about it (before it is deleted)."""
        self._sockets.close(netns)
        self._pairs = {key: end for key, end in self._pairs.items() if key[0] != netns}
        if netns is not None:
            self._nsids.pop(netns, None)
        self.invalidate(netns)

    def adopt(self, netns: str, sock: _rtnl.Reader) -> None:
        """Use ``sock`` (opened inside ``netns``, as :func:`create_namespace` returns it) for ``netns``:
        a namespace the run just made is not entered a second time to open one."""
        self.forget(netns)
        self._sockets.put(netns, sock)

    def invalidate(self, netns: str | None = ...) -> None:  # type: ignore[assignment]
        if netns is ...:
            self._links.clear()
            self._addrs.clear()
            self._routes.clear()
        else:
            self._links.pop(netns, None)
            self._addrs.pop(netns, None)
            self._routes.pop(netns, None)

    def sock(self, netns: str | None = None) -> _rtnl.Reader:
        """Socket for ``netns`` (None: the module's own namespace); never creates a namespace. Use it
        at once: a later call for another namespace may close it (:class:`Sockets`)."""
        sock = self._sockets.get(netns)
        if sock is None:
            sock = _rtnl.Reader() if netns is None else open_in_namespace(netns, _rtnl.Reader)
            self._sockets.put(netns, sock)
        return sock

    def links(self, netns: str | None = None) -> dict[str, dict]:
        if netns not in self._links:
            self._links[netns] = {link["name"]: link for link in self.sock(netns).links()}
        return self._links[netns]

    def link(self, name: str, netns: str | None = None) -> dict | None:
        return self.links(netns).get(name)

    def endpoints(self, wanted: list[tuple[str, int]]) -> dict[tuple[str, int], Any]:
        """Per (namespace, link index) of ``wanted``: the link (None: no such link), its addresses (IPv4,
        then global IPv6) and the namespace's default gateways (IPv4, IPv6; the IPv6 one only read when
        the link has IPv6 on), as ``_rtnl.Reader.endpoints`` gives them; or the exception reading them
        raised (NamespaceMissing: no namespace of that name), for the caller to raise for the item that
        met it. Nothing is cached, and no socket is kept: a gather visits each endpoint namespace once.
        Each namespace is entered once for all its links, whose reads go in one datagram, and the thread
        goes from one namespace straight to the next, back to its own once at the end (not twice per
        namespace)."""
        indexes: dict[str, list[int]] = {}
        for netns, index in wanted:
            indexes.setdefault(netns, []).append(index)
        found: dict[tuple[str, int], Any] = {}
        with _thread_namespace():
            for netns, links in indexes.items():
                kept = self._sockets.peek(netns)
                try:
                    reader = kept or _enter(netns)
                    try:
                        answers: dict[int, Any] = reader.endpoints(links)
                    finally:
                        if reader is not kept:
                            reader.close()
                except Exception as exc:  # (raised by the caller, for the item that would have met it)
                    answers = dict.fromkeys(links, exc)
                found.update(((netns, index), answers[index]) for index in links)
        return found

    def ipv6(self, netns: str | None, index: int) -> dict:
        """IPv6 settings of link ``index`` of ``netns``: ``ipv6`` (on; None: no IPv6 in the kernel,
        or no such link) and ``accept_ra`` (not cached)."""
        link = self.sock(netns).link(index) or {}
        return {"ipv6": link.get("ipv6"), "accept_ra": link.get("accept_ra")}

    def routes(self, netns: str | None = None) -> list[dict]:
        """The main IPv4 and IPv6 tables of ``netns``: ``{"dst": "address/len", "oif": index or None}``
        (cached as the links: the bridges of a run are checked against one dump; a write drops it)."""
        if netns not in self._routes:
            self._routes[netns] = self.sock(netns).routes()
        return self._routes[netns]

    def addresses(self, netns: str | None = None) -> dict[int, list[str]]:
        """Addresses per link index as ``address/len`` in kernel order: IPv4, then IPv6 of global
        scope (link-local ones are the kernel's own)."""
        if netns not in self._addrs:
            self._addrs[netns] = self.sock(netns).addresses()
        return self._addrs[netns]

    def default_gateway(self, netns: str | None = None, family: int = socket.AF_INET) -> str | None:
        return self.sock(netns).default_gateway(family)

    # -- writes ------------------------------------------------------------------------------
    def transact(self, netns: str | None, messages: list[_rtnl.Message]) -> list[int]:
        """Send ``messages`` on the socket of ``netns`` (pipelined, see ``_rtnl.Reader.transact``):
        the errno of each (0: done). What is cached about ``netns`` is dropped."""
        try:
            return self.sock(netns).transact(messages)
        finally:
            self.invalidate(netns)

    def call(self, netns: str | None, command: str, message: _rtnl.Message) -> None:
        """Run one netlink request; turn kernel errors into ApplyError naming the command."""
        try:
            error = self.transact(netns, [message])[0]
        except NamespaceMissing as exc:
            raise ApplyError(f"{command}: network namespace {exc} does not exist") from None
        except OSError as exc:
            raise ApplyError(f"{command}: {exc}") from None
        if error:
            raise ApplyError(f"{command}: {os.strerror(error)} (errno {error})")

    def pair(self, host_end: str, peer: str, peer_netns: str | None) -> None:
        """Veth ``host_end`` (on the host) has its peer ``peer`` in ``peer_netns``: made by this run,
        or read by a gather."""
        old = self._ends.pop(host_end, None)
        if old is not None and self._pairs.get(old) == host_end:
            del self._pairs[old]  # made again with its peer elsewhere: the old peer is no longer it
        if peer_netns is not None:
            self._pairs[(peer_netns, peer)] = host_end
            self._ends[host_end] = (peer_netns, peer)

    def nsid(self, netns: str) -> int | None:
        """The id the host's namespace gives ``netns`` (-1: none); None when that cannot be told (no
        such name, or a kernel that does not answer)."""
        if netns not in self._nsids:
            try:
                fd = namespace_fd(netns)
            except NamespaceMissing:
                return None
            try:
                found = namespace_id(self.sock(None), fd)
            except OSError:
                return None
            finally:
                os.close(fd)
            if found < 0:
                return found  # not kept: a veth made later with its peer there gives it one
            self._nsids[netns] = found
        return self._nsids[netns]

    def _peer_index(self, name: str, netns: str) -> int | None:
        """The index of ``name`` in ``netns`` when it is the peer of a known pair whose host end is
        still a veth with its peer in ``netns`` (host dump: its IFLA_LINK_NETNSID is the id of
        ``netns``); None: not known so. A pair whose peer is elsewhere now (moved by someone else
        since it was made or read) is dropped: its IFLA_LINK is an index in another namespace."""
        host_end = self._pairs.get((netns, name))
        link = self.link(host_end, None) if host_end is not None else None
        if link is None or link["kind"] != "veth" or link["link_netnsid"] is None or not link["link"]:
            return None
        nsid = self.nsid(netns)
        if nsid is not None and link["link_netnsid"] != nsid:
            del self._pairs[(netns, name)]
            self._ends.pop(link["name"], None)
            return None
        return link["link"]

    def index(self, name: str, netns: str | None, command: str) -> int:
        """Index of link ``name`` in ``netns``: for the peer of a known pair (:meth:`pair`) its host
        end's IFLA_LINK, so that the N namespaces a run just filled are not dumped one by one; else
        from the namespace's dump (dumped again when the cached one does not have it: the link may
        have been made since)."""
        if netns is not None and netns not in self._links:
            known = self._peer_index(name, netns)
            if known is not None:
                return known
        link = self.link(name, netns)
        if link is None:
            self.invalidate(netns)
            link = self.link(name, netns)
        if link is None:
            raise ApplyError(f"{command}: interface {name} not found")
        return link["index"]
