# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Docker-style firewall chains for bridge networks (Docker's bridge driver, userland proxy off).

The resources build a backend-neutral :class:`~._fwmodel.Model`; :class:`TablesResource` hands it
to the adapter that :func:`select_adapter` picks, and reads the live ruleset back through it.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import re
from typing import Callable

from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError, Operation, Resource
from ansible_collections.linuxnet.bridge.plugins.module_utils._fwmodel import (
    BuiltinRules,
    DesiredTable,
    Model,
    Rule,
    Table,
    parsable_as,
    read_sysctl,
    sysctl_name,
    write_sysctl,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._iptables import VARIANT_SUFFIX, VARIANTS, Iptables, parse_rule, parse_save
from ansible_collections.linuxnet.bridge.plugins.module_utils._ownership import RUN_DIR
from ansible_collections.linuxnet.bridge.plugins.module_utils._nftables import NFT_FAMILIES, Nftables, empty_table, parse_list, reserved_table, table_text

ITEM_OPTIONS = {
    "name": {"type": "str", "required": True},
    "bridge": {"type": "str", "required": True},
    "subnet": {"type": "str", "required": True},
    "subnet6": {"type": "str"},
    # no "default": an option left out must reach normalize() as None, so that merged and replaced
    # keep the network's current value (DEFAULTS are for a new network, overridden and rendered)
    "icc": {"type": "bool"},
    "internal": {"type": "bool"},
    "masquerade": {"type": "bool"},
    "masquerade6": {"type": "bool"},
    "snat_source": {"type": "str"},
    "gateway_mode": {"type": "str", "choices": ["nat", "nat-unprotected"]},
}
GATEWAY_MODES = tuple(ITEM_OPTIONS["gateway_mode"]["choices"])
#: the values of options left out, for a network not known yet (and with overridden, rendered)
DEFAULTS = {"icc": True, "internal": False, "masquerade": True, "snat_source": None, "gateway_mode": "nat"}
#: options that, left out with merged or replaced, keep the current value (doc fragment linuxnet.bridge.resource)
OMITTABLE = ("icc", "internal", "masquerade", "snat_source", "gateway_mode", "subnet6", "masquerade6")
KEEPING_STATES = ("merged", "replaced")
#: key of a normalized item: the options its config left out (only with KEEPING_STATES; gone after complete())
OMITTED = "_omitted"
BACKENDS = ("iptables", "nftables")
MODULE_OPTIONS = {
    "chain_prefix": {"type": "str", "default": "LINUXNET"},
    "firewall_backend": {"type": "str", "default": "iptables", "choices": list(BACKENDS)},
    "iptables_variant": {
        "type": "str",
        "default": "auto",
        "choices": list(VARIANTS),
        # renamed so that a later firewall_backend (iptables | nftables) is not confused with it
        "aliases": ["backend"],
        "deprecated_aliases": [{"name": "backend", "version": "0.3.0", "collection_name": "linuxnet.bridge"}],
    },
}
PUBLIC_KEYS = ("name", "bridge", "subnet", "subnet6", "icc", "internal", "masquerade", "masquerade6", "snat_source", "gateway_mode")
FAMILIES = ("ipv4", "ipv6")
_SUBNET6 = re.compile(r"[0-9A-Fa-f:.]{2,45}/\d{1,3}")  # fullmatch before ipaddress sees it
# fullmatch: `$` would let "EVIL\n" through. A letter first: iptables refuses a chain named "-X...", and
# nft reads a table name "1abc" (the prefix in lower case) as a number: both only when applying.
_PREFIX = re.compile(r"[A-Z][A-Z0-9_-]{0,9}")
# The prefix itself names our main chain: it must not be a built-in chain or a target.
_RESERVED_PREFIXES = frozenset(
    "INPUT OUTPUT FORWARD PREROUTING POSTROUTING ACCEPT DROP RETURN QUEUE REJECT LOG NFLOG NFQUEUE "
    "DNAT SNAT MASQUERADE REDIRECT NETMAP MARK CONNMARK CT NOTRACK TRACE TCPMSS CHECKSUM AUDIT".split()
)

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"
# only when a dual-stack network exists: IPv4-only hosts keep their IPv6 settings
IP6_FORWARD = "/proc/sys/net/ipv6/conf/all/forwarding"
BRIDGE_NF6 = "/proc/sys/net/bridge/bridge-nf-call-ip6tables"
BRIDGE_NF_PATHS = (BRIDGE_NF, BRIDGE_NF6)  # both come with the br_netfilter module
# kube-proxy's guard for CVE-2020-8558: route_localnet must not expose 127.0.0.0/8 services to
# other hosts; only connections that were DNATed there (published on 127.0.0.1) get through.
LOCALNET_GUARD = Rule.of("localnet_guard")
RETURN = Rule.of("return")
PUBLISHED_REPLY = Rule.of("published_reply")


def select_adapter(module, params: dict, backend: str | None = None, family: str = "ipv4") -> Iptables | Nftables:
    """The one place that picks the firewall backend (``firewall_backend``) and address family.

    nftables: one table per family, ``ip <name>`` and ``ip6 <name>`` (as Docker 29's docker-bridges),
    so the IPv4 table stays what it was before IPv6 existed; one ``nft -f`` still applies both.
    """
    backend = backend or params.get("firewall_backend") or "iptables"
    if backend == "nftables":
        # our table: the chain prefix in lower case (ip linuxnet; DOCKER gives ip docker, not docker-bridges)
        return Nftables(module, table=str(params.get("chain_prefix") or "LINUXNET").lower(), family=family)
    return Iptables(module, family=family, variant=params.get("iptables_variant") or "auto")


def other_adapters(module, params: dict, family: str = "ipv4") -> list:
    """The backends and iptables variants not chosen: each run removes what is ours there (a switch of
    backend or of variant). Both iptables variants, whatever ``iptables_variant`` says: a variant found
    by ``auto`` is skipped at the read, and iptables-legacy is read only where the namespace has a
    legacy table loaded (no process otherwise). Each variant's writes are its own transactions (``tag``)."""
    chosen = params.get("firewall_backend") or "iptables"
    variant = (params.get("iptables_variant") or "auto") if chosen == "iptables" else ""
    others: list[Iptables | Nftables] = [select_adapter(module, params, "nftables", family)] if chosen != "nftables" else []
    for name in VARIANT_SUFFIX:
        if name != variant:  # (the nftables backend's first iptables adapter keeps the plain restore action)
            tag = "" if chosen == "nftables" and name == "iptables-nft" else VARIANT_SUFFIX[name]
            others.append(Iptables(module, family=family, variant=name, leftovers_of=variant, tag=tag))
    return others


#: the package that brings each command (the error names it; the role installs them all)
PACKAGES = {"nft": "nftables", "conntrack": "conntrack (conntrack-tools on RHEL)", "ip": "iproute2 (iproute on RHEL)"}


def needed_commands(params: dict, ipv6: bool) -> tuple[list[str], list[str]]:
    """The commands a run of ``params`` (firewall_backend, iptables_variant) runs on the managed host:
    (required: without one the run fails, optional: without it a warning). ``ipv6``: a network has an
    IPv6 subnet (ip6tables then). With iptables_variant auto the plain names stand for the variant
    that ``iptables --version`` picks: the iptables package brings them all. ``ip`` makes the kernel
    probe's bridge and veth pair (_deployment.kernel_probe; the modules speak netlink themselves)."""
    if (params.get("firewall_backend") or "iptables") == "nftables":
        required = ["nft"]
    else:
        variant = params.get("iptables_variant") or "auto"
        suffix = VARIANT_SUFFIX.get(variant, "")
        required = []
        for command in ("iptables", "ip6tables") if ipv6 else ("iptables",):
            required += ([command] if variant == "auto" else []) + [f"{command}{suffix}-save", f"{command}{suffix}-restore"]
    # conntrack deletes the UDP flows of changed mappings (port_mapping warns without it)
    return required + ["ip"], ["conntrack"]


def missing_message(missing: list[str]) -> str:
    """The error of a run without the required ``missing`` commands."""
    packages = list(dict.fromkeys(PACKAGES.get(name, "iptables") for name in missing))
    listed = ", ".join(packages[:-1]) + " and " + packages[-1] if len(packages) > 1 else packages[0]
    return (f"{', '.join(missing)} not found on the managed host: install {listed} "
            "(the role linuxnet.bridge.bridge_network does when linuxnet_install_packages is true)")


#: the keys every item of a resource's state file has (by state_dir): the resources read them as ``item[key]``
STATE_KEYS = {"firewall": ("name", "bridge", "subnet"), "port_mapping": ("bridge", "container_ip", "container_port", "host_port", "protocol")}


def read_state(path: str, keys: tuple[str, ...]) -> tuple[dict[str, dict], dict[str, object]]:
    """The items and the other records of the state file at ``path``; none when there is no file.

    A file of another shape is an ApplyError naming it, raised before anything changes: read as
    empty, it would make this run forget what it owns (rules nobody removes any more)."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except FileNotFoundError:
        return {}, {}
    except (OSError, ValueError) as exc:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        raise ApplyError(f"the state file {path} cannot be read ({exc}): fix or remove it") from None
    items = state.get("items") if isinstance(state, dict) else None
    problem = "" if isinstance(items, dict) else "'items' is not an object"
    for key, item in (items or {}).items() if not problem else ():
        missing = [k for k in keys if not isinstance(item, dict) or not isinstance(item.get(k), str)]
        if missing:
            problem = f"item {key!r} is not an object with the text {', '.join(missing)}"
            break
    dropped = state.get(FORWARD_DROP_RECORD, []) if isinstance(state, dict) else []
    if not problem and not (isinstance(dropped, list) and all(family in FAMILIES for family in dropped)):
        problem = f"{FORWARD_DROP_RECORD} is not a list of {' and '.join(FAMILIES)}"
    superseded = state.get(SUPERSEDED_RECORD, []) if isinstance(state, dict) else []
    if not problem and not (isinstance(superseded, list)
                            and all(isinstance(item, dict) and all(isinstance(item.get(k), str) for k in keys) for item in superseded)):
        problem = f"{SUPERSEDED_RECORD} is not a list of objects with the text {', '.join(keys)}"
    if problem:
        raise ApplyError(f"the state file {path} is not one this collection wrote ({problem}): fix or remove it "
                         "(without it, the run no longer knows which networks or mappings are its own)")
    return items, {k: val for k, val in state.items() if k != "items"}


class TablesResource(Resource):
    """Base of the firewall resources: lock, live ruleset, ownership state file, one transaction."""

    #: sub-directory of /run/linuxnet holding the state file of this resource
    state_dir = ""
    #: keys of an item as users see it (and as the state file keeps it)
    public_keys: tuple[str, ...] = ()
    #: the tables this resource reads and writes
    tables: tuple[str, ...] = ("filter", "nat")

    def __init__(self, module) -> None:
        super().__init__(module)
        self.prefix = "LINUXNET"
        self.adapter = select_adapter(module, self.params)
        self.others = other_adapters(module, self.params)
        self.others_live: list[tuple] = []  # (adapter, its live tables) of the backends not chosen
        self.live: dict[str, Table] = {}
        # IPv6: the same for ip6tables / our ip6 table, read only when an item of the run or of the
        # state file is IPv6 (``ipv6``): IPv4-only hosts run exactly as before, ip6tables or not
        self.adapter6 = select_adapter(module, self.params, family="ipv6")
        self.others6 = other_adapters(module, self.params, family="ipv6")
        self.others_live6: list[tuple] = []
        self.live6: dict[str, Table] = {}
        self.ipv6 = False
        self.known: dict[str, dict] = {}
        self.final: dict[str, dict] = {}
        # the state file's other records (beyond the items), as read and as plan() leaves them (None: as read)
        self.records: dict[str, object] = {}
        self.final_records: dict[str, object] | None = None
        # the state file's SUPERSEDED_RECORD (items a killed run replaced): in ``known`` under SUPERSEDED_KEY
        # keys, so that their rules are claimed (and removed), never owned
        self.superseded: list[dict] = []
        #: what this run last wrote to the state file (None: nothing yet; it holds what was read)
        self.written: dict[str, object] | None = None
        #: (what the state file held, whether it existed) when the run wrote its intent
        self._before_intent: tuple[dict[str, object], bool] | None = None

    def is_ipv6(self, item: dict) -> bool:
        """Does this item (config or state file) have rules in the IPv6 ruleset?"""
        return False

    def state_path(self) -> str:
        return os.path.join(RUN_DIR, self.state_dir, f"{self.prefix}.json")

    def load_live(self, desired: list[dict] | None = None) -> None:
        """Take the lock, then read the ruleset and the state file (in this order: no races)."""
        if not self.module.check_mode:  # check mode only reads, and writes no lock file
            self.adapter.lock()  # one lock for both families (a second flock of this process would wait forever)
        self.live = self.adapter.save(self.tables)
        self.others_live = self._others_live(self.others)
        self.take_state(*read_state(self.state_path(), STATE_KEYS.get(self.state_dir, ("bridge",))))
        self.ipv6 = any(self.is_ipv6(item) for item in list(desired or []) + list(self.known.values()))
        self.live6, self.others_live6 = {}, []
        if self.ipv6:
            self.live6 = self.adapter6.save(self.tables)
            self.others_live6 = self._others_live(self.others6)

    def take_state(self, items: dict[str, dict], records: dict[str, object]) -> None:
        """The state file's items and records as the run knows them (the superseded items among ``known``)."""
        self.records = dict(records)
        self.superseded = list(self.records.pop(SUPERSEDED_RECORD, None) or [])
        self.known = dict(items)
        self.known.update((SUPERSEDED_KEY.format(index), item) for index, item in enumerate(self.superseded))

    def _others_live(self, others: list) -> list[tuple]:
        found = []
        for other in others:  # under the same lock file: both adapters take RUN_DIR/iptables.lock
            try:
                live = other.save(self.tables)
            except ApplyError:
                continue  # that backend's tool is missing (or cannot read): nothing of ours to find there
            if any(table.chains for table in live.values()):  # else (no nftables table of ours) nothing to plan there
                found.append((other, live))
        # a variant whose FORWARD policy is DROP first: the run gives back the one it set (FORWARD_DROP_RECORD) there
        return sorted(found, key=lambda pair: (pair[1].get("filter") or Table()).chains.get("FORWARD") != "DROP")

    def public(self, item: dict) -> dict:
        return {k: item[k] for k in self.public_keys if item.get(k) is not None}

    def parsed(self, text: str | None) -> dict:
        """state=parsed: the items of an iptables-save text (optionally followed by ip6tables-save's),
        offline (no state file: names from the rules)."""
        self.prefix = chain_prefix(self.params.get("chain_prefix", "LINUXNET"))
        if text and re.search(r"^\s*table\s", text, re.M):
            return self.parsed_nft(text)
        if not text or not any(line.strip() in ("*filter", "*nat") for line in text.splitlines()):
            raise v.ValidationError("running_config: state=parsed needs the output of iptables-save (a *filter or *nat table) "
                                    f"or of nft list ruleset (a table ip {self.prefix.lower()}); nft -j (JSON) is not read")
        text4, text6 = split_save(text)
        self.live, self.live6 = parse_save(text4), parse_save(text6)
        self.ipv6 = bool(self.live6)
        return self.from_live({}, parse_rule)

    def parsed_nft(self, text: str) -> dict:
        """state=parsed of ``nft list ruleset`` or ``nft list table ip <name>`` text: our tables (``ip``
        and ``ip6 <chain prefix in lower case>``) read as the nftables backend reads them live."""
        self.adapter = select_adapter(self.module, dict(self.params, firewall_backend="nftables"))
        self.adapter6 = select_adapter(self.module, dict(self.params, firewall_backend="nftables"), family="ipv6")
        lives = []
        for family in ("ipv4", "ipv6"):
            block = table_text(text, NFT_FAMILIES[family], self.adapter.table)
            live: dict[str, Table] = {table: empty_table(table) for table in self.tables}
            live.update(parse_list(block or "")[0])
            lives.append((block, live))
        if lives[0][0] is None and lives[1][0] is None:
            raise v.ValidationError(f"running_config: the nft text has no table ip {self.adapter.table} (the chain prefix "
                                    f"{self.prefix} in lower case names the table): give nft list ruleset's output")
        (_block, self.live), (block6, self.live6) = lives
        self.ipv6 = block6 is not None
        return self.from_live({}, self.adapter.parse)

    def from_live(self, known: dict[str, dict], parse: Callable[[str], Rule | None]) -> dict:
        """The items of the ruleset in ``self.live``; ``known`` (the state file) supplies names."""
        raise NotImplementedError

    def from_state(self, item: dict) -> dict:
        """An item of the state file as normalize() gives it."""
        return dict(item)

    def check_owned(self, items: list[dict]) -> None:
        """Raise ValidationError when the items we would own after the run cannot coexist."""

    def complete(self, desired: list[dict], current: dict[str, dict], state: str) -> list[dict]:
        """``desired`` with the options its config left out (merged, replaced: normalize() noted them
        in :data:`OMITTED`) taken from the item we know, the state file's or else the live one. A new
        item keeps the defaults normalize() gave it."""
        done = []
        for index, item in enumerate(desired):
            if OMITTED not in item:
                done.append(item)
                continue
            omitted = item[OMITTED]
            item = {k: val for k, val in item.items() if k != OMITTED}
            key = self.key(item)
            base = self.from_state(self.known[key]) if key in self.known else current.get(key)
            done.append(self.fill(index, item, base, omitted, state))
        return done

    def fill(self, index: int, item: dict, base: dict | None, omitted: tuple[str, ...], state: str) -> dict:
        """``item`` with its ``omitted`` options from ``base`` (None: a new item)."""
        return item

    def final_owned(self, desired: list[dict], state: str) -> dict[str, dict]:
        """Every item we own after the run: the state file's, minus the deleted, plus ``desired``."""
        owned = {key: self.from_state(item) for key, item in self.owned_known().items()}
        if state == "deleted":
            for key in [self.key(d) for d in desired] if desired else list(owned):
                if key not in owned:  # (the doc fragment promises it) rules of anyone else stay
                    self.warnings.append(f"{self.describe(key)} was not created by linuxnet.bridge: left alone "
                                         "(state=deleted removes only what the collection created)")
                owned.pop(key, None)
            return owned
        if state == "overridden":
            owned = {}
        owned.update((self.key(item), dict(item)) for item in desired)
        self.check_owned(list(owned.values()))
        return owned

    def live_table(self, table: str, family: str = "ipv4") -> Table:
        live = self.live if family == "ipv4" else self.live6
        return live.get(table) or self.adapter.empty(table)

    def switch_ops(self, cleanup: Callable[[object, dict[str, Table]], Model]) -> list[Operation]:
        """Remove what is ours from the backends not chosen: ``cleanup(adapter, live)`` is the model to plan there."""
        return [op for other, live in self.others_live + self.others_live6 for op in other.plan(cleanup(other, live), live)]

    def apply(self, operations: list[Operation]) -> None:
        # the chosen backend first, then the others' cleanup: traffic keeps flowing during a switch.
        # nftables: both families' lines are one `nft -f` (same action); iptables: one restore per
        # table and family, and if IPv6's fails, IPv4's tables are put back as they were.
        adapters = [self.adapter, self.adapter6] + self.others + self.others6
        actions = list(dict.fromkeys(getattr(adapter, "action", "restore") for adapter in adapters))
        self.intend()
        done = []
        for action in actions:
            adapter = next(a for a in adapters if getattr(a, "action", "restore") == action)
            ops = [op for op in operations if op.action == action]
            try:
                adapter.apply(ops)
            except ApplyError as exc:
                chosen = adapter in (self.adapter, self.adapter6)
                rolled = [name for earlier in done if earlier.family != adapter.family and hasattr(earlier, "rollback")
                          for name in earlier.rollback()] if chosen else []
                note = f" ({', '.join(rolled)} restored to its previous content)" if rolled else ""
                unchanged = exc.unchanged and chosen and all(e.family != adapter.family and hasattr(e, "rollback") for e in done)
                if unchanged:
                    self.withdraw()  # all or nothing: no rule of the run is left, nor its intent
                raise ApplyError(f"{exc}{note}", unchanged=unchanged) from None
            if ops:
                done.append(adapter)
        self.apply_other([op for op in operations if op.action not in actions])

    def apply_other(self, operations: list[Operation]) -> None:
        """Operations other than rule changes (sysctls), run after the rules are committed."""

    def owned_known(self) -> dict[str, dict]:
        """The state file's items: ``known`` less the superseded ones (claimed, not owned)."""
        return {key: item for key, item in self.known.items() if not key.startswith(SUPERSEDED_PREFIX)}

    def held(self) -> dict[str, object]:
        """What the state file holds: as this run last wrote it, else as it was read."""
        if self.written is not None:
            return self.written
        return {**self.records, "items": self.owned_known(), **({SUPERSEDED_RECORD: self.superseded} if self.superseded else {})}

    def intent(self) -> dict[str, object]:
        """The state file while the run writes rules: the items known before or after the run (an item
        the run changes, as it was, in SUPERSEDED_RECORD) and the records of both. A run killed after a
        restore and before :meth:`persist` leaves every rule of ours it may have written claimed."""
        owned = self.owned_known()
        records = self.records if self.final_records is None else self.final_records
        united: dict[str, object] = {**self.records, **records}
        dropped = set(self.records.get(FORWARD_DROP_RECORD) or []) | set(records.get(FORWARD_DROP_RECORD) or [])
        if dropped:
            united[FORWARD_DROP_RECORD] = sorted(dropped)
        if self.records.get(GUARD_RECORD) or records.get(GUARD_RECORD):
            united[GUARD_RECORD] = True
        older = list(self.superseded)
        for key, item in owned.items():
            if key in self.final and self.final[key] != item and item not in older:
                older.append(item)
        return {**united, "items": {**owned, **self.final}, **({SUPERSEDED_RECORD: older} if older else {})}

    def intend(self) -> None:
        """Before the run's first rule write: write :meth:`intent` (nothing when the file holds it)."""
        if self._before_intent is None:
            self._before_intent = (self.held(), os.path.exists(self.state_path()))
        self.write_state(self.intent())

    def withdraw(self) -> None:
        """Every rule write of the run was undone (a failed restore rolled back, a refused ``nft -f``):
        the state file goes back to what it held before :meth:`intend`."""
        if self._before_intent is None:
            return
        content, existed = self._before_intent
        self._before_intent = None
        if existed:
            self.write_state(content)
            return
        try:
            os.unlink(self.state_path())
        except FileNotFoundError:
            pass
        self.written = None

    def persist(self) -> None:
        self._before_intent = None
        records = self.records if self.final_records is None else self.final_records
        self.write_state({**records, "items": self.final})

    def write_state(self, content: dict[str, object]) -> None:
        """Replace the state file by ``content`` atomically, unless it holds that already (a run that
        changes nothing writes nothing)."""
        if content == self.held():
            return
        path = self.state_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)
        self.written = content

    def close(self) -> None:
        self.adapter.unlock()


