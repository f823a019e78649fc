"""``_diagram``: ``tree`` and ``mermaid`` of one host's plan, ``dot`` of several (pure; no root, no kernel).

Rendering with Graphviz: tests/integration/test_diagram.py.

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_diagram.py -q``
"""

from __future__ import annotations

import re

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils._diagram import dot, mermaid, tree
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError

from .fixtures.topology import (
    BRIDGE,
    REACH_ENDPOINTS,
    REACH_NETWORKS,
    USERNET,
    plan,
)

# --------------------------------------------------------------------------------- pictures


def test_tree():
    p = plan(REACH_NETWORKS, REACH_ENDPOINTS)
    lines = tree(p, "linuxnet1", "172.16.211.128")
    assert lines == [
        "linuxnet1 (172.16.211.128)",
        "├── docker0 172.17.0.1 [bridge 172.17.0.0/16]",
        "│   ├── b1 172.17.0.2",
        "│   └── b2 172.17.0.3  -p 172.16.211.128:81:80",
        "├── br-usernet 172.18.0.1 [usernet 172.18.0.0/16, icc off]",
        "│   ├── u1 172.18.0.2",
        "│   └── u2 172.18.0.3  -p 8080:80, 5353:53/udp, 127.0.0.1:9000:9000, 0.0.0.0:8443:443",
        "├── br-backnet 10.30.0.1 [backnet 10.30.0.0/24]",
        "│   └── k1 10.30.0.2  -p 7000-7001:7000-7001",  # given as fields: written as -p
        "└── br-privnet 10.40.0.1 [privnet 10.40.0.0/24, internal]",
        "    ├── k1 10.40.0.2",
        "    └── p1 10.40.0.3",
    ]
    assert tree(plan([], []), "h") == ["h"]


def _mermaid_ids(text: str) -> tuple[set[str], set[str]]:
    """(declared node ids, ids used in edges) of the flowchart text mermaid() writes."""
    declared, used = set(), set()
    for line in text.splitlines()[1:]:
        line = line.strip()
        if line == "end":
            continue
        if line.startswith("subgraph "):
            declared.add(re.match(r"subgraph (\S+?)\[", line).group(1))
            continue
        if " --- " in line or " .-> " in line:
            for part in re.split(r" --- | -\. \"[^\"]*\" \.-> ", line):
                node = re.match(r"([^\[\(\s]+)", part).group(1)
                used.add(node)
                if "[" in part or "(" in part:
                    declared.add(node)
            continue
        declared.add(re.match(r"([^\[\(\s]+)[\[\(]", line).group(1))
    return declared, used


def test_mermaid():
    p = plan(REACH_NETWORKS, REACH_ENDPOINTS)
    text = mermaid(p, "linuxnet1", "172.16.211.128", "outside", "172.16.211.1")
    lines = text.splitlines()
    assert text.endswith("\n") and lines[0] == "flowchart LR"
    assert lines.count('  subgraph linuxnet1["host linuxnet1"]') == 1 and lines.count("  end") == 1
    assert '    ep_k1 --- br_backnet' in lines and '    ep_k1 --- br_privnet' in lines
    assert '    ep_k1["k1<br/>eth0 10.30.0.2<br/>eth1 10.40.0.2"]' in lines
    assert '    br_usernet["br-usernet<br/>172.18.0.1<br/>network usernet 172.18.0.0/16<br/>icc off"]' in lines
    assert '    linuxnet1_address(["172.16.211.128"])' in lines
    assert '  outside["outside<br/>172.16.211.1"] --- linuxnet1_address' in lines
    assert '  linuxnet1_address -. "-p 172.16.211.128:81:80" .-> ep_b2' in lines
    assert '  linuxnet1_address -. "-p 7000-7001:7000-7001" .-> ep_k1' in lines
    declared, used = _mermaid_ids(text)
    assert used <= declared, used - declared
    assert all(re.fullmatch(r"\w+", node) for node in declared), declared


