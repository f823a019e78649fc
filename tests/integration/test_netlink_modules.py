"""linuxnet.bridge.netns / bridge / veth against a real kernel, inside lab hosts.

Every test makes its own lab (``lab_factory``: a process with private net/mount/uts namespaces,
a private /run and /etc/netns) and drives the modules with real ``ansible-playbook`` runs through
the lab inventory (community.docker.nsenter connection). Nothing here touches the machine's own
network namespace; ``real_netns_guard`` proves it at the end of the session.

Run (root): ``.venv/bin/python -m pytest tests/integration -q``
"""

from __future__ import annotations

import os

import pytest

from tests.integration.helpers import ADDR, HOST, res, run
from tests.integration.helpers_links import apply_tasks, assert_same, ipj, netns_names, sh, snapshot, task

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

MODULES = ("netns", "bridge", "veth")

# --------------------------------------------------------------------------------- configs

NS_A = [
    {"name": "ns1", "resolv_conf": "nameserver 192.0.2.53\nsearch lab.internal\n", "hosts": [{"ip": "10.10.0.12", "names": ["peer2"]}]},
    {"name": "ns2"},
]
BR_A = [
    {"name": "br0", "addresses": ["10.10.0.1/24"]},
    {"name": "br1", "addresses": ["10.20.0.1/24"]},
]
VETH_A = [
    {"name": "v1", "peer_netns": "ns1", "master": "br0", "addresses": ["10.10.0.11/24"], "gateway": "10.10.0.1", "mac": "docker"},
    {"name": "v2", "peer_netns": "ns2", "master": "br0", "addresses": ["10.10.0.12/24"], "gateway": "10.10.0.1"},
]
# in place: bridge mtu + extra address + mac (merged); veth mtu + mac, v2 to another bridge and subnet (replaced)
BR_B = [
    {"name": "br0", "addresses": ["10.10.0.1/24", "10.10.1.1/24"], "mtu": 1400},
    {"name": "br1", "addresses": ["10.20.0.1/24"], "mac": "02:00:00:00:0b:01"},
]
VETH_B = [
    {"name": "v1", "peer_netns": "ns1", "master": "br0", "addresses": ["10.10.0.11/24"], "gateway": "10.10.0.1",
     "mac": "02:00:00:00:01:01", "mtu": 1400},
    {"name": "v2", "peer_netns": "ns2", "master": "br1", "addresses": ["10.20.0.12/24"], "gateway": "10.20.0.1"},
]

# Objects made by "someone else" with plain ip commands: they must survive overridden/deleted.
FOREIGN = """
set -e
ip netns add userns
ip link add userbr type bridge
ip link set userbr up
ip link add userveth type veth peer name eth0 netns userns
ip link set userveth master userbr
ip link add usera type veth peer name userb
"""


# --------------------------------------------------------------------------------- helpers


def remove_tasks(state: str, ns=None, br=None, veth=None) -> list[dict]:
    """veth, bridge, netns tasks in removal order; ``config`` left out where None."""
    return [task(m, m, state, c) for m, c in (("veth", veth), ("bridge", br), ("netns", ns))]


def commands(result, *names: str) -> dict[str, list[str]]:
    return {n: res(result, n).get("commands") for n in names}


def link(lab, name: str, netns: str | None = None) -> dict:
    found = ipj(lab, "-d", "link", "show", "dev", name, netns=netns)
    assert len(found) == 1, found
    return found[0]


def addrs(lab, name: str, netns: str | None = None) -> list[str]:
    return [f"{a['local']}/{a['prefixlen']}" for entry in ipj(lab, "-4", "addr", "show", "dev", name, netns=netns)
            for a in entry.get("addr_info", [])]


def default_gw(lab, netns: str) -> list[str]:
    return [r.get("gateway") for r in ipj(lab, "-4", "route", "show", "default", netns=netns)]


