# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Pictures of deployment plans: a Mermaid flowchart and a text tree of one host, a Graphviz
digraph of several. Pure."""

from __future__ import annotations

import re

from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError


def _node_id(text: str) -> str:
    """A Mermaid node id: letters, digits and '_' only."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


class _Ids:
    """Mermaid node ids of one chart: a name's plain id, or, when another name already took it
    (``web-1`` and ``web.1`` both read ``web_1``), that id with the first free ``_2``, ``_3``, ..."""

    def __init__(self) -> None:
        self.given: dict[tuple[str, str], str] = {}
        self.taken: set[str] = set()

    def __call__(self, kind: str, name: str, prefix: str = "") -> str:
        key = (kind, name)
        if key not in self.given:
            base = prefix + _node_id(name)
            node, n = base, 1
            while node in self.taken or node + "_address" in self.taken:
                n += 1
                node = f"{base}_{n}"
            self.taken.add(node)
            self.given[key] = node
        return self.given[key]


def _owner(plan: dict, container_ip: str) -> str | None:
    """The endpoint a mapping points at, by its IPv4 or IPv6 address (None: no endpoint has it)."""
    return next((e["name"] for e in plan["endpoints"]
                 if container_ip in (*e["networks"].values(), *e.get("networks6", {}).values())), None)


def _published(port: dict) -> str:
    """What a mapping's ``-p`` says: its publish string as given, or its fields (a port given as
    fields, a mapping gathered from the rules) written as one, ``[2001:db8::1]:8080:80/udp``. The
    host address is part of it, an IPv6 one in brackets as Docker writes it, so that an IPv6-only
    mapping does not read as one on every address, and one host port published on 127.0.0.1 and on
    [2001:db8::1] stays two texts (the pictures say each text once)."""
    if port.get("publish"):
        return str(port["publish"])
    host_ip = str(port.get("host_ip") or "")
    if ":" in host_ip and not host_ip.startswith("["):
        host_ip = f"[{host_ip}]"
    container_port = port.get("container_port")
    host_port = port.get("host_port") if port.get("host_port") not in (None, "") else container_port  # port_mapping's default
    protocol = port.get("protocol") or "tcp"
    return (f"{host_ip}:" if host_ip else "") + f"{host_port}:{container_port}" + ("" if protocol == "tcp" else f"/{protocol}")


def _subnets(net: dict) -> str:
    """A network's subnet, and its IPv6 subnet when dual-stack."""
    return f"{net['subnet']} {net['subnet6']}" if net.get("subnet6") else net["subnet"]


def _addresses(ep: dict, net_name: str) -> str:
    """An endpoint's address on a network, and its IPv6 address there when it has one."""
    six = ep.get("networks6", {}).get(net_name)
    return f"{ep['networks'][net_name]} {six}" if six else ep["networks"][net_name]


def mermaid(plan: dict, host: str, address: str | None = None, probe: str | None = None, probe_address: str | None = None) -> str:
    """A Mermaid flowchart of one host's deployment: its address, bridges, endpoints and published
    ports, and optionally a probe host that reaches the host from outside."""
    lines = ["flowchart LR"]
    ids = _Ids()
    host_id = ids("host", host)
    # The host's own address: where published ports arrive and what a probe host talks to.
    outside = f"{host_id}_address"
    ids.taken.add(outside)
    lines.append(f'  subgraph {host_id}["host {host}"]')
    if address or probe or plan["port_mapping"]:
        lines.append(f'    {outside}(["{address or host}"])')
    for net in plan["networks"]:
        flags = [] if net["icc"] else ["icc off"]
        flags += ["internal"] if net["internal"] else []
        extra = f"<br/>{', '.join(flags)}" if flags else ""
        lines.append(f'    {ids("bridge", net["bridge"])}["{net["bridge"]}<br/>{net["gateway"]}<br/>network {net["name"]} {_subnets(net)}{extra}"]')
    for ep in plan["endpoints"]:
        node = ids("endpoint", ep["name"], "ep_")
        addrs = "<br/>".join(f"eth{i} {_addresses(ep, name)}" for i, name in enumerate(ep["networks"]))
        lines.append(f'    {node}["{ep["name"]}<br/>{addrs}"]')
        for net_name in ep["networks"]:
            bridge = next(n["bridge"] for n in plan["networks"] if n["name"] == net_name)
            lines.append(f"    {node} --- {ids('bridge', bridge)}")
    lines.append("  end")
    if probe:
        lines.append(f'  {ids("probe", probe)}["{probe}<br/>{probe_address or ""}"] --- {outside}')
    for port in plan["port_mapping"]:
        owner = _owner(plan, port["container_ip"])
        if owner is None:
            continue  # a mapping to an address no endpoint of the plan has: nothing to point at
        # a dual-stack endpoint's port has a mapping per family: one edge
        edge = f'  {outside} -. "-p {_published(port)}" .-> {ids("endpoint", owner, "ep_")}'
        if edge not in lines:
            lines.append(edge)
    return "\n".join(lines) + "\n"


