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
  some, so gather opens one socket per such namespace instead of one per namespace on the host.

Everything under ``/run`` goes with a reboot, like the links and namespaces it speaks for.
"""

from __future__ import annotations

import os

OWNER_MARK = "linuxnet.bridge"
RUN_DIR = "/run/linuxnet"
NETNS_DIR = os.path.join(RUN_DIR, "netns")
BRIDGE_NETNS_DIR = os.path.join(RUN_DIR, "bridge-netns")


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