def test_mermaid_of_a_host_without_probe_or_address():
    """A real inventory may give neither: the host's name stands for its address, nothing else is drawn."""
    text = mermaid(plan(REACH_NETWORKS, REACH_ENDPOINTS), "edge1.example.net")
    assert '    edge1_example_net_address(["edge1.example.net"])' in text.splitlines()
    assert " --- edge1_example_net_address" not in text
    declared, used = _mermaid_ids(text)
    assert used <= declared, used - declared
    text = mermaid(plan([BRIDGE], [{"name": "a", "network": "bridge"}]), "h")
    assert text == 'flowchart LR\n  subgraph h["host h"]\n    docker0["docker0<br/>172.17.0.1<br/>network bridge 172.17.0.0/16"]\n' \
                   '    ep_a["a<br/>eth0 172.17.0.2"]\n    ep_a --- docker0\n  end\n'


def test_mermaid_node_ids_of_unusual_names():
    """Names may contain '.', '@' (a bridge), '_' and '-': every id in the chart is declared and plain."""
    networks = [{"name": "front.end", "subnet": "10.1.0.0/24", "bridge": "br.front@1"}, BRIDGE]
    endpoints = [{"name": "web.v2", "network": "front.end", "ports": ["81:80"]}, {"name": "db_1", "networks": ["bridge", "front.end"]},
                 {"name": "app-1", "network": "bridge", "ports": ["82:80"]}]
    text = mermaid(plan(networks, endpoints), "edge1.example.net", "192.0.2.10", "probe-1", "192.0.2.1")
    declared, used = _mermaid_ids(text)
    assert used <= declared, f"{used - declared} used but never declared:\n{text}"
    assert all(re.fullmatch(r"\w+", node) for node in declared), f"{declared}\n{text}"
    assert '"-p 81:80" .-> ep_web_v2' in text and '"-p 82:80" .-> ep_app_1' in text


# --------------------------------------------------------------------------------- Graphviz

_ID = r'"(?:[^"\\]|\\.)*"'  # a DOT double-quoted string


def _dot_ids(text: str) -> tuple[set[str], set[str]]:
    """(declared node ids, ids used in edges) of the digraph text dot() writes."""
    declared, used = set(), set()
    for line in text.splitlines():
        edge = re.match(rf"\s*({_ID}) -> ({_ID})", line)
        if edge:
            used.update(edge.groups())
            continue
        node = re.match(rf"\s*({_ID}) \[label=", line)
        if node:
            declared.add(node.group(1))
    return declared, used


def _hosts() -> list[dict]:
    sources = [{"name": "s", "network": "usernet", "ports": [{"publish": "8443:443", "sources": ["192.0.2.0/24", "198.51.100.7"]}]}]
    return [
        {"host": "edge1.example.net", "address": "192.0.2.11", "plan": plan(REACH_NETWORKS, REACH_ENDPOINTS)},
        {"host": "edge2.example.net", "plan": plan([BRIDGE, USERNET], sources)},
    ]