def tree(plan: dict, host: str, address: str | None = None) -> list[str]:
    """The same picture as a text tree for the terminal."""
    out = [f"{host} ({address})" if address else host]
    nets = plan["networks"]
    for i, net in enumerate(nets):
        last_net = i == len(nets) - 1
        flags = ("" if net["icc"] else ", icc off") + (", internal" if net["internal"] else "")
        out.append(f"{'└──' if last_net else '├──'} {net['bridge']} {net['gateway']} [{net['name']} {_subnets(net)}{flags}]")
        members = [e for e in plan["endpoints"] if net["name"] in e["networks"]]
        for j, ep in enumerate(members):
            pipe = "    " if last_net else "│   "
            # its mappings on this network by its IPv4 or IPv6 address there; a port published on
            # both families is one mapping per family: said once
            here = (ep["networks"][net["name"]], ep.get("networks6", {}).get(net["name"]))
            ports = list(dict.fromkeys(_published(p) for p in plan["port_mapping"] if p["container_ip"] in here))
            suffix = f"  -p {', '.join(ports)}" if ports else ""
            out.append(f"{pipe}{'└──' if j == len(members) - 1 else '├──'} {ep['name']} {_addresses(ep, net['name'])}{suffix}")
    return out


# ------------------------------------------------------------------------------ Graphviz DOT

# Colours of the DOT picture: bridges blue, internal networks grey (no way out), endpoints yellow,
# published ports orange.
_STYLE = {
    "bridge": 'shape=box, style="rounded,filled", fillcolor="#dbe9f6", color="#2f6f9f"',
    "internal": 'shape=box, style="rounded,filled,dashed", fillcolor="#eeeeee", color="#777777"',
    "endpoint": 'shape=box, style="rounded,filled", fillcolor="#fff4d6", color="#a07a1e"',
    "address": 'shape=ellipse, style=filled, fillcolor="#ffffff", color="#444444"',
    "probe": 'shape=box, style=filled, fillcolor="#ffffff", color="#444444"',
}


def _quote(text: str) -> str:
    """A DOT double-quoted string; its lines joined with DOT's centred line break."""
    return '"' + "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in str(text).split("\n")) + '"'


def _check_hosts(hosts: object) -> list[dict]:
    """The hosts of dot(), or ValidationError naming the field."""
    if not isinstance(hosts, list):
        raise ValidationError(f"hosts: must be a list of {{host, plan, address}}, got {type(hosts).__name__}")
    for i, item in enumerate(hosts):
        if not isinstance(item, dict) or not isinstance(item.get("host"), str) or not item["host"]:
            raise ValidationError(f"hosts[{i}].host: every item needs the host's name")
        plan = item.get("plan")
        if not isinstance(plan, dict) or not all(isinstance(plan.get(k), list) for k in ("networks", "endpoints", "port_mapping")):
            raise ValidationError(f"hosts[{i}].plan: must be a plan of the linuxnet.bridge.deployment filter")
    names = [item["host"] for item in hosts]
    for name in names:
        if names.count(name) > 1:
            raise ValidationError(f"hosts: host {name!r} is given more than once")
    return hosts