def chain_prefix(value: object) -> str:
    if not isinstance(value, str) or not _PREFIX.fullmatch(value):
        raise v.ValidationError(
            f"chain_prefix: {value!r} must be 1-10 characters of A-Z, 0-9, '_' and '-', starting with a letter "
            "(chain names must fit iptables' 28-character limit with '-ISOLATION-STAGE-1')"
        )
    if value in _RESERVED_PREFIXES:
        raise v.ValidationError(f"chain_prefix: {value!r} is a built-in chain or target of iptables; use e.g. LINUXNET")
    # whatever the backend: firewall_backend nftables (now, after a switch, or the cleanup of one) names its table so
    problem = reserved_table(value.lower())
    if problem:
        raise v.ValidationError(f"chain_prefix: {value!r} {problem}")
    return value


def chains(prefix: str) -> dict[str, str]:
    return {
        "main": prefix,
        "user": f"{prefix}-USER",
        "iso1": f"{prefix}-ISOLATION-STAGE-1",
        "iso2": f"{prefix}-ISOLATION-STAGE-2",
    }


def route_localnet_path(bridge: str) -> str:
    return f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet"


def protected(net: dict) -> bool:
    """gateway_mode nat (Docker 28's default): nothing unpublished enters the bridge, whatever the FORWARD policy."""
    return not net["internal"] and net.get("gateway_mode", "nat") == "nat"


