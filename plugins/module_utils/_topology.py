# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""From inventory variables (networks, endpoints) to the ``config`` of every module: the plan the
role deploys. Pure: runs on the controller in filter plugins and in ``deployment_info``."""

from __future__ import annotations

import functools
import hashlib
import ipaddress

from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._persist import endpoint_service
from ansible_collections.linuxnet.bridge.plugins.module_utils._port_mapping import (
    check_conflicts,
    family_of,
    host_address,
    mapping_key,
    parse_publish,
    parse_sources,
    port_range,
)

DEFAULT_NETWORK = "bridge"  # Docker's default network: no name resolution between endpoints
# The keys the role's argument spec documents; the deployment module takes these dicts unchecked.
NETWORK_KEYS = ("name", "bridge", "subnet", "gateway", "subnet6", "gateway6", "icc", "internal", "masquerade",
                "allow_overlap", "gateway_mode", "snat_source", "mtu")
ENDPOINT_KEYS = ("name", "networks", "network", "ports", "mode", "dns", "service")
ATTACHMENT_KEYS = ("name", "address", "address6")
DNS_KEYS = ("nameservers", "search", "options")
PORT_KEYS = ("publish", "host_ip", "host_port", "container_port", "protocol", "sources")


def veth_name(endpoint: str, network: str) -> str:
    """Deterministic host-side veth name, Docker-like ``veth`` + 7 hex (11 bytes)."""
    return "veth" + hashlib.sha256(f"{endpoint}/{network}".encode()).hexdigest()[:7]


def veth_names(eps: list[dict]) -> dict[tuple[str, str], str]:
    """Names for every (endpoint, network) pair; a 7-digit collision gets 11 digits (15 bytes)."""
    names: dict[tuple[str, str], str] = {}
    taken: set[str] = set()
    for key in sorted((ep["name"], att["network"]) for ep in eps for att in ep["attachments"]):
        name = veth_name(*key)
        if name in taken:
            name = "veth" + hashlib.sha256(f"{key[0]}/{key[1]}".encode()).hexdigest()[:11]
        if name in taken:
            raise v.ValidationError(f"linuxnet_endpoints: no unique veth name for {key[0]} on {key[1]}")
        taken.add(name)
        names[key] = name
    return names


def default_bridge(name: str) -> str:
    return "docker0" if name == DEFAULT_NETWORK else ("br-" + name)[:15]


# Every layer below the plan (endpoint MACs from the IPv4 address, the IPv4 default route, the
# IPv4 firewall model, verify's pairs) assumes an IPv4 subnet, so an IPv6-only network is refused
# by name before anything changes rather than half-built.
_IPV6_ONLY = ("{at}.subnet: required; IPv6-only networks (subnet6 {subnet6!r} without subnet) are not supported: "
              "give an IPv4 subnet as well (the network is then dual-stack)")


def normalize_networks(networks: list[dict]) -> dict[str, dict]:
    result: dict[str, dict] = {}
    for i, raw in enumerate(networks or []):
        at = f"linuxnet_networks[{i}]"
        if not isinstance(raw, dict):
            raise v.ValidationError(f"{at}: must be a mapping")
        v.known_keys(raw, NETWORK_KEYS, at)
        name = v.label(raw.get("name"), f"{at}.name", "network name")
        if raw.get("subnet") in (None, "") and raw.get("subnet6") not in (None, ""):
            raise v.ValidationError(_IPV6_ONLY.format(at=at, subnet6=raw["subnet6"]))
        subnet = ipaddress.ip_network(v.network(raw.get("subnet"), f"{at}.subnet"))
        hosts = list(_first_hosts(subnet, 1))
        gateway = v.ip_address(raw["gateway"], f"{at}.gateway") if raw.get("gateway") else str(hosts[0])
        if ipaddress.ip_address(gateway) not in subnet:
            raise v.ValidationError(f"{at}.gateway: {gateway} is outside {subnet}")
        if not _usable(gateway, subnet):
            raise v.ValidationError(f"{at}.gateway: {gateway} is the network or broadcast address of {subnet}")
        if name in result:
            raise v.ValidationError(f"{at}.name: duplicate network {name}")
        given = raw.get("bridge")
        # a default name comes from the network's: an error about it names what the user wrote
        bridge = v.interface_name(given or default_bridge(name), f"{at}.bridge" if given else f"{at}.name (its default bridge)")
        other = next((n["name"] for n in result.values() if n["bridge"] == bridge), None)
        if other:
            raise v.ValidationError(f"{at}.bridge: bridge {bridge} is already used by network {other}")
        overlap = next((n["name"] for n in result.values() if ipaddress.ip_network(n["subnet"]).overlaps(subnet)), None)
        if overlap:
            raise v.ValidationError(f"{at}.subnet: {subnet} overlaps the subnet of network {overlap}")
        subnet6, gateway6 = _subnet6(raw, at, result)
        result[name] = {
            "name": name,
            "bridge": bridge,
            "subnet": str(subnet),
            "gateway": gateway,
            "subnet6": subnet6,
            "gateway6": gateway6,
            "icc": v.boolean(raw.get("icc"), f"{at}.icc", True),
            "internal": v.boolean(raw.get("internal"), f"{at}.internal", False),
            "masquerade": v.boolean(raw.get("masquerade"), f"{at}.masquerade", True),
            "mtu": v.mtu(raw["mtu"], f"{at}.mtu") if raw.get("mtu") is not None else None,
            "snat_source": v.unicast(raw["snat_source"], f"{at}.snat_source") if raw.get("snat_source") else None,
            "gateway_mode": raw.get("gateway_mode") or "nat",
            "allow_overlap": v.boolean(raw.get("allow_overlap"), f"{at}.allow_overlap", False),
        }
        if result[name]["gateway_mode"] not in ("nat", "nat-unprotected"):
            raise v.ValidationError(f"{at}.gateway_mode: {raw['gateway_mode']!r} is not one of nat, nat-unprotected")
    return result


def _subnet6(raw: dict, at: str, others: dict) -> tuple[str | None, str | None]:
    """A dual-stack network's IPv6 subnet and gateway (default: the first address after the
    subnet-router anycast address, as Docker picks it); (None, None) for an IPv4-only network."""
    if raw.get("subnet6") in (None, ""):
        if raw.get("gateway6"):
            raise v.ValidationError(f"{at}.gateway6: given without subnet6")
        return None, None
    subnet6 = ipaddress.ip_network(v.network6(raw["subnet6"], f"{at}.subnet6"))
    gateway6 = v.ip_address(raw["gateway6"], f"{at}.gateway6", version=6) if raw.get("gateway6") else str(subnet6[1])
    if ipaddress.ip_address(gateway6) not in subnet6:
        raise v.ValidationError(f"{at}.gateway6: {gateway6} is outside {subnet6}")
    if ipaddress.ip_address(gateway6) == subnet6.network_address:
        raise v.ValidationError(f"{at}.gateway6: {gateway6} is the subnet-router anycast address of {subnet6}")
    overlap = next((n["name"] for n in others.values() if n["subnet6"] and ipaddress.ip_network(n["subnet6"]).overlaps(subnet6)), None)
    if overlap:
        raise v.ValidationError(f"{at}.subnet6: {subnet6} overlaps the subnet6 of network {overlap}")
    return str(subnet6), gateway6


@functools.lru_cache(maxsize=None)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A network's subnet (valid, normalised text) as an object, made once: N endpoints share a few networks."""
    return ipaddress.ip_network(text)


