"""Three leftovers of a review, against a real kernel inside a lab host (the pure parts and the
render cache: tests/unit/plugins/module_utils/test_review_leftovers.py).

* A veth peer moved to another namespace by someone else during a run is not addressed by its host
  end's IFLA_LINK (an index in the namespace it moved to): ``_netlink`` checks the host end's
  IFLA_LINK_NETNSID against the id of the namespace asked for, and otherwise reads that namespace.
* A stale namespace name (a file under /run/netns with no namespace mounted on it, which a killed
  create or teardown leaves) is no namespace: ``gathered`` and ``before`` leave it out, a run still
  makes it again or removes it.
* Firewall writes held to join the port_mapping step's transaction are applied alone when that
  step stops on an OSError, and the failure reports ``changed`` and every step's commands.

The modules run straight from ``plugins/modules`` inside the lab host with a JSON args file, as
Ansible runs them, some under a small launcher that changes one thing of the run (said where).
Run (root): ``.venv/bin/python -m pytest tests/integration/test_review_leftovers.py -q``
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from tests.integration.helpers import ADDR, HOST, leftovers, sh
from tests.integration.helpers_process import ok, run_module

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")


def ipj(lab, *args: str) -> list:
    out = sh(lab, "ip -j " + " ".join(args)).stdout
    return json.loads(out) if out.strip() else []


def addresses(lab, netns: str) -> dict[str, list[str]]:
    return {link["ifname"]: [a["local"] for a in link.get("addr_info", []) if a["family"] == "inet"]
            for link in ipj(lab, "-n", netns, "addr", "show")}


# --------------------------------------------------------------------------------- 1. a moved peer

# Right after the run set a sysctl of the peer eth0 it made in namespace a (the operations of its
# wave done alone, before the wave's requests are encoded), someone else moves eth0 to namespace b
# and makes a link (a bridge) in a with the index eth0 now has in b (the host end's IFLA_LINK): the
# index the run would use for eth0 if it trusted the host end. ``CONTROL``: the run cannot tell
# namespace ids (as before the fix), so it trusts the host end.
MOVE = r'''
import json, subprocess
from ansible_collections.linuxnet.bridge.plugins.module_utils import _links, _netlink
write_sysctl = _links.write_sysctl
def moved(netns, path, value):
    write_sysctl(netns, path, value)
    if netns == "a":
        subprocess.run(["ip", "-n", "a", "link", "set", "eth0", "netns", "b"], check=True)
        index = json.loads(subprocess.run(["ip", "-j", "-n", "b", "link", "show", "eth0"], capture_output=True, check=True).stdout)[0]["ifindex"]
        subprocess.run(["ip", "-n", "a", "link", "add", "other", "index", str(index), "type", "bridge"], check=True)
_links.write_sysctl = moved
if CONTROL:
    _netlink.Netlink.nsid = lambda self, netns: None
'''
PAIR = {"config": [{"name": "vh", "peer": "eth0", "peer_netns": "a", "addresses": ["10.9.0.2/24"]}], "state": "merged"}


def test_a_peer_moved_to_another_namespace_during_the_run_is_not_addressed_by_its_old_index(lab_factory, tmp_path):
    lab = lab_factory({HOST: ADDR})
    tmp_path.chmod(0o755)
    sh(lab, "ip netns add a && ip netns add b")
    for control in (True, False):
        sh(lab, "ip link del vh 2>/dev/null; ip -n a link del other 2>/dev/null; ip -n b link del eth0 2>/dev/null; true")
        result = run_module(lab, tmp_path, "veth", PAIR, setup=f"CONTROL = {control}\n" + MOVE)
        host_end = ipj(lab, "-d", "link", "show", "vh")[0]
        other = ipj(lab, "-n", "a", "link", "show", "other")[0]
        assert host_end["link_index"] == other["ifindex"], (host_end, other)  # the index the run must not use in a
        assert "eth0" not in addresses(lab, "a") and addresses(lab, "b")["eth0"] == []
        if control:  # trusting the host end: eth0's address lands on another link
            assert addresses(lab, "a")["other"] == ["10.9.0.2"], result
        else:  # the host end's peer is in b: a's own links say there is no eth0 there; nothing written
            assert result.get("failed") and "ip -n a addr add 10.9.0.2/24 dev eth0: interface eth0 not found" in result["msg"], result
            assert addresses(lab, "a")["other"] == []


# --------------------------------------------------------------------------------- 2. stale names

NAMESPACES = [{"name": "s1", "resolv_conf": "nameserver 192.0.2.1\n"}, {"name": "s2"}]


def names(listed: list[dict]) -> list[str]:
    return [item["name"] for item in listed]


def test_a_stale_namespace_name_is_not_listed_but_is_made_again_or_removed(lab_factory, tmp_path):
    lab = lab_factory({HOST: ADDR})
    tmp_path.chmod(0o755)
    ok(run_module(lab, tmp_path, "netns", {"config": NAMESPACES, "state": "merged"}))
    # s2: its namespace unmounted, the name left (a teardown killed between umount and unlink);
    # s3: a name of ours whose namespace was never mounted (a create killed between mark and mount)
    sh(lab, "umount /run/netns/s2 && touch /run/netns/s3 /run/linuxnet/netns/s3")
    assert sorted(sh(lab, "ls /run/netns").stdout.split()) == ["s1", "s2", "s3"]
    assert sh(lab, "mountpoint -q /run/netns/s2", check=False).returncode != 0

    gathered = ok(run_module(lab, tmp_path, "netns", {"state": "gathered"}))["gathered"]
    assert gathered == [{"name": "s1", "resolv_conf": "nameserver 192.0.2.1\n"}]

    predicted = ok(run_module(lab, tmp_path, "netns", {"config": NAMESPACES, "state": "merged"}, check=True, diff=True))
    assert names(predicted["before"]) == ["s1"] and names(predicted["after"]) == ["s1", "s2"]
    assert predicted["commands"] == ["ip netns add s2", "ip -n s2 link set lo up"] and predicted["changed"]
    assert '"s3"' not in predicted["diff"]["before"] + predicted["diff"]["after"]

    merged = ok(run_module(lab, tmp_path, "netns", {"config": NAMESPACES, "state": "merged"}))
    assert merged["commands"] == predicted["commands"] and names(merged["after"]) == ["s1", "s2"]
    assert sh(lab, "mountpoint -q /run/netns/s2 && ip -n s2 link show lo | grep -q UP", check=False).returncode == 0
    assert sh(lab, "test -e /run/netns/s3").returncode == 0  # merged leaves names it was not given

    overridden = ok(run_module(lab, tmp_path, "netns", {"config": NAMESPACES, "state": "overridden"}))
    assert overridden["commands"] == ["rm -rf /etc/netns/s3", "ip netns delete s3"]
    assert names(overridden["before"]) == ["s1", "s2"] and names(overridden["after"]) == ["s1", "s2"]
    assert sh(lab, "test -e /run/netns/s3 || test -e /run/linuxnet/netns/s3", check=False).returncode != 0

    # The deployment's teardown: s1 stale now; its diff's before shows s2 only, and both go.
    sh(lab, "umount /run/netns/s1")
    down = ok(run_module(lab, tmp_path, "deployment", {"state": "absent"}, diff=True))
    assert down["commands"]["netns"] == ["rm -rf /etc/netns/s1", "ip netns delete s1", "rm -rf /etc/netns/s2", "ip netns delete s2"]
    netns_diff = next(d for d in down["diff"] if d["before_header"] == "netns")
    assert names(json.loads(netns_diff["before"])) == ["s2"]
    assert sh(lab, "find /run/netns /run/linuxnet/netns /etc/netns/s1 /etc/netns/s2 -mindepth 1 2>/dev/null; true").stdout.split() == []
    assert ok(run_module(lab, tmp_path, "deployment", {"state": "absent"}))["changed"] is False


# --------------------------------------------------------------------------------- 3. held writes

# The port_mapping step's gather of a writing run fails with an OSError (as reading a file or a tool
# can); every call of _joins_next is logged, to show the firewall step's writes were held for it.
UNREADABLE = r'''
from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment, _port_mapping
joins = _deployment._joins_next
def logged(*args):
    joined = joins(*args)
    with open(LOG, "a") as log:
        log.write(f"{type(args[0]).__name__}:{joined}\n")
    return joined
_deployment._joins_next = logged
gather = _port_mapping.PortMappingResource.gather
def unreadable(self, desired, state):
    if not self.module.check_mode:
        raise PermissionError(13, "Permission denied", "/run/linuxnet/injected")
    return gather(self, desired, state)
_port_mapping.PortMappingResource.gather = unreadable
'''
NETWORKS = [{"name": "held", "subnet": "172.31.7.0/24"}]
ENDPOINTS = [{"name": "h1", "network": "held", "ports": ["8087:80"]}]


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_writes_held_for_a_step_that_fails_on_an_oserror_are_applied_and_reported(lab_factory, tmp_path, backend):
    lab = lab_factory({HOST: ADDR})
    tmp_path.chmod(0o755)
    args: dict[str, Any] = {"networks": NETWORKS, "endpoints": ENDPOINTS, "state": "present", "firewall_backend": backend}
    log = tmp_path / "joins.log"
    failed = run_module(lab, tmp_path, "deployment", args, setup=f"LOG = {str(log)!r}\n" + UNREADABLE)
    assert [line for line in log.read_text().split() if line.endswith("True")] == ["FirewallResource:True"]  # held for port_mapping
    assert failed.get("failed") and failed["changed"] is True, failed
    assert failed["msg"] == ("port_mapping: PermissionError: [Errno 13] Permission denied: '/run/linuxnet/injected'"
                             " (firewall's writes, held to join the port_mapping step's, were applied alone)"), failed["msg"]
    assert set(failed["commands"]) == {"netns", "bridge", "veth", "firewall"} and all(failed["commands"].values()), failed["commands"]
    # the firewall's rules are on the host (whole: the next run finds nothing to do there); nothing
    # of the published port
    rules = "\n".join(line for lines in leftovers(lab).values() for line in lines)
    if backend == "nftables":
        rules = sh(lab, "nft list table ip linuxnet").stdout
    assert "br-held" in rules and "8087" not in rules, rules
    state = json.loads(sh(lab, "cat /run/linuxnet/firewall/LINUXNET.json").stdout)
    assert list(state["items"]) == ["held"]  # persisted with its writes
    assert sh(lab, "cat /run/linuxnet/port_mapping/LINUXNET.json 2>/dev/null || true").stdout == ""

    again = ok(run_module(lab, tmp_path, "deployment", args))  # nothing injected
    assert again["changed_steps"] == ["port_mapping"], again["commands"]  # the firewall's writes were all made
    assert ok(run_module(lab, tmp_path, "deployment", args))["changed"] is False
    ok(run_module(lab, tmp_path, "deployment", {"state": "absent", "firewall_backend": backend}))
    assert leftovers(lab) == {}