def test_dot():
    text = dot(_hosts(), "monitor.example.net", "192.0.2.50")
    lines = text.splitlines()
    assert text.endswith("\n") and lines[0] == "digraph linuxnet {" and lines[-1] == "}"
    assert lines.count('  subgraph "cluster_0" {') == 1 and lines.count('  subgraph "cluster_1" {') == 1
    assert '    label="edge1.example.net"; style="rounded"; color="#888888"; fontsize=12;' in lines
    # the address is the node published ports and the probe reach; without one, the host's name
    assert any(line.startswith('    "edge1.example.net/address" [label="192.0.2.11", shape=ellipse') for line in lines)
    assert any(line.startswith('    "edge2.example.net/address" [label="edge2.example.net", shape=ellipse') for line in lines)
    assert any(line.startswith('  "probe/monitor.example.net" [label="monitor.example.net\\n192.0.2.50", ') for line in lines)
    assert '  "probe/monitor.example.net" -> "edge1.example.net/address";' in lines
    assert '  "probe/monitor.example.net" -> "edge2.example.net/address";' in lines
    # bridges: gateway, network, subnet, flags; an internal one is not routed from the address
    assert any(line.startswith('    "edge1.example.net/bridge/br-usernet" [label="br-usernet 172.18.0.1\\n'
                               'network usernet 172.18.0.0/16\\nicc off", shape=box') for line in lines)
    assert '    "edge1.example.net/address" -> "edge1.example.net/bridge/docker0" [color="#2f6f9f"];' in lines
    assert '    "edge1.example.net/address" -> "edge1.example.net/bridge/br-privnet" [style=invis];' in lines
    # endpoints: one edge per interface, in eth order; none and host mode say so
    assert '    "edge1.example.net/bridge/br-backnet" -> "edge1.example.net/endpoint/k1" [label="eth0"];' in lines
    assert '    "edge1.example.net/bridge/br-privnet" -> "edge1.example.net/endpoint/k1" [label="eth1"];' in lines
    assert any(line.startswith('    "edge1.example.net/endpoint/k1" [label="k1\\neth0 10.30.0.2\\neth1 10.40.0.2", ') for line in lines)
    assert any(line.startswith('    "edge1.example.net/endpoint/h1" [label="h1\\nmode host", ') for line in lines)
    assert any(line.startswith('    "edge1.example.net/endpoint/n1" [label="n1\\nmode none", ') for line in lines)
    # published ports: dashed arrows from the host's address, with their sources
    ports = [line for line in lines if "style=dashed" in line]
    assert len(ports) == 7, ports
    assert any(line.startswith('  "edge1.example.net/address" -> "edge1.example.net/endpoint/k1" [label="-p 7000-7001:7000-7001", ') for line in ports)
    assert any(line.startswith('  "edge2.example.net/address" -> "edge2.example.net/endpoint/s" '
                               '[label="-p 8443:443\\nfrom 192.0.2.0/24, 198.51.100.7/32", ') for line in ports)
    declared, used = _dot_ids(text)
    assert used <= declared, used - declared
    assert dot(_hosts(), "monitor.example.net", "192.0.2.50") == text  # deterministic


def test_dot_without_probe_and_of_no_host():
    text = dot(_hosts()[1:])
    assert "probe/" not in text
    declared, used = _dot_ids(text)
    assert used <= declared, used - declared
    assert dot([]).splitlines()[-1] == "}" and "cluster" not in dot([])


def test_dot_ids_cannot_collide_and_are_escaped():
    """Mermaid's ids fold '.', '-' and '_' together; DOT's are quoted paths, so these stay apart."""
    networks = [{"name": "a-b", "subnet": "10.1.0.0/24", "bridge": "br-a-b"}, {"name": "a_b", "subnet": "10.2.0.0/24", "bridge": "br-a_b"}]
    endpoints = [{"name": "x-y", "network": "a-b"}, {"name": "x_y", "network": "a_b"}]
    text = dot([{"host": 'odd "host" \\ name', "plan": plan(networks, endpoints)}])
    declared, used = _dot_ids(text)
    assert used <= declared and len(declared) == 5, declared
    assert '"odd \\"host\\" \\\\ name/endpoint/x-y"' in declared


@pytest.mark.parametrize("hosts, message", [
    ({"host": "h"}, "hosts: must be a list"),
    ([{"plan": {}}], "hosts[0].host: every item needs the host's name"),
    ([{"host": "h", "plan": {"networks": []}}], "hosts[0].plan: must be a plan of the linuxnet.bridge.deployment filter"),
    ([{"host": "h", "plan": plan([], [])}, {"host": "h", "plan": plan([], [])}], "hosts: host 'h' is given more than once"),
])
def test_dot_rejects(hosts, message):
    with pytest.raises(ValidationError) as err:
        dot(hosts)
    assert str(err.value).startswith(message), str(err.value)