def network_rules(net: dict, prefix: str) -> dict[str, list[Rule]]:
    """Every rule Docker's bridge driver creates for one network, by place.

    gateway_mode nat-unprotected gives exactly dockerd 20.10-27's rules (userland proxy off); nat adds
    Docker 28/29's per-network DROP after the published ports. Both let DNATed packets from other
    networks reach this network's published ports (Docker 28+, moby#49509).
    """
    br, subnet, c = net["bridge"], net["subnet"], chains(prefix)
    icc = [Rule.of("icc", bridge=br, verdict="ACCEPT" if net["icc"] else "DROP")]
    icc_accept, icc_drop = (icc, []) if net["icc"] else ([], icc)
    if net["internal"]:
        return {
            "forward_top": icc_accept,
            "forward_bottom": icc_drop,
            "iso1": [Rule.of("internal_in", subnet=subnet, bridge=br), Rule.of("internal_out", subnet=subnet, bridge=br)],
            "iso2": [],
            "postrouting": [],
        }
    snat = net.get("snat_source") or None
    postrouting = [Rule.of("local_nat", bridge=br, snat_source=snat)]
    if net["masquerade"]:
        postrouting.append(Rule.of("out_nat", subnet=subnet, bridge=br, snat_source=snat))
    return {
        "forward_top": [
            Rule.of("established", bridge=br),
            Rule.of("to_chain", bridge=br, chain=c["main"]),
        ]
        + ([Rule.of("protect", bridge=br)] if protected(net) else [])
        + [Rule.of("outbound", bridge=br)]
        + icc_accept,
        "forward_bottom": icc_drop,
        "iso1": [Rule.of("isolate", bridge=br, chain=c["iso2"])],
        # <P> accepts a DNATed packet only for a port published here; anything else falls to the DROP
        "iso2": [Rule.of("published_in", bridge=br, chain=c["main"]), Rule.of("isolated", bridge=br)],
        "postrouting": postrouting,
    }