def assert_unchanged(result, *names: str) -> None:
    for name in names:
        r = res(result, name)
        assert r.get("changed") is False and r.get("commands") == [], f"{name} not idempotent: {r.get('commands')}"


def ifindexes(lab, *names: str) -> dict[str, int]:
    return {n: link(lab, n)["ifindex"] for n in names}


def ping(lab, target: str, netns: str | None = None) -> None:
    prefix = f"ip netns exec {netns} " if netns else ""
    # a few tries: the first echo may be lost while ARP and the bridge port settle
    proc = sh(lab, f"for i in 1 2 3; do {prefix}ping -n -c1 -W2 {target} && exit 0; done; exit 1", check=False)
    assert proc.returncode == 0, f"{netns or HOST} cannot reach {target}:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture
def lab(lab_factory):
    return lab_factory({HOST: ADDR})


# --------------------------------------------------------------------------------- lifecycle


def test_lifecycle(lab, run_playbook):
    """create -> unchanged -> check predicts exactly -> modify in place -> overridden -> deleted."""
    sh(lab, FOREIGN)
    initial = snapshot(lab)

    # -- check mode on an empty host predicts the creation and changes nothing
    predicted = run(run_playbook, lab, *apply_tasks(NS_A, BR_A, VETH_A), check=True)
    assert_same(initial, snapshot(lab), "check mode (create)")
    for name in MODULES:
        assert res(predicted, name)["changed"] is True

    # -- create
    created = run(run_playbook, lab, *apply_tasks(NS_A, BR_A, VETH_A))
    assert commands(created, *MODULES) == commands(predicted, *MODULES), "check mode did not predict the creation"
    assert commands(created, "netns")["netns"][:2] == ["ip netns add ns1", "ip -n ns1 link set lo up"]
    assert netns_names(lab) == ["ns1", "ns2", "userns"]
    for ns in ("ns1", "ns2"):
        assert "UP" in link(lab, "lo", ns)["flags"]
    assert sh(lab, "ip netns exec ns1 cat /etc/resolv.conf").stdout == NS_A[0]["resolv_conf"]
    assert "10.10.0.12\tpeer2" in sh(lab, "ip netns exec ns1 cat /etc/hosts").stdout
    assert addrs(lab, "br0") == ["10.10.0.1/24"] and "UP" in link(lab, "br0")["flags"]
    v1, eth0 = link(lab, "v1"), link(lab, "eth0", "ns1")
    assert v1["master"] == "br0" and "UP" in v1["flags"] and "UP" in eth0["flags"]
    assert eth0["address"] == "02:42:0a:0a:00:0b"  # docker rule for 10.10.0.11
    assert addrs(lab, "eth0", "ns1") == ["10.10.0.11/24"] and default_gw(lab, "ns1") == ["10.10.0.1"]
    assert link(lab, "v2")["master"] == "br0"

    # -- second run: nothing to do, no netlink write
    again = run(run_playbook, lab, *apply_tasks(NS_A, BR_A, VETH_A))
    assert_unchanged(again, *MODULES)

    # -- check mode predicts an in-place modification exactly and changes nothing
    before_b = snapshot(lab)
    indexes = ifindexes(lab, "br0", "br1", "v1", "v2")
    eth0_indexes = {ns: link(lab, "eth0", ns)["ifindex"] for ns in ("ns1", "ns2")}
    tasks_b = [task("bridge", "bridge", "merged", BR_B), task("veth", "veth", "replaced", VETH_B)]
    predicted = run(run_playbook, lab, *tasks_b, check=True, diff=True)
    assert_same(before_b, snapshot(lab), "check mode (modify)")
    for name in ("bridge", "veth"):
        assert res(predicted, name)["changed"] is True and "diff" in res(predicted, name)
    modified = run(run_playbook, lab, *tasks_b)
    assert commands(modified, "bridge", "veth") == commands(predicted, "bridge", "veth"), "check mode did not predict the change"

    # -- ... in place: no link was deleted or recreated
    for name, cmds in commands(modified, "bridge", "veth").items():
        assert cmds and not [c for c in cmds if "link del" in c], f"{name}: {cmds}"
    assert ifindexes(lab, "br0", "br1", "v1", "v2") == indexes
    assert {ns: link(lab, "eth0", ns)["ifindex"] for ns in ("ns1", "ns2")} == eth0_indexes
    assert link(lab, "br0")["mtu"] == 1400 and addrs(lab, "br0") == ["10.10.0.1/24", "10.10.1.1/24"]
    assert link(lab, "br1")["address"] == "02:00:00:00:0b:01"
    assert link(lab, "v1")["mtu"] == 1400 and link(lab, "eth0", "ns1")["mtu"] == 1400
    assert link(lab, "eth0", "ns1")["address"] == "02:00:00:00:01:01"
    assert link(lab, "v2")["master"] == "br1"
    assert addrs(lab, "eth0", "ns2") == ["10.20.0.12/24"] and default_gw(lab, "ns2") == ["10.20.0.1"]

    again = run(run_playbook, lab, *tasks_b)
    assert_unchanged(again, "bridge", "veth")

    # -- overridden removes only what the collection created and did not list
    tasks_c = remove_tasks("overridden", ns=[NS_A[0]], br=[BR_B[0]], veth=[VETH_B[0]])
    before_c = snapshot(lab)
    predicted = run(run_playbook, lab, *tasks_c, check=True)
    assert_same(before_c, snapshot(lab), "check mode (overridden)")
    overridden = run(run_playbook, lab, *tasks_c)
    assert commands(overridden, *MODULES) == commands(predicted, *MODULES), "check mode did not predict overridden"
    assert commands(overridden, *MODULES) == {
        "veth": ["ip link del v2"],
        "bridge": ["ip link del br1"],
        "netns": ["rm -rf /etc/netns/ns2", "ip netns delete ns2"],
    }
    assert netns_names(lab) == ["ns1", "userns"]
    host_links = {entry["ifname"] for entry in ipj(lab, "link", "show")}
    assert {"userbr", "userveth", "usera", "userb", "ens160", "br0", "v1"} <= host_links
    assert not {"br1", "v2"} & host_links
    assert link(lab, "eth0", "userns")["ifindex"]  # the foreign pair's far end is still there

    # -- deleted with no config removes everything the collection owns and nothing else
    deleted = run(run_playbook, lab, *remove_tasks("deleted"))
    assert commands(deleted, *MODULES) == {
        "veth": ["ip link del v1"],
        "bridge": ["ip link del br0"],
        "netns": ["rm -rf /etc/netns/ns1", "ip netns delete ns1"],
    }
    assert_same(initial, snapshot(lab), "create + modify + overridden + deleted (leftovers)")
    again = run(run_playbook, lab, *remove_tasks("deleted"))
    assert_unchanged(again, *MODULES)