def test_pictures_show_the_ipv6_subnet_and_addresses_of_a_dual_stack_network():
    dual = {**USERNET, "subnet6": "fd00:18::/64"}
    p = plan([BRIDGE, dual], [{"name": "d1", "networks": [{"name": "usernet", "address6": "fd00:18::5"}]},
                              {"name": "d2", "network": "bridge"}])
    lines = tree(p, "h")
    assert any("[usernet 172.18.0.0/16 fd00:18::/64" in line for line in lines), lines
    assert any(line.endswith("d1 172.18.0.2 fd00:18::5") for line in lines), lines
    assert any(line.endswith("d2 172.17.0.2") for line in lines), lines  # IPv4-only: one address
    assert "network usernet 172.18.0.0/16 fd00:18::/64" in mermaid(p, "h")
    assert "eth0 172.18.0.2 fd00:18::5" in mermaid(p, "h")
    picture = dot([{"host": "h", "plan": p}])
    assert "network usernet 172.18.0.0/16 fd00:18::/64" in picture and "eth0 172.18.0.2 fd00:18::5" in picture


def test_mermaid_of_a_dual_stack_endpoint_with_a_published_port():
    """The IPv6 mapping of a dual-stack endpoint's port points at its IPv6 address: found, one edge."""
    dual = {**USERNET, "subnet6": "fd00:18::/64"}
    p = plan([dual], [{"name": "web", "network": "usernet", "ports": ["8080:80"]}])
    assert {":" in m["container_ip"] for m in p["port_mapping"]} == {False, True}
    text = mermaid(p, "h", "192.0.2.10")
    assert text.splitlines().count('  h_address -. "-p 8080:80" .-> ep_web') == 1, text
    only6 = dict(p, port_mapping=[m for m in p["port_mapping"] if ":" in m["container_ip"]])
    assert '  h_address -. "-p 8080:80" .-> ep_web' in mermaid(only6, "h")
    stray = dict(p, port_mapping=[dict(p["port_mapping"][0], container_ip="172.18.9.9")])
    assert ".->" not in mermaid(stray, "h")  # no endpoint has that address: nothing drawn, no crash


def test_mermaid_node_ids_of_names_that_read_alike_stay_distinct():
    """web-1, web.1 and web_1 all read web_1; bridges, the host and endpoints share one id space."""
    networks = [{"name": "n", "subnet": "10.1.0.0/24", "bridge": "ep_web_1"}, {"name": "m", "subnet": "10.2.0.0/24", "bridge": "h"}]
    endpoints = [{"name": "web-1", "network": "n", "ports": ["81:80"]}, {"name": "web.1", "network": "n", "ports": ["82:80"]},
                 {"name": "web_1", "networks": ["n", "m"]}]
    text = mermaid(plan(networks, endpoints), "h", "192.0.2.10", "h_address", "192.0.2.1")
    declared, used = _mermaid_ids(text)
    assert used <= declared, f"{used - declared} used but never declared:\n{text}"
    lines = text.splitlines()
    nodes = [m.group(1) for m in map(re.compile(r'    (\w+)\["').match, lines) if m]
    assert len(nodes) == len(set(nodes)) == 2 + 3, nodes  # two bridges, three endpoints
    assert len([n for n in declared if n not in nodes]) == 3, declared  # the host, its address, the probe
    targets = {line.rsplit(" ", 1)[1] for line in lines if ".->" in line}
    assert len(targets) == 2, text  # the two ports go to two different endpoints


def _dual_stack_ports_plan() -> dict:
    """usernet dual-stack, bridge IPv4 only: ports on both families, IPv6 only, IPv4 only, with sources."""
    dual = {**USERNET, "subnet6": "fd00:18::/64"}
    return plan([dual, BRIDGE], [
        {"name": "web", "network": "usernet",
         "ports": ["8080:80", "[2001:db8::9]:9000:9000", "127.0.0.1:9001:9001", "5353:53/udp",
                   {"publish": "8443:443", "sources": ["192.0.2.0/24", "2001:db8::/64"]}]},
        {"name": "b", "networks": ["usernet", "bridge"], "ports": ["81:80"]},
        {"name": "c", "network": "bridge", "ports": ["82:80"]},
    ])


# a published port of host h in dot()'s text: its endpoint and its label (as written, DOT-escaped)
_PORT_EDGE = re.compile(r'  "h/address" -> "h/endpoint/([^"]+)" \[label="((?:[^"\\]|\\.)*)", '
                        r'style=dashed, color="#d9822b", fontcolor="#a05a10", arrowhead=normal\];')