def dot(hosts: list[dict], probe: str | None = None, probe_address: str | None = None) -> str:
    """A Graphviz digraph of the deployment of several hosts (``[{host, plan, address}]``): one
    cluster per host with its address, bridges and endpoints; routed (non-internal) bridges hang
    off the host's address, published ports are dashed edges from the address to their endpoint,
    and an optional probe host sits on the hosts' LAN. Node ids are quoted paths, so no two names
    can collide. Render with ``dot -Tsvg``."""
    lines = [
        "digraph linuxnet {",
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=11, nodesep=0.25, ranksep=0.9];',
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9, color="#555555", arrowhead=none];',
    ]
    hosts = _check_hosts(hosts)
    if probe:
        label = f"{probe}\n{probe_address}" if probe_address else probe
        lines.append(f"  {_quote('probe/' + probe)} [label={_quote(label)}, {_STYLE['probe']}];")
    for index, item in enumerate(hosts):
        host, plan, address = item["host"], item["plan"], item.get("address") or None
        node = {"address": _quote(f"{host}/address")}
        node.update({f"bridge/{n['name']}": _quote(f"{host}/bridge/{n['bridge']}") for n in plan["networks"]})
        node.update({f"endpoint/{e['name']}": _quote(f"{host}/endpoint/{e['name']}") for e in plan["endpoints"]})
        lines.append(f"  subgraph {_quote(f'cluster_{index}')} {{")
        lines.append(f'    label={_quote(host)}; style="rounded"; color="#888888"; fontsize=12;')
        lines.append(f"    {node['address']} [label={_quote(address or host)}, {_STYLE['address']}];")
        for net in plan["networks"]:
            flags = (["internal"] if net["internal"] else []) + ([] if net["icc"] else ["icc off"])
            label = f"{net['bridge']} {net['gateway']}\nnetwork {net['name']} {_subnets(net)}" + (f"\n{', '.join(flags)}" if flags else "")
            style = _STYLE["internal" if net["internal"] else "bridge"]
            lines.append(f"    {node['bridge/' + net['name']]} [label={_quote(label)}, {style}];")
        for ep in plan["endpoints"]:
            label = "\n".join([ep["name"]] + ([f"eth{i} {_addresses(ep, name)}" for i, name in enumerate(ep["networks"])] or [f"mode {ep.get('mode')}"]))
            lines.append(f"    {node['endpoint/' + ep['name']]} [label={_quote(label)}, {_STYLE['endpoint']}];")
        # The host routes to its bridges; an internal network has no way out (an invisible edge only places it).
        for net in plan["networks"]:
            attrs = "style=invis" if net["internal"] else 'color="#2f6f9f"'
            lines.append(f"    {node['address']} -> {node['bridge/' + net['name']]} [{attrs}];")
        for ep in plan["endpoints"]:
            for i, net_name in enumerate(ep["networks"]):
                lines.append(f"    {node['bridge/' + net_name]} -> {node['endpoint/' + ep['name']]} [label={_quote(f'eth{i}')}];")
        lines.append("  }")
        if probe:
            lines.append(f"  {_quote('probe/' + probe)} -> {node['address']};")
        # One edge per endpoint and -p: a dual-stack port has a mapping per family (each with its
        # family's sources), drawn as one edge from both families' sources.
        edges: dict[tuple[str, str], list[str]] = {}
        for port in plan["port_mapping"]:
            owner = _owner(plan, port["container_ip"])
            if owner is None:
                continue  # a mapping to an address no endpoint of the plan has: nothing to point at
            sources = edges.setdefault((owner, _published(port)), [])
            sources += [s for s in port.get("sources") or [] if s not in sources]
        for (owner, published), sources in edges.items():
            label = f"-p {published}" + (f"\nfrom {', '.join(sources)}" if sources else "")
            lines.append(f"  {node['address']} -> {node['endpoint/' + owner]} "
                         f'[label={_quote(label)}, style=dashed, color="#d9822b", fontcolor="#a05a10", arrowhead=normal];')
    lines.append("}")
    return "\n".join(lines) + "\n"