def as_ipv6(net: dict) -> dict:
    """A dual-stack network as the IPv6 ruleset sees it: the same rules with ``subnet6`` and
    ``masquerade6`` (NAT66 unless false: routed IPv6). snat_source is an IPv4 address: IPv6 masquerades."""
    return dict(net, subnet=net["subnet6"], masquerade=net.get("masquerade6", net.get("masquerade", True)) is not False,
                snat_source=None)


def family_networks(networks: list[dict], family: str) -> list[dict]:
    """The networks with rules in ``family``'s ruleset, as it sees them."""
    if family == "ipv4":
        return list(networks)
    return [as_ipv6(net) for net in networks if net.get("subnet6")]


def firewall_model(networks: list[dict], managed: list[dict], prefix: str, live: dict[str, Table], forward_drop: bool,
                   adapter: Iptables, family: str = "ipv4", guard: bool = True) -> Model:
    """The complete ruleset the collection wants for ``networks`` in ``family``; ``managed`` adds what was ours before.

    ``guard`` False: with no network left, the localnet guard in INPUT is not ours to delete."""
    networks, managed = family_networks(networks, family), family_networks(managed, family)
    c = chains(prefix)
    nets = sorted(networks, key=lambda n: n["name"])
    rules = [network_rules(n, prefix) for n in nets]
    flat = {key: [r for per in rules for r in per[key]] for key in ("forward_top", "forward_bottom", "iso1", "iso2", "postrouting")}
    # internal networks' drops before any jump into stage 2 (as dockerd's order ends up, §1.4.2)
    flat["iso1"].sort(key=lambda r: r.kind == "isolate")
    model = Model({"filter": DesiredTable(), "nat": DesiredTable()}, claimed_rules(networks + managed, prefix, family, bool(networks) or guard),
                  frozenset(c.values()), family=family)
    filt, nat = model.tables["filter"], model.tables["nat"]
    jump = Rule.of("local_jump", chain=c["main"])
    if nets:
        filt.kept = {c["main"]: [], c["user"]: [RETURN]}
        filt.owned = {c["iso1"]: flat["iso1"] + [RETURN], c["iso2"]: [PUBLISHED_REPLY] + flat["iso2"] + [RETURN]}
        filt.builtin = {
            "FORWARD": BuiltinRules(top=[Rule.of("jump", chain=c["user"]), Rule.of("jump", chain=c["iso1"])] + flat["forward_top"],
                                    bottom=flat["forward_bottom"]),
        }
        if family == "ipv4":
            filt.builtin["INPUT"] = BuiltinRules(top=[LOCALNET_GUARD])
        if forward_drop:
            filt.policies = {"FORWARD": "DROP"}
        nat.kept = {c["main"]: []}
        nat.builtin = {
            "PREROUTING": BuiltinRules(top=[jump]),
            "OUTPUT": BuiltinRules(top=[jump]),
            "POSTROUTING": BuiltinRules(top=flat["postrouting"]),
        }
        return model
    # No network left: remove our chains, but keep what holds someone else's rules.
    live_filter = live.get("filter") or adapter.empty("filter")
    live_nat = live.get("nat") or adapter.empty("nat")
    filt.remove = [c["iso1"], c["iso2"]]
    if c["user"] in live_filter.chains and live_filter.chain_rules(c["user"]) not in ([], [adapter.render(RETURN)]):
        filt.builtin = {"FORWARD": BuiltinRules(top=[Rule.of("jump", chain=c["user"])])}
    else:
        filt.remove.append(c["user"])
    if not live_filter.chain_rules(c["main"]):
        filt.remove.append(c["main"])
    if live_nat.chain_rules(c["main"]):
        nat.builtin = {"PREROUTING": BuiltinRules(top=[jump]), "OUTPUT": BuiltinRules(top=[jump])}
    else:
        nat.remove = [c["main"]]
    return model


