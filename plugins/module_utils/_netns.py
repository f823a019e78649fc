# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Named network namespaces plus their ``/etc/netns/<name>/`` resolver files."""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import threading

from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError, Operation, Resource
from ansible_collections.linuxnet.bridge.plugins.module_utils._netlink import (
    NETNS_RUN_DIR,
    Netlink,
    list_namespaces,
    pyroute2_netns,
)

ETC_NETNS = "/etc/netns"
OWNED_DIR = "/run/linuxnet/netns"
HOSTS_HEADER = "# managed by linuxnet.bridge\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
_STANDARD_HOSTS = {("127.0.0.1", ("localhost",)), ("::1", ("localhost", "ip6-localhost", "ip6-loopback"))}

HOSTS_OPTIONS = {
    "type": "list",
    "elements": "dict",
    "options": {
        "ip": {"type": "str", "required": True},
        "names": {"type": "list", "elements": "str", "required": True},
    },
}
ITEM_OPTIONS = {
    "name": {"type": "str", "required": True},
    "resolv_conf": {"type": "str"},
    "hosts": HOSTS_OPTIONS,
    "host_groups": {"type": "list", "elements": "str"},
}
# Entries shared by many namespaces are sent once: N endpoints on one network would otherwise
# make the module arguments grow with N squared.
MODULE_OPTIONS = {
    "host_groups": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {"name": {"type": "str", "required": True}, "hosts": {**HOSTS_OPTIONS, "required": True}},
    },
}


def render_hosts(entries: list[dict]) -> str:
    lines = [HOSTS_HEADER]
    lines += [f"{e['ip']}\t{' '.join(e['names'])}\n" for e in entries]
    return "".join(lines)


def parse_hosts(text: str) -> list[dict]:
    entries = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or (fields[0], tuple(fields[1:])) in _STANDARD_HOSTS:
            continue
        entries.append({"ip": fields[0], "names": fields[1:]})
    return entries


def _host_entries(raw_entries: list[dict], at: str) -> list[dict]:
    entries = []
    for j, entry in enumerate(raw_entries):
        field = f"{at}[{j}]"
        names = entry.get("names") or []
        if isinstance(names, str):
            names = [names]
        if not names:
            raise v.ValidationError(f"{field}.names: at least one name is required")
        entries.append(
            {
                "ip": v.ip_address(entry.get("ip"), f"{field}.ip", version=None),
                "names": [v.hostname(n, f"{field}.names") for n in names],
            }
        )
    return entries


def expand_hosts(own: list[dict], groups: list[list[dict]]) -> list[dict]:
    """``own`` entries, then those of each group whose names are not all listed already."""
    hosts = list(own)
    seen = {n for entry in own for n in entry["names"]}
    for group in groups:
        for entry in group:
            if not seen.issuperset(entry["names"]):
                hosts.append(entry)
                seen.update(entry["names"])
    return hosts


CLONE_NEWNET = 0x40000000


