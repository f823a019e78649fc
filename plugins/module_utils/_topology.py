# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""From inventory variables (networks, endpoints) to the ``config`` of every module, and to the
reachability matrix that ``verify.yml`` checks. Pure: runs on the controller in filter plugins."""

from __future__ import annotations

import hashlib
import ipaddress
import re

from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._port_mapping import parse_publish

DEFAULT_NETWORK = "bridge"  # Docker's default network: no name resolution between endpoints


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


def normalize_networks(networks: list[dict]) -> dict[str, dict]:
    result: dict[str, dict] = {}
    for i, raw in enumerate(networks or []):
        at = f"linuxnet_networks[{i}]"
        if not isinstance(raw, dict):
            raise v.ValidationError(f"{at}: must be a mapping")
        name = v.label(raw.get("name"), f"{at}.name", "network name")
        subnet = ipaddress.ip_network(v.network(raw.get("subnet"), f"{at}.subnet"))
        hosts = list(_first_hosts(subnet, 1))
        gateway = v.ip_address(raw["gateway"], f"{at}.gateway") if raw.get("gateway") else str(hosts[0])
        if ipaddress.ip_address(gateway) not in subnet:
            raise v.ValidationError(f"{at}.gateway: {gateway} is outside {subnet}")
        if not _usable(gateway, subnet):
            raise v.ValidationError(f"{at}.gateway: {gateway} is the network or broadcast address of {subnet}")
        if name in result:
            raise v.ValidationError(f"{at}.name: duplicate network {name}")
        bridge = v.interface_name(raw.get("bridge") or default_bridge(name), f"{at}.bridge")
        other = next((n["name"] for n in result.values() if n["bridge"] == bridge), None)
        if other:
            raise v.ValidationError(f"{at}.bridge: bridge {bridge} is already used by network {other}")
        overlap = next((n["name"] for n in result.values() if ipaddress.ip_network(n["subnet"]).overlaps(subnet)), None)
        if overlap:
            raise v.ValidationError(f"{at}.subnet: {subnet} overlaps the subnet of network {overlap}")
        result[name] = {
            "name": name,
            "bridge": bridge,
            "subnet": str(subnet),
            "gateway": gateway,
            "icc": bool(raw.get("icc", True)),
            "internal": bool(raw.get("internal", False)),
            "masquerade": bool(raw.get("masquerade", True)),
            "mtu": v.mtu(raw["mtu"], f"{at}.mtu") if raw.get("mtu") is not None else None,
            "snat_source": v.ip_address(raw["snat_source"], f"{at}.snat_source") if raw.get("snat_source") else None,
        }
    return result


def _usable(address: str, subnet) -> bool:
    """Not the network or broadcast address (both are usable in /31 and /32, as in subnet.hosts())."""
    ip = ipaddress.ip_address(address)
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
    for j, att in enumerate(given or []):
        where = f"{at}.networks[{j}]"
        att = {"name": att} if isinstance(att, str) else dict(att)
        if att.get("name") not in networks:
            raise v.ValidationError(f"{where}.name: unknown network {att.get('name')!r}")
        net = networks[att["name"]]
        address = None
        if att.get("address"):
            address = v.ip_address(att["address"], f"{where}.address")
            if ipaddress.ip_address(address) not in ipaddress.ip_network(net["subnet"]):
                raise v.ValidationError(f"{where}.address: {address} is outside {net['subnet']}")
            if not _usable(address, ipaddress.ip_network(net["subnet"])):
                raise v.ValidationError(f"{where}.address: {address} is the network or broadcast address of {net['subnet']}")
            if address == net["gateway"]:
                raise v.ValidationError(f"{where}.address: {address} is the gateway of {net['name']}")
        if any(a["network"] == net["name"] for a in out):
            raise v.ValidationError(f"{where}.name: endpoint attached twice to {net['name']}")
        out.append({"network": net["name"], "address": address, "at": f"{where}.address"})
    return out


def plan_deployment(networks: list[dict], endpoints: list[dict], current_veths: list[dict] | None = None) -> dict:
    """Module inputs for one host. ``current_veths`` (veth ``gathered``) keeps addresses stable."""
    nets = normalize_networks(networks)
    eps: list[dict] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for i, raw in enumerate(endpoints or []):
        at = f"linuxnet_endpoints[{i}]"
        name = v.netns_name(raw.get("name"), f"{at}.name")
        if name in seen:
            raise v.ValidationError(f"{at}.name: duplicate endpoint {name}")
        seen.add(name)
        mode = raw.get("mode") or "bridge"
        if mode not in ("bridge", "none", "host"):
            raise v.ValidationError(f"{at}.mode: {mode!r} is not one of bridge, none, host")
        attachments = _attachments(raw, at, nets) if mode == "bridge" else []
        if mode == "bridge" and not attachments:
            raise v.ValidationError(f"{at}.networks: an endpoint in bridge mode needs at least one network")
        if mode == "host" and raw.get("ports"):
            warnings.append(f"{at}.ports: ignored for endpoint {name} in host mode (as Docker does)")
        eps.append({"name": name, "mode": mode, "attachments": attachments, "raw": raw, "at": at})

    names = veth_names(eps)
    _allocate(nets, eps, current_veths or [], names)

    netns, veths, ports = [], [], []
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
        for index, att in enumerate(ep["attachments"]):
            net = nets[att["network"]]
            prefix = ipaddress.ip_network(net["subnet"]).prefixlen
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
            if net["mtu"]:
                veth["mtu"] = net["mtu"]
            veths.append(veth)
        ports += _ports(ep, nets, warnings)

    bridges = []
    for net in nets.values():
        bridge = {"name": net["bridge"], "addresses": [f"{net['gateway']}/{ipaddress.ip_network(net['subnet']).prefixlen}"]}
        if net["mtu"]:
            bridge["mtu"] = net["mtu"]
        bridges.append(bridge)
    firewall = [
        {k: net[k] for k in ("name", "bridge", "subnet", "icc", "internal", "masquerade", "snat_source") if net[k] is not None}
        for net in nets.values()
    ]
    return {
        "netns": netns,
        "host_groups": _host_groups(eps, nets),
        "bridges": bridges,
        "veths": veths,
        "firewall": firewall,
        "ports": ports,
        "warnings": warnings,
        "endpoints": [
            {"name": ep["name"], "mode": ep["mode"], "networks": {a["network"]: a["address"] for a in ep["attachments"]}}
            for ep in eps
        ],
        "networks": list(nets.values()),
    }


def _allocate(nets: dict, eps: list[dict], current_veths: list[dict], names: dict) -> None:
    """Explicit addresses first, then addresses endpoints already have, then the lowest free."""
    live = {veth["name"]: veth for veth in current_veths if veth.get("name")}
    used: dict[str, dict[str, str]] = {name: {} for name in nets}
    for ep in eps:
        for att in ep["attachments"]:
            if att["address"]:
                other = used[att["network"]].get(att["address"])
                if other:
                    raise v.ValidationError(
                        f"{att['at']}: address {att['address']} on {att['network']} is already used by endpoint {other}")
                used[att["network"]][att["address"]] = ep["name"]
    for ep in eps:
        for att in ep["attachments"]:
            if att["address"]:
                continue
            net = nets[att["network"]]
            subnet = ipaddress.ip_network(net["subnet"])
            for cidr in (live.get(names[(ep["name"], net["name"])]) or {}).get("addresses") or []:
                ip = str(ipaddress.ip_interface(cidr).ip)
                if ipaddress.ip_address(ip) in subnet and ip not in used[net["name"]] and ip != net["gateway"]:
                    att["address"] = ip
                    used[net["name"]][ip] = ep["name"]
                    break
    for ep in eps:
        for att in ep["attachments"]:
            if att["address"]:
                continue
            net = nets[att["network"]]
            taken = used[net["name"]]
            for host in ipaddress.ip_network(net["subnet"]).hosts():
                ip = str(host)
                if ip != net["gateway"] and ip not in taken:
                    att["address"] = ip
                    taken[ip] = ep["name"]
                    break
            else:
                raise v.ValidationError(f"{ep['at']}: network {net['name']} ({net['subnet']}) has no free address left")


def _own_hosts_entry(ep: dict) -> list[dict]:
    """An endpoint knows its own name on every network, as in Docker's /etc/hosts."""
    return [{"ip": ep["attachments"][0]["address"], "names": [ep["name"]]}] if ep["attachments"] else []