#: the state file's record of the families whose iptables FORWARD policy this collection set to DROP
FORWARD_DROP_RECORD = "forward_drop_set"
#: the state file's record that this chain prefix inserted the localnet guard into iptables' INPUT (it was
#: not there before): only then is it ours to delete. An identical rule of the admin's (kube-proxy's
#: CVE-2020-8558 mitigation) is used while we have networks and left alone when they are gone.
GUARD_RECORD = "localnet_guard_set"
#: the state file's record of the items a run replaced by others of the same key (a network's new subnet, a
#: mapping's new container), as they were: written with the run's intent (TablesResource.intent), so that a
#: run killed between its rule writes and its final state file leaves their old rules claimed too
SUPERSEDED_RECORD = "superseded"
#: their keys in ``known`` (no network name or mapping key has a space or a '~')
SUPERSEDED_PREFIX = "~superseded "
SUPERSEDED_KEY = SUPERSEDED_PREFIX + "{}"


def other_prefixes_with_networks(prefix: str) -> list[str]:
    """The other chain prefixes whose firewall state file lists networks: they still need the guard."""
    directory = os.path.join(RUN_DIR, "firewall")
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    found = []
    for name in names:
        if not name.endswith(".json") or name == f"{prefix}.json":
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                items = json.load(handle).get("items")
        except (OSError, ValueError, AttributeError):
            continue
        if items:
            found.append(name[: -len(".json")])
    return found


