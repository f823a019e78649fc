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
    read_sysctl,
    sysctl_name,
    write_sysctl,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._iptables import RUN_DIR, VARIANTS, Iptables, parse_rule, parse_save
from ansible_collections.linuxnet.bridge.plugins.module_utils._nftables import Nftables

ITEM_OPTIONS = {
    "name": {"type": "str", "required": True},
    "bridge": {"type": "str", "required": True},
    "subnet": {"type": "str", "required": True},
    "icc": {"type": "bool", "default": True},
    "internal": {"type": "bool", "default": False},
    "masquerade": {"type": "bool", "default": True},
    "snat_source": {"type": "str"},
    "gateway_mode": {"type": "str", "default": "nat", "choices": ["nat", "nat-unprotected"]},
}
GATEWAY_MODES = ("nat", "nat-unprotected")
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
PUBLIC_KEYS = ("name", "bridge", "subnet", "icc", "internal", "masquerade", "snat_source", "gateway_mode")
_PREFIX = re.compile(r"[A-Z0-9_-]{1,10}")  # fullmatch: `$` would let "EVIL\n" through
# The prefix itself names our main chain: it must not be a built-in chain or a target.
_RESERVED_PREFIXES = frozenset(
    "INPUT OUTPUT FORWARD PREROUTING POSTROUTING ACCEPT DROP RETURN QUEUE REJECT LOG NFLOG NFQUEUE "
    "DNAT SNAT MASQUERADE REDIRECT NETMAP MARK CONNMARK CT NOTRACK TRACE TCPMSS CHECKSUM AUDIT".split()
)

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"
# kube-proxy's guard for CVE-2020-8558: route_localnet must not expose 127.0.0.0/8 services to
# other hosts; only connections that were DNATed there (published on 127.0.0.1) get through.
LOCALNET_GUARD = Rule.of("localnet_guard")
RETURN = Rule.of("return")
PUBLISHED_REPLY = Rule.of("published_reply")


def select_adapter(module, params: dict, backend: str | None = None) -> Iptables | Nftables:
    """The one place that picks the firewall backend (``firewall_backend``) and address family (IPv4 so far)."""
    backend = backend or params.get("firewall_backend") or "iptables"
    if backend == "nftables":
        # our table: the chain prefix in lower case (ip linuxnet; DOCKER gives ip docker, not docker-bridges)
        return Nftables(module, table=str(params.get("chain_prefix") or "LINUXNET").lower(), family="ipv4")
    return Iptables(module, family="ipv4", variant=params.get("iptables_variant") or "auto")


def other_adapters(module, params: dict) -> list:
    """The backends not chosen: each run removes what is ours there (a backend switch)."""
    chosen = params.get("firewall_backend") or "iptables"
    return [select_adapter(module, params, backend) for backend in BACKENDS if backend != chosen]


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
        self.known: dict[str, dict] = {}
        self.final: dict[str, dict] = {}

    def state_path(self) -> str:
        return os.path.join(RUN_DIR, self.state_dir, f"{self.prefix}.json")

    def load_live(self) -> None:
        """Take the lock, then read the ruleset and the state file (in this order: no races)."""
        if not self.module.check_mode:  # check mode only reads, and writes no lock file
            self.adapter.lock()
        self.live = self.adapter.save(self.tables)
        self.others_live = []
        for other in self.others:  # under the same lock file: both adapters take RUN_DIR/iptables.lock
            try:
                self.others_live.append((other, other.save(self.tables)))
            except ApplyError:
                pass  # that backend's tool is missing (or cannot read): nothing of ours to find there
        try:
            with open(self.state_path(), encoding="utf-8") as handle:
                self.known = json.load(handle)["items"]
        except (OSError, ValueError, KeyError):
            self.known = {}

    def public(self, item: dict) -> dict:
        return {k: item[k] for k in self.public_keys if item.get(k) is not None}

    def parsed(self, text: str | None) -> dict:
        """state=parsed: the items of an iptables-save text, offline (no state file: names from the rules)."""
        self.prefix = chain_prefix(self.params.get("chain_prefix", "LINUXNET"))
        if not text or not any(line.strip() in ("*filter", "*nat") for line in text.splitlines()):
            raise v.ValidationError("running_config: state=parsed needs the output of iptables-save (a *filter or *nat table)")
        self.live = parse_save(text)
        return self.from_live({}, parse_rule)

    def from_live(self, known: dict[str, dict], parse: Callable[[str], Rule | None]) -> dict:
        """The items of the ruleset in ``self.live``; ``known`` (the state file) supplies names."""
        raise NotImplementedError

    def from_state(self, item: dict) -> dict:
        """An item of the state file as normalize() gives it."""
        return dict(item)

    def check_owned(self, items: list[dict]) -> None:
        """Raise ValidationError when the items we would own after the run cannot coexist."""

    def final_owned(self, desired: list[dict], state: str) -> dict[str, dict]:
        """Every item we own after the run: the state file's, minus the deleted, plus ``desired``."""
        owned = {key: self.from_state(item) for key, item in self.known.items()}
        if state == "deleted":
            for key in [self.key(d) for d in desired] if desired else list(owned):
                owned.pop(key, None)
            return owned
        if state == "overridden":
            owned = {}
        owned.update((self.key(item), dict(item)) for item in desired)
        self.check_owned(list(owned.values()))
        return owned

    def live_table(self, table: str) -> Table:
        return self.live.get(table) or self.adapter.empty(table)

    def switch_ops(self, cleanup: Callable[[object, dict[str, Table]], Model]) -> list[Operation]:
        """Remove what is ours from the backends not chosen: ``cleanup(adapter, live)`` is the model to plan there."""
        return [op for other, live in self.others_live for op in other.plan(cleanup(other, live), live)]

    def apply(self, operations: list[Operation]) -> None:
        # the chosen backend first, then the others' cleanup: traffic keeps flowing during a switch
        adapters = [self.adapter] + self.others
        actions = [getattr(adapter, "action", "restore") for adapter in adapters]
        for adapter, action in zip(adapters, actions):
            adapter.apply([op for op in operations if op.action == action])
        self.apply_other([op for op in operations if op.action not in actions])

    def apply_other(self, operations: list[Operation]) -> None:
        """Operations other than rule changes (sysctls), run after the rules are committed."""

    def persist(self) -> None:
        if self.final == self.known:
            return
        path = self.state_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"items": self.final}, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)

    def close(self) -> None:
        self.adapter.unlock()