def _port_edges(text: str) -> list[tuple[str, str]]:
    """(endpoint, label) of each dashed edge of host h in dot()'s text, in order; each is a whole port edge."""
    lines = [line for line in text.splitlines() if "style=dashed" in line]
    edges = [_PORT_EDGE.fullmatch(line) for line in lines]
    assert all(edges), lines
    return [edge.groups() for edge in edges]


def test_tree_of_dual_stack_ports():
    """IPv6 mappings count (an IPv6-only one is shown); a port on both families is said once."""
    p = _dual_stack_ports_plan()
    assert [m["container_ip"] for m in p["port_mapping"] if m["publish"] == "[2001:db8::9]:9000:9000"] == ["fd00:18::2"]
    assert tree(p, "h", "192.0.2.10") == [
        "h (192.0.2.10)",
        "├── br-usernet 172.18.0.1 [usernet 172.18.0.0/16 fd00:18::/64]",
        "│   ├── web 172.18.0.2 fd00:18::2  -p 8080:80, [2001:db8::9]:9000:9000, 127.0.0.1:9001:9001, 5353:53/udp, 8443:443",
        "│   └── b 172.18.0.3 fd00:18::3  -p 81:80",
        "└── docker0 172.17.0.1 [bridge 172.17.0.0/16]",
        "    ├── b 172.17.0.2",
        "    └── c 172.17.0.3  -p 82:80",
    ]
    only6 = dict(p, port_mapping=[m for m in p["port_mapping"] if ":" in m["container_ip"]])
    assert tree(only6, "h")[2] == "│   ├── web 172.18.0.2 fd00:18::2  -p 8080:80, [2001:db8::9]:9000:9000, 5353:53/udp, 8443:443"


def test_dot_of_dual_stack_ports():
    """One dashed edge per endpoint and -p, as mermaid() draws: IPv6 mappings found by the endpoint's
    IPv6 address, a port on both families drawn once with both families' sources."""
    p = _dual_stack_ports_plan()
    text = dot([{"host": "h", "address": "192.0.2.10", "plan": p}])
    assert _port_edges(text) == [
        ("web", "-p 8080:80"),
        ("web", "-p [2001:db8::9]:9000:9000"),
        ("web", "-p 127.0.0.1:9001:9001"),
        ("web", "-p 5353:53/udp"),
        ("web", "-p 8443:443\\nfrom 192.0.2.0/24, 2001:db8::/64"),
        ("b", "-p 81:80"),
        ("c", "-p 82:80"),
    ]
    # mermaid() draws the same ports
    arrows = [line.split('"')[1] for line in mermaid(p, "h", "192.0.2.10").splitlines() if ".->" in line]
    assert arrows == ["-p 8080:80", "-p [2001:db8::9]:9000:9000", "-p 127.0.0.1:9001:9001", "-p 5353:53/udp", "-p 8443:443", "-p 81:80", "-p 82:80"]
    declared, used = _dot_ids(text)
    assert used <= declared, used - declared
    stray = dict(p, port_mapping=[dict(p["port_mapping"][1], container_ip="fd00:18::99")])
    assert "style=dashed" not in dot([{"host": "h", "plan": stray}])  # no endpoint has that address: nothing drawn


def _ipv6_port_fields_plan() -> dict:
    """A dual-stack endpoint whose ports are given as fields (as linuxnet_endpoints and port_mapping's
    config allow) next to a -p string: IPv6 host addresses, and host port 9000 on an IPv4 and an IPv6
    address (two mappings the pictures once told apart by host port only: one was drawn)."""
    dual = {**USERNET, "subnet6": "fd00:18::/64"}
    return plan([dual], [{"name": "web", "network": "usernet", "ports": [
        "[::]:8080:80",
        {"host_ip": "127.0.0.1", "host_port": 9000, "container_port": 9000},
        {"host_ip": "2001:db8::1", "host_port": 9000, "container_port": 9000},
        {"host_ip": "::", "host_port": "5353", "container_port": "53", "protocol": "udp"},
        {"container_port": 81},  # no host address: both families; no host port: the container port's
        {"host_ip": "2001:db8::1", "host_port": 8443, "container_port": 443, "sources": ["2001:db8:1::/48"]},
    ]}])


