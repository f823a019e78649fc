"""``_diagram``: ``tree`` and ``mermaid`` of one host's plan (pure; no root, no kernel).

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_diagram.py -q``
"""

from __future__ import annotations

import re

from ansible_collections.linuxnet.bridge.plugins.module_utils._diagram import mermaid, tree

from .fixtures.topology import (
    BRIDGE,
    REACH_ENDPOINTS,
    REACH_NETWORKS,
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
        "│   └── k1 10.30.0.2  -p 7000-7001",
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
    assert '    br_usernet["br-usernet<br/>172.18.0.1<br/>network usernet<br/>icc off"]' in lines
    assert '    linuxnet1_address(["172.16.211.128"])' in lines
    assert '  outside["outside<br/>172.16.211.1"] --- linuxnet1_address' in lines
    assert '  linuxnet1_address -. "-p 172.16.211.128:81:80" .-> ep_b2' in lines
    assert '  linuxnet1_address -. "-p 7000-7001" .-> ep_k1' in lines
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
    assert text == 'flowchart LR\n  subgraph h["host h"]\n    docker0["docker0<br/>172.17.0.1<br/>network bridge"]\n' \
                   '    ep_a["a<br/>eth0 172.17.0.2"]\n    ep_a --- docker0\n  end\n'


def test_mermaid_node_ids_of_unusual_names():
    """Names may contain '.', '@', '+' and '-': every id in the chart is declared and plain."""
    networks = [{"name": "front.end", "subnet": "10.1.0.0/24", "bridge": "br.front@1"}, BRIDGE]
    endpoints = [{"name": "web.v2", "network": "front.end", "ports": ["81:80"]}, {"name": "db+1", "networks": ["bridge", "front.end"]},
                 {"name": "app-1", "network": "bridge", "ports": ["82:80"]}]
    text = mermaid(plan(networks, endpoints), "edge1.example.net", "192.0.2.10", "probe-1", "192.0.2.1")
    declared, used = _mermaid_ids(text)
    assert used <= declared, f"{used - declared} used but never declared:\n{text}"
    assert all(re.fullmatch(r"\w+", node) for node in declared), f"{declared}\n{text}"
    assert '"-p 81:80" .-> ep_web_v2' in text and '"-p 82:80" .-> ep_app_1' in text
