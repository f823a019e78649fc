"""The commands a converge needs (linuxnet.bridge.deployment's ``on_missing_commands``) and the
role's package install, which now runs only on a host that lacks one of them.

A command is hidden inside the lab host only: /dev/null is bound over it in the lab host's private
mount namespace (not executable, so the modules' PATH search passes it by; gone with the lab host).

* ``fail`` (the module's default): a run without ``nft`` (nftables backend) fails naming the command
  and its package, before anything changes (no namespace, no bridge, no table).
* ``skip``: the same run changes nothing and returns ``skipped`` with ``missing_commands``.
* Only ``conntrack`` missing (optional): the run converges, lists it, and traffic flows.
* No iptables command at all (a fresh Debian 12 has nftables only): the nftables backend converges,
  its kernel probe included.
* A failed kernel probe (its ``iptables`` fails; or no ``unshare``) fails the run with nothing changed
  and no step's commands.
* The role with ``linuxnet_install_packages: true`` (its default) on a host that has every command
  runs no package task at all (``apt-get`` is hidden too: a call would fail the play).
* The role on a host without ``nft``, in check mode: the converge is skipped, the packages task
  runs (check mode: apt only looks), the second converge reports the command still missing, and
  nothing changes.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_missing_commands.py -q``
"""

from __future__ import annotations

import json
import os

import pytest

from tests.integration.helpers import ADDR, HOST, sh
from tests.integration.helpers_process import ok, run_module
from tests.integration.helpers_role import CONVERGE, ROLE, ping, site

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

NETWORKS = [{"name": "backend", "subnet": "172.18.0.0/16"}]
ENDPOINTS = [{"name": "web", "network": "backend", "ports": ["8080:80"]}, {"name": "db", "network": "backend"}]
NFT_MISSING = ("nft not found on the managed host: install nftables (the role linuxnet.bridge.bridge_network does "
               "when linuxnet_install_packages is true)")


@pytest.fixture
def lab(lab_factory, tmp_path):
    tmp_path.chmod(0o755)
    return lab_factory({HOST: ADDR, "outside": "172.16.211.1"},
                       groups={"linuxnet_hosts": [HOST], "linuxnet_probes": ["outside"]})


def hide(lab, *commands: str) -> None:
    """Make ``commands`` missing in the lab host (its own mount namespace; the machine keeps them)."""
    for command in commands:
        path = sh(lab, f"command -v {command}").stdout.strip()
        sh(lab, f"mount -n --bind /dev/null {path}")
        assert sh(lab, f"command -v {command}", check=False).returncode != 0


def untouched(lab) -> None:
    """Nothing of a deployment exists in the lab host."""
    assert sh(lab, "ip netns list").stdout.strip() == ""
    assert "br-backend" not in sh(lab, "ip -br link").stdout
    assert sh(lab, "ls /run/linuxnet/firewall 2>/dev/null || true").stdout.strip() == ""


def deployment(lab, tmp_path, **extra) -> dict | None:
    args = {"networks": NETWORKS, "endpoints": ENDPOINTS, "firewall_backend": "nftables", **extra}
    return run_module(lab, tmp_path, "deployment", args)


def test_a_missing_command_fails_or_skips_before_anything_changes(lab, tmp_path):
    hide(lab, "nft")
    failed = deployment(lab, tmp_path)
    assert failed is not None and failed.get("failed") and failed["msg"] == NFT_MISSING, failed
    assert failed["missing_commands"] == ["nft"] and not failed.get("changed"), failed
    untouched(lab)

    skipped = ok(deployment(lab, tmp_path, on_missing_commands="skip"))
    assert skipped["skipped"] is True and skipped["changed"] is False, skipped
    assert skipped["missing_commands"] == ["nft"] and skipped["msg"] == "nothing done: " + NFT_MISSING
    assert skipped["commands"] == {} and "plan" not in skipped, skipped
    untouched(lab)


def test_without_conntrack_the_run_converges_and_lists_it(lab, tmp_path):
    hide(lab, "conntrack")
    done = ok(deployment(lab, tmp_path, on_missing_commands="skip", firewall_backend="iptables"))
    assert done["changed"] and not done.get("skipped") and done["missing_commands"] == ["conntrack"], done
    assert ping(lab, "web", "172.18.0.3")  # db, on the same network
    again = ok(deployment(lab, tmp_path, firewall_backend="iptables"))
    assert not again["changed"] and again["missing_commands"] == ["conntrack"], again