# --------------------------------------------------------------------------------- traffic


def test_traffic_through_bridge(lab, run_playbook):
    """Two namespaces on one bridge reach each other; the host reaches both; gateway works."""
    run(
        run_playbook,
        lab,
        *apply_tasks(
            ns=[{"name": "c1"}, {"name": "c2"}],
            br=[{"name": "docker0", "addresses": ["172.17.0.1/16"]}],
            veth=[
                {"name": "vc1", "peer_netns": "c1", "master": "docker0", "addresses": ["172.17.0.2/16"], "gateway": "172.17.0.1", "mac": "docker"},
                {"name": "vc2", "peer_netns": "c2", "master": "docker0", "addresses": ["172.17.0.3/16"], "gateway": "172.17.0.1", "mac": "docker"},
            ],
        ),
    )
    assert link(lab, "eth0", "c1")["address"] == "02:42:ac:11:00:02"
    ping(lab, "172.17.0.3", netns="c1")
    ping(lab, "172.17.0.2", netns="c2")
    ping(lab, "172.17.0.2")
    ping(lab, "172.17.0.3")
    # the lab host's LAN address is not on the bridge subnet: only the default route gets there
    ping(lab, ADDR, netns="c1")
    ping(lab, ADDR, netns="c2")


# --------------------------------------------------------------------------------- bad input


