"""The role linuxnet.bridge.bridge_network against a real kernel, inside lab hosts.

Every test makes its own lab host (``lab_factory``: private net/mount/uts namespaces, private /run,
/etc overlay and /etc/netns) in the group ``linuxnet_hosts`` and runs the real playbooks
(``playbooks/site.yml``) through ``ansible-playbook`` with the topology in ``--extra-vars``. Facts
are read back inside the lab host with ``ip -n NS ...``, ``ip netns exec NS getent ...`` and
``iptables-save``. Nothing touches the machine's own network namespace; ``real_netns_guard``
proves it at the end of the session.

The seed topology, idempotence, verify.yml with traffic and teardown.yml are covered by
``molecule/default`` and ``molecule/fleet``; this file covers the role's promises that those do
not check: stable addresses, name resolution, several networks per endpoint, MTU, MACs, the
``none``/``host`` modes, argument validation, ``linuxnet_state: absent`` given to site.yml
(against a full firewall/port snapshot, not only the foreign objects) and check mode.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_role.py -q``
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from typing import Any

import pytest

from tests.integration.helpers import ADDR, HOST
from tests.integration.helpers_links import assert_same, ipj, netns_names, sh
from tests.integration.helpers_role import CONVERGE, ROLE, iptables, settled_snapshot, site, snapshot

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

REMOVE = ROLE + "Remove what the collection created"  # linuxnet.bridge.deployment state=absent
STEPS = ("netns", "bridge", "veth", "firewall", "port_mapping")  # _deployment.STEPS

# Objects made by "someone else": they must survive the role, byte for byte.
FOREIGN = """
set -e
ip link add foreignbr type bridge
ip link set foreignbr up
ip addr add 10.99.0.1/16 dev foreignbr
ip netns add foreignns
ip link add foreignveth type veth peer name eth0 netns foreignns
ip link set foreignveth master foreignbr
ip link set foreignveth up
ip -n foreignns link set eth0 up
iptables -A FORWARD -s 10.99.0.0/16 -j ACCEPT
iptables -t nat -A POSTROUTING -s 10.99.0.0/16 ! -o foreignbr -j MASQUERADE
"""

# ------------------------------------------------------------------------------ topologies

NETWORKS = [
    {"name": "bridge", "subnet": "172.17.0.0/16"},  # docker0, no name resolution
    {"name": "usernet", "subnet": "172.18.0.0/16", "mtu": 1400},
    {"name": "backnet", "subnet": "10.30.0.0/24"},
]

# First run: addresses all allocated automatically.
ENDPOINTS_1 = [
    # a resolver on lo: a name that is not in /etc/hosts fails at once instead of waiting for DNS
    {"name": "c1", "network": "bridge", "dns": {"nameservers": ["127.0.0.1"], "search": ["lab.internal"]}},
    {"name": "c2", "network": "bridge"},
    {"name": "c3", "network": "bridge"},
    {"name": "u1", "network": "usernet", "dns": {"nameservers": ["127.0.0.1"]}},
    {"name": "u2", "network": "usernet"},
    {"name": "u3", "networks": ["usernet", "backnet"]},
    {"name": "n1", "mode": "none"},
    {"name": "h1", "mode": "host", "ports": ["8080:80"]},
]
EXPECTED_1 = {
    "c1": ["172.17.0.2/16"], "c2": ["172.17.0.3/16"], "c3": ["172.17.0.4/16"],
    "u1": ["172.18.0.2/16"], "u2": ["172.18.0.3/16"], "u3": ["172.18.0.4/16", "10.30.0.2/24"],
}

# Second run: c0 is added in front of everyone, c2 and u2 are removed. Nobody is renumbered:
# a planner that numbered in list order would give c0 .2 and c1 .3 (adding), u3 .3 (removing).
ENDPOINTS_2 = [
    {"name": "c0", "network": "bridge"},
    *[ep for ep in ENDPOINTS_1 if ep["name"] not in ("c2", "u2")],
]
EXPECTED_2 = {
    "c0": ["172.17.0.3/16"],  # the lowest free address (c2's, freed in the same run)
    "c1": ["172.17.0.2/16"], "c3": ["172.17.0.4/16"],
    "u1": ["172.18.0.2/16"], "u3": ["172.18.0.4/16", "10.30.0.2/24"],
}

# Small seed-like topology with a published port (firewall and port_mapping have work to do).
SEED_NETWORKS = [
    {"name": "bridge", "subnet": "172.17.0.0/16"},
    {"name": "usernet", "subnet": "172.18.0.0/16"},
]
SEED_ENDPOINTS = [
    {"name": "c1", "network": "bridge"},
    {"name": "web", "networks": [{"name": "bridge", "address": "172.17.0.5"}], "ports": [f"{ADDR}:81:80"]},
    {"name": "c3", "network": "usernet", "dns": {"nameservers": ["192.0.2.53"]}},
]


# ------------------------------------------------------------------------------ helpers


@pytest.fixture
def lab(lab_factory):
    return lab_factory({HOST: ADDR}, groups={"linuxnet_hosts": [HOST]})


def link(lab, name: str, netns: str | None = None) -> dict:
    found = ipj(lab, "-d", "link", "show", "dev", name, netns=netns)
    assert len(found) == 1, found
    return found[0]


def endpoint_addrs(lab, netns: str) -> dict[str, list[str]]:
    """``ip -n NS -4 addr``: interface -> addresses, lo left out."""
    out: dict[str, list[str]] = {}
    for entry in ipj(lab, "-4", "addr", "show", netns=netns):
        if entry["ifname"] != "lo":
            out[entry["ifname"]] = [f"{a['local']}/{a['prefixlen']}" for a in entry.get("addr_info", [])]
    return out


def addresses(lab, names) -> dict[str, list[str]]:
    """Endpoint -> its addresses in interface order (eth0, eth1, ...)."""
    out = {}
    for ns in names:
        by_if = endpoint_addrs(lab, ns)
        out[ns] = [a for ifname in sorted(by_if) for a in by_if[ifname]]
    return out


def default_routes(lab, netns: str) -> list[tuple[str, str]]:
    return [(r.get("gateway"), r.get("dev")) for r in ipj(lab, "-4", "route", "show", "default", netns=netns)]


def getent(lab, netns: str, name: str) -> subprocess.CompletedProcess:
    return sh(lab, f"timeout 15 ip netns exec {netns} getent hosts {name}", check=False)


def docker_mac(cidr: str) -> str:
    ip = ipaddress.ip_interface(cidr).ip.packed
    return "02:42:" + ":".join(f"{b:02x}" for b in ip)


def run_state(lab) -> dict[str, Any]:
    """The collection's bookkeeping under /run/linuxnet: path -> parsed JSON (None for other files);
    not the bytecode cache (/run/linuxnet/pycache: compiled code, which records nothing)."""
    out: dict[str, Any] = {}
    listing = "find /run/linuxnet -path /run/linuxnet/pycache -prune -o -type f -print 2>/dev/null | sort"
    for path in sh(lab, listing, check=False).stdout.split():
        text = sh(lab, f"cat {path}").stdout
        out[path] = json.loads(text) if path.endswith(".json") else None
    return out


def warnings(result) -> list[str]:
    """What the converge reports as ignored: its ``ignored``, each also a warning of the task."""
    task = result.task(CONVERGE, HOST).result
    assert set(task.get("ignored", [])) <= set(task.get("warnings", [])), task
    return list(task.get("ignored", []))


# ------------------------------------------------------------------------------ tests


def test_addresses_names_interfaces_mtu_mac_modes(lab, run_playbook):
    """One deployment, then a second one that adds an endpoint in front and removes two."""
    first = site(run_playbook, lab, NETWORKS, ENDPOINTS_1)

    # -- namespaces: one per endpoint except host mode; host mode is reported, not silently dropped
    assert netns_names(lab) == ["c1", "c2", "c3", "n1", "u1", "u2", "u3"]
    assert [w for w in warnings(first) if "h1" in w and "host mode" in w and "ports" in w], warnings(first)
    veth_peers = {e.get("ifalias", "") for e in ipj(lab, "link", "show", "type", "veth")}
    assert not [a for a in veth_peers if "netns=h1" in a], veth_peers

    # -- mode none: a namespace with only lo (up)
    links = ipj(lab, "link", "show", netns="n1")
    assert [e["ifname"] for e in links] == ["lo"] and "UP" in links[0]["flags"], links

    # -- automatic addresses, lowest free, in list order on a fresh host
    assert addresses(lab, EXPECTED_1) == EXPECTED_1

    # -- several networks: eth0, eth1 in list order; one default route, via the first network's gateway
    assert endpoint_addrs(lab, "u3") == {"eth0": ["172.18.0.4/16"], "eth1": ["10.30.0.2/24"]}
    assert default_routes(lab, "u3") == [("172.18.0.1", "eth0")]
    assert default_routes(lab, "c1") == [("172.17.0.1", "eth0")]

    # -- MTU follows the network: bridge and both veth ends
    assert link(lab, "br-usernet")["mtu"] == 1400
    on_usernet = ipj(lab, "link", "show", "master", "br-usernet")
    assert len(on_usernet) == 3 and {e["mtu"] for e in on_usernet} == {1400}, on_usernet
    for ns in ("u1", "u2", "u3"):
        assert link(lab, "eth0", ns)["mtu"] == 1400, ns
    assert link(lab, "eth1", "u3")["mtu"] == 1500  # backnet has no MTU set
    assert link(lab, "docker0")["mtu"] == 1500 and link(lab, "eth0", "c1")["mtu"] == 1500
    for e in on_usernet:
        assert len(e["ifname"].encode()) <= 15 and e["ifname"].startswith("veth")

    # -- Docker MACs: 02:42 + the IPv4 address
    for ns, cidrs in EXPECTED_1.items():
        for index, cidr in enumerate(cidrs):
            assert link(lab, f"eth{index}", ns)["address"] == docker_mac(cidr), (ns, index)

    # -- names: on a user-defined network the peers resolve, on `bridge` they do not
    for ns, peer, ip in (("u1", "u2", "172.18.0.3"), ("u1", "u3", "172.18.0.4"), ("u3", "u1", "172.18.0.2"),
                         ("u2", "u3", "172.18.0.4")):
        found = getent(lab, ns, peer)
        assert found.returncode == 0 and found.stdout.split()[:2] == [ip, peer], (ns, peer, found.stdout, found.stderr)
    for ns, peer in (("c1", "c2"), ("c1", "c3"), ("c1", "u1"), ("u1", "c1")):
        found = getent(lab, ns, peer)
        assert found.returncode != 0, f"{peer} resolves inside {ns}: {found.stdout}"
    assert getent(lab, "c1", "c1").stdout.split()[:1] == ["172.17.0.2"]  # its own name, like Docker's /etc/hosts
    assert sh(lab, "ip netns exec c1 cat /etc/resolv.conf").stdout == "nameserver 127.0.0.1\nsearch lab.internal\n"
    # a name is as good as an address: the packet goes through the bridge
    ping = sh(lab, "for i in 1 2 3; do ip netns exec u1 ping -n -c1 -W2 u3 && exit 0; done; exit 1", check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr

    # -- second run: add c0 in front, remove c2 and u2 -> nobody is renumbered
    second = site(run_playbook, lab, NETWORKS, ENDPOINTS_2)
    assert netns_names(lab) == ["c0", "c1", "c3", "n1", "u1", "u3"]
    assert addresses(lab, EXPECTED_2) == EXPECTED_2
    assert link(lab, "eth0", "c0")["address"] == docker_mac(EXPECTED_2["c0"][0])
    assert len(ipj(lab, "link", "show", "master", "br-usernet")) == 2
    # the hosts files follow: u2 is gone, u3 is still there
    assert getent(lab, "u1", "u2").returncode != 0
    assert getent(lab, "u1", "u3").stdout.split()[:2] == ["172.18.0.4", "u3"]
    assert {"netns", "veth"} <= set(second.task(CONVERGE, HOST).result["changed_steps"])


def test_bad_variables_fail_before_any_change(lab, run_playbook):
    """argument_specs reject a network without subnet; the planner names the bad field; nothing changes."""
    sh(lab, FOREIGN)
    before = settled_snapshot(lab)

    no_subnet = site(run_playbook, lab, [{"name": "nosubnet"}], [{"name": "x1", "network": "nosubnet"}], ok=False)
    assert no_subnet.rc != 0
    failed = [t for t in no_subnet.tasks if t.failed]
    assert len(failed) == 1 and failed[0].task.startswith(ROLE + "Validating arguments against arg spec"), [t.task for t in failed]
    msg = failed[0].result["msg"]
    assert "missing required arguments: subnet" in msg and "linuxnet_networks" in msg, msg
    assert [t.task for t in no_subnet.tasks] == [failed[0].task], "role tasks ran after the argument check failed"
    assert_same(before, snapshot(lab), "argument_specs failure")
    assert run_state(lab) == {}

    outside = site(run_playbook, lab, SEED_NETWORKS,
                   [{"name": "c1", "network": "bridge"}, {"name": "c2", "networks": [{"name": "usernet", "address": "10.0.0.5"}]}],
                   ok=False)
    assert outside.rc != 0
    failed = [t for t in outside.tasks if t.failed]
    assert [t.task for t in failed] == [CONVERGE], [t.task for t in failed]
    assert "linuxnet_endpoints[1].networks[0].address: 10.0.0.5 is outside 172.18.0.0/16" in failed[0].result["msg"], failed[0].result["msg"]
    assert not failed[0].result.get("changed"), "the converge changed something before the plan failed"
    assert_same(before, snapshot(lab), "plan failure")

    # An endpoint service without the boot-time restore is refused by the one module run, before it changes anything.
    service = site(run_playbook, lab, SEED_NETWORKS, [{"name": "web", "network": "bridge", "service": {"command": "sleep 1"}}],
                   ok=False, linuxnet_persist=False)
    failed = [t for t in service.tasks if t.failed]
    assert [t.task for t in failed] == [CONVERGE], [t.task for t in failed]
    assert "a service runs in its endpoint only with linuxnet_persist: true" in failed[0].result["msg"], failed[0].result
    assert not failed[0].result.get("changed")
    assert_same(before, snapshot(lab), "refused service")


def test_state_absent_removes_only_what_the_role_created(lab, run_playbook):
    sh(lab, FOREIGN)
    before = settled_snapshot(lab)

    site(run_playbook, lab, SEED_NETWORKS, SEED_ENDPOINTS)
    deployed = snapshot(lab)
    assert deployed["netns"] == ["c1", "c3", "foreignns", "web"]
    assert [line for line in deployed["iptables"] if line.startswith("-A LINUXNET ") and "--dport 81" in line], deployed["iptables"]
    assert [line for line in deployed["links@None"] if '"alias": "linuxnet.bridge"' in line and "docker0" in line]
    assert sh(lab, "ip netns exec c3 cat /etc/resolv.conf").stdout == "nameserver 192.0.2.53\n"

    # absent needs no networks or endpoints: everything the collection owns goes, nothing else
    removed = site(run_playbook, lab, linuxnet_state="absent")
    done = removed.task(REMOVE, HOST).result
    # one module run, in batches: the endpoint namespaces took their veths along
    assert done["changed_steps"] == ["port_mapping", "firewall", "netns", "bridge"], done["commands"]
    assert {"ip netns delete c1", "ip netns delete c3", "ip netns delete web"} <= set(done["commands"]["netns"])
    assert done["commands"]["veth"] == []
    after = settled_snapshot(lab)
    assert after["netns"] == ["foreignns"]
    assert not [line for line in after["iptables"] if "LINUXNET" in line], after["iptables"]
    assert not [line for line in after["links@None"] if "linuxnet" in line], after["links@None"]
    assert after["files"] == [], "files left in /etc/netns"
    # bookkeeping may stay under /run/linuxnet, but it records nothing
    leftovers = {path: data for path, data in run_state(lab).items() if data is not None and data.get("items")}
    assert not leftovers, leftovers

    # Everything else is as it was, foreign objects byte for byte. Two documented exceptions: the
    # firewall module sets net.ipv4.ip_forward=1 and the FORWARD policy to DROP, like Docker's
    # daemon, and leaves both after removal.
    def without_forwarding(snap: dict) -> dict:
        snap = dict(snap, iptables=[line for line in snap["iptables"] if not line.startswith(":FORWARD ")])
        snap.pop("ip_forward")
        return snap

    assert [line for line in after["iptables"] if line.startswith(":FORWARD ")] == [":FORWARD DROP"]
    assert_same(without_forwarding(before), without_forwarding(after), "deploy + absent (leftovers, or foreign objects touched)")

    again = site(run_playbook, lab, linuxnet_state="absent")
    assert [t.task for t in again.changed_tasks()] == []


def test_check_mode_predicts_and_changes_nothing(lab, run_playbook):
    before = settled_snapshot(lab)
    predicted = site(run_playbook, lab, SEED_NETWORKS, SEED_ENDPOINTS, check=True)
    assert_same(before, snapshot(lab), "check mode")
    # nothing but the lock file that serialises iptables runs
    assert set(run_state(lab)) <= {"/run/linuxnet/iptables.lock"}, run_state(lab)
    result = predicted.task(CONVERGE, HOST).result
    assert predicted.task(CONVERGE, HOST).changed
    assert result["changed_steps"] == list(STEPS), result["commands"]
    commands = result["commands"]
    assert "ip netns add web" in commands["netns"]
    assert "ip link add br-usernet type bridge" in commands["bridge"]
    assert [c for c in commands["firewall"] if c == "iptables -t filter -N LINUXNET"], commands
    # linuxnet_chain_prefix reaches the module through the action group (module_defaults)
    other = site(run_playbook, lab, SEED_NETWORKS, SEED_ENDPOINTS, check=True, linuxnet_chain_prefix="LNXT")
    for step in ("firewall", "port_mapping"):
        done = other.task(CONVERGE, HOST).result["commands"][step]
        assert [c for c in done if "LNXT" in c] and not [c for c in done if "LINUXNET" in c], (step, done)

    # The real run then does exactly what was predicted, in every step: each step of the check run
    # predicts against what the steps before it would have made (the namespaces and bridges, the
    # bridges' route_localnet sysctls, the LINUXNET chains the DNAT/ACCEPT rules go into).
    applied = site(run_playbook, lab, SEED_NETWORKS, SEED_ENDPOINTS)
    assert applied.task(CONVERGE, HOST).result["commands"] == commands


# One drift per module, made behind the role's back; the converge must repair exactly that step.
DRIFTS = {
    "netns": "rm /etc/netns/c3/resolv.conf",
    "bridge": "ip addr del 172.18.0.1/16 dev br-usernet",
    "veth": "ip -n c1 addr flush dev eth0",
    "firewall": "iptables -D FORWARD -j LINUXNET-ISOLATION-STAGE-1",
    "port_mapping": "iptables -t nat -S LINUXNET | grep -- '-j DNAT' | sed 's/^-A/-D/' | xargs -L1 iptables -t nat",
}


def test_rerun_is_one_read_only_pass_and_every_drift_is_repaired(lab, run_playbook):
    site(run_playbook, lab, SEED_NETWORKS, SEED_ENDPOINTS)
    converged = settled_snapshot(lab)

    again = site(run_playbook, lab, SEED_NETWORKS, SEED_ENDPOINTS)
    assert [t.task for t in again.changed_tasks()] == []
    result = again.task(CONVERGE, HOST).result
    assert result["changed_steps"] == [] and not any(result["commands"].values())
    # one module run for the networks, the endpoints and the boot-time restore, which only reads: the
    # plan is not sent back when nothing changed (besides it only the role's argument check runs)
    ran = [t.task for t in again.tasks if t.task.startswith(ROLE) and not t.skipped]
    assert [task for task in ran if not task.startswith(ROLE + "Validating arguments")] == [CONVERGE], ran
    assert result["persist"]["changed"] is False, result["persist"]
    assert "plan" not in result
    assert_same(converged, snapshot(lab), "a run that found nothing to do")

    for module, drift in DRIFTS.items():
        sh(lab, drift)
        # the prediction (check mode) blames exactly that step, and the run repairs it with exactly those commands
        predicted = site(run_playbook, lab, SEED_NETWORKS, SEED_ENDPOINTS, check=True).task(CONVERGE, HOST).result
        assert predicted["changed_steps"] == [module], (drift, predicted["commands"])
        repaired = site(run_playbook, lab, SEED_NETWORKS, SEED_ENDPOINTS)
        assert [t.task for t in repaired.changed_tasks()] == [CONVERGE], drift
        done = repaired.task(CONVERGE, HOST).result
        assert done["changed_steps"] == [module], (drift, done["commands"])
        assert done["commands"] == predicted["commands"], drift
        assert_same(converged, settled_snapshot(lab), f"repairing {drift!r}")

    final = site(run_playbook, lab, SEED_NETWORKS, SEED_ENDPOINTS)
    assert final.task(CONVERGE, HOST).result["changed_steps"] == []


def test_a_network_moves_to_another_subnet(lab, run_playbook):
    """The converge must not refuse a published port that its bridge step is about to make valid."""
    def topology(prefix: str) -> tuple[list, list]:
        return ([{"name": "bridge", "subnet": f"{prefix}.0.0/16"}],
                [{"name": "web", "networks": [{"name": "bridge", "address": f"{prefix}.0.5"}], "ports": [f"{ADDR}:81:80"]}])

    site(run_playbook, lab, *topology("172.17"))
    moved = site(run_playbook, lab, *topology("172.20"))
    assert {"bridge", "veth", "firewall", "port_mapping"} <= set(moved.task(CONVERGE, HOST).result["changed_steps"])
    assert endpoint_addrs(lab, "web") == {"eth0": ["172.20.0.5/16"]}
    assert default_routes(lab, "web") == [("172.20.0.1", "eth0")]
    rules = iptables(lab)
    assert [r for r in rules if "--to-destination 172.20.0.5:80" in r], rules
    assert not [r for r in rules if "172.17." in r], rules
    assert sh(lab, "ping -c1 -W2 172.20.0.5", check=False).returncode == 0
    assert site(run_playbook, lab, *topology("172.20")).task(CONVERGE, HOST).result["changed_steps"] == []