def _usable(address: str, subnet) -> bool:
    """Not the network or broadcast address (both are usable in /31 and /32, as in subnet.hosts())."""
    ip = v.address(address)
    return subnet.prefixlen >= 31 or ip not in (subnet.network_address, subnet.broadcast_address)


def _first_hosts(subnet, count: int):
    for n, host in enumerate(subnet.hosts()):
        if n >= count:
            return
        yield host


def _attachments(raw: dict, at: str, networks: dict) -> list[dict]:
    given = raw.get("networks")
    if given is None and raw.get("network"):
        given = [raw["network"]]
    out = []
    for j, att in enumerate(v.as_list(given, f"{at}.networks")):
        where = f"{at}.networks[{j}]"
        att = {"name": att} if isinstance(att, str) else dict(v.known_keys(v.mapping(att, where), ATTACHMENT_KEYS, where))
        if not isinstance(att.get("name"), str) or att["name"] not in networks:  # a list name: no traceback
            raise v.ValidationError(f"{where}.name: unknown network {att.get('name')!r}")
        net = networks[att["name"]]
        address = None
        if att.get("address"):
            address = v.ip_address(att["address"], f"{where}.address")
            if v.address(address) not in _network(net["subnet"]):
                raise v.ValidationError(f"{where}.address: {address} is outside {net['subnet']}")
            if not _usable(address, _network(net["subnet"])):
                raise v.ValidationError(f"{where}.address: {address} is the network or broadcast address of {net['subnet']}")
            if address == net["gateway"]:
                raise v.ValidationError(f"{where}.address: {address} is the gateway of {net['name']}")
        if any(a["network"] == net["name"] for a in out):
            raise v.ValidationError(f"{where}.name: endpoint attached twice to {net['name']}")
        out.append({"network": net["name"], "address": address, "at": f"{where}.address",
                    "address6": _address6(att, where, net), "at6": f"{where}.address6"})
    return out