def test_bad_input_fails_naming_the_field_and_changes_nothing(lab, run_playbook):
    sh(lab, "ip netns add nsx")
    before = snapshot(lab)
    bad = {
        "missing master": task("missing master", "veth", "merged", [
            {"name": "vok", "peer_netns": "nsx"},
            {"name": "vbad", "peer": "eth1", "peer_netns": "nsx", "master": "nobr"},
        ]),
        "master not a bridge": task("master not a bridge", "veth", "merged", [{"name": "vx", "peer_netns": "nsx", "master": "ens160"}]),
        "missing namespace": task("missing namespace", "veth", "merged", [{"name": "vy", "peer_netns": "nope"}]),
        "long name": task("long name", "bridge", "merged", [{"name": "br0"}, {"name": "a-very-long-name0"}]),
        "mtu": task("mtu", "bridge", "merged", [{"name": "brm", "mtu": 67}]),
        "netns dotdot": task("netns dotdot", "netns", "merged", [{"name": "ok1"}, {"name": ".."}]),
        "veth mac": task("veth mac", "veth", "merged", [{"name": "vz", "peer_netns": "nsx", "mac": "01:00:5e:00:00:01"}]),
    }
    result = run(run_playbook, lab, *[dict(t, ignore_errors=True) for t in bad.values()], ok=False)
    assert result.rc == 0, result.stderr
    expected = {
        "missing master": "config[1] (name=vbad).master: bridge nobr does not exist",
        "master not a bridge": "config[0] (name=vx).master: ens160 is a veth link, not a bridge",
        "missing namespace": "config[0] (name=vy).peer_netns: namespace nope does not exist",
        "long name": "config[1] (name=a-very-long-name0).name:",
        "mtu": "config[0] (name=brm).mtu: MTU 67 is outside 68..65535",
        "netns dotdot": "config[1] (name=..).name:",
        "veth mac": "config[0] (name=vz).mac:",
    }
    for name, start in expected.items():
        r = res(result, name)
        assert r.get("failed") is True, (name, r)
        assert r["msg"].startswith(start), (name, r["msg"])
        assert r.get("changed") is False and not r.get("commands"), (name, r)
    assert_same(before, snapshot(lab), "failed tasks")


# --------------------------------------------------------------------------------- gathered


ROUND_TRIP = {
    "ns": [{"name": "g1", "resolv_conf": "nameserver 192.0.2.1\n", "hosts": [{"ip": "10.40.0.3", "names": ["db", "db.lab"]}]}, {"name": "g2"}],
    "br": [{"name": "brg", "addresses": ["10.40.0.1/24", "10.41.0.1/24"], "mtu": 1450, "stp": True, "mac": "02:00:00:00:40:01"},
           {"name": "brdown", "link_state": "down"}],
    "veth": [{"name": "vg1", "peer_netns": "g1", "master": "brg", "addresses": ["10.40.0.2/24"], "gateway": "10.40.0.1", "mac": "docker",
              "mtu": 1450, "hairpin": True},
             {"name": "vg2", "peer": "p0", "peer_netns": "g2", "addresses": ["10.42.0.2/24"]},
             {"name": "vha", "peer": "vhb"}],
}
OURS = {"netns": ["g1", "g2"], "bridge": ["brg", "brdown"], "veth": ["vg1", "vg2", "vha"]}


