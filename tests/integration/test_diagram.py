"""``playbooks/diagram.yml``: the topology picture of an inventory, written on the controller and
rendered with Graphviz. Offline (the hosts are never contacted), so no lab is needed.

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
    endpoints = [{"name": "web", "network": "usernet", "ports": ["8080:80", "[::1]:9000:9000", "127.0.0.1:9001:9001",
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
    assert {"-p 8080:80", "-p [::1]:9000:9000", "-p 127.0.0.1:9001:9001", "-p 8443:443", "from 192.0.2.0/24, 2001:db8::/64"} <= labels, labels
