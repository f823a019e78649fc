# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Pictures of one host's deployment plan: a Mermaid flowchart and a text tree. Pure."""

from __future__ import annotations

import re


def _node_id(text: str) -> str:
    """A Mermaid node id: letters, digits and '_' only."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def mermaid(plan: dict, host: str, address: str | None = None, probe: str | None = None, probe_address: str | None = None) -> str:
    """A Mermaid flowchart of one host's deployment: its address, bridges, endpoints and published
    ports, and optionally a probe host that reaches the host from outside."""
    lines = ["flowchart LR"]
    host_id = _node_id(host)
    # The host's own address: where published ports arrive and what a probe host talks to.
    outside = f"{host_id}_address"
    lines.append(f'  subgraph {host_id}["host {host}"]')
    if address or probe or plan["port_mapping"]:
        lines.append(f'    {outside}(["{address or host}"])')
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
    if probe:
        lines.append(f'  {_node_id(probe)}["{probe}<br/>{probe_address or ""}"] --- {outside}')
    for port in plan["port_mapping"]:
        node = "ep_" + _node_id(next(e["name"] for e in plan["endpoints"] if port["container_ip"] in e["networks"].values()))
        lines.append(f'  {outside} -. "-p {port.get("publish", port.get("host_port"))}" .-> {node}')
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
            ports = [p.get("publish", p.get("host_port")) for p in plan["port_mapping"] if p["container_ip"] == ep["networks"][net["name"]]]
            suffix = f"  -p {', '.join(map(str, ports))}" if ports else ""
            out.append(f"{pipe}{'└──' if j == len(members) - 1 else '├──'} {ep['name']} {ep['networks'][net['name']]}{suffix}")
    return out