def _host_group_names(ep: dict) -> list[str]:
    """Names resolve between endpoints sharing a user-defined network, as with Docker's DNS."""
    return [a["network"] for a in ep["attachments"] if a["network"] != DEFAULT_NETWORK]


def _host_groups(eps: list[dict], nets: dict) -> list[dict]:
    """One host group per user-defined network: its endpoints and their addresses on it."""
    groups: dict[str, list[dict]] = {name: [] for name in nets if name != DEFAULT_NETWORK}
    for ep in eps:
        if ep["mode"] == "host":
            continue
        for att in ep["attachments"]:
            if att["network"] in groups:
                groups[att["network"]].append({"ip": att["address"], "names": [ep["name"]]})
    return [{"name": name, "hosts": hosts} for name, hosts in groups.items() if hosts]


def _resolv_conf(dns: dict, at: str) -> str:
    lines = [f"nameserver {v.ip_address(ns, f'{at}.dns.nameservers', version=None)}" for ns in dns.get("nameservers") or []]
    if dns.get("search"):
        lines.append("search " + " ".join(v.hostname(s, f"{at}.dns.search") for s in dns["search"]))
    if dns.get("options"):
        lines.append("options " + " ".join(v.safe_text(o, f"{at}.dns.options") for o in dns["options"]))
    return "".join(line + "\n" for line in lines)