def create_namespace(name: str) -> None:
    """``ip netns add NAME`` inside this process.

    pyroute2.netns.create forks a helper process per namespace (about 20 ms each). Instead this
    thread unshares its network namespace, pyroute2.netns.attach bind-mounts it to
    /run/netns/NAME (making /run/netns a shared mount first, as iproute2 does), and the thread
    returns to its own namespace.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    pyroute2_netns.pushns()
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"unshare: {os.strerror(errno)}")
        try:
            pyroute2_netns.attach(name, f"{os.getpid()}/task/{threading.get_native_id()}")
        except OSError:
            path = os.path.join(NETNS_RUN_DIR, name)
            if os.path.exists(path) and not os.path.ismount(path):
                os.unlink(path)  # the empty mountpoint attach made before its mount failed
            raise
    finally:
        pyroute2_netns.popns()


def _write_command(path: str, text: str) -> str:
    return f"printf '%s' {shlex.quote(text)} > {path}"


class NetnsResource(Resource):
    def __init__(self, module) -> None:
        super().__init__(module)
        self.netlink = Netlink()
        # namespace -> (expanded hosts, own hosts, host group names) of items that use host_groups
        self._folded: dict[str, tuple[list[dict], list[dict], list[str]]] = {}

    def normalize(self, config: list[dict], state: str) -> list[dict]:
        groups: dict[str, list[dict]] = {}
        for i, raw in enumerate(self.params.get("host_groups") or []):
            at = f"host_groups[{i}]"
            name = v.netns_name(raw.get("name"), f"{at}.name")
            if name in groups:
                raise v.ValidationError(f"{at}.name: duplicate host group {name}")
            groups[name] = _host_entries(raw.get("hosts") or [], f"{at}.hosts")
        items = []
        for i, raw in enumerate(config):
            item = {
                "name": v.netns_name(raw.get("name"), v.where(i, raw, "name")),
                "resolv_conf": None,
                "hosts": None,
            }
            if raw.get("resolv_conf") is not None:
                item["resolv_conf"] = v.file_text(raw["resolv_conf"], v.where(i, raw, "resolv_conf"))
            if raw.get("hosts") is not None or raw.get("host_groups") is not None:
                hosts = _host_entries(raw.get("hosts") or [], v.where(i, raw, "hosts"))
                for j, group in enumerate(raw.get("host_groups") or []):
                    if group not in groups:
                        raise v.ValidationError(f"{v.where(i, raw, f'host_groups[{j}]')}: no host group {group!r} in host_groups")
                expanded = expand_hosts(hosts, [groups[g] for g in raw.get("host_groups") or []])
                # The standard localhost lines are always written; listing them again changes nothing.
                item["hosts"] = [h for h in expanded if (h["ip"], tuple(h["names"])) not in _STANDARD_HOSTS]
                if raw.get("host_groups"):
                    own = [h for h in hosts if (h["ip"], tuple(h["names"])) not in _STANDARD_HOSTS]
                    self._folded[item["name"]] = (item["hosts"], own, list(raw["host_groups"]))
            items.append(item)
        v.unique(items, lambda it: it["name"], "namespace name")
        return items

    def gather(self, desired: list[dict], state: str) -> dict:
        current = {}
        for name in list_namespaces():
            item = {"name": name, "resolv_conf": None, "hosts": None}
            item["_owned"] = os.path.exists(os.path.join(OWNED_DIR, name))
            resolv = os.path.join(ETC_NETNS, name, "resolv.conf")
            hosts = os.path.join(ETC_NETNS, name, "hosts")
            if os.path.isfile(resolv):
                with open(resolv, encoding="utf-8") as handle:
                    item["resolv_conf"] = handle.read()
            if os.path.isfile(hosts):
                with open(hosts, encoding="utf-8") as handle:
                    item["hosts"] = parse_hosts(handle.read())
            current[name] = item
        return current

    def public(self, item: dict) -> dict:
        shown = {k: item[k] for k in ("name", "resolv_conf", "hosts") if item.get(k) is not None}
        folded = self._folded.get(item["name"])
        if folded is not None and item.get("hosts") == folded[0]:
            # As configured: own entries plus group names. Expanded, N namespaces sharing a
            # network would make the result (before, after) grow with N squared.
            shown["hosts"], shown["host_groups"] = folded[1], folded[2]
        return shown

    def plan(self, desired: list[dict], current: dict, state: str) -> tuple[list[Operation], dict]:
        ops: list[Operation] = []
        after = {k: dict(val) for k, val in current.items()}
        if state == "deleted":
            names = [d["name"] for d in desired] if desired else [n for n, c in current.items() if c.get("_owned")]
            for name in names:
                if name in current:
                    ops += self._delete_ops(name)
                    after.pop(name)
            return ops, after
        exact = state in ("replaced", "overridden")
        for item in desired:
            name = item["name"]
            have = current.get(name)
            if have is None:
                ops.append(Operation(f"ip netns add {name}", "add", {"name": name}))
                ops.append(Operation(f"ip -n {name} link set lo up", "lo_up", {"name": name}))
                have = {"name": name, "resolv_conf": None, "hosts": None, "_owned": True}
            new = dict(have)
            for key in ("resolv_conf", "hosts"):
                path = os.path.join(ETC_NETNS, name, "hosts" if key == "hosts" else "resolv.conf")
                wanted = item[key]
                if wanted is not None and wanted != have.get(key):
                    text = render_hosts(wanted) if key == "hosts" else wanted
                    ops.append(Operation(_write_command(path, text), "write", {"path": path, "text": text}))
                    new[key] = wanted
                elif wanted is None and exact and have.get(key) is not None:
                    ops.append(Operation(f"rm -f {path}", "unlink", {"path": path}))
                    new[key] = None
            after[name] = new
        if state == "overridden":
            wanted_names = {d["name"] for d in desired}
            for name, have in current.items():
                if have.get("_owned") and name not in wanted_names:
                    ops += self._delete_ops(name)
                    after.pop(name)
        return ops, after

    @staticmethod
    def _delete_ops(name: str) -> list[Operation]:
        return [
            Operation(f"ip netns delete {name}", "delete", {"name": name}),
            Operation(f"rm -rf {ETC_NETNS}/{name}", "rmtree", {"path": os.path.join(ETC_NETNS, name)}),
        ]

    def apply(self, operations: list[Operation]) -> None:
        for op in operations:
            try:
                self._apply_one(op)
            except ApplyError:
                raise
            except OSError as exc:
                raise ApplyError(f"{op.command}: {exc}") from None

    def _apply_one(self, op: Operation) -> None:
        args = op.args
        if op.action == "add":
            create_namespace(args["name"])
            os.makedirs(OWNED_DIR, exist_ok=True)
            with open(os.path.join(OWNED_DIR, args["name"]), "w", encoding="utf-8"):
                pass
        elif op.action == "lo_up":
            # The loopback device is index 1 in every network namespace (LOOPBACK_IFINDEX).
            self.netlink.call(args["name"], op.command, "link", "set", index=1, state="up")
        elif op.action == "write":
            os.makedirs(os.path.dirname(args["path"]), exist_ok=True)
            tmp = args["path"] + ".linuxnet-tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(args["text"])
            os.chmod(tmp, 0o644)
            os.replace(tmp, args["path"])
        elif op.action == "unlink":
            if os.path.exists(args["path"]):
                os.unlink(args["path"])
        elif op.action == "delete":
            sock = self.netlink._sockets.pop(args["name"], None)
            if sock is not None:
                sock.close()
            pyroute2_netns.remove(args["name"])
            marker = os.path.join(OWNED_DIR, args["name"])
            if os.path.exists(marker):
                os.unlink(marker)
        elif op.action == "rmtree":
            shutil.rmtree(args["path"], ignore_errors=True)
        else:  # pragma: no cover
            raise ApplyError(f"unknown operation {op.action}")

    def close(self) -> None:
        self.netlink.close()
