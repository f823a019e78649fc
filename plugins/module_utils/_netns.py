# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Named network namespaces plus their ``/etc/netns/<name>/`` resolver files."""

from __future__ import annotations

import ipaddress
import os
import shlex
import shutil
import stat

from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import HIDDEN, Foreseen, Operation, Vocabulary
from ansible_collections.linuxnet.bridge.plugins.module_utils._links import (
    LINK_OPERATIONS,
    NetlinkResource,
    op_lo_up,
    op_netns_add,
    op_netns_delete,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._netlink import NETNS_RUN_DIR, Netlink, list_namespaces
from ansible_collections.linuxnet.bridge.plugins.module_utils._ownership import namespace_owned, namespace_marks, unmark_namespace

ETC_NETNS = "/etc/netns"
# Docker's standard lines (libnetwork etchosts, written as Docker writes them); ``lo`` keeps ::1 in
# every namespace, also where the endpoint's interfaces have IPv6 off.
_STANDARD_LINES = (
    ("127.0.0.1", "localhost"),
    ("::1", "localhost ip6-localhost ip6-loopback"),
    ("fe00::0", "ip6-localnet"),
    ("ff00::0", "ip6-mcastprefix"),
    ("ff02::1", "ip6-allnodes"),
    ("ff02::2", "ip6-allrouters"),
)
HOSTS_HEADER = "# managed by linuxnet.bridge\n" + "".join(f"{ip}\t{names}\n" for ip, names in _STANDARD_LINES)
# As entries are compared: addresses in their normal form (fe00::0 is fe00::).
_STANDARD_HOSTS = {(str(ipaddress.ip_address(ip)), tuple(names.split())) for ip, names in _STANDARD_LINES}

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
    return "".join([HOSTS_HEADER] + [_hosts_line(e) for e in entries])


def parse_hosts(text: str) -> list[dict]:
    """The entries after our header. A file without it (an older version's header, a hand edit)
    reads back with its localhost lines as entries, so it differs from any plan and is rewritten."""
    entries = []
    for line in text[len(HOSTS_HEADER):].splitlines() if text.startswith(HOSTS_HEADER) else text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
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


def _family(entry: dict) -> int:
    return 6 if ":" in entry["ip"] else 4


def expand_hosts(own: list[dict], groups: list[list[dict]]) -> list[dict]:
    """``own`` entries, then those of each group whose names are not all listed already in the
    entry's address family: a name keeps one IPv4 and one IPv6 line (the first network's)."""
    hosts = list(own)
    seen = {(_family(entry), n) for entry in own for n in entry["names"]}
    for group in groups:
        for entry in group:
            keys = {(_family(entry), n) for n in entry["names"]}
            if not seen.issuperset(keys):
                hosts.append(entry)
                seen.update(keys)
    return hosts


def _hosts_line(entry: dict) -> str:
    return f"{entry['ip']}\t{' '.join(entry['names'])}\n"


def _standard(entry: dict) -> bool:
    return (entry["ip"], tuple(entry["names"])) in _STANDARD_HOSTS


class _Expansion:
    """What :func:`expand_hosts` adds of some groups after no own entry, less the standard lines,
    worked out once for every namespace using those groups (N namespaces on a network of N).

    The own entries of a namespace change that only where an added entry shares a key with them:
    the keys an expansion has seen are always the own keys plus those seen without them, so an
    entry with one key is left out exactly when its key is an own one. Entries with more keys
    that share one with the own entries are decided by :func:`expand_hosts` itself."""

    def __init__(self, groups: list[list[dict]]) -> None:
        self.kept: list[dict] = []
        self.at: dict[tuple[int, str], list[int]] = {}  # key -> positions in kept
        self.multi: set[int] = set()  # positions of entries with more than one key
        for entry in expand_hosts([], groups):
            if _standard(entry):
                continue
            keys = {(_family(entry), n) for n in entry["names"]}
            for key in keys:
                self.at.setdefault(key, []).append(len(self.kept))
            if len(keys) > 1:
                self.multi.add(len(self.kept))
            self.kept.append(entry)
        self.lines = [_hosts_line(entry) for entry in self.kept]

    def hosts(self, own: list[dict], groups: list[list[dict]]) -> tuple[list[dict], str]:
        """``expand_hosts(own, groups)`` less the standard lines, and the hosts file it makes."""
        keys = {(_family(entry), n) for entry in own for n in entry["names"]}
        dropped = sorted({pos for key in keys for pos in self.at.get(key, ())})
        if self.multi.intersection(dropped):
            hosts = [h for h in expand_hosts(own, groups) if not _standard(h)]
            return hosts, render_hosts(hosts)
        mine = [h for h in own if not _standard(h)]
        hosts, lines, start = list(mine), [HOSTS_HEADER] + [_hosts_line(h) for h in mine], 0
        for pos in dropped + [len(self.kept)]:
            hosts += self.kept[start:pos]
            lines += self.lines[start:pos]
            start = pos + 1
        return hosts, "".join(lines)


# The namespace's files, on top of the ip operations.
NETNS_OPERATIONS = Vocabulary(LINK_OPERATIONS)


def op_write(path: str, text: str) -> Operation:
    return Operation(f"printf '%s' {shlex.quote(text)} > {path}", "write", {"path": path, "text": text})


@NETNS_OPERATIONS.does("write")
def _write(nl: Netlink, op: Operation) -> None:
    path = op.args["path"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".linuxnet-tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as handle:  # the text as given: no newline translation
        handle.write(op.args["text"])
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def op_unlink(path: str) -> Operation:
    return Operation(f"rm -f {path}", "unlink", {"path": path})


@NETNS_OPERATIONS.does("unlink")
def _unlink(nl: Netlink, op: Operation) -> None:
    if os.path.exists(op.args["path"]):
        os.unlink(op.args["path"])


def op_rmtree(path: str) -> Operation:
    return Operation(f"rm -rf {path}", "rmtree", {"path": path})


@NETNS_OPERATIONS.does("rmtree")
def _rmtree(nl: Netlink, op: Operation) -> None:
    shutil.rmtree(op.args["path"], ignore_errors=True)


FOREIGN = "a network namespace of that name exists that linuxnet.bridge did not create"
# gathered item key: its files that are not UTF-8 (never what the collection wrote: rewritten when wanted)
_NOT_UTF8 = "_not_utf8"


def read_text(path: str, item: dict, key: str) -> str:
    """A resolver file's text exactly (no newline translation: ``\\r\\n`` is not ``\\n``). Any namespace's
    file is read, foreign ones too, so bad bytes never fail the run: they read as U+FFFD, and ``key``
    is noted in ``item`` so that a wanted file is rewritten even where the text would compare equal."""
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        item.setdefault(_NOT_UTF8, []).append(key)
        return data.decode("utf-8", errors="replace")


def _names_dir() -> os.stat_result | None:
    """lstat of the directory of the namespace names, as :func:`os.path.ismount` finds a name's parent
    (``realpath(/run/netns/NAME/..)``, which is ``realpath(/run/netns)`` for every NAME in it)."""
    try:
        return os.lstat(os.path.realpath(NETNS_RUN_DIR))
    except (OSError, ValueError):
        return None


def _is_mount(name: str, names_dir: os.stat_result | None) -> bool:
    """``os.path.ismount(/run/netns/NAME)`` with the parent's lstat made once for all names
    (:func:`_names_dir`): ismount resolves the parent's real path (about ten system calls) per name."""
    try:
        own = os.lstat(os.path.join(NETNS_RUN_DIR, name))
    except (OSError, ValueError):
        return False
    if stat.S_ISLNK(own.st_mode) or names_dir is None:
        return False
    return own.st_dev != names_dir.st_dev or own.st_ino == names_dir.st_ino


class NetnsResource(NetlinkResource):
    operations = NETNS_OPERATIONS
    #: gather reads the resolver files (False: a teardown that shows no before/after leaves them unread)
    read_files = True

    def __init__(self, module) -> None:
        super().__init__(module)
        # namespace -> (expanded hosts, own hosts, host group names) of items that use host_groups
        self._folded: dict[str, tuple[list[dict], list[dict], list[str]]] = {}
        # namespace -> (its desired hosts, their file text): a file equal to it needs no parse
        self._rendered: dict[str, tuple[list[dict], str]] = {}

    def normalize(self, config: list[dict], state: str) -> list[dict]:
        # what an earlier config of this object made is no guide to this one (a library may plan twice)
        self._folded, self._rendered = {}, {}
        groups: dict[str, list[dict]] = {}
        for i, raw in enumerate(self.params.get("host_groups") or []):
            at = f"host_groups[{i}]"
            name = v.netns_name(raw.get("name"), f"{at}.name")
            if name in groups:
                raise v.ValidationError(f"{at}.name: duplicate host group {name}")
            groups[name] = _host_entries(raw.get("hosts") or [], f"{at}.hosts")
        items = []
        expansions: dict[tuple[str, ...], _Expansion] = {}
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
                names = tuple(raw.get("host_groups") or ())
                if names not in expansions:
                    expansions[names] = _Expansion([groups[g] for g in names])
                # The standard localhost lines are always written; listing them again changes nothing.
                item["hosts"], text = expansions[names].hosts(hosts, [groups[g] for g in names])
                self._rendered[item["name"]] = (item["hosts"], text)
                if raw.get("host_groups"):
                    own = [h for h in hosts if not _standard(h)]
                    self._folded[item["name"]] = (item["hosts"], own, list(raw["host_groups"]))
            items.append(item)
        v.unique(items, lambda it: it["name"], "namespace name")
        return items

    def check_references(self, desired: list[dict], state: str, foreseen: Foreseen | None = None) -> None:
        if state not in ("merged", "replaced", "overridden"):
            return  # deleted leaves a foreign namespace alone (with a warning, see Resource.plan)
        live = set(list_namespaces())
        for index, item in enumerate(desired):
            # Marked before it is made (_links._netns_add): a create killed midway is ours, and adopted.
            if item["name"] in live and not namespace_owned(item["name"]):
                raise v.ValidationError(f"{v.where(index, item, 'name')}: {FOREIGN}")

    def foresee(self, desired: list[dict], state: str, foreseen: Foreseen) -> None:
        if state in ("merged", "replaced", "overridden"):  # each one exists after the step (or it failed)
            foreseen.namespaces.update(item["name"] for item in desired)

    def gather(self, desired: list[dict], state: str) -> dict:
        self.hold_lock(state)
        wanted = {item["name"]: item["hosts"] for item in desired if item.get("hosts") is not None}
        current: dict[str, dict] = {}
        names_dir = _names_dir()
        for name in list_namespaces():
            item = {"name": name, "resolv_conf": None, "hosts": None}
            item["_owned"] = namespace_owned(name)
            if item["_owned"] and not _is_mount(name, names_dir):
                # the mountpoint of a create (or a delete) killed midway, no namespace: never listed,
                # but made again if wanted, else removed with its mark and files (skipped, they would stay)
                item[HIDDEN] = True
            resolv = os.path.join(ETC_NETNS, name, "resolv.conf")
            hosts = os.path.join(ETC_NETNS, name, "hosts")
            if self.read_files and os.path.isfile(resolv):
                item["resolv_conf"] = read_text(resolv, item, "resolv_conf")
            if self.read_files and os.path.isfile(hosts):
                text = read_text(hosts, item, "hosts")
                rendered = self._rendered.get(name)
                if rendered is not None and rendered[0] is wanted.get(name) and rendered[1] == text:
                    item["hosts"] = rendered[0]  # the file we would write: it parses back to these entries
                else:
                    item["hosts"] = parse_hosts(text)
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

    def hosts_text(self, name: str, hosts: list[dict]) -> str:
        """The hosts file of ``hosts`` (rendered by normalize when they are the namespace's desired ones)."""
        rendered = self._rendered.get(name)
        return rendered[1] if rendered is not None and rendered[0] is hosts else render_hosts(hosts)

    def plan_item(self, item: dict, have: dict | None, exact: bool) -> tuple[list[Operation], dict]:
        ops: list[Operation] = []
        name = item["name"]
        if have is None:
            ops += [op_netns_add(name), op_lo_up(name)]
            have = {"name": name, "resolv_conf": None, "hosts": None, "_owned": True}
        elif not have.get("_owned"):  # refused by check_references; one made since by someone else too
            raise v.ValidationError(f"{name}: {FOREIGN}")
        elif have.get(HIDDEN):  # a stale name, no namespace behind it: made again (its files are kept if right)
            ops += [op_netns_add(name), op_lo_up(name)]
        new = dict(have)
        for key in ("resolv_conf", "hosts"):
            path = os.path.join(ETC_NETNS, name, "hosts" if key == "hosts" else "resolv.conf")
            wanted = item[key]
            if wanted is not None and (wanted != have.get(key) or key in have.get(_NOT_UTF8, ())):
                ops.append(op_write(path, self.hosts_text(name, wanted) if key == "hosts" else wanted))
                new[key] = wanted
                new[_NOT_UTF8] = [k for k in new.get(_NOT_UTF8, ()) if k != key]
            elif wanted is None and exact and have.get(key) is not None:
                ops.append(op_unlink(path))
                new[key] = None
        return ops, new

    def persist(self) -> None:
        """Drop marks of namespaces that do not exist (a create killed before it began)."""
        live = set(list_namespaces())
        for name in namespace_marks():
            if name not in live:
                unmark_namespace(name)

    def delete_ops(self, have: dict) -> list[Operation]:
        # The files first: a run killed in between leaves a namespace the next run still owns and
        # removes; the other way round nothing would own them any more and they would stay.
        return [op_rmtree(os.path.join(ETC_NETNS, have["name"])), op_netns_delete(have["name"])]
