# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Docker-style iptables chains for bridge networks (Docker's bridge driver, userland proxy off).

Rule texts are written exactly as ``iptables-save`` prints them, so that comparing the live
ruleset with the desired one is a string comparison.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re

from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError, Operation
from ansible_collections.linuxnet.bridge.plugins.module_utils._iptables import (
    BuiltinRules,
    DesiredTable,
    Table,
    TablesResource,
    empty_table,
    payload,
    plan_table,
    read_sysctl,
    sysctl_name,
    write_sysctl,
)

ITEM_OPTIONS = {
    "name": {"type": "str", "required": True},
    "bridge": {"type": "str", "required": True},
    "subnet": {"type": "str", "required": True},
    "icc": {"type": "bool", "default": True},
    "internal": {"type": "bool", "default": False},
    "masquerade": {"type": "bool", "default": True},
    "snat_source": {"type": "str"},
}
MODULE_OPTIONS = {
    "chain_prefix": {"type": "str", "default": "LINUXNET"},
    "backend": {"type": "str", "default": "auto", "choices": ["auto", "iptables-nft", "iptables-legacy"]},
}
PUBLIC_KEYS = ("name", "bridge", "subnet", "icc", "internal", "masquerade", "snat_source")
_PREFIX = re.compile(r"^[A-Z0-9_-]{1,10}$")

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
BRIDGE_NF = "/proc/sys/net/bridge/bridge-nf-call-iptables"
# kube-proxy's guard for CVE-2020-8558: route_localnet must not expose 127.0.0.0/8 services to
# other hosts; only connections that were DNATed there (published on 127.0.0.1) get through.
LOCALNET_GUARD = "! -s 127.0.0.0/8 -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"


def chain_prefix(value: object) -> str:
    if not isinstance(value, str) or not _PREFIX.match(value):
        raise v.ValidationError(
            f"chain_prefix: {value!r} must be 1-10 characters of A-Z, 0-9, '_' and '-' "
            "(chain names must fit iptables' 28-character limit with '-ISOLATION-STAGE-1')"
        )
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


def network_rules(net: dict, prefix: str) -> dict[str, list[str]]:
    """Every rule Docker's bridge driver creates for one network, by place."""
    br, subnet, c = net["bridge"], net["subnet"], chains(prefix)
    icc_accept = [f"-i {br} -o {br} -j ACCEPT"] if net["icc"] else []
    icc_drop = [] if net["icc"] else [f"-i {br} -o {br} -j DROP"]
    if net["internal"]:
        return {
            "forward_top": icc_accept,
            "forward_bottom": icc_drop,
            "iso1": [f"! -s {subnet} -o {br} -j DROP", f"! -d {subnet} -i {br} -j DROP"],
            "iso2": [],
            "postrouting": [],
        }
    target = f"SNAT --to-source {net['snat_source']}" if net.get("snat_source") else "MASQUERADE"
    postrouting = [f"-o {br} -m addrtype --src-type LOCAL -j {target}"]
    if net["masquerade"]:
        postrouting.append(f"-s {subnet} ! -o {br} -j {target}")
    return {
        "forward_top": [
            f"-o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            f"-o {br} -j {c['main']}",
            f"-i {br} ! -o {br} -j ACCEPT",
        ]
        + icc_accept,
        "forward_bottom": icc_drop,
        "iso1": [f"-i {br} ! -o {br} -j {c['iso2']}"],
        "iso2": [f"-o {br} -j DROP"],
        "postrouting": postrouting,
    }