def _address6(att: dict, where: str, net: dict) -> str | None:
    if not att.get("address6"):
        return None
    if not net["subnet6"]:
        raise v.ValidationError(f"{where}.address6: network {net['name']} has no subnet6")
    address6 = v.ip_address(att["address6"], f"{where}.address6", version=6)
    subnet6 = _network(net["subnet6"])
    if ipaddress.ip_address(address6) not in subnet6:
        raise v.ValidationError(f"{where}.address6: {address6} is outside {net['subnet6']}")
    if ipaddress.ip_address(address6) == subnet6.network_address:
        raise v.ValidationError(f"{where}.address6: {address6} is the subnet-router anycast address of {net['subnet6']}")
    if address6 == net["gateway6"]:
        raise v.ValidationError(f"{where}.address6: {address6} is the gateway6 of {net['name']}")
    return address6


def plan_deployment(networks: list[dict], endpoints: list[dict], current_veths: list[dict] | None = None,
                    port_fields: list[str] | None = None) -> dict:
    """Module inputs for one host: the ``config`` of each module under the module's name (``netns``,
    ``bridge``, ``veth``, ``firewall``, ``port_mapping``), the netns module's ``host_groups``, and
    ``warnings``, ``endpoints``, ``networks``. ``current_veths`` (veth ``gathered``) keeps addresses stable.
    ``port_fields``, a list, receives the input field of each ``port_mapping`` item (``linuxnet_endpoints[0].ports[1]``)."""
    nets = normalize_networks(networks)
    eps: list[dict] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(endpoints or []):
        at = f"linuxnet_endpoints[{i}]"
        raw = v.known_keys(v.mapping(raw, at), ENDPOINT_KEYS, at)
        name = v.netns_name(raw.get("name"), f"{at}.name")
        v.hostname(name, f"{at}.name (the endpoint's host name for its peers, as a Docker container name)")
        if name in seen:
            raise v.ValidationError(f"{at}.name: duplicate endpoint {name}")
        seen.add(name)
        mode = raw.get("mode") or "bridge"
        if mode not in ("bridge", "none", "host"):
            raise v.ValidationError(f"{at}.mode: {mode!r} is not one of bridge, none, host")
        if mode != "bridge":
            _no_network_fields(raw, at, mode)
        attachments = _attachments(raw, at, nets) if mode == "bridge" else []
        if mode == "bridge" and not attachments:
            raise v.ValidationError(f"{at}.networks: an endpoint in bridge mode needs at least one network")
        if mode == "host" and raw.get("ports"):
            warnings.append(f"{at}.ports: ignored for endpoint {name} in host mode (as Docker does)")
        endpoint_service(raw.get("service"), f"{at}.service", name, mode)  # checked before anything changes
        eps.append({"name": name, "mode": mode, "attachments": attachments, "raw": raw, "at": at})

    names = veth_names(eps)
    _allocate(nets, eps, current_veths or [], names)

    netns, veths, ports = [], [], []
    places: list[tuple[str, str]] = []  # (field, endpoint) of each item of ports
    published: dict[str, dict] = {}  # publish text -> parse_publish's fields, parsed once for _ports and the conflicts
    for ep in eps:
        if ep["mode"] == "host":
            continue
        item = {"name": ep["name"], "hosts": _own_hosts_entry(ep), "host_groups": _host_group_names(ep)}
        dns = ep["raw"].get("dns")
        if dns:
            item["resolv_conf"] = _resolv_conf(dns, ep["at"])
        netns.append(item)
        # Docker routes through the first network that has a way out; internal ones have none.
        routed = next((a["network"] for a in ep["attachments"] if not nets[a["network"]]["internal"]), None)
        # IPv6 picks its own: the first such network that has IPv6 (Docker 28's per-family gateway)
        routed6 = next((a["network"] for a in ep["attachments"]
                        if not nets[a["network"]]["internal"] and nets[a["network"]]["subnet6"]), None)
        for index, att in enumerate(ep["attachments"]):
            net = nets[att["network"]]
            prefix = _network(net["subnet"]).prefixlen
            veth = {
                "name": names[(ep["name"], net["name"])],
                "peer": f"eth{index}",
                "peer_netns": ep["name"],
                "master": net["bridge"],
                "addresses": [f"{att['address']}/{prefix}"],
                "mac": "docker",
                "hairpin": True,
            }
            if att["network"] == routed:
                veth["gateway"] = net["gateway"]
            if net["subnet6"]:
                veth["addresses"].append(f"{att['address6']}/{_network(net['subnet6']).prefixlen}")
                veth["ipv6"] = True
                if att["network"] == routed6:
                    veth["gateway6"] = net["gateway6"]
            if net["mtu"]:
                veth["mtu"] = net["mtu"]
            veths.append(veth)
        ports += _ports(ep, nets, warnings, places, published)
    _check_port_conflicts(ports, places, published)
    if port_fields is not None:  # (not in the plan: a caller's warnings name them, as the conflicts above do)
        port_fields[:] = [at for at, _endpoint in places]

    bridges = []
    for net in nets.values():
        bridge = {"name": net["bridge"], "addresses": [f"{net['gateway']}/{ipaddress.ip_network(net['subnet']).prefixlen}"]}
        if net["subnet6"]:
            bridge["addresses"].append(f"{net['gateway6']}/{ipaddress.ip_network(net['subnet6']).prefixlen}")
        if net["mtu"]:
            bridge["mtu"] = net["mtu"]
        if net["allow_overlap"]:  # the subnet may overlap a route or address of the host (checked on the host)
            bridge["allow_overlap"] = True
        bridges.append(bridge)
    firewall = [
        {k: net[k] for k in ("name", "bridge", "subnet", "subnet6", "icc", "internal", "masquerade", "snat_source", "gateway_mode")
         if net[k] is not None}
        for net in nets.values()
    ]
    return {
        "netns": netns,
        "host_groups": _host_groups(eps, nets),
        "bridge": bridges,
        "veth": veths,
        "firewall": firewall,
        "port_mapping": ports,
        "warnings": warnings,
        "endpoints": [
            _endpoint_summary(ep) for ep in eps
        ],
        "networks": list(nets.values()),
    }