def sets_forward_drop(adapter: Iptables | Nftables, model: Model, live: dict[str, Table]) -> set[str]:
    """{adapter's family} when ``model`` turns an iptables FORWARD policy from something else to DROP
    (as dockerd does when it turns forwarding on): ours to give back on a switch. A DROP that was
    there before is someone else's, and an nftables policy goes with our table."""
    want = model.tables["filter"].policies.get("FORWARD")
    current = (live.get("filter") or Table()).chains.get("FORWARD")
    return {adapter.family} if adapter.backend == "iptables" and want == "DROP" and current != "DROP" else set()


def forward_policy(live: dict[str, Table]) -> str | None:
    return (live.get("filter") or Table()).chains.get("FORWARD")


def claimed_rules(networks: list[dict], prefix: str, family: str = "ipv4", guard: bool = True) -> dict[str, set[Rule]]:
    """Our rules in built-in chains. ``guard``: the localnet guard in INPUT too (it is also the
    admin's kube-proxy CVE-2020-8558 rule, word for word: ours only where we put it, see GUARD_RECORD)."""
    claimed: dict[str, set[Rule]] = {"FORWARD": set(), "POSTROUTING": set()}
    if family == "ipv4" and guard:
        claimed["INPUT"] = {LOCALNET_GUARD}
    for net in networks:
        r = network_rules(net, prefix)
        claimed["FORWARD"].update(r["forward_top"] + r["forward_bottom"])
        claimed["FORWARD"].add(Rule.of("protect", bridge=net["bridge"]))  # ours in either gateway_mode
        claimed["POSTROUTING"].update(r["postrouting"])
    return claimed


def parse_networks(live: dict[str, Table], prefix: str, known: dict[str, dict], parse: Callable[[str], Rule | None]) -> dict[str, dict]:
    """Rebuild the network list from the live ruleset; ``known`` (the state file) supplies names."""
    c = chains(prefix)

    def rules(table: str, chain: str, kinds: tuple[str, ...] | None = None) -> list[Rule]:
        specs = (live.get(table) or Table()).chain_rules(chain)
        if kinds is not None:  # (POSTROUTING holds a hairpin rule per published port: not parsed)
            specs = parsable_as(parse, specs, kinds)
        return [r for r in map(parse, specs) if r is not None]

    by_bridge = {n["bridge"]: n for n in known.values()}
    internal = {r.get("bridge"): r.get("subnet") for r in rules("filter", c["iso1"]) if r.kind == "internal_in"}
    bridges = [r.get("bridge") for r in rules("filter", c["iso2"]) if r.kind == "isolated"]
    forward = rules("filter", "FORWARD")
    no_icc = {r.get("bridge") for r in forward if r.kind == "icc" and r.get("verdict") == "DROP"}
    guarded = {r.get("bridge") for r in forward if r.kind == "protect"}
    nat_rules = [r for r in rules("nat", "POSTROUTING", ("local_nat", "out_nat")) if r.kind in ("local_nat", "out_nat")]
    found: dict[str, dict] = {}
    for bridge in bridges + list(internal):
        base = by_bridge.get(bridge, {})
        net = {
            "name": base.get("name", bridge),
            "bridge": bridge,
            "subnet": internal.get(bridge) or base.get("subnet"),
            "icc": bridge not in no_icc,
            "internal": bridge in internal,
            # internal networks have no NAT rule to read it from: report what was configured
            "masquerade": bool(base.get("masquerade", True)) if bridge in internal else False,
            "snat_source": None,
            # internal networks have no gateway to protect: report what was configured
            "gateway_mode": base.get("gateway_mode", "nat") if bridge in internal else
            ("nat" if bridge in guarded else "nat-unprotected"),
        }
        for rule in nat_rules:
            if rule.get("bridge") != bridge:
                continue
            if rule.kind == "out_nat":
                net["subnet"], net["masquerade"] = rule.get("subnet"), True
            if rule.get("snat_source"):
                net["snat_source"] = rule.get("snat_source")
        found[net["name"]] = net
    return found


def merge_ipv6(found: dict[str, dict], found6: dict[str, dict]) -> dict[str, dict]:
    """The networks of the IPv4 ruleset with ``subnet6``/``masquerade6`` from the IPv6 one (by bridge)."""
    by_bridge = {net["bridge"]: net for net in found.values()}
    for net6 in found6.values():
        net = by_bridge.get(net6["bridge"])
        if net is None:  # its IPv4 rules are gone (someone flushed them): the next run puts them back
            continue
        net["subnet6"], net["masquerade6"] = net6["subnet"], net6["masquerade"]
    return found


def split_save(text: str) -> tuple[str, str]:
    """``iptables-save`` output, then optionally ``ip6tables-save``'s: (IPv4 text, IPv6 text).

    The IPv6 part starts at ip6tables-save's header comment, or at a table seen a second time."""
    lines = text.splitlines(keepends=True)
    seen: set[str] = set()
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("# Generated by ip6tables"):
            return "".join(lines[:index]), "".join(lines[index:])
        if stripped.startswith("*"):
            if stripped in seen:
                return "".join(lines[:index]), "".join(lines[index:])
            seen.add(stripped)
    return text, ""