def desired_tables(networks: list[dict], prefix: str, live: dict[str, Table], forward_drop: bool) -> dict[str, DesiredTable]:
    """The complete ruleset the collection wants for ``networks`` (sorted by name)."""
    c = chains(prefix)
    nets = sorted(networks, key=lambda n: n["name"])
    rules = [network_rules(n, prefix) for n in nets]
    flat = {key: [r for per in rules for r in per[key]] for key in ("forward_top", "forward_bottom", "iso1", "iso2", "postrouting")}
    filt, nat = DesiredTable(), DesiredTable()
    if nets:
        filt.kept = {c["main"]: [], c["user"]: ["-j RETURN"]}
        filt.owned = {c["iso1"]: flat["iso1"] + ["-j RETURN"], c["iso2"]: flat["iso2"] + ["-j RETURN"]}
        filt.builtin = {
            "FORWARD": BuiltinRules(top=[f"-j {c['user']}", f"-j {c['iso1']}"] + flat["forward_top"], bottom=flat["forward_bottom"]),
            "INPUT": BuiltinRules(top=[LOCALNET_GUARD]),
        }
        if forward_drop:
            filt.policies = {"FORWARD": "DROP"}
        nat.kept = {c["main"]: []}
        jump = f"-m addrtype --dst-type LOCAL -j {c['main']}"
        nat.builtin = {
            "PREROUTING": BuiltinRules(top=[jump]),
            "OUTPUT": BuiltinRules(top=[jump]),
            "POSTROUTING": BuiltinRules(top=flat["postrouting"]),
        }
        return {"filter": filt, "nat": nat}
    # No network left: remove our chains, but keep what holds someone else's rules.
    live_filter = live.get("filter") or empty_table("filter")
    live_nat = live.get("nat") or empty_table("nat")
    filt.remove = [c["iso1"], c["iso2"]]
    if c["user"] in live_filter.chains and live_filter.chain_rules(c["user"]) not in ([], ["-j RETURN"]):
        filt.builtin = {"FORWARD": BuiltinRules(top=[f"-j {c['user']}"])}
    else:
        filt.remove.append(c["user"])
    if not live_filter.chain_rules(c["main"]):
        filt.remove.append(c["main"])
    if live_nat.chain_rules(c["main"]):
        jump = f"-m addrtype --dst-type LOCAL -j {c['main']}"
        nat.builtin = {"PREROUTING": BuiltinRules(top=[jump]), "OUTPUT": BuiltinRules(top=[jump])}
    else:
        nat.remove = [c["main"]]
    return {"filter": filt, "nat": nat}


def ownership(prefix: str, claimed: dict[str, set[str]]):
    """Predicate: is this rule of a shared chain ours? Jumps into our chains, and any rule we render."""
    ours = set(chains(prefix).values())

    def is_ours(chain: str, spec: str) -> bool:
        tokens = spec.split()
        if len(tokens) >= 2 and tokens[-2] == "-j" and tokens[-1] in ours:
            return True
        return spec in claimed.get(chain, set())

    return is_ours


def claimed_rules(networks: list[dict], prefix: str) -> dict[str, set[str]]:
    claimed: dict[str, set[str]] = {"FORWARD": set(), "POSTROUTING": set(), "INPUT": {LOCALNET_GUARD}}
    for net in networks:
        r = network_rules(net, prefix)
        claimed["FORWARD"].update(r["forward_top"] + r["forward_bottom"])
        claimed["POSTROUTING"].update(r["postrouting"])
    return claimed


def parse_networks(live: dict[str, Table], prefix: str, known: dict[str, dict]) -> dict[str, dict]:
    """Rebuild the network list from the live ruleset; ``known`` (the state file) supplies names."""
    c = chains(prefix)
    filt = live.get("filter") or empty_table("filter")
    nat = live.get("nat") or empty_table("nat")
    by_bridge = {n["bridge"]: n for n in known.values()}
    found: dict[str, dict] = {}
    internal: dict[str, str] = {}
    for spec in filt.chain_rules(c["iso1"]):
        m = re.match(r"^! -s (\S+) -o (\S+) -j DROP$", spec)
        if m:
            internal[m.group(2)] = m.group(1)
    bridges = [m.group(1) for m in (re.match(r"^-o (\S+) -j DROP$", s) for s in filt.chain_rules(c["iso2"])) if m]
    for bridge in bridges + list(internal):
        base = by_bridge.get(bridge, {})
        net = {
            "name": base.get("name", bridge),
            "bridge": bridge,
            "subnet": internal.get(bridge) or base.get("subnet"),
            "icc": f"-i {bridge} -o {bridge} -j DROP" not in filt.chain_rules("FORWARD"),
            "internal": bridge in internal,
            # internal networks have no NAT rule to read it from: report what was configured
            "masquerade": bool(base.get("masquerade", True)) if bridge in internal else False,
            "snat_source": None,
        }
        for spec in nat.chain_rules("POSTROUTING"):
            m = re.match(
                rf"^(?:-s (\S+) ! -o {re.escape(bridge)}|-o {re.escape(bridge)} -m addrtype --src-type LOCAL)"
                r" -j (MASQUERADE|SNAT --to-source (\S+))$",
                spec,
            )
            if not m:
                continue
            if m.group(1):
                net["subnet"], net["masquerade"] = m.group(1), True
            if m.group(3):
                net["snat_source"] = m.group(3)
        found[net["name"]] = net
    return found