def _no_network_fields(raw: dict, at: str, mode: str) -> None:
    """Docker refuses ``--network none`` or ``host`` with other networks; a host-mode endpoint
    shares the host's resolv.conf. Refused by name rather than silently dropped."""
    for key in ("networks", "network") + (("dns",) if mode == "host" else ()):
        if raw.get(key) not in (None, "", [], {}):
            what = "the host's DNS" if key == "dns" else "no other network"
            raise v.ValidationError(f"{at}.{key}: not allowed with mode {mode} (an endpoint in mode {mode} has {what}); "
                                    "remove it or use mode bridge")


def _endpoint_summary(ep: dict) -> dict:
    """An endpoint's addresses per network; ``networks6`` only for an endpoint with IPv6."""
    summary = {"name": ep["name"], "mode": ep["mode"], "networks": {a["network"]: a["address"] for a in ep["attachments"]}}
    six = {a["network"]: a["address6"] for a in ep["attachments"] if a["address6"]}
    if six:
        summary["networks6"] = six
    return summary


def _allocate(nets: dict, eps: list[dict], current_veths: list[dict], names: dict) -> None:
    """Explicit addresses first, then addresses endpoints already have, then the lowest free."""
    _allocate_family(nets, eps, current_veths, names, "address", "subnet", "gateway")
    dual = {name: net for name, net in nets.items() if net["subnet6"]}
    _allocate_family(dual, [{**ep, "attachments": [a for a in ep["attachments"] if a["network"] in dual]} for ep in eps],
                     current_veths, names, "address6", "subnet6", "gateway6")