def test_gathered_round_trips(lab, run_playbook):
    sh(lab, FOREIGN)
    run(run_playbook, lab, *apply_tasks(ROUND_TRIP["ns"], ROUND_TRIP["br"], ROUND_TRIP["veth"]))
    gather = [task(f"gather {m}", m, "gathered", register=f"g_{m}") for m in MODULES]
    feed_all = [task(f"all {m}", m, "merged", f"{{{{ g_{m}.gathered }}}}", ignore_errors=True) for m in MODULES]
    # the same, limited to the items this test created
    feed_ours = [
        task(f"ours {m}", m, "merged", f"{{{{ g_{m}.gathered | selectattr('name', 'in', {OURS[m]!r}) | list }}}}", ignore_errors=True)
        for m in MODULES
    ]
    before = snapshot(lab)
    result = run(run_playbook, lab, *gather, *feed_ours, *feed_all, ok=False)
    assert result.rc == 0, result.stderr

    gathered = {m: {i["name"]: i for i in res(result, f"gather {m}")["gathered"]} for m in MODULES}
    assert res(result, "gather veth")["changed"] is False
    assert gathered["netns"]["g1"] == ROUND_TRIP["ns"][0]
    assert {"g1", "g2", "userns"} <= set(gathered["netns"])
    assert gathered["bridge"]["brg"] == {
        "name": "brg", "addresses": ["10.40.0.1/24", "10.41.0.1/24"], "mtu": 1450, "stp": True,
        "mac": "02:00:00:00:40:01", "link_state": "up",
    }
    assert gathered["bridge"]["brdown"]["link_state"] == "down"
    assert gathered["veth"]["vg1"] == {
        "name": "vg1", "peer": "eth0", "peer_netns": "g1", "master": "brg", "addresses": ["10.40.0.2/24"],
        "gateway": "10.40.0.1", "mac": "02:42:0a:28:00:02", "mtu": 1450, "hairpin": True, "ipv6": False,
    }
    assert gathered["veth"]["vg2"]["peer"] == "p0" and gathered["veth"]["vg2"]["addresses"] == ["10.42.0.2/24"]
    assert gathered["veth"]["vha"]["peer"] == "vhb" and gathered["veth"]["vha"].get("peer_netns") is None

    problems = []
    for prefix in ("ours", "all"):
        for m in MODULES:
            r = res(result, f"{prefix} {m}")
            if prefix == "all":
                # the hand-made userns, userbr and usera/userb are gathered but never adopted: refused, untouched
                if not (r.get("failed") and r.get("msg", "").endswith("of that name exists that linuxnet.bridge did not create")
                        and not r.get("commands")):
                    problems.append(f"{prefix} {m}: foreign links not refused: msg={r.get('msg')!r} commands={r.get('commands')}")
                continue
            if r.get("failed") or r.get("changed") or r.get("commands"):
                problems.append(f"{prefix} {m}: failed={r.get('failed')} msg={r.get('msg')!r} commands={r.get('commands')}")
    assert_same(before, snapshot(lab), "feeding gathered back")
    assert not problems, "gathered does not round-trip with merged:\n" + "\n".join(problems)


# --------------------------------------------------------------------------------- bridge in a namespace


def test_bridge_inside_a_namespace(lab, run_playbook):
    """A bridge made with netns: is managed, gathered, and removed like a host bridge."""
    sh(lab, "ip netns add userns && ip -n userns link add userbr type bridge")  # foreign, must survive
    bridges = [{"name": "brn1", "netns": "nsb", "addresses": ["10.60.0.1/24"]}, {"name": "brn2", "netns": "nsb", "mtu": 1400}]
    created = run(run_playbook, lab, task("netns", "netns", "merged", [{"name": "nsb"}]), task("bridge", "bridge", "merged", bridges))
    assert commands(created, "bridge")["bridge"][0] == "ip -n nsb link add brn1 type bridge"
    assert addrs(lab, "brn1", "nsb") == ["10.60.0.1/24"] and link(lab, "brn2", "nsb")["mtu"] == 1400
    assert not [e for e in ipj(lab, "link", "show") if e["ifname"].startswith("brn")], "created on the lab host itself"

    result = run(
        run_playbook, lab,
        task("again", "bridge", "merged", bridges),
        task("delete one", "bridge", "deleted", [{"name": "brn1", "netns": "nsb"}]),
        task("gathered", "bridge", "gathered"),
        task("delete all owned", "bridge", "deleted"),
    )
    assert_unchanged(result, "again")
    assert commands(result, "delete one")["delete one"] == ["ip -n nsb link del brn1"]
    names = {e["ifname"] for e in ipj(lab, "link", "show", netns="nsb")}
    gathered = res(result, "gathered")["gathered"]
    problems = []
    if {"name": "brn2", "netns": "nsb"} not in [{"name": i["name"], "netns": i.get("netns")} for i in gathered]:
        problems.append(f"gathered does not report the owned bridge brn2 in nsb: {gathered}")
    if "brn2" in names:
        problems.append(f"deleted without config left the owned bridge brn2 in nsb; commands={res(result, 'delete all owned')['commands']}")
    assert "userbr" in {e["ifname"] for e in ipj(lab, "link", "show", netns="userns")}
    assert not problems, "\n".join(problems)