def chain_prefix(value: object) -> str:
    if not isinstance(value, str) or not _PREFIX.fullmatch(value):
        raise v.ValidationError(
            f"chain_prefix: {value!r} must be 1-10 characters of A-Z, 0-9, '_' and '-' "
            "(chain names must fit iptables' 28-character limit with '-ISOLATION-STAGE-1')"
        )
    if value in _RESERVED_PREFIXES:
        raise v.ValidationError(f"chain_prefix: {value!r} is a built-in chain or target of iptables; use e.g. LINUXNET")
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


def firewall_model(networks: list[dict], managed: list[dict], prefix: str, live: dict[str, Table], forward_drop: bool,
                   adapter: Iptables) -> Model:
    """The complete ruleset the collection wants for ``networks``; ``managed`` adds what was ours before."""
    c = chains(prefix)
    nets = sorted(networks, key=lambda n: n["name"])
    rules = [network_rules(n, prefix) for n in nets]
    flat = {key: [r for per in rules for r in per[key]] for key in ("forward_top", "forward_bottom", "iso1", "iso2", "postrouting")}
    # internal networks' drops before any jump into stage 2 (as dockerd's order ends up, §1.4.2)
    flat["iso1"].sort(key=lambda r: r.kind == "isolate")
    model = Model({"filter": DesiredTable(), "nat": DesiredTable()}, claimed_rules(networks + managed, prefix), frozenset(c.values()))
    filt, nat = model.tables["filter"], model.tables["nat"]
    jump = Rule.of("local_jump", chain=c["main"])
    if nets:
        filt.kept = {c["main"]: [], c["user"]: [RETURN]}
        filt.owned = {c["iso1"]: flat["iso1"] + [RETURN], c["iso2"]: [PUBLISHED_REPLY] + flat["iso2"] + [RETURN]}
        filt.builtin = {
            "FORWARD": BuiltinRules(top=[Rule.of("jump", chain=c["user"]), Rule.of("jump", chain=c["iso1"])] + flat["forward_top"],
                                    bottom=flat["forward_bottom"]),
            "INPUT": BuiltinRules(top=[LOCALNET_GUARD]),
        }
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


def claimed_rules(networks: list[dict], prefix: str) -> dict[str, set[Rule]]:
    claimed: dict[str, set[Rule]] = {"FORWARD": set(), "POSTROUTING": set(), "INPUT": {LOCALNET_GUARD}}
    for net in networks:
        r = network_rules(net, prefix)
        claimed["FORWARD"].update(r["forward_top"] + r["forward_bottom"])
        claimed["FORWARD"].add(Rule.of("protect", bridge=net["bridge"]))  # ours in either gateway_mode
        claimed["POSTROUTING"].update(r["postrouting"])
    return claimed


def parse_networks(live: dict[str, Table], prefix: str, known: dict[str, dict], parse: Callable[[str], Rule | None]) -> dict[str, dict]:
    """Rebuild the network list from the live ruleset; ``known`` (the state file) supplies names."""
    c = chains(prefix)

    def rules(table: str, chain: str) -> list[Rule]:
        return [r for r in map(parse, (live.get(table) or Table()).chain_rules(chain)) if r is not None]

    by_bridge = {n["bridge"]: n for n in known.values()}
    internal = {r.get("bridge"): r.get("subnet") for r in rules("filter", c["iso1"]) if r.kind == "internal_in"}
    bridges = [r.get("bridge") for r in rules("filter", c["iso2"]) if r.kind == "isolated"]
    forward = rules("filter", "FORWARD")
    no_icc = {r.get("bridge") for r in forward if r.kind == "icc" and r.get("verdict") == "DROP"}
    guarded = {r.get("bridge") for r in forward if r.kind == "protect"}
    nat_rules = [r for r in rules("nat", "POSTROUTING") if r.kind in ("local_nat", "out_nat")]
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