def _allocate_family(nets: dict, eps: list[dict], current_veths: list[dict], names: dict,
                     key: str, subnet_key: str, gateway_key: str) -> None:
    """One address family: ``key`` of each attachment from the network's ``subnet_key``."""
    at = "at" if key == "address" else "at6"
    live = {veth["name"]: veth for veth in current_veths if veth.get("name")}
    used: dict[str, dict[str, str]] = {name: {} for name in nets}
    for ep in eps:
        for att in ep["attachments"]:
            if att[key]:
                other = used[att["network"]].get(att[key])
                if other:
                    raise v.ValidationError(
                        f"{att[at]}: address {att[key]} on {att['network']} is already used by endpoint {other}")
                used[att["network"]][att[key]] = ep["name"]
    for ep in eps:
        for att in ep["attachments"]:
            if att[key]:
                continue
            net = nets[att["network"]]
            subnet = _network(net[subnet_key])
            for cidr in (live.get(names[(ep["name"], net["name"])]) or {}).get("addresses") or []:
                ip = ipaddress.ip_interface(cidr).ip
                # a live address stays only while still usable: a changed subnet can make it the
                # network address (IPv6: subnet-router anycast) or the IPv4 broadcast address
                if (ip in subnet and str(ip) not in used[net["name"]] and str(ip) != net[gateway_key]
                        and ip != subnet.network_address and (ip.version == 6 or _usable(str(ip), subnet))):
                    att[key] = str(ip)
                    used[net["name"]][str(ip)] = ep["name"]
                    break
    for ep in eps:
        for att in ep["attachments"]:
            if att[key]:
                continue
            net = nets[att["network"]]
            taken = used[net["name"]]
            for host in ipaddress.ip_network(net[subnet_key]).hosts():
                ip = str(host)
                if ip != net[gateway_key] and ip not in taken:
                    att[key] = ip
                    taken[ip] = ep["name"]
                    break
            else:
                raise v.ValidationError(f"{ep['at']}: network {net['name']} ({net[subnet_key]}) has no free address left")


def _own_hosts_entry(ep: dict) -> list[dict]:
    """An endpoint knows its own name, as in Docker's /etc/hosts: its address on the first network,
    and, when it has IPv6, its address6 on the first network that has one."""
    own = [{"ip": ep["attachments"][0]["address"], "names": [ep["name"]]}] if ep["attachments"] else []
    address6 = next((a["address6"] for a in ep["attachments"] if a["address6"]), None)
    return own + ([{"ip": address6, "names": [ep["name"]]}] if address6 else [])


def _host_group_names(ep: dict) -> list[str]:
    """Names resolve between endpoints sharing a user-defined network, as with Docker's DNS."""
    return [a["network"] for a in ep["attachments"] if a["network"] != DEFAULT_NETWORK]


