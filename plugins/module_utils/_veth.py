# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""veth pairs: the "cable" between a bridge on the host and a namespace (a container's eth0)."""

from __future__ import annotations

import functools
import socket

from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import HIDDEN, Foreseen, Operation
from ansible_collections.linuxnet.bridge.plugins.module_utils._links import (
    NetlinkResource,
    address_ops,
    address_steps,
    docker_mac,
    kernel_after,
    kernel_order,
    op_addr,
    op_default_route,
    op_delete,
    op_hairpin,
    op_ipv6,
    op_master,
    op_set_alias,
    op_set_mac,
    op_set_mtu,
    op_set_state,
    op_veth_add,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._netlink import NamespaceMissing, list_namespaces
from ansible_collections.linuxnet.bridge.plugins.module_utils._ownership import owner_alias, parse_alias, pending_alias

ITEM_OPTIONS = {
    "name": {"type": "str", "required": True},
    "peer": {"type": "str"},
    "peer_netns": {"type": "str"},
    "master": {"type": "str"},
    "addresses": {"type": "list", "elements": "str"},
    "gateway": {"type": "str"},
    "gateway6": {"type": "str"},
    "mtu": {"type": "int"},
    "mac": {"type": "str"},
    "hairpin": {"type": "bool"},
    "ipv6": {"type": "bool"},
}
PUBLIC_KEYS = ("name", "peer", "peer_netns", "master", "addresses", "gateway", "gateway6", "mtu", "mac", "hairpin", "ipv6")
GATEWAYS = (("gateway", 4), ("gateway6", 6))  # the option and its address family


def _gateways_on_link(items: list[dict]) -> None:
    """A gateway must be inside a subnet of the namespace's addresses of its family given here (the
    kernel refuses the route otherwise, midway through the apply). A namespace given no addresses
    of that family is not judged."""
    subnets: dict[tuple, list] = {}
    for item in items:
        for address in item["addresses"] or []:
            net = v.interface(address).network
            subnets.setdefault((item["peer_netns"], net.version), []).append(net)
    for index, item in enumerate(items):
        for key, family in GATEWAYS:
            nets = subnets.get((item["peer_netns"], family))
            if item[key] and nets and not any(v.address(item[key]) in net for net in nets):
                raise v.ValidationError(
                    f"config[{index}] (name={item['name']}).{key}: {item[key]} is in no subnet of the addresses "
                    f"given for namespace {item['peer_netns']} ({', '.join(map(str, nets))})")


def _has_ipv6(item: dict) -> bool:
    return bool(item["gateway6"]) or any(":" in a for a in item["addresses"] or [])


def recorded_peer(link: dict) -> dict | None:
    """Where the peer of host end ``link`` lives, by its alias or, when a run was killed before it
    could set the alias, by that run's creation note; None: not the collection's pair."""
    if link["alias"]:
        return parse_alias(link["alias"])
    return parse_alias(pending_alias(None, link["name"]))


def host_end_of(link: dict, host_links: dict) -> str | None:
    """The host end of the collection's host-only pair whose peer end is ``link`` (a host link),
    None when it is no such peer: that pair is ours by its host end's alias, its peer has none."""
    if link["kind"] != "veth" or link["link_netnsid"] is not None:
        return None
    other = next((o for o in host_links.values() if o["index"] == link["link"]), None)
    if other is None or other["kind"] != "veth" or other["link"] != link["index"]:
        return None
    recorded = recorded_peer(other)
    return other["name"] if recorded == {"peer": link["name"], "peer_netns": None} else None


def wanted_ipv6(item: dict, owned: bool) -> bool | None:
    """IPv6 on the peer end: as given; left out, on with IPv6 addresses or gateway6, else off on
    the collection's pairs (Docker's default for networks without IPv6) and left alone on a foreign pair."""
    if item["ipv6"] is not None:
        return bool(item["ipv6"])
    if _has_ipv6(item):
        return True
    return False if owned else None


class VethResource(NetlinkResource):
    def normalize(self, config: list[dict], state: str) -> list[dict]:
        items = []
        # Texts found valid already, checked once (the validators are pure; the field only names an
        # error): N items share a peer name (eth0), a few bridges and gateways.
        valid_names: set[str] = set()
        gateways: dict[tuple[str, int], str] = {}

        def ifname(value: object, field: str) -> str:
            if value.__class__ is str and value in valid_names:
                return value  # type: ignore[return-value]
            valid_names.add(v.interface_name(value, field))
            return value  # type: ignore[return-value]

        def unicast(value: object, field: str, version: int = 4) -> str:
            if value.__class__ is not str:
                return v.unicast(value, field, version=version)
            key = (value, version)  # type: ignore[assignment]
            if key not in gateways:
                gateways[key] = v.unicast(value, field, version=version)
            return gateways[key]

        for i, raw in enumerate(config):
            at = v.where(i, raw, "").__add__  # at(field) is where(i, raw, field): its label made once per item
            name = ifname(raw.get("name"), at("name"))
            peer_netns = v.netns_name(raw["peer_netns"], at("peer_netns")) if raw.get("peer_netns") else None
            if raw.get("peer") is None and peer_netns is None and state not in ("deleted", "gathered"):
                raise v.ValidationError(f"{at('peer_netns')}: required unless peer names a host interface")
            peer = ifname(raw.get("peer") or "eth0", at("peer"))
            if peer_netns is None and peer == name:
                raise v.ValidationError(f"{at('peer')}: both ends on the host cannot share the name {name}")
            item = {
                "name": name,
                "peer": peer,
                "peer_netns": peer_netns,
                "master": ifname(raw["master"], at("master")) if raw.get("master") else None,
                "addresses": None,
                "gateway": unicast(raw["gateway"], at("gateway")) if raw.get("gateway") else None,
                "gateway6": unicast(raw["gateway6"], at("gateway6"), version=6) if raw.get("gateway6") else None,
                "mtu": v.mtu(raw["mtu"], at("mtu")) if raw.get("mtu") is not None else None,
                "mac": v.mac(raw["mac"], at("mac"), allow_docker=True) if raw.get("mac") else None,
                "hairpin": raw.get("hairpin"),
                "ipv6": raw.get("ipv6"),
            }
            if raw.get("addresses") is not None:
                item["addresses"] = [v.cidr(a, f"{at('addresses')}[{j}]") for j, a in enumerate(raw["addresses"])]
            if item["mac"] == "docker":
                ipv4 = [a for a in item["addresses"] or [] if ":" not in a]
                if not ipv4:
                    raise v.ValidationError(f"{at('mac')}: 'docker' derives the MAC from an IPv4 address, and addresses has none")
                item["mac"] = docker_mac(ipv4[0])
            if item["ipv6"] is False and _has_ipv6(item):
                raise v.ValidationError(f"{at('ipv6')}: false, but the item has IPv6 addresses or a gateway6")
            items.append(item)
        _gateways_on_link(items)
        v.unique(items, lambda it: it["name"], "veth name")
        v.unique([it for it in items if it["peer_netns"]], lambda it: (it["peer_netns"], it["peer"]), "peer in namespace")
        return items

    def plan(self, desired: list[dict], current: dict, state: str) -> tuple[list[Operation], dict]:
        """The states' plan with every deletion first: a pair recreated or removed frees its peer's
        name (eth0 moving to another network, a renamed network) before a new pair takes it."""
        ops, after = super().plan(desired, current, state)
        return sorted(ops, key=lambda op: not (op.action == "request" and op.args["call"] == ("link", "del"))), after

    def check_references(self, desired: list[dict], state: str, foreseen: Foreseen | None = None) -> None:
        if state == "gathered" or not desired:
            return
        host_links = self.netlink.links(None)
        if state == "deleted":  # it would be left alone, with a warning that we did not create it
            for index, item in enumerate(desired):
                self._not_a_peer_end(index, item, host_links)
            return
        known = set(list_namespaces()) | (foreseen.namespaces if foreseen else set())
        new_bridges = foreseen.bridges if foreseen else {}
        for index, item in enumerate(desired):
            at = functools.partial(v.where, index, item)  # config[0] (name=veth0).field
            problems = []
            if item["peer_netns"] and item["peer_netns"] not in known:
                problems.append(f"{at('peer_netns')}: namespace {item['peer_netns']} does not exist")
            master = host_links.get(item["master"]) if item["master"] else None
            if item["master"] and master is None and item["master"] not in new_bridges:
                problems.append(f"{at('master')}: bridge {item['master']} does not exist")
            elif master is not None and master["kind"] != "bridge":  # no earlier task turns a link into a bridge
                raise v.ValidationError(f"{at('master')}: {item['master']} is a {master['kind'] or 'non-bridge'} link, not a bridge")
            self._not_a_peer_end(index, item, host_links)
            existing = host_links.get(item["name"])
            # Wherever its peer is (another namespace, or the host: a hand-made va/vb pair), a pair the
            # collection did not create is never adopted, changed or recreated.
            if existing and existing["kind"] == "veth" and not recorded_peer(existing):
                raise v.ValidationError(f"{at('name')}: a veth of that name exists that linuxnet.bridge did not create")
            if existing and existing["kind"] != "veth":
                raise v.ValidationError(f"{at('name')}: a {existing['kind'] or 'non-veth'} link of that name exists")
            for problem in problems:
                self.missing(problem)

    @staticmethod
    def _not_a_peer_end(index: int, item: dict, host_links: dict) -> None:
        """Naming the peer end of our host-only pair (gathered as a veth of its own) would be refused as
        a veth we did not create: say what it is instead."""
        existing = host_links.get(item["name"])
        owner = host_end_of(existing, host_links) if existing and not recorded_peer(existing) else None
        if owner:
            raise v.ValidationError(f"{v.where(index, item, 'name')}: {item['name']} is the peer end of veth {owner} "
                                    f"that linuxnet.bridge created; name {owner} instead")

    def gather(self, desired: list[dict], state: str) -> dict:
        self.hold_lock(state)
        host = self.netlink.links(None)
        by_index = {link["index"]: link for link in host.values()}
        wanted = {d["name"] for d in desired}
        current = {}
        peers = []  # (item, link, recorded) whose peer end is read, in the order of the host's links
        for link in host.values():
            if link["kind"] != "veth":
                continue
            recorded = recorded_peer(link)
            if recorded is None and link["link_netnsid"] is not None:
                # Someone else's pair (a lab LAN port, Docker's vethXXXX): its peer's namespace has
                # no name we could report, so it is neither reported nor ever touched.
                continue
            item = {
                "name": link["name"],
                "peer": None,
                "peer_netns": None,
                "master": by_index[link["master"]]["name"] if link["master"] in by_index else None,
                "addresses": None,
                "gateway": None,
                "gateway6": None,
                "mtu": link["mtu"],
                "mac": None,
                "hairpin": link["hairpin"] if link["master"] else None,
                "ipv6": None,
                "_owned": recorded is not None,
                "_unmarked": recorded is not None and not link["alias"],
                "_up": link["up"],
            }
            if recorded is None and link["link_netnsid"] is None and link["link"] in by_index:
                recorded = {"peer": by_index[link["link"]]["name"], "peer_netns": None}
            if recorded and (recorded is not None and (link["name"] in wanted or item["_owned"])):
                peers.append((item, link, recorded))
            elif recorded:
                item["peer"], item["peer_netns"] = recorded["peer"], recorded["peer_netns"]
            if not item["_owned"] and host_end_of(link, host):
                # the other end of our host-only pair: listed with it (its item's peer), not as a veth of
                # its own, so that gathered's list is valid config again (naming it is refused)
                item[HIDDEN] = True
            current[link["name"]] = item
        # the peers in namespaces, each namespace entered once (IFLA_LINK is the peer's index in it)
        ends = self.netlink.endpoints([(recorded["peer_netns"], link["link"]) for _item, link, recorded in peers
                                       if recorded["peer_netns"] and link["link"]])
        for item, link, recorded in peers:
            self._gather_peer(item, link, recorded, ends)
        return current

    def _gather_peer(self, item: dict, link: dict, recorded: dict, ends: dict) -> None:
        netns = recorded["peer_netns"]
        try:
            if netns and link["link"]:  # read by gather: netlink.endpoints
                found = ends[(netns, link["link"])]
                if isinstance(found, BaseException):
                    raise found
                peer, addresses, gateway, gateway6 = found
                settings = {"ipv6": peer["ipv6"], "accept_ra": peer["accept_ra"]} if peer else {}
            else:
                peer = self.netlink.link(recorded["peer"], netns)
                addresses = self.netlink.addresses(netns).get(peer["index"], []) if peer else []
                gateway = self.netlink.default_gateway(netns) if netns else None
                settings = self.netlink.ipv6(netns, peer["index"]) if peer else {}
                gateway6 = self.netlink.default_gateway(netns, socket.AF_INET6) if netns and settings["ipv6"] else None
        except NamespaceMissing:
            return
        # The recorded peer counts only if it is really the other end of this pair.
        if not peer or peer["name"] != recorded["peer"] or peer["kind"] != "veth" or peer["link"] != link["index"]:
            return
        item["peer"], item["peer_netns"] = recorded["peer"], netns
        self.netlink.pair(link["name"], recorded["peer"], netns)  # requests on the peer need no dump of netns
        item["addresses"] = addresses
        item["mac"] = peer["mac"]
        item["_peer_up"] = peer["up"]
        item["_peer_mtu"] = peer["mtu"]
        item["gateway"] = gateway
        item["gateway6"] = gateway6
        item["ipv6"] = settings.get("ipv6")
        item["_accept_ra"] = settings.get("accept_ra")

    def public(self, item: dict) -> dict:
        return {k: item[k] for k in PUBLIC_KEYS if item.get(k) is not None}

    def _create_ops(self, item: dict) -> list[Operation]:
        name, peer, netns = item["name"], item["peer"], item["peer_netns"]
        ops = [op_veth_add(name, peer, netns, item["mtu"]), op_set_alias(name, None, owner_alias(peer, netns))]
        # before the link is up: off, no link-local address ever; on, no router advertisement ever taken
        ops.append(op_ipv6(peer, netns, bool(wanted_ipv6(item, True))))
        if item["master"]:
            ops.append(op_master(name, item["master"]))
            if item["hairpin"]:
                ops.append(op_hairpin(name, True))
        ops.append(op_set_state(name, None, True))
        if item["mac"]:
            ops.append(op_set_mac(peer, netns, item["mac"]))
        ops += address_ops(peer, netns, [], item["addresses"], True)
        ops.append(op_set_state(peer, netns, True))
        for key, _family in GATEWAYS:
            if item[key] and netns:
                ops.append(op_default_route(netns, item[key]))
        return ops

    def _expected_new(self, item: dict) -> dict:
        new = dict(item)
        new["addresses"] = kernel_order([], item["addresses"] or [], True)
        new["_owned"] = True
        new["ipv6"] = wanted_ipv6(item, True)
        new["_accept_ra"] = 0 if new["ipv6"] else None
        if not item["master"]:
            new["hairpin"] = None
        return new

    def plan_item(self, item: dict, have: dict | None, exact: bool) -> tuple[list[Operation], dict]:
        ops: list[Operation] = []
        name, peer, netns = item["name"], item["peer"], item["peer_netns"]
        if have is not None and (have["peer"] != peer or have["peer_netns"] != netns):
            why = "recreate: peer or peer_netns changed" if have["peer"] else "recreate: peer end is missing"
            ops.append(op_delete(name, None, why))
            have = None
        if have is None:
            return ops + self._create_ops(item), self._expected_new(item)
        new = {k: val for k, val in have.items() if k != "_unmarked"}
        if have.get("_unmarked"):  # made by a run killed before it could set the alias
            ops.append(op_set_alias(name, None, owner_alias(peer, netns)))
        if item["master"] is not None and item["master"] != have["master"]:
            ops.append(op_master(name, item["master"]))
            new["master"] = item["master"]
            new["hairpin"] = False
        if item["mtu"] is not None and (item["mtu"] != have["mtu"] or item["mtu"] != have.get("_peer_mtu")):
            if item["mtu"] != have["mtu"]:
                ops.append(op_set_mtu(name, None, item["mtu"]))
            if item["mtu"] != have.get("_peer_mtu"):
                ops.append(op_set_mtu(peer, netns, item["mtu"]))
            new["mtu"] = new["_peer_mtu"] = item["mtu"]
        if item["hairpin"] is not None and new["master"] and bool(item["hairpin"]) != bool(new["hairpin"]):
            ops.append(op_hairpin(name, bool(item["hairpin"])))
            new["hairpin"] = bool(item["hairpin"])
        if item["mac"] is not None and item["mac"] != have["mac"]:
            ops.append(op_set_mac(peer, netns, item["mac"]))
            new["mac"] = item["mac"]
        ipv6 = wanted_ipv6(item, have["_owned"])
        if ipv6 is not None and have.get("ipv6") is not None and (
                ipv6 != have["ipv6"] or (ipv6 and have.get("_accept_ra") != 0)):
            ops.append(op_ipv6(peer, netns, ipv6))
            new["ipv6"], new["_accept_ra"] = ipv6, 0 if ipv6 else have.get("_accept_ra")
        steps = address_steps(have["addresses"] or [], item["addresses"], exact)  # (address_ops, kernel_order)
        ops += [op_addr(peer, netns, address, add, why) for address, add, why in steps]
        if item["addresses"] is not None:
            new["addresses"] = kernel_after(have["addresses"] or [], steps)
        # Our pairs are kept up; a foreign pair's link state is its owner's business.
        if have["_owned"] and not have.get("_up", True):
            ops.append(op_set_state(name, None, True))
            new["_up"] = True
        if have["_owned"] and not have.get("_peer_up", True):
            ops.append(op_set_state(peer, netns, True))
            new["_peer_up"] = True
        # The default route belongs to the namespace, which several pairs may share: a pair
        # without gateway leaves it alone, in every state.
        for key, _family in GATEWAYS:
            if netns and item[key] is not None and item[key] != have.get(key):
                ops.append(op_default_route(netns, item[key]))
                new[key] = item[key]
        return ops, new

    def delete_ops(self, have: dict) -> list[Operation]:
        return [op_delete(have["name"], None)]
