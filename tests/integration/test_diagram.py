"""``playbooks/diagram.yml``: the topology picture of an inventory, written on the controller and
rendered with Graphviz. Offline (the hosts are never contacted), so no lab is needed; but the last
test draws a real deployment of a lab host (root) with IPv6 published ports, from what
``linuxnet.bridge.deployment_info`` plans and ``linuxnet.bridge.port_mapping`` gathers there.

Run: ``.venv/bin/python -m pytest -p no:cacheprovider -q tests/integration/test_diagram.py </dev/null``
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.linuxnet.bridge.plugins.module_utils._diagram import dot
from ansible_collections.linuxnet.bridge.plugins.module_utils._topology import plan_deployment

from tests.integration.helpers import ADDR, ADDR6, HOST, HOSTS, res, run, sh
from tests.integration.helpers_role import GROUPS, site

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXAMPLE = REPO / "playbooks" / "inventories" / "example"
DOT = shutil.which("dot")
NEEDS_DOT = pytest.mark.skipif(DOT is None, reason="Graphviz (dot) is not installed: tests/tools/bootstrap.sh installs it")


def diagram(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), PWD=str(tmp_path), ANSIBLE_NOCOLOR="1")
    argv = [str(BIN / "ansible-playbook"), "-i", str(EXAMPLE), str(REPO / "playbooks" / "diagram.yml"), *extra]
    # stdin from /dev/null: ansible refuses a non-blocking stdin.
    return subprocess.run(argv, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)


def expected_dot() -> str:
    """The example inventory drawn by the filter directly: two hosts and the probe host."""
    group = yaml.safe_load((EXAMPLE / "group_vars" / "linuxnet_hosts.yml").read_text())
    hosts = []
    for name, address in (("edge1.example.net", "192.0.2.11"), ("edge2.example.net", "192.0.2.12")):
        endpoints = yaml.safe_load((EXAMPLE / "host_vars" / f"{name}.yml").read_text())["linuxnet_endpoints"]
        hosts.append({"host": name, "address": address, "plan": plan_deployment(group["linuxnet_networks"], endpoints, [])})
    return dot(hosts, "monitor.example.net", "192.0.2.50")


def titles(svg: str) -> set[str]:
    """The node and edge titles of a Graphviz SVG (what it drew, whatever the Graphviz version)."""
    return {html.unescape(t) for t in re.findall(r"<title>(.*?)</title>", svg)}


def recap_changed(out: str) -> int:
    return sum(int(n) for n in re.findall(r"changed=(\d+)", out))


@NEEDS_DOT
def test_picture_of_the_example_inventory(tmp_path):
    first = diagram(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    # default: topology.svg in the directory ansible-playbook was started from
    assert (tmp_path / "topology.dot").read_text() == expected_dot()
    svg = (tmp_path / "topology.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    drawn = titles(svg)
    for node in ("edge1.example.net/endpoint/proxy", "edge1.example.net/endpoint/app", "edge2.example.net/endpoint/metrics",
                 "edge2.example.net/endpoint/batch", "edge2.example.net/bridge/br-frontend", "probe/monitor.example.net"):
        assert node in drawn, sorted(drawn)
    assert "edge1.example.net/address->edge1.example.net/endpoint/proxy" in drawn  # a published port
    # no lab names in what the product draws
    assert not re.search(r"linuxnet1|outside|172\.16\.211\.", svg)
    # the README's picture is this one (same nodes and edges; layout details may differ by Graphviz version)
    assert titles((REPO / "docs" / "topology.svg").read_text()) == drawn
    # a second run writes and renders nothing
    again = diagram(tmp_path)
    assert again.returncode == 0 and recap_changed(again.stdout) == 0, again.stdout


@NEEDS_DOT
def test_png_and_check_mode(tmp_path):
    checked = diagram(tmp_path, "--check", "-e", f"linuxnet_diagram_dest={tmp_path}/t.png")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert list(tmp_path.iterdir()) == []  # check mode writes nothing
    done = diagram(tmp_path, "-e", f"linuxnet_diagram_dest={tmp_path}/t.png")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "t.dot").read_text() == expected_dot()


def test_without_graphviz_the_dot_file_and_how_to_render_it(tmp_path):
    """A controller without Graphviz gets the DOT text and the command that renders it."""
    bare = tmp_path / "bin"  # every tool of PATH but dot
    bare.mkdir()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        for tool in Path(directory).iterdir() if Path(directory).is_dir() else ():
            if tool.name != "dot" and not (bare / tool.name).exists():
                os.symlink(tool, bare / tool.name)
    env_path = str(bare)
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(EXAMPLE), str(REPO / "playbooks" / "diagram.yml"),
                             "-e", f"linuxnet_diagram_dest={out}/t.svg"], cwd=out, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, PATH=env_path, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1"),
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["t.dot"]
    assert f"render it with dot -Tsvg -o {out}/t.svg {out}/t.dot" in " ".join(result.stdout.split())  # the callback wraps lines


def test_bad_format_fails_before_writing(tmp_path):
    result = diagram(tmp_path, "-e", f"linuxnet_diagram_dest={tmp_path}/t.jpeg")
    assert result.returncode != 0
    assert "linuxnet_diagram_dest" in result.stdout and "must end with .svg, .png or .pdf" in result.stdout
    assert list(tmp_path.iterdir()) == []


@NEEDS_DOT
def test_graphviz_draws_each_port_of_a_dual_stack_endpoint_once():
    """IPv6 mappings (an IPv6-only one too) are arrows; a port on both families is one arrow."""
    network = {"name": "usernet", "subnet": "172.18.0.0/16", "subnet6": "fd00:18::/64"}
    endpoints = [{"name": "web", "network": "usernet", "ports": ["8080:80", "[2001:db8::9]:9000:9000", "127.0.0.1:9001:9001",
                                                                 {"publish": "8443:443", "sources": ["192.0.2.0/24", "2001:db8::/64"]}]}]
    plan = plan_deployment([network], endpoints, [])
    assert len(plan["port_mapping"]) == 6  # 8080 and 8443 on both families
    rendered = subprocess.run([DOT, "-Tsvg"], input=dot([{"host": "h", "address": "192.0.2.10", "plan": plan}]),
                              capture_output=True, text=True, check=False)
    assert rendered.returncode == 0, rendered.stderr
    svg = rendered.stdout
    edges = [html.unescape(t) for t in re.findall(r'class="edge">\s*<title>(.*?)</title>', svg)]
    assert edges.count("h/address->h/endpoint/web") == 4, edges
    labels = {html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", svg)}
    assert {"-p 8080:80", "-p [2001:db8::9]:9000:9000", "-p 127.0.0.1:9001:9001", "-p 8443:443", "from 192.0.2.0/24, 2001:db8::/64"} <= labels, labels


# A dual-stack endpoint with IPv6 published ports: a -p string and fields (as linuxnet_endpoints
# allows), and one host port on an IPv6 and an IPv4 address.
NETWORKS6 = [{"name": "dual", "subnet": "172.20.0.0/16", "subnet6": "fd00:20::/64"}]
ENDPOINTS6 = [{"name": "web", "network": "dual", "ports": [
    "8080:80",  # both families: one -p
    f"[{ADDR6}]:8081:80",  # IPv6 only
    {"host_ip": ADDR6, "host_port": 8082, "container_port": 82, "protocol": "udp"},  # IPv6 only, as fields
    {"host_ip": ADDR, "host_port": 8082, "container_port": 82, "protocol": "udp"},  # its host port on IPv4
]}]
PUBLISHED6 = ["8080:80", f"[{ADDR6}]:8081:80", f"[{ADDR6}]:8082:82/udp", f"{ADDR}:8082:82/udp"]


def _drawn_texts(svg: str, kind: str) -> dict[str, list[str]]:
    """The text Graphviz drew on each node or edge (``kind``) of an SVG, by its title; an edge's
    title carries its style, so the dashed ones (published ports) are told apart."""
    drawn: dict[str, list[str]] = {}
    for title, body in re.findall(rf'<g id="{kind}\d+" class="{kind}">\s*<title>(.*?)</title>(.*?)</g>', svg, flags=re.S):
        key = html.unescape(title) + (" dashed" if "stroke-dasharray" in body else "")
        drawn.setdefault(key, []).extend(html.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", body))
    return drawn


@NEEDS_DOT
@pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")
def test_pictures_of_a_lab_deployment_show_its_ipv6_published_ports(lab_factory, run_playbook):
    lab = lab_factory(HOSTS, groups=GROUPS)
    sh(lab, f"ip -6 addr add {ADDR6}/64 dev ens160 nodad")  # the host's IPv6 address on the LAN, published on
    site(run_playbook, lab, NETWORKS6, ENDPOINTS6)
    draw = {  # on the controller: both pictures of the plan, and of the plan with the mappings read back from the rules
        "planned_tree": "{{ info.plan | linuxnet.bridge.tree(inventory_hostname, address) }}",
        "planned_dot": "{{ [{'host': inventory_hostname, 'address': address, 'plan': info.plan}] | linuxnet.bridge.dot }}",
        "gathered_tree": "{{ live_plan | linuxnet.bridge.tree(inventory_hostname, address) }}",
        "gathered_dot": "{{ [{'host': inventory_hostname, 'address': address, 'plan': live_plan}] | linuxnet.bridge.dot }}",
    }
    drawn = run(run_playbook, lab,
                {"name": "plan", "linuxnet.bridge.deployment_info": {"networks": NETWORKS6, "endpoints": ENDPOINTS6},
                 "register": "info"},
                {"name": "gather", "linuxnet.bridge.port_mapping": {"state": "gathered"}, "register": "live"},
                {"name": "draw", "ansible.builtin.set_fact": draw,
                 "vars": {"address": ADDR6, "live_plan": "{{ info.plan | combine({'port_mapping': live.gathered}) }}"}})
    assert res(drawn, "plan")["pending"] == []  # the plan is the deployment the lab host has
    assert {(m.get("host_ip"), m["host_port"]) for m in res(drawn, "gather")["gathered"]} == {
        (None, "8080"), (ADDR6, "8081"), (ADDR6, "8082"), (ADDR, "8082")}
    pictures = res(drawn, "draw")["ansible_facts"]
    # tree: the planned ports in the order given, a port of both families once
    assert pictures["planned_tree"] == [
        f"{HOST} ({ADDR6})",
        "└── br-dual 172.20.0.1 [dual 172.20.0.0/16 fd00:20::/64]",
        f"    └── web 172.20.0.2 fd00:20::2  -p {', '.join(PUBLISHED6)}",
    ]
    # the mappings read back from the rules (IPv4's first): the same texts
    web, ports = pictures["gathered_tree"][2].split("  -p ")
    assert web == "    └── web 172.20.0.2 fd00:20::2" and sorted(ports.split(", ")) == sorted(PUBLISHED6), pictures["gathered_tree"]
    # dot: one dashed arrow per -p, each label drawn by Graphviz as written
    for text in (pictures["planned_dot"], pictures["gathered_dot"]):
        rendered = subprocess.run([DOT, "-Tsvg"], input=text, capture_output=True, text=True, check=False)
        assert rendered.returncode == 0 and not rendered.stderr, rendered.stderr
        edges = _drawn_texts(rendered.stdout, "edge")
        assert sorted(edges[f"{HOST}/address->{HOST}/endpoint/web dashed"]) == sorted(f"-p {p}" for p in PUBLISHED6), edges
        assert _drawn_texts(rendered.stdout, "node")[f"{HOST}/address"] == [ADDR6]