def _host_groups(eps: list[dict], nets: dict) -> list[dict]:
    """One host group per user-defined network: its endpoints and their addresses on it (on a
    dual-stack network an IPv4 and an IPv6 line each)."""
    groups: dict[str, list[dict]] = {name: [] for name in nets if name != DEFAULT_NETWORK}
    for ep in eps:
        if ep["mode"] == "host":
            continue
        for att in ep["attachments"]:
            if att["network"] in groups:
                groups[att["network"]].append({"ip": att["address"], "names": [ep["name"]]})
                if att["address6"]:
                    groups[att["network"]].append({"ip": att["address6"], "names": [ep["name"]]})
    return [{"name": name, "hosts": hosts} for name, hosts in groups.items() if hosts]


def _resolv_conf(dns: dict, at: str) -> str:
    dns = v.known_keys(v.mapping(dns, f"{at}.dns"), DNS_KEYS, f"{at}.dns")
    nameservers = v.as_list(dns.get("nameservers"), f"{at}.dns.nameservers")
    lines = [f"nameserver {v.ip_address(ns, f'{at}.dns.nameservers', version=None)}" for ns in nameservers]
    if dns.get("search"):
        search = v.as_list(dns["search"], f"{at}.dns.search")
        lines.append("search " + " ".join(v.hostname(s, f"{at}.dns.search") for s in search))
    if dns.get("options"):
        options = v.as_list(dns["options"], f"{at}.dns.options")
        lines.append("options " + " ".join(v.dns_option(o, f"{at}.dns.options") for o in options))
    return "".join(line + "\n" for line in lines)


def _ports(ep: dict, nets: dict, warnings: list[str], places: list[tuple[str, str]], published: dict[str, dict]) -> list[dict]:
    raw_ports = v.as_list(ep["raw"].get("ports"), f"{ep['at']}.ports")
    if ep["mode"] != "bridge" or not raw_ports:
        if ep["mode"] == "none" and raw_ports:
            warnings.append(f"{ep['at']}.ports: ignored for endpoint {ep['name']} without network")
        return []
    att = next((a for a in ep["attachments"] if not nets[a["network"]]["internal"]), None)
    if att is None:
        warnings.append(f"{ep['at']}.ports: ignored, endpoint {ep['name']} is only on internal networks")
        return []
    net = nets[att["network"]]
    out = []
    for k, port in enumerate(raw_ports):
        at = f"{ep['at']}.ports[{k}]"
        item = {"publish": port} if isinstance(port, (str, int)) and not isinstance(port, bool) else dict(v.known_keys(v.mapping(port, at), PORT_KEYS, at))
        host_ip, host_field = item.get("host_ip"), f"{at}.host_ip"
        if "publish" in item:
            item["publish"] = str(item["publish"])
            fields = published[item["publish"]] = parse_publish(item["publish"], at)
            host_ip, host_field = fields["host_ip"], at
        families = _port_families(host_ip, host_field, net)
        sources = _port_sources(item.get("sources"), f"{at}.sources", families) if "sources" in item else {}
        for family in families:
            mapping = dict(item)
            if "sources" in item:
                mapping["sources"] = sources[family]
            container_ip = att["address"] if family == "ipv4" else att["address6"]
            mapping.update({"bridge": net["bridge"], "container_ip": container_ip, "network": att["network"]})
            out.append(mapping)
            places.append((at, ep["name"]))
    return out


def _conflict_item(mapping: dict, published: dict[str, dict]) -> dict | None:
    """What port_mapping's check_conflicts reads of a planned mapping; None for one it will refuse
    anyway (port_mapping validates every field and names it). ``published``: the publish texts of
    :func:`_ports`, parsed."""
    try:
        fields = dict(mapping, **published[mapping["publish"]]) if mapping.get("publish") else mapping
        cp = port_range(fields.get("container_port"), "container_port")
        hp = port_range(fields["host_port"], "host_port") if fields.get("host_port") not in (None, "") else cp
        family = family_of(mapping["container_ip"])
        return {"protocol": fields.get("protocol") or "tcp", "container_ip": mapping["container_ip"],
                "host_ip": host_address(fields.get("host_ip"), family, "host_ip"), "host_port": fields.get("host_port") or
                fields.get("container_port"), "_hp": hp}
    except (v.ValidationError, KeyError, TypeError):
        return None