def test_deleted_never_removes_a_named_object_the_collection_did_not_create(lab, run_playbook):
    """A hand-made bridge, namespace and veth named under state=deleted stay, with a warning."""
    sh(lab, "ip link add handbr type bridge && ip netns add handns && ip link add handveth type veth peer name handpeer")
    before = snapshot(lab)
    result = run(
        run_playbook, lab,
        task("bridge", "bridge", "deleted", [{"name": "handbr"}]),
        task("veth", "veth", "deleted", [{"name": "handveth"}]),
        task("netns", "netns", "deleted", [{"name": "handns"}]),
    )
    for name in ("bridge", "veth", "netns"):
        assert res(result, name)["changed"] is False and res(result, name)["commands"] == [], res(result, name)
        assert any("was not created by linuxnet.bridge: left alone" in w for w in res(result, name).get("warnings", [])), res(result, name)
    assert_same(before, snapshot(lab), "deleted named foreign objects")
    assert "handns" in sh(lab, "ip netns list").stdout


# --------------------------------------------------------------------------------- rendered


def test_rendered_does_not_touch_the_host(lab, run_playbook):
    before = snapshot(lab)
    tasks = [task(m, m, "rendered", c) for m, c in (
        ("netns", [{"name": "r1", "resolv_conf": "nameserver 192.0.2.1\n"}]),
        ("bridge", [{"name": "docker0", "addresses": ["172.17.0.1/16"], "mtu": 1500}]),
        ("veth", [{"name": "vr1", "peer_netns": "r1", "master": "docker0", "addresses": ["172.17.0.2/16"],
                   "gateway": "172.17.0.1", "mac": "docker"}]),
    )]
    result = run(run_playbook, lab, *tasks)
    rendered = {m: res(result, m)["rendered"] for m in MODULES}
    assert rendered == {
        "netns": ["ip netns add r1", "ip -n r1 link set lo up",
                  "printf '%s' 'nameserver 192.0.2.1\n' > /etc/netns/r1/resolv.conf"],
        "bridge": ["ip link add docker0 type bridge", "ip link set docker0 alias 'linuxnet.bridge'",
                   "ip link set docker0 mtu 1500", "ip addr add 172.17.0.1/16 dev docker0", "ip link set docker0 up"],
        "veth": ["ip link add vr1 type veth peer name eth0 netns r1",
                 "ip link set vr1 alias 'linuxnet.bridge veth peer=eth0 netns=r1'",
                 "ip netns exec r1 sysctl -qw net.ipv6.conf.eth0.disable_ipv6=1",
                 "ip link set vr1 master docker0", "ip link set vr1 up",
                 "ip -n r1 link set eth0 address 02:42:ac:11:00:02", "ip -n r1 addr add 172.17.0.2/16 dev eth0",
                 "ip -n r1 link set eth0 up", "ip -n r1 route replace default via 172.17.0.1"],
    }
    for m in MODULES:
        assert res(result, m)["changed"] is False
    assert_same(before, snapshot(lab), "rendered")