def test_the_nftables_backend_needs_no_iptables(lab, tmp_path):
    """A fresh Debian 12 has nftables but no iptables: the nftables backend's run (and its kernel
    probe, which makes an nftables nat chain in a throw-away namespace) uses none of iptables."""
    sh(lab, "mount -n --bind /dev/null /usr/sbin/xtables-nft-multi && mount -n --bind /dev/null /usr/sbin/xtables-legacy-multi")
    assert sh(lab, "command -v iptables || command -v iptables-nft-save || command -v ip6tables-legacy", check=False).returncode != 0
    done = ok(deployment(lab, tmp_path))
    assert done["changed"] and done["missing_commands"] == [], done
    assert ping(lab, "web", "172.18.0.3")
    assert "dnat" in sh(lab, "nft list table ip linuxnet").stdout
    assert not ok(deployment(lab, tmp_path))["changed"]


def test_a_failed_kernel_probe_reports_nothing_changed(lab, tmp_path):
    """The probe runs before the first change: its failure is the run's, with no step's commands."""
    # The plain iptables of the probe fails (the lab host's /etc is its own overlay); the variant's
    # own commands, which the run uses, are there.
    sh(lab, "ln -sfn /bin/false /etc/alternatives/iptables")
    failed = deployment(lab, tmp_path, firewall_backend="iptables", iptables_variant="iptables-nft")
    assert failed is not None and failed.get("failed"), failed
    assert failed["msg"].startswith("This host cannot run Docker-style bridge networking: creating a bridge, a veth "
                                    "pair and reading the iptables nat table in a throw-away namespace failed"), failed
    assert not failed["changed"] and not any(failed["commands"].values()), failed
    untouched(lab)

    hide(lab, "unshare")
    failed = deployment(lab, tmp_path, firewall_backend="iptables", iptables_variant="iptables-nft")
    assert failed is not None and failed["msg"] == ("This host cannot run Docker-style bridge networking: its kernel "
                                                    "check needs unshare (util-linux), which is not found on the managed host")
    assert not failed["changed"] and not any(failed["commands"].values()), failed
    untouched(lab)


def test_the_role_runs_no_package_task_on_a_host_that_has_every_command(lab, run_playbook):
    hide(lab, "apt-get", "apt")  # a package task would fail the play (and could not reach a mirror anyway)
    result = site(run_playbook, lab, NETWORKS, ENDPOINTS, linuxnet_install_packages=True)
    converged = result.task(CONVERGE, HOST)
    assert converged.changed and converged.result["missing_commands"] == [], converged.result
    assert result.task(ROLE + "Install what the host lacks and converge again", HOST).skipped
    assert not [t.task for t in result.tasks if "Read the distribution" in t.task or "apt" in t.task
                or "with the installed commands" in t.task]
    assert ping(lab, "web", "172.18.0.3")


def test_the_role_installs_and_converges_again_where_a_command_is_missing_check_mode(lab, run_playbook):
    hide(lab, "nft")
    result = site(run_playbook, lab, NETWORKS, ENDPOINTS, check=True, linuxnet_install_packages=True,
                  linuxnet_firewall_backend="nftables")
    first = result.task(CONVERGE, HOST)
    assert first.skipped and first.result["missing_commands"] == ["nft"], first.result
    facts = result.task(ROLE + "Read the distribution (minimal facts)", HOST)
    assert not facts.skipped and facts.result["ansible_facts"]["ansible_os_family"] == "Debian"
    apt = result.task(ROLE + "Install iptables, nftables, conntrack and iproute2 (apt)", HOST)
    assert not apt.skipped and not apt.failed, apt.result
    assert apt.result["invocation"]["module_args"]["name"] == ["iptables", "nftables", "conntrack", "iproute2"]  # no pyroute2
    assert result.task(ROLE + "Install iptables, nftables, conntrack and iproute2", HOST).skipped  # (not a Debian family)
    again = result.task(ROLE + "Converge networks and endpoints with the installed commands", HOST)
    assert again.skipped and again.result["missing_commands"] == ["nft"], json.dumps(again.result)[:2000]
    untouched(lab)