class FirewallResource(TablesResource):
    state_dir = "firewall"
    public_keys = PUBLIC_KEYS

    def __init__(self, module) -> None:
        super().__init__(module)
        self.sysctls: dict[str, str | None] = {}
        self.bridges_present: set[str] = set()

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
                "icc": bool(raw.get("icc", True)),
                "internal": bool(raw.get("internal", False)),
                "masquerade": bool(raw.get("masquerade", True)),
                "snat_source": v.ip_address(raw["snat_source"], at("snat_source")) if raw.get("snat_source") else None,
                "gateway_mode": gateway_mode(raw.get("gateway_mode"), at("gateway_mode")),
            }
            for key in ("icc", "internal", "masquerade"):
                if raw.get(key) is None:
                    item[key] = ITEM_OPTIONS[key]["default"]
            items.append(item)
        v.unique(items, lambda it: it["name"], "network name")
        v.unique(items, lambda it: it["bridge"], "bridge")
        check_overlaps(items)
        return items

    def check_owned(self, items: list[dict]) -> None:
        check_overlaps(sorted(items, key=lambda n: n["name"]), where="(with networks managed earlier) ")

    def plan(self, desired: list[dict], current: dict, state: str) -> tuple[list[Operation], dict]:
        final = self.final_owned(desired, state)
        self.final = final
        nets = list(final.values())
        forward_off = bool(nets) and self.sysctls.get(IP_FORWARD) not in ("1", None)
        model = firewall_model(nets, list(self.known.values()), self.prefix, self.live, forward_off, self.adapter)
        if nets:
            model.sysctls = {IP_FORWARD: "1", BRIDGE_NF: "1"}
            model.sysctls.update({route_localnet_path(n["bridge"]): "1" for n in nets if n["bridge"] in self.bridges_present})
        managed = list(self.known.values()) + nets
        # another backend: as if every network were deleted there, <P> too (the mappings move with us)
        switch = self.switch_ops(lambda adapter, live: firewall_model(
            [], managed, self.prefix, {t: Table(tab.chains, {**tab.rules, self.prefix: []}) for t, tab in live.items()},
            False, adapter))
        return self.adapter.plan(model, self.live) + switch + self._sysctl_ops(model.sysctls), final

    def _sysctl_ops(self, wanted: dict[str, str]) -> list[Operation]:
        ops = []
        for path, value in wanted.items():
            if self.sysctls.get(path) != value:
                if path == BRIDGE_NF and self.sysctls.get(path) is None:
                    ops.append(Operation("modprobe br_netfilter", "modprobe", {"name": "br_netfilter"}))
                ops.append(Operation(f"sysctl -w {sysctl_name(path)}={value}", "sysctl", {"path": path, "value": value}))
        return ops

    def render(self, desired: list[dict]) -> list[str]:
        return self.adapter.render_model(firewall_model(desired, [], self.prefix, {}, False, self.adapter))

    # -- kernel -------------------------------------------------------------------------------
    def gather(self, desired: list[dict], state: str) -> dict:
        self.load_live()
        paths = [IP_FORWARD, BRIDGE_NF]
        bridges = {n["bridge"] for n in list(self.known.values()) + desired}
        self.bridges_present = {b for b in bridges if os.path.isdir(f"/sys/class/net/{b}") or os.path.isdir(f"/proc/sys/net/ipv4/conf/{b}")}
        paths += [route_localnet_path(b) for b in self.bridges_present]
        self.sysctls = {p: read_sysctl(p) for p in paths}
        # After apply the state file is not written yet: names come from the run's result too.
        return self.from_live({**self.known, **self.final}, self.adapter.parse)

    def from_live(self, known: dict[str, dict], parse: Callable[[str], Rule | None]) -> dict:
        return parse_networks(self.live, self.prefix, known, parse)

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
    nets = [(i, ipaddress.ip_network(it["subnet"]), it) for i, it in enumerate(items)]
    for a in range(len(nets)):
        for b in range(a + 1, len(nets)):
            if nets[a][1].overlaps(nets[b][1]):
                raise v.ValidationError(
                    f"subnet {where}of network {nets[b][2]['name']} ({nets[b][1]}) overlaps "
                    f"network {nets[a][2]['name']} ({nets[a][1]})"
                )


__all__ = ["FirewallResource", "ITEM_OPTIONS", "MODULE_OPTIONS", "ApplyError"]