class FirewallResource(TablesResource):
    state_dir = "firewall"
    public_keys = PUBLIC_KEYS

    def __init__(self, module) -> None:
        super().__init__(module)
        self.sysctls: dict[str, str | None] = {}
        self.bridges_present: set[str] = set()
        #: another chain prefix has networks (read under the lock by gather): the guard stays for it
        self.guard_elsewhere = False

    def is_ipv6(self, item: dict) -> bool:
        return bool(item.get("subnet6"))

    # -- pure ---------------------------------------------------------------------------------
    def normalize(self, config: list[dict], state: str) -> list[dict]:
        self.prefix = chain_prefix(self.params.get("chain_prefix", "LINUXNET"))
        items = []
        for i, raw in enumerate(config):
            at = functools.partial(v.where, i, raw)
            item = {
                "name": v.label(raw.get("name"), at("name"), "network name"),
                "bridge": v.interface_name(raw.get("bridge"), at("bridge")),
                "subnet": v.network(raw.get("subnet"), at("subnet")),
                "icc": v.boolean(raw.get("icc"), at("icc"), DEFAULTS["icc"]),
                "internal": v.boolean(raw.get("internal"), at("internal"), DEFAULTS["internal"]),
                "masquerade": v.boolean(raw.get("masquerade"), at("masquerade"), DEFAULTS["masquerade"]),
                # "" (given, empty): no SNAT, MASQUERADE; left out (None): see OMITTED
                "snat_source": v.unicast(raw["snat_source"], at("snat_source")) if raw.get("snat_source") else None,
                "gateway_mode": gateway_mode(raw.get("gateway_mode"), at("gateway_mode")),
            }
            # merged/replaced: what was left out keeps the network's current value (complete() fills it in)
            omitted = tuple(key for key in OMITTABLE if raw.get(key) is None) if state in KEEPING_STATES else ()
            if raw.get("subnet6") not in (None, ""):  # dual-stack (IPv4-only items keep their keys)
                item["subnet6"] = subnet6(raw["subnet6"], at("subnet6"))
                # Docker: one enable_ip_masquerade for both families, NAT66 by default; masquerade6 false: routed IPv6
                item["masquerade6"] = item["masquerade"] if raw.get("masquerade6") is None else v.boolean(raw["masquerade6"], at("masquerade6"), True)
            elif raw.get("masquerade6") is not None:
                if "subnet6" not in omitted:  # else the network's current subnet6 may be there (complete() checks)
                    raise v.ValidationError(f"{at('masquerade6')}: needs subnet6 (the network has no IPv6 to masquerade)")
                item["masquerade6"] = v.boolean(raw["masquerade6"], at("masquerade6"), True)
            if omitted:
                item[OMITTED] = omitted
            items.append(item)
        v.unique(items, lambda it: it["name"], "network name")
        v.unique(items, lambda it: it["bridge"], "bridge")
        check_overlaps(items)
        return items

    def check_owned(self, items: list[dict]) -> None:
        check_overlaps(sorted(items, key=lambda n: n["name"]), where="(with networks managed earlier) ")

    def describe(self, key: str) -> str:
        return f"network {key}"

    def fill(self, index: int, item: dict, base: dict | None, omitted: tuple[str, ...], state: str) -> dict:
        """merged, replaced: an option left out keeps the network's value (an internal network stays internal)."""
        if base:
            for key in DEFAULTS:
                if key in omitted:
                    item[key] = base.get(key, DEFAULTS[key])
            if "subnet6" in omitted and base.get("subnet6"):
                item["subnet6"] = base["subnet6"]
        if not item.get("subnet6"):
            if "masquerade6" not in omitted:
                raise v.ValidationError(f"{v.where(index, item, 'masquerade6')}: needs subnet6 (the network has no IPv6 to masquerade)")
            item.pop("subnet6", None)
            item.pop("masquerade6", None)
        elif "masquerade6" in omitted:
            # the network's own masquerade6 if it had IPv6, else (as Docker) the one masquerade of both families
            kept = base.get("masquerade6") if base and base.get("subnet6") else None
            item["masquerade6"] = item["masquerade"] if kept is None else kept
        return item

    def plan(self, desired: list[dict], current: dict, state: str) -> tuple[list[Operation], dict]:
        desired = self.complete(desired, current, state)
        final = self.final_owned(desired, state)
        self.final = final
        nets = list(final.values())
        forward_off = bool(nets) and self.sysctls.get(IP_FORWARD) not in ("1", None)
        # the iptables guard: ours to delete only if we inserted it and no other prefix needs it (nftables: our own table)
        guard_set = self.records.get(GUARD_RECORD)
        if guard_set is None:  # a state file of before the record: the guard was always claimed then
            guard_set = bool(self.known) and self.adapter.backend == "iptables"
        guard = guard_set and not self.guard_elsewhere
        model = firewall_model(nets, list(self.known.values()), self.prefix, self.live, forward_off, self.adapter,
                               guard=guard or self.adapter.backend != "iptables")
        if nets:
            model.sysctls = {IP_FORWARD: "1", BRIDGE_NF: "1"}
            model.sysctls.update({route_localnet_path(n["bridge"]): "1" for n in nets if n["bridge"] in self.bridges_present})
        managed = list(self.known.values()) + nets
        ops = self.adapter.plan(model, self.live)
        # the iptables FORWARD policies this collection set to DROP (per family): a switch gives them back
        dropped = set(self.records.get(FORWARD_DROP_RECORD) or []) | sets_forward_drop(self.adapter, model, self.live)
        if self.ipv6:
            # dockerd: it turned IPv6 forwarding on, so the ip6tables FORWARD policy becomes DROP
            dual = [n for n in nets if n.get("subnet6")]
            forward_off6 = bool(dual) and self.sysctls.get(IP6_FORWARD) not in ("1", None)
            model6 = firewall_model(nets, list(self.known.values()), self.prefix, self.live6, forward_off6, self.adapter6, "ipv6")
            ops += self.adapter6.plan(model6, self.live6)
            dropped |= sets_forward_drop(self.adapter6, model6, self.live6)
            if dual:
                model.sysctls.update({IP6_FORWARD: "1", BRIDGE_NF6: "1"})
                if self.sysctls.get(IP6_FORWARD) != "1":
                    self._warn_accept_ra()

        def cleanup(adapter, live: dict[str, Table]) -> Model:
            # another backend: as if every network were deleted there, <P> too (the mappings move with us)
            other = firewall_model([], managed, self.prefix, {t: Table(tab.chains, {**tab.rules, self.prefix: []}) for t, tab in live.items()},
                                   False, adapter, adapter.family, guard=guard or adapter.backend != "iptables")
            # another iptables variant gives back the DROP it has, unless the record is the chosen variant's
            if adapter.backend == "iptables" and adapter.family in dropped - own_drop and forward_policy(live) == "DROP":
                dropped.discard(adapter.family)
                other.tables["filter"].policies = {"FORWARD": "ACCEPT"}
            return other

        # the record is the chosen iptables variant's where its FORWARD policy is (or becomes) DROP
        chosen = [(self.adapter, model, self.live)] + ([(self.adapter6, model6, self.live6)] if self.ipv6 else [])
        own_drop = {a.family for a, m, lv in chosen if a.backend == "iptables" and "DROP" in (m.tables["filter"].policies.get("FORWARD"), forward_policy(lv))}

        switch = self.switch_ops(cleanup)
        if self.adapter.backend != "iptables":
            dropped.clear()  # iptables is no backend of ours any more: nothing left to give back
        self.final_records = {k: val for k, val in self.records.items() if k != FORWARD_DROP_RECORD}
        if dropped:
            self.final_records[FORWARD_DROP_RECORD] = sorted(dropped)
        self.final_records.pop(GUARD_RECORD, None)
        guard_after = self.guard_set_after(nets, bool(guard_set), guard)
        if guard_after or (nets and self.adapter.backend == "iptables"):  # (False: the admin's rule, while we use it)
            self.final_records[GUARD_RECORD] = guard_after
        return ops + switch + self._sysctl_ops(model.sysctls), final

    def guard_set_after(self, nets: list[dict], guard_set: bool, guard: bool) -> bool:
        """Will the iptables localnet guard be one this prefix inserted, after the run?"""
        if self.adapter.backend == "iptables":
            if nets:  # inserted now if it is missing; an admin's identical rule stays the admin's
                return guard_set or self.adapter.render(LOCALNET_GUARD) not in self.live_table("filter").chain_rules("INPUT")
            return guard_set and not guard  # deleted now, unless another prefix still needs it
        # a switch to nftables: the cleanup of iptables deletes it (when iptables could be read)
        return guard_set and not (guard and any(other.backend == "iptables" for other, _live in self.others_live))

    def _warn_accept_ra(self) -> None:
        """With forwarding on, the kernel ignores router advertisements where accept_ra is 1 (dockerd warns too)."""
        try:
            names = sorted(os.listdir("/proc/sys/net/ipv6/conf"))
        except OSError:
            return
        learning = [n for n in names if n not in ("all", "default") and read_sysctl(f"/proc/sys/net/ipv6/conf/{n}/accept_ra") == "1"]
        if learning:
            self.warnings.append(
                f"net.ipv6.conf.all.forwarding=1 (a dual-stack network): {', '.join(learning)} will ignore router "
                "advertisements (accept_ra=1); set net.ipv6.conf.<interface>.accept_ra=2 where the host configures IPv6 by SLAAC")

    def _sysctl_ops(self, wanted: dict[str, str]) -> list[Operation]:
        ops = []
        modprobe = False
        for path, value in wanted.items():
            if self.sysctls.get(path) != value:
                if path in BRIDGE_NF_PATHS and self.sysctls.get(path) is None and not modprobe:
                    modprobe = True
                    ops.append(Operation("modprobe br_netfilter", "modprobe", {"name": "br_netfilter"}))
                ops.append(Operation(f"sysctl -w {sysctl_name(path)}={value}", "sysctl", {"path": path, "value": value}))
        return ops

    def render(self, desired: list[dict]) -> list[str]:
        lines = self.adapter.render_model(firewall_model(desired, [], self.prefix, {}, False, self.adapter))
        if any(net.get("subnet6") for net in desired):
            model6 = firewall_model(desired, [], self.prefix, {}, False, self.adapter6, "ipv6")
            lines += render_marker(self.adapter6) + self.adapter6.render_model(model6)
        return lines

    # -- kernel -------------------------------------------------------------------------------
    def gather(self, desired: list[dict], state: str) -> dict:
        self.load_live(desired)
        paths = [IP_FORWARD, BRIDGE_NF] + ([IP6_FORWARD, BRIDGE_NF6] if self.ipv6 else [])
        bridges = {n["bridge"] for n in list(self.known.values()) + desired}
        self.bridges_present = {b for b in bridges if os.path.isdir(f"/sys/class/net/{b}") or os.path.isdir(f"/proc/sys/net/ipv4/conf/{b}")}
        paths += [route_localnet_path(b) for b in self.bridges_present]
        self.sysctls = {p: read_sysctl(p) for p in paths}
        self.guard_elsewhere = bool(other_prefixes_with_networks(self.prefix))
        # After apply the state file is not written yet: names come from the run's result too.
        return self.from_live({**self.known, **self.final}, self.adapter.parse)

    def from_live(self, known: dict[str, dict], parse: Callable[[str], Rule | None]) -> dict:
        found = parse_networks(self.live, self.prefix, known, parse)
        if not self.ipv6:
            return found
        parse6 = functools.partial(parse, family="ipv6") if parse is parse_rule else self.adapter6.parse
        known6 = {key: as_ipv6(net) for key, net in known.items() if net.get("subnet6")}
        return merge_ipv6(found, parse_networks(self.live6, self.prefix, known6, parse6))

    def apply_other(self, operations: list[Operation]) -> None:
        for op in operations:
            if op.action == "modprobe":
                self.module.run_command(["modprobe", op.args["name"]])
            elif op.action == "sysctl":
                write_sysctl(op.args["path"], op.args["value"])