def test_tree_of_ipv6_port_fields():
    """Fields are written as Docker's -p, an IPv6 host address in brackets, as a -p string shows it."""
    p = _ipv6_port_fields_plan()
    assert [m["container_ip"] for m in p["port_mapping"]] == ["fd00:18::2", "172.18.0.2", "fd00:18::2", "fd00:18::2",
                                                              "172.18.0.2", "fd00:18::2", "fd00:18::2"]
    assert tree(p, "h", "192.0.2.10") == [
        "h (192.0.2.10)",
        "└── br-usernet 172.18.0.1 [usernet 172.18.0.0/16 fd00:18::/64]",
        "    └── web 172.18.0.2 fd00:18::2  -p [::]:8080:80, 127.0.0.1:9000:9000, [2001:db8::1]:9000:9000, "
        "[::]:5353:53/udp, 81:81, [2001:db8::1]:8443:443",
    ]
    only6 = dict(p, port_mapping=[m for m in p["port_mapping"] if ":" in m["container_ip"]])
    assert tree(only6, "h")[2] == ("    └── web 172.18.0.2 fd00:18::2  -p [::]:8080:80, [2001:db8::1]:9000:9000, "
                                   "[::]:5353:53/udp, 81:81, [2001:db8::1]:8443:443")


def test_dot_of_ipv6_port_fields():
    """One dashed edge per -p, its label quoted for DOT (brackets and colons need no escape, the
    sources' line break is DOT's \\n); an IPv6 host address is the address node's label."""
    p = _ipv6_port_fields_plan()
    text = dot([{"host": "h", "address": "2001:db8::10", "plan": p}])
    assert _port_edges(text) == [
        ("web", "-p [::]:8080:80"),
        ("web", "-p 127.0.0.1:9000:9000"),
        ("web", "-p [2001:db8::1]:9000:9000"),
        ("web", "-p [::]:5353:53/udp"),
        ("web", "-p 81:81"),
        ("web", "-p [2001:db8::1]:8443:443\\nfrom 2001:db8:1::/48"),
    ]
    assert any(line.startswith('    "h/address" [label="2001:db8::10", shape=ellipse') for line in text.splitlines()), text
    declared, used = _dot_ids(text)
    assert used <= declared, used - declared
    # mermaid() labels its arrows the same way
    arrows = [line.split('"')[1] for line in mermaid(p, "h").splitlines() if ".->" in line]
    assert arrows == ["-p [::]:8080:80", "-p 127.0.0.1:9000:9000", "-p [2001:db8::1]:9000:9000", "-p [::]:5353:53/udp",
                      "-p 81:81", "-p [2001:db8::1]:8443:443"]


def test_pictures_of_gathered_port_mappings():
    """Mappings as port_mapping's state=gathered reads them back from the rules (no publish; no host
    address: None; ports as text) draw as the planned ones: a port on both families once."""
    p = _ipv6_port_fields_plan()
    common = {"bridge": "br-usernet", "network": "usernet", "sources": None}
    gathered = [
        {"host_ip": None, "host_port": "8080", "protocol": "tcp", "container_ip": "172.18.0.2", "container_port": "80", **common},
        {"host_ip": None, "host_port": "8080", "protocol": "tcp", "container_ip": "fd00:18::2", "container_port": "80", **common},
        {"host_ip": "2001:db8::1", "host_port": "8081-8082", "protocol": "sctp", "container_ip": "fd00:18::2",
         "container_port": "81-82", **dict(common, sources=["2001:db8:1::/48"])},
    ]
    live = dict(p, port_mapping=gathered)
    assert tree(live, "h")[2] == "    └── web 172.18.0.2 fd00:18::2  -p 8080:80, [2001:db8::1]:8081-8082:81-82/sctp"
    assert _port_edges(dot([{"host": "h", "plan": live}])) == [
        ("web", "-p 8080:80"), ("web", "-p [2001:db8::1]:8081-8082:81-82/sctp\\nfrom 2001:db8:1::/48")]
