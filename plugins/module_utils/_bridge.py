# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Linux bridges (the seed articles' docker0)."""

from __future__ import annotations

import functools
import os
from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import OWNER_MARK, Operation
from ansible_collections.linuxnet.bridge.plugins.module_utils._links import (
    LinkResource,
    address_ops,
    ip,
    op_delete,
    op_set_alias,
    op_set_mac,
    op_set_mtu,
    op_set_state,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._netlink import NamespaceMissing, list_namespaces

ITEM_OPTIONS = {
    "name": {"type": "str", "required": True},
    "addresses": {"type": "list", "elements": "str"},
    "mtu": {"type": "int"},
    "mac": {"type": "str"},
    "stp": {"type": "bool"},
    "link_state": {"type": "str", "choices": ["up", "down"], "default": "up"},
    "netns": {"type": "str"},
}
PUBLIC_KEYS = ("name", "netns", "addresses", "mtu", "mac", "stp", "link_state")
NETNS_RECORD_DIR = "/run/linuxnet/bridge-netns"


def recorded_namespaces() -> list[str]:
    try:
        return [n for n in os.listdir(NETNS_RECORD_DIR) if n in set(list_namespaces())]
    except FileNotFoundError:
        return []


def bridge_key(item: dict) -> str:
    return f"{item['netns']}/{item['name']}" if item.get("netns") else item["name"]


class BridgeResource(LinkResource):
    def execute(self, op: Operation) -> None:
        super().execute(op)
        if op.action == "bridge_add" and op.args.get("netns"):
            os.makedirs(NETNS_RECORD_DIR, exist_ok=True)
            with open(os.path.join(NETNS_RECORD_DIR, op.args["netns"]), "w", encoding="utf-8"):
                pass

    def key(self, item: dict) -> str:
        return bridge_key(item)

    def normalize(self, config: list[dict], state: str) -> list[dict]:
        items = []
        for i, raw in enumerate(config):
            at = functools.partial(v.where, i, raw)
            item = {
                "name": v.interface_name(raw.get("name"), at("name")),
                "netns": v.netns_name(raw["netns"], at("netns")) if raw.get("netns") else None,
                "addresses": None,
                "mtu": v.mtu(raw["mtu"], at("mtu")) if raw.get("mtu") is not None else None,
                "mac": v.mac(raw["mac"], at("mac")) if raw.get("mac") else None,
                "stp": raw.get("stp"),
                "link_state": raw.get("link_state") or "up",
            }
            if raw.get("addresses") is not None:
                item["addresses"] = [v.cidr(a, f"{at('addresses')}[{j}]") for j, a in enumerate(raw["addresses"])]
            items.append(item)
        v.unique(items, bridge_key, "bridge")
        return items

    def check_references(self, desired: list[dict], state: str) -> None:
        if state in ("deleted", "gathered"):
            return
        known = set(list_namespaces())
        for item in desired:
            if item["netns"] and item["netns"] not in known:
                message = f"bridge {item['name']}: network namespace {item['netns']} does not exist"
                if self.module.check_mode:
                    self.warnings.append(message + " (an earlier task may create it)")
                else:
                    raise v.ValidationError(message)
        for item in desired:
            try:
                link = self.netlink.link(item["name"], item["netns"])
            except NamespaceMissing:
                continue
            if link and link["kind"] != "bridge":
                raise v.ValidationError(f"bridge {item['name']}: a {link['kind'] or 'non-bridge'} link of that name exists")

    def gather(self, desired: list[dict], state: str) -> dict:
        current = {}
        # Our bridges inside namespaces are recorded under /run/linuxnet, so finding them costs
        # one socket per such namespace instead of one per namespace on the host.
        spaces = {d["netns"] for d in desired if d["netns"]} | set(recorded_namespaces())
        for netns in [None] + sorted(spaces):
            try:
                links = self.netlink.links(netns)
                addresses = self.netlink.addresses(netns)
            except NamespaceMissing:
                continue
            for link in links.values():
                if link["kind"] != "bridge":
                    continue
                item = {
                    "name": link["name"],
                    "netns": netns,
                    "addresses": addresses.get(link["index"], []),
                    "mtu": link["mtu"],
                    "mac": link["mac"],
                    "stp": link["stp"],
                    "link_state": "up" if link["up"] else "down",
                    "_owned": self.owned(link),
                }
                current[bridge_key(item)] = item
        return current

    def public(self, item: dict) -> dict:
        return {k: item[k] for k in PUBLIC_KEYS if item.get(k) is not None}

    def plan(self, desired: list[dict], current: dict, state: str) -> tuple[list[Operation], dict]:
        ops: list[Operation] = []
        after = {k: dict(val) for k, val in current.items()}
        if state == "deleted":
            keys = [bridge_key(d) for d in desired] if desired else [k for k, c in current.items() if c["_owned"]]
            for key in keys:
                if key in current:
                    ops.append(op_delete(current[key]["name"], current[key]["netns"]))
                    after.pop(key)
            return ops, after
        exact = state in ("replaced", "overridden")
        for item in desired:
            key, name, netns = bridge_key(item), item["name"], item["netns"]
            have = current.get(key)
            if have is None:
                ops.append(Operation(ip(netns, f"link add {name} type bridge"), "bridge_add", {"name": name, "netns": netns}))
                ops.append(op_set_alias(name, netns, OWNER_MARK))
                have = {"name": name, "netns": netns, "addresses": [], "mtu": None, "mac": None, "stp": False,
                        "link_state": "down", "_owned": True}
            new = dict(have)
            if item["mtu"] is not None and item["mtu"] != have["mtu"]:
                ops.append(op_set_mtu(name, netns, item["mtu"]))
                new["mtu"] = item["mtu"]
            if item["mac"] is not None and item["mac"] != have["mac"]:
                ops.append(op_set_mac(name, netns, item["mac"]))
                new["mac"] = item["mac"]
            if item["stp"] is not None and bool(item["stp"]) != bool(have["stp"]):
                ops.append(Operation(ip(netns, f"link set {name} type bridge stp_state {int(item['stp'])}"), "stp",
                                     {"name": name, "netns": netns, "on": bool(item["stp"])}))
                new["stp"] = bool(item["stp"])
            addr_ops = address_ops(name, netns, have["addresses"], item["addresses"], exact)
            ops += addr_ops
            if item["addresses"] is not None:
                new["addresses"] = list(item["addresses"]) if exact else have["addresses"] + [
                    a for a in item["addresses"] if a not in have["addresses"]]
            if item["link_state"] != have["link_state"]:
                ops.append(op_set_state(name, netns, item["link_state"] == "up"))
                new["link_state"] = item["link_state"]
            after[key] = new
        if state == "overridden":
            wanted = {bridge_key(d) for d in desired}
            for key, have in current.items():
                if have["_owned"] and key not in wanted:
                    ops.append(op_delete(have["name"], have["netns"]))
                    after.pop(key)
        return ops, after