def gateway_mode(value: object, field: str) -> str:
    if value is None:
        return "nat"
    if not isinstance(value, str) or value not in GATEWAY_MODES:
        raise v.ValidationError(f"{field}: {value!r} is not one of {', '.join(GATEWAY_MODES)}")
    return value


def check_overlaps(items: list[dict], where: str = "") -> None:
    for key in ("subnet", "subnet6"):
        nets = [(i, ipaddress.ip_network(it[key]), it) for i, it in enumerate(items) if it.get(key)]
        for a in range(len(nets)):
            for b in range(a + 1, len(nets)):
                if nets[a][1].overlaps(nets[b][1]):
                    raise v.ValidationError(
                        f"{key} {where}of network {nets[b][2]['name']} ({nets[b][1]}) overlaps "
                        f"network {nets[a][2]['name']} ({nets[a][1]})"
                    )


def subnet6(value: object, field: str) -> str:
    """A network's IPv6 subnet: /64../120, not link-local, multicast, loopback or reserved (ULA is fine)."""
    if not isinstance(value, str) or not _SUBNET6.fullmatch(value):
        raise v.ValidationError(f"{field}: {value!r} is not an IPv6 subnet in CIDR form such as fd00:18::/64")
    return v.network6(value, field)


def render_marker(adapter) -> list[str]:
    """Where ``rendered`` output passes to the IPv6 ruleset (iptables: a comment ip6tables-restore skips)."""
    return ["# ip6tables-restore --noflush"] if adapter.backend == "iptables" else []


__all__ = ["FirewallResource", "ITEM_OPTIONS", "MODULE_OPTIONS", "ApplyError"]
