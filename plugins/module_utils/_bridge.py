# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Linux bridges (Docker's docker0 and br-NAME)."""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import Foreseen, Operation
from ansible_collections.linuxnet.bridge.plugins.module_utils._links import (
    NetlinkResource,
    address_ops,
    kernel_order,
    op_bridge_add,
    op_delete,
    op_ipv6,
    op_set_alias,
    op_set_mac,
    op_set_mtu,
    op_set_state,
    op_stp,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._netlink import NamespaceMissing, list_namespaces
from ansible_collections.linuxnet.bridge.plugins.module_utils._ownership import (
    OWNER_MARK,
    bridge_namespaces,
    link_owned,
    pending_alias,
)

ITEM_OPTIONS = {
    "name": {"type": "str", "required": True},
    "addresses": {"type": "list", "elements": "str"},
    "mtu": {"type": "int"},
    "mac": {"type": "str"},
    "stp": {"type": "bool"},
    "link_state": {"type": "str", "choices": ["up", "down"], "default": "up"},
    "netns": {"type": "str"},
    "allow_overlap": {"type": "bool", "default": False},
}
PUBLIC_KEYS = ("name", "netns", "addresses", "mtu", "mac", "stp", "link_state")


IPV6_ROUTER = {"ipv6": True, "accept_ra": 0}  # a bridge with IPv6 addresses: IPv6 on, no autoconfiguration


def _has_ipv6(addresses: list[str] | None) -> bool:
    return any(":" in a for a in addresses or [])


def owned(link: dict, netns: str | None) -> bool:
    """The collection's bridge: its alias, or the creation note of a run killed before it set it."""
    return link_owned(link) or (not link["alias"] and pending_alias(netns, link["name"]) == OWNER_MARK)


def bridge_key(item: dict) -> str:
    return f"{item['netns']}/{item['name']}" if item.get("netns") else item["name"]


class BridgeResource(NetlinkResource):
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
                "allow_overlap": bool(raw.get("allow_overlap")),
            }
            if raw.get("addresses") is not None:
                item["addresses"] = [v.cidr(a, f"{at('addresses')}[{j}]") for j, a in enumerate(raw["addresses"])]
            items.append(item)
        v.unique(items, bridge_key, "bridge")
        return items

    def check_references(self, desired: list[dict], state: str, foreseen: Foreseen | None = None) -> None:
        if state in ("deleted", "gathered"):
            return
        known = set(list_namespaces()) | (foreseen.namespaces if foreseen else set())
        for item in desired:
            if item["netns"] and item["netns"] not in known:
                self.missing(f"bridge {item['name']}: network namespace {item['netns']} does not exist")
        for index, item in enumerate(desired):
            try:
                link = self.netlink.link(item["name"], item["netns"])
            except NamespaceMissing:
                continue
            if link and link["kind"] != "bridge":
                raise v.ValidationError(f"bridge {item['name']}: a {link['kind'] or 'non-bridge'} link of that name exists")
            if link and not owned(link, item["netns"]):
                # Links the collection did not create are never touched: adopting one would replace
                # its addresses and settings, and teardown would leave it with ours.
                raise v.ValidationError(f"{v.where(index, item, 'name')}: a bridge of that name exists that linuxnet.bridge did not create")
        claims: dict[str | None, list | None] = {}  # per namespace, read once for all its bridges
        for index, item in enumerate(desired):
            if item["addresses"] and not item["allow_overlap"]:
                if item["netns"] not in claims:
                    claims[item["netns"]] = self._claims(item["netns"])
                self._check_overlap(index, item, claims[item["netns"]])

    def foresee(self, desired: list[dict], state: str, foreseen: Foreseen) -> None:
        if state not in ("merged", "replaced", "overridden"):
            return
        for item in desired:
            if not item["netns"]:  # (later steps look for bridges in the host's namespace only)
                # replaced, overridden: exactly the addresses given; merged adds to the live ones (not foreseen)
                exact = state != "merged" and item["addresses"] is not None
                foreseen.bridges[item["name"]] = list(item["addresses"]) if exact else None

    def _claims(self, netns: str | None) -> list[tuple[Any, str, str | None]] | None:
        """(network, what it is, its link's name) of the routes and addresses of ``netns`` on links
        the collection did not create (None: no such namespace). Routes and addresses of our links
        are not judged: the networks of one deployment are checked against each other by its plan,
        and a renamed network's old bridge goes in the same run."""
        try:
            links = self.netlink.links(netns)
            addresses = self.netlink.addresses(netns)
            routes = self.netlink.routes(netns)
        except NamespaceMissing:
            return None
        by_index = {link["index"]: link for link in links.values()}
        others = {i: link for i, link in by_index.items() if not link_owned(link)}
        found = [(route["dst"], f"route {route['dst']} dev {by_index[route['oif']]['name'] if route['oif'] in by_index else '?'}",
                  others[route["oif"]]["name"] if route["oif"] is not None else None)
                 for route in routes if not route["dst"].endswith("/0") and (route["oif"] is None or route["oif"] in others)]
        found += [(cidr, f"address {cidr} of {others[i]['name']}", others[i]["name"])
                  for i, cidrs in addresses.items() if i in others for cidr in cidrs]
        return [(ipaddress.ip_interface(dst).network, what, name) for dst, what, name in found]

    def _check_overlap(self, index: int, item: dict, claims: list[tuple[Any, str, str | None]] | None) -> None:
        """A bridge subnet that overlaps a route or an address of the host (the uplink LAN, a VPN)
        would take its traffic away, or lose its own: an error unless ``allow_overlap``. The bridge's
        own routes and addresses (``claims`` of a link of its name) are its own business."""
        if claims is None:
            return
        found = [(network, what) for network, what, name in claims if name != item["name"]]
        for j, address in enumerate(item["addresses"]):
            subnet = ipaddress.ip_interface(address).network
            clash = next((what for network, what in found if network.overlaps(subnet)), None)
            if clash:
                raise v.ValidationError(
                    f"{v.where(index, item, f'addresses[{j}]')}: {address} overlaps the host's {clash}; "
                    "set allow_overlap: true on this bridge (the role: on its network) if that is intended")

    def gather(self, desired: list[dict], state: str) -> dict:
        self.hold_lock(state)
        current = {}
        # Our bridges inside namespaces are recorded under /run/linuxnet, so finding them costs
        # one socket per such namespace instead of one per namespace on the host.
        spaces = {d["netns"] for d in desired if d["netns"]} | (set(bridge_namespaces()) & set(list_namespaces()))
        dual = {bridge_key(d) for d in desired if _has_ipv6(d["addresses"])}
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
                    "_owned": owned(link, netns),
                }
                if item["_owned"] and not link_owned(link):
                    # made by a run killed before it could set the alias: ours, to be marked
                    item["_owned"] = item["_unmarked"] = True
                if bridge_key(item) in dual:  # read only where IPv6 is wanted: one socket each
                    item["_ipv6"] = self.netlink.ipv6(netns, link["index"])
                current[bridge_key(item)] = item
        return current

    def public(self, item: dict) -> dict:
        return {k: item[k] for k in PUBLIC_KEYS if item.get(k) is not None}

    def plan_item(self, item: dict, have: dict | None, exact: bool) -> tuple[list[Operation], dict]:
        ops: list[Operation] = []
        name, netns = item["name"], item["netns"]
        if have is None:
            ops += [op_bridge_add(name, netns), op_set_alias(name, netns, OWNER_MARK)]
            have = {"name": name, "netns": netns, "addresses": [], "mtu": None, "mac": None, "stp": False,
                    "link_state": "down", "_owned": True}
        elif have.get("_unmarked"):
            ops.append(op_set_alias(name, netns, OWNER_MARK))
        new = {k: val for k, val in have.items() if k != "_unmarked"}
        for key, op_set in (("mtu", op_set_mtu), ("mac", op_set_mac)):
            if item[key] is not None and item[key] != have[key]:
                ops.append(op_set(name, netns, item[key]))
                new[key] = item[key]
        if item["stp"] is not None and bool(item["stp"]) != bool(have["stp"]):
            ops.append(op_stp(name, netns, bool(item["stp"])))
            new["stp"] = bool(item["stp"])
        if _has_ipv6(item["addresses"]) and have.get("_ipv6") != IPV6_ROUTER:
            # before its addresses (the host's default may be disable_ipv6=1) and, for a new
            # bridge, before it goes up; we give the addresses, nobody's router advertisements
            ops.append(op_ipv6(name, netns, True))
            new["_ipv6"] = IPV6_ROUTER
        ops += address_ops(name, netns, have["addresses"], item["addresses"], exact)
        if item["addresses"] is not None:
            new["addresses"] = kernel_order(have["addresses"], item["addresses"], exact)
        if item["link_state"] != have["link_state"]:
            ops.append(op_set_state(name, netns, item["link_state"] == "up"))
            new["link_state"] = item["link_state"]
        return ops, new

    def delete_ops(self, have: dict) -> list[Operation]:
        return [op_delete(have["name"], have["netns"])]