def _ports(ep: dict, nets: dict, warnings: list[str]) -> list[dict]:
    raw_ports = ep["raw"].get("ports") or []
    if ep["mode"] != "bridge" or not raw_ports:
        if ep["mode"] == "none" and raw_ports:
            warnings.append(f"{ep['at']}.ports: ignored for endpoint {ep['name']} without network")
        return []
    att = next((a for a in ep["attachments"] if not nets[a["network"]]["internal"]), None)
    if att is None:
        warnings.append(f"{ep['at']}.ports: ignored, endpoint {ep['name']} is only on internal networks")
        return []
    out = []
    for k, port in enumerate(raw_ports):
        item = {"publish": port} if isinstance(port, (str, int)) else dict(port)
        if "publish" in item:
            item["publish"] = str(item["publish"])
            parse_publish(item["publish"], f"{ep['at']}.ports[{k}]")
        item.update({"bridge": nets[att["network"]]["bridge"], "container_ip": att["address"], "network": att["network"]})
        out.append(item)
    return out


def reachability(plan: dict, probe_address: str | None = None, host_address: str | None = None) -> list[dict]:
    """Every check verify.yml runs, with the expected outcome derived from Docker's model."""
    nets = {n["name"]: n for n in plan["networks"]}
    eps = [e for e in plan["endpoints"] if e["mode"] == "bridge"]
    checks = []
    for a in eps:
        for b in eps:
            if a is b:
                continue
            shared = [n for n in a["networks"] if n in b["networks"]]
            if shared:
                net = shared[0]
                expect = nets[net]["icc"]
                why = f"same network {net}" + ("" if expect else " with icc off")
                target = b["networks"][net]
            else:
                net = next(iter(b["networks"]))
                expect = False
                why = "different networks (isolation)"
                target = b["networks"][net]
            checks.append({"source": a["name"], "target": b["name"], "kind": "icmp", "address": target,
                           "port": None, "expect": expect, "why": why})
        if probe_address:
            egress = any(not nets[n]["internal"] for n in a["networks"])
            checks.append({"source": a["name"], "target": "probe", "kind": "icmp", "address": probe_address,
                           "port": None, "expect": egress,
                           "why": "egress through masquerade" if egress else "internal network: no egress"})
    for port in plan["ports"]:
        parsed = parse_publish(port["publish"], "ports") if port.get("publish") else port
        host_port = str(parsed.get("host_port") or parsed.get("container_port")).split("-", maxsplit=1)[0]
        container_port = str(parsed.get("container_port")).split("-", maxsplit=1)[0]
        protocol = parsed.get("protocol") or "tcp"
        host_ip = parsed.get("host_ip") if parsed.get("host_ip") not in (None, "", "0.0.0.0") else host_address
        endpoint = next((e["name"] for e in eps if port["container_ip"] in e["networks"].values()), None)
        if host_ip and not host_ip.startswith("127."):
            checks.append({"source": "probe", "target": endpoint, "kind": protocol, "address": host_ip,
                           "port": int(host_port), "container_port": int(container_port),
                           "expect": True, "why": f"published {port.get('publish') or host_port}"})
    return checks