class FirewallResource(TablesResource):
    state_dir = "firewall"

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
            }
            for key in ("icc", "internal", "masquerade"):
                if raw.get(key) is None:
                    item[key] = ITEM_OPTIONS[key]["default"]
            items.append(item)
        v.unique(items, lambda it: it["name"], "network name")
        v.unique(items, lambda it: it["bridge"], "bridge")
        check_overlaps(items)
        return items

    def public(self, item: dict) -> dict:
        return {k: item[k] for k in PUBLIC_KEYS if item.get(k) is not None}

    def final_networks(self, desired: list[dict], state: str) -> dict[str, dict]:
        owned = {name: dict(net) for name, net in self.known.items()}
        if state == "deleted":
            for name in [d["name"] for d in desired] if desired else list(owned):
                owned.pop(name, None)
            return owned
        if state == "overridden":
            owned = {}
        for item in desired:
            owned[item["name"]] = dict(item)
        check_overlaps(sorted(owned.values(), key=lambda n: n["name"]), where="(with networks managed earlier) ")
        return owned

    def plan(self, desired: list[dict], current: dict, state: str) -> tuple[list[Operation], dict]:
        final = self.final_networks(desired, state)
        self.final = final
        nets = list(final.values())
        ops: list[Operation] = []
        forward_off = bool(nets) and self.sysctls.get(IP_FORWARD) not in ("1", None)
        want = desired_tables(nets, self.prefix, self.live, forward_off)
        is_ours = ownership(self.prefix, claimed_rules(nets + list(self.known.values()), self.prefix))
        ops += self.table_operations(want, is_ours)
        if nets:
            ops += self._sysctl_ops(nets)
        return ops, final

    def _sysctl_ops(self, nets: list[dict]) -> list[Operation]:
        wanted = {IP_FORWARD: "1", BRIDGE_NF: "1"}
        for net in nets:
            if net["bridge"] in self.bridges_present:
                wanted[route_localnet_path(net["bridge"])] = "1"
        ops = []
        for path, value in wanted.items():
            if self.sysctls.get(path) != value:
                if path == BRIDGE_NF and self.sysctls.get(path) is None:
                    ops.append(Operation("modprobe br_netfilter", "modprobe", {"name": "br_netfilter"}))
                ops.append(Operation(f"sysctl -w {sysctl_name(path)}={value}", "sysctl", {"path": path, "value": value}))
        return ops

    def render(self, desired: list[dict]) -> list[str]:
        want = desired_tables(desired, self.prefix, {}, forward_drop=False)
        is_ours = ownership(self.prefix, claimed_rules(desired, self.prefix))
        text = ""
        for table in ("filter", "nat"):
            text += payload(table, plan_table(table, empty_table(table), want[table], is_ours))
        return text.splitlines()

    # -- kernel -------------------------------------------------------------------------------
    def gather(self, desired: list[dict], state: str) -> dict:
        self.load_live()
        paths = [IP_FORWARD, BRIDGE_NF]
        bridges = {n["bridge"] for n in list(self.known.values()) + desired}
        self.bridges_present = {b for b in bridges if os.path.isdir(f"/sys/class/net/{b}") or os.path.isdir(f"/proc/sys/net/ipv4/conf/{b}")}
        paths += [route_localnet_path(b) for b in self.bridges_present]
        self.sysctls = {p: read_sysctl(p) for p in paths}
        # After apply the state file is not written yet: names come from the run's result too.
        return parse_networks(self.live, self.prefix, {**self.known, **self.final})

    def apply_other(self, operations: list[Operation]) -> None:
        for op in operations:
            if op.action == "modprobe":
                self.module.run_command(["modprobe", op.args["name"]])
            elif op.action == "sysctl":
                write_sysctl(op.args["path"], op.args["value"])


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
