# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""What marks an object as created by the collection: ``overridden`` and ``deleted`` touch only these.

- links: the alias (``ip link set NAME alias ...``) starts with :data:`OWNER_MARK`; a veth's
  host end also records where its peer lives (netnsids are not names);
- namespaces: a marker file under ``/run/linuxnet/netns/``;
- bridges inside namespaces: a file under ``/run/linuxnet/bridge-netns/`` per namespace holding
  some, so gather opens one socket per such namespace instead of one per namespace on the host;
- links being created: the kernel ignores IFLA_IFALIAS in the RTM_NEWLINK that creates a link, so
  the alias needs a second request. A note under ``/run/linuxnet/creating/`` holding the alias is
  written before the first and removed by the second: a run killed in between leaves the note,
  and the next run adopts the link (sets the alias) instead of calling it foreign. A namespace is
  marked before it is created, for the same reason.

Writers hold :func:`host_lock` from their gather to their end, so two runs at once take turns
and each plans on what the other left.

Everything under ``/run`` goes with a reboot, like the links and namespaces it speaks for.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

OWNER_MARK = "linuxnet.bridge"
RUN_DIR = "/run/linuxnet"
NETNS_DIR = os.path.join(RUN_DIR, "netns")
BRIDGE_NETNS_DIR = os.path.join(RUN_DIR, "bridge-netns")
CREATING_DIR = os.path.join(RUN_DIR, "creating")
# The host lock is taken on /run itself: a lock file would be a write on runs that change nothing.
LOCK_PATH = "/run"


def link_owned(link: dict) -> bool:
    """A gathered link carries our mark in its alias."""
    return bool(link.get("alias")) and link["alias"].split(" ", 1)[0] == OWNER_MARK


def owner_alias(peer: str, peer_netns: str | None) -> str:
    """The alias of a veth's host end: ownership plus where its peer lives."""
    alias = f"{OWNER_MARK} veth peer={peer}"
    return alias + (f" netns={peer_netns}" if peer_netns else "")


def parse_alias(alias: str | None) -> dict | None:
    """``{"peer", "peer_netns"}`` recorded by :func:`owner_alias`; None for any other alias."""
    if not alias or not alias.startswith(OWNER_MARK + " veth"):
        return None
    fields = dict(part.split("=", 1) for part in alias.split()[2:] if "=" in part)
    return {"peer": fields.get("peer"), "peer_netns": fields.get("netns")}


def _touch(directory: str, name: str) -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "w", encoding="utf-8"):
        pass


def mark_namespace(name: str) -> None:
    _touch(NETNS_DIR, name)


def unmark_namespace(name: str) -> None:
    marker = os.path.join(NETNS_DIR, name)
    if os.path.exists(marker):
        os.unlink(marker)


def namespace_marks() -> list[str]:
    try:
        return os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []


def namespace_owned(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def record_bridge_namespace(netns: str) -> None:
    _touch(BRIDGE_NETNS_DIR, netns)


def bridge_namespaces() -> list[str]:
    """Namespaces in which the collection created a bridge (some may be gone since)."""
    try:
        return os.listdir(BRIDGE_NETNS_DIR)
    except FileNotFoundError:
        return []


def _creating(netns: str | None, name: str) -> str:
    # '%' is in neither an interface nor a namespace name (_validate)
    return os.path.join(CREATING_DIR, name if netns is None else f"{name}%{netns}")


def intend_link(netns: str | None, name: str, alias: str) -> None:
    """Note, before creating link ``name``, the alias it is to get."""
    os.makedirs(CREATING_DIR, exist_ok=True)
    with open(_creating(netns, name), "w", encoding="utf-8") as handle:
        handle.write(alias)


def link_marked(netns: str | None, name: str) -> None:
    """Link ``name`` has its alias now: its creation note goes."""
    try:
        os.unlink(_creating(netns, name))
    except FileNotFoundError:
        pass


def pending_alias(netns: str | None, name: str) -> str | None:
    """The alias a run that was interrupted meant to give link ``name`` (None: no such note)."""
    try:
        with open(_creating(netns, name), encoding="utf-8") as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def creation_notes() -> list[tuple[str | None, str]]:
    """(netns, name) of every creation note."""
    try:
        entries = os.listdir(CREATING_DIR)
    except FileNotFoundError:
        return []
    return [(rest or None, name) for name, _sep, rest in (entry.partition("%") for entry in entries)]


def drop_stale_notes(exists) -> None:
    """Remove the notes of links that ``exists(netns, name)`` says are gone (or were never made).
    Called by writers under :func:`host_lock` only: a note is stale only when no run is creating."""
    for netns, name in creation_notes():
        if not exists(netns, name):
            link_marked(netns, name)


def host_lock(timeout: float = 300.0) -> int:
    """Take the host's lock for link and namespace writers (flock on :data:`LOCK_PATH`); returns the
    fd that holds it (close it to release; a killed holder releases it with its process)."""
    fd = os.open(LOCK_PATH, os.O_RDONLY | os.O_CLOEXEC)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                os.close(fd)
                raise OSError(exc.errno, f"the lock on {LOCK_PATH} is held by another run for more than {timeout:.0f} s") from None
        time.sleep(0.05)