def listener(check: dict) -> dict:
    """The listener a published-port check needs inside the target endpoint."""
    return {"netns": check["target"], "kind": check["kind"], "port": check.get("container_port") or check["port"]}


def describe(result: dict) -> str:
    where = f"{result['address']}:{result['port']}/{result['kind']}" if result.get("port") else f"{result['address']} ({result['kind']})"
    expected = "reach" if result["expect"] else "blocked"
    observed = "reach" if result.get("observed") else "blocked"
    verdict = "ok" if bool(result.get("observed")) == bool(result["expect"]) else "MISMATCH"
    return f"{verdict:8} {result['source']:>12} -> {str(result['target']):<12} {where:<28} expected {expected:<7} observed {observed:<7} ({result['why']})"


def matrix(results: list[dict]) -> list[str]:
    header = f"{'verdict':8} {'from':>12} -> {'to':<12} {'address':<28} expected/observed (why)"
    return [header] + [describe(r) for r in results]


def mismatches(results: list[dict]) -> list[dict]:
    return [dict(r, line=describe(r)) for r in results if bool(r.get("observed")) != bool(r["expect"])]


def _node_id(text: str) -> str:
    """A Mermaid node id: letters, digits and '_' only."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def mermaid(plan: dict, host: str, address: str | None = None, probe: str | None = None, probe_address: str | None = None) -> str:
    """A Mermaid flowchart of one host's deployment (bridges, endpoints, published ports)."""
    lines = ["flowchart LR"]
    host_id = _node_id(host)
    if probe:
        lines.append(f'  {_node_id(probe)}["{probe}<br/>{probe_address or ""}"] --- lan(("lab LAN"))')
        lines.append(f'  lan --- {host_id}_lan["{host} ens160<br/>{address or ""}"]')
    lines.append(f'  subgraph {host_id}["host {host}"]')
    for net in plan["networks"]:
        flags = [] if net["icc"] else ["icc off"]
        flags += ["internal"] if net["internal"] else []
        extra = f"<br/>{', '.join(flags)}" if flags else ""
        lines.append(f'    {_node_id(net["bridge"])}["{net["bridge"]}<br/>{net["gateway"]}<br/>network {net["name"]}{extra}"]')
    for ep in plan["endpoints"]:
        node = "ep_" + _node_id(ep["name"])
        addrs = "<br/>".join(f"eth{i} {ip}" for i, ip in enumerate(ep["networks"].values()))
        lines.append(f'    {node}["{ep["name"]}<br/>{addrs}"]')
        for net_name in ep["networks"]:
            bridge = next(n["bridge"] for n in plan["networks"] if n["name"] == net_name)
            lines.append(f"    {node} --- {_node_id(bridge)}")
    lines.append("  end")
    for port in plan["ports"]:
        node = "ep_" + _node_id(next(e["name"] for e in plan["endpoints"] if port["container_ip"] in e["networks"].values()))
        lines.append(f'  {host_id}_lan -. "-p {port.get("publish", port.get("host_port"))}" .-> {node}')
    return "\n".join(lines) + "\n"


def tree(plan: dict, host: str, address: str | None = None) -> list[str]:
    """The same picture as a text tree for the terminal."""
    out = [f"{host} ({address})" if address else host]
    nets = plan["networks"]
    for i, net in enumerate(nets):
        last_net = i == len(nets) - 1
        flags = ("" if net["icc"] else ", icc off") + (", internal" if net["internal"] else "")
        out.append(f"{'└──' if last_net else '├──'} {net['bridge']} {net['gateway']} [{net['name']} {net['subnet']}{flags}]")
        members = [e for e in plan["endpoints"] if net["name"] in e["networks"]]
        for j, ep in enumerate(members):
            pipe = "    " if last_net else "│   "
            ports = [p.get("publish", p.get("host_port")) for p in plan["ports"] if p["container_ip"] == ep["networks"][net["name"]]]
            suffix = f"  -p {', '.join(map(str, ports))}" if ports else ""
            out.append(f"{pipe}{'└──' if j == len(members) - 1 else '├──'} {ep['name']} {ep['networks'][net['name']]}{suffix}")
    return out