def _conflicts(items: list[dict]) -> bool:
    try:
        check_conflicts(items)
    except v.ValidationError:
        return True
    return False


def _check_port_conflicts(ports: list[dict], places: list[tuple[str, str]], published: dict[str, dict]) -> None:
    """Two published ports that claim one protocol and host port on overlapping host addresses:
    refused here, naming the later one's field and the endpoint it clashes with (port_mapping's
    own check, which decides, cannot name the inventory's fields)."""
    found = [(item, place) for item, place in ((_conflict_item(m, published), p) for m, p in zip(ports, places)) if item]
    items = [item for item, _place in found]
    if not _conflicts(items):
        return
    # the first item that clashes with one before it (only on this error path: n checks)
    later = next(k for k in range(1, len(items)) if _conflicts(items[:k + 1]))
    earlier = next(j for j in range(later) if _conflicts([items[j], items[later]]))
    (x, (x_at, x_ep)), (y, (y_at, _y_ep)) = found[earlier], found[later]
    raise v.ValidationError(
        f"{y_at}: publishes {mapping_key(y)} -> {y['container_ip']}, which conflicts with {x_at} of endpoint {x_ep} "
        f"({mapping_key(x)} -> {x['container_ip']}): same protocol and host port on overlapping host addresses")


def _port_families(host_ip: object, field: str, net: dict) -> list[str]:
    """Docker 27+: no host address publishes on both families of a dual-stack endpoint, an IPv4 one
    (0.0.0.0, 127.0.0.1) on IPv4 only, an IPv6 one ([::], [2001:db8::1]) on IPv6 only."""
    if host_ip in (None, ""):
        return ["ipv4", "ipv6"] if net["subnet6"] else ["ipv4"]
    if ":" not in str(host_ip):
        return ["ipv4"]  # an IPv4-only plan stays as it was; port_mapping validates the address
    address = v.ip_address(host_ip, field, version=6)
    if not net["subnet6"]:
        raise v.ValidationError(f"{field}: host address {address} is IPv6 but network {net['name']} has no subnet6 "
                                "(kernel NAT cannot translate between families)")
    host_address(address, "ipv6", field)  # what port_mapping refuses (::1, link-local, ...), named here too
    return ["ipv6"]


def _port_sources(value: object, field: str, families: list[str]) -> dict[str, list[str] | None]:
    """``sources`` per family: one family takes the list whole (as before); both split it by family,
    and a family left without any would accept every source, so that is refused."""
    if len(families) == 1:
        return {families[0]: parse_sources(value, field, families[0])}
    if not isinstance(value, list) or not value:
        return {"ipv4": parse_sources(value, field), "ipv6": None}  # parse_sources names what is wrong
    split: dict[str, list[str]] = {"ipv4": [], "ipv6": []}
    for k, text in enumerate(value):
        family = "ipv6" if isinstance(text, str) and ":" in text else "ipv4"
        try:
            split[family] += parse_sources([text], field, family)
        except v.ValidationError as exc:  # it names the item of the one-item list: name the one given
            raise v.ValidationError(str(exc).replace(f"{field}[0]", f"{field}[{k}]", 1)) from None
    for family, name, bind in (("ipv4", "IPv4", "[::]:"), ("ipv6", "IPv6", "0.0.0.0:")):
        if not split[family]:
            raise v.ValidationError(
                f"{field}: lists no {name} network, so the endpoint's {name} mapping would accept every source; "
                f"add {name} sources, or publish on one family only (host address {bind}...)")
    return {family: parse_sources(listed, field, family) for family, listed in split.items()}
