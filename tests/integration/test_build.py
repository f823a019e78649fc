"""The collection builds into a tarball that ansible-galaxy installs, and playbooks use it by FQCN."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The tarball's top level (galaxy.yml's build_ignore keeps tests/, molecule/, bench/, the Makefile,
# developer requirements and caches out; README.md says what it holds).
TOP_LEVEL = {"CHANGELOG.md", "FILES.json", "LICENSE", "MANIFEST.json", "README.md", "bindep.txt", "changelogs", "docs",
             "meta", "playbooks", "plugins", "roles"}
SHIPPED = {"LICENSE", "bindep.txt", "changelogs/changelog.yaml", "changelogs/config.yaml", "meta/runtime.yml",
           "meta/execution-environment.yml", "meta/ee-requirements.txt", "docs/docsite/extra-docs.yml",
           "docs/docsite/links.yml", "docs/docsite/rst/docker_to_linuxnet.rst", "playbooks/site.yml",
           "playbooks/verify.yml", "playbooks/teardown.yml", "playbooks/diagram.yml", "playbooks/files/linuxnet_probe.py", "docs/topology.svg"}
FILTERS = ("deployment", "dot", "listener", "matrix", "mermaid", "mismatches", "reachability", "tree")


def run(argv: list[str], env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    # stdin from /dev/null: ansible refuses a non-blocking stdin.
    return subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)


def test_build_install_and_use_by_fqcn(tmp_path: Path) -> None:
    built = run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path / "dist"), str(REPO)])
    assert built.returncode == 0, built.stderr
    tarball = tmp_path / "dist" / "linuxnet-bridge-0.1.0.tar.gz"
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "plugins/modules/firewall.py" in names and "roles/bridge_network/tasks/main.yml" in names
    # What users run, and nothing of the lab, tests, benchmarks, developer tooling or caches.
    assert {n.split("/")[0] for n in names} == TOP_LEVEL, sorted({n.split("/")[0] for n in names} ^ TOP_LEVEL)
    assert SHIPPED <= set(names), sorted(SHIPPED - set(names))
    leaks = [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".tar.gz")) or n.startswith(("docs/build", "docs/screenshot"))]
    assert not leaks, f"build_ignore leaks: {leaks}"

    collections = tmp_path / "collections"
    # A clean configuration: the checkout's ansible.cfg would point at the working tree instead.
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "none.cfg"), ANSIBLE_COLLECTIONS_PATH=str(collections))
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    installed = run([str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(collections), str(tarball)], env=env, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    assert (collections / "ansible_collections/linuxnet/bridge/MANIFEST.json").is_file()

    playbook = tmp_path / "use.yml"
    playbook.write_text(
        """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Render Docker's default network without touching the host
      linuxnet.bridge.firewall:
        state: rendered
        chain_prefix: DOCKER
        config: [{name: bridge, bridge: docker0, subnet: 172.17.0.0/16}]
      register: rendered
    - name: The installed collection answered
      ansible.builtin.assert:
        that: "'-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP' in rendered.rendered"
    - name: Filters by FQCN
      ansible.builtin.assert:
        that: "(networks | linuxnet.bridge.deployment(endpoints)).veth | length == 1"
      vars:
        networks: [{name: bridge, subnet: 172.17.0.0/16}]
        endpoints: [{name: c1, network: bridge}]
""",
        encoding="utf-8",
    )
    cache_before = os.path.exists("/run/linuxnet/pycache")
    used = run([str(BIN / "ansible-playbook"), str(playbook)], env=env, cwd=tmp_path)
    assert used.returncode == 0, used.stdout + used.stderr
    # state=rendered touches nothing of this machine, not even the bytecode cache under /run/linuxnet
    assert cache_before or not os.path.exists("/run/linuxnet/pycache")
    assert str(collections) in run([str(BIN / "ansible-doc"), "linuxnet.bridge.veth"], env=env, cwd=tmp_path).stdout
    # One documentation per filter, each its own.
    docs = json.loads(run([str(BIN / "ansible-doc"), "--json", "-t", "filter", *(f"linuxnet.bridge.{f}" for f in FILTERS)],
                          env=env, cwd=tmp_path).stdout)
    assert {name: d["doc"]["name"] for name, d in docs.items()} == {f"linuxnet.bridge.{f}": f for f in FILTERS}

    # An execution environment that includes the collection gets nothing from it: the controller
    # side needs only ansible-core (no developer pins, no managed-host packages).
    introspected = run([str(BIN / "ansible-builder"), "introspect", str(collections)], env=env, cwd=tmp_path)
    assert introspected.returncode == 0, introspected.stderr
    assert yaml.safe_load(introspected.stdout.split("# Dependency data for", 1)[1].split("\n", 1)[1]) == {"python": [], "system": []}
