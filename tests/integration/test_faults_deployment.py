"""SIGKILL fault test of the role's real path: one ``linuxnet.bridge.deployment`` run.

The module (netns -> bridge -> veth -> firewall -> port_mapping in one process, the firewall and
port_mapping writes joined into one transaction per table) runs straight from ``plugins/modules``
inside a lab host, in a process group of its own, with a JSON args file, as Ansible runs it on a
managed host. The workload has two networks (one dual-stack, so ip6tables / the ip6 table take
part; ICC off on the other) and four endpoints, three with published ports. Foreign rules (every
table we write, both families) and a foreign nft table are loaded first. Per backend (iptables
with the default variant, nftables) the test SIGKILLs that group (only it) during a converge

* at a random moment (fixed seeds), spread over the duration of an uninterrupted run, and
* right after chosen writes of the run (a small launcher counts each netlink batch, namespace
  mount/unmount, sysctl, ownership note, file and ruleset write, and kills its own group after
  the n-th): every ruleset write, the first write of each kind and a few others spread over the run,

runs the converge again and asserts it succeeds, the host is exactly as after an uninterrupted
converge (namespaces, links with master/up state, addresses, routes, IPv6 settings, every
iptables/ip6tables variant's ruleset and the nft ruleset without counters, the files under
/etc/netns and /run/linuxnet) and a third run reports changed=false and writes nothing; then the
same for the teardown (``state: absent``): a killed teardown and a full one leave the host as an
uninterrupted teardown does (nothing of ours; the foreign rules untouched).

Bounded: about a minute for both backends. Run (root):
``.venv/bin/python -m pytest tests/integration/test_faults_deployment.py -q -s`` (-s prints where
each kill landed). A longer hunt: ``LINUXNET_FAULT_SEEDS=40 LINUXNET_FAULT_EVENTS=1000`` (every write).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import ADDR, HOST, REPO, sh
from tests.integration.helpers_process import killed, start

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

SEEDS = range(int(os.environ.get("LINUXNET_FAULT_SEEDS", "3")))
EVENTS = int(os.environ.get("LINUXNET_FAULT_EVENTS", "4"))  # kill points besides the ruleset writes
NETWORKS = [
    {"name": "dual", "subnet": "172.31.1.0/24", "subnet6": "fd00:31:1::/64"},
    {"name": "quiet", "subnet": "172.31.2.0/24", "icc": False},
]
ENDPOINTS = [
    {"name": "k1", "network": "dual", "ports": ["8081:80", "8053:53/udp"]},
    {"name": "k2", "networks": ["dual", "quiet"], "ports": ["9000:9000"]},
    {"name": "k3", "network": "quiet", "ports": ["8082:80"], "dns": {"nameservers": ["192.0.2.53"]}},
    {"name": "k4", "network": "quiet"},
]
RULES = ("iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save", "nft")
BACKENDS = {"iptables": {"firewall_backend": "iptables"}, "nftables": {"firewall_backend": "nftables"}}

# Foreign rules in every table we write, both families, and a foreign nft table: never touched.
FOREIGN = """set -e
iptables -A FORWARD -s 198.51.100.7 -j ACCEPT
iptables -t nat -N FOREIGN && iptables -t nat -A FOREIGN -j RETURN && iptables -t nat -A PREROUTING -j FOREIGN
iptables -t raw -A PREROUTING -s 198.51.100.8 -j DROP
ip6tables -A FORWARD -s 2001:db8:99::7 -j ACCEPT
ip6tables -t nat -A POSTROUTING -s 2001:db8:99::8 -j RETURN
nft add table inet foreign
nft add chain inet foreign input '{ type filter hook input priority 0; }'
nft add rule inet foreign input ip saddr 198.51.100.9 accept
"""

FORWARDING_OFF = "sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0"

# Runs in the lab host: everything the deployment manages, as JSON, in one process.
SNAPSHOT = r'''
import glob, hashlib, json, os, re, subprocess
def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True).stdout
def ipj(*args):
    out = run("ip", "-j", *args)
    return json.loads(out) if out.strip() else []
snap = {"netns": sorted(n["name"] for n in ipj("netns", "list"))}
for ns in [None, *snap["netns"]]:
    where = ["-n", ns] if ns else []
    snap[f"links@{ns}"] = sorted(json.dumps({
        "name": e["ifname"], "mtu": e.get("mtu"), "master": e.get("master"), "up": "UP" in e.get("flags", []),
        "alias": e.get("ifalias"), "kind": e.get("linkinfo", {}).get("info_kind"),
        "hairpin": e.get("linkinfo", {}).get("info_slave_data", {}).get("hairpin"),
        **({"mac": e.get("address")} if ns else {}),  # host-side MACs are the kernel's pick
    }, sort_keys=True) for e in ipj(*where, "-d", "link", "show"))
    snap[f"addrs@{ns}"] = sorted(f"{e['ifname']} {a['local']}/{a['prefixlen']}" for e in ipj(*where, "addr", "show")
                                 for a in e.get("addr_info", []) if a.get("scope") != "link")
    for family in ("-4", "-6"):
        snap[f"routes{family}@{ns}"] = sorted(json.dumps({k: v for k, v in r.items() if k != "expires"}, sort_keys=True)
                                              for r in ipj(*where, family, "route", "show") if not r["dst"].startswith("fe80"))
    prefix = ["ip", "netns", "exec", ns] if ns else []
    snap[f"sysctl@{ns}"] = run(*prefix, "sh", "-c", "grep -H . /proc/sys/net/ipv6/conf/*/disable_ipv6 /proc/sys/net/ipv6/conf/*/accept_ra"
                               " /proc/sys/net/ipv4/conf/*/route_localnet /proc/sys/net/ipv4/ip_forward | grep -v /veth || true")
counters = re.compile(r"\[\d+:\d+\]")
for tool in %(tools)r:
    snap[tool] = [counters.sub("[0:0]", line) for line in run(tool).splitlines() if line and not line.startswith("#")]
# -s: no counters; no -a: no handles. Each chain's (set's) lines in order, the chains by name: the
# order nft lists tables and chains in is the order they were made (iptables-nft makes them as it goes).
blocks, table, block = {}, "", ""
for line in run("nft", "-s", "list", "ruleset").splitlines():
    depth = len(line) - len(line.lstrip("\t"))
    if depth == 0 and line.endswith("{"):
        table = block = line[:-1].strip()
    elif depth == 1 and line.endswith("{"):
        block = table + " / " + line.strip()[:-1].strip()
    if line.strip() and line.strip() != "}":
        blocks.setdefault(block, []).append(line.strip())
snap["nft"] = [f"{name}: {line}" for name in sorted(blocks) for line in blocks[name]]
files = {}
for root in ("/etc/netns", "/run/linuxnet"):
    for path in sorted(glob.glob(root + "/**", recursive=True)):
        if os.path.isfile(path):
            files[path] = hashlib.md5(open(path, "rb").read()).hexdigest()
snap["files"] = files
print(json.dumps(snap))
'''


def diff(want: dict, got: dict) -> str:
    """The parts that differ; of a list or dict, only the lines or files missing and extra."""
    out = {}
    for key in sorted(set(want) | set(got)):
        a, b = want.get(key), got.get(key)
        if a == b:
            continue
        if isinstance(a, (list, dict)) and isinstance(b, (list, dict)):
            a_items = a.items() if isinstance(a, dict) else a
            b_items = b.items() if isinstance(b, dict) else b
            a_set, b_set = {json.dumps(x) for x in a_items}, {json.dumps(x) for x in b_items}
            out[key] = {"missing": sorted(a_set - b_set), "extra": sorted(b_set - a_set)} if a_set != b_set else "order differs"
        else:
            out[key] = {"want": a, "got": b}
    return json.dumps(out)[:3000]


# The module runs under this launcher (then exactly as Ansible runs it: its file as __main__, the
# arguments on stdin). It logs each write the run makes to the host - a netlink batch, a libc
# namespace call (unshare, mount, umount2), a sysctl, an ownership note, a file put in place, a
# ruleset write (each ``*-restore``, each ``nft -f``) - and SIGKILLs its own process group (the
# module's) right after the one numbered in kill-at: a kill at a chosen point of the run. Only
# the kill is the test's: every write is real.
LAUNCHER = r'''
import os, runpy, signal, sys
from ansible.module_utils import basic
from ansible_collections.linuxnet.bridge.plugins.module_utils import _firewall, _links, _netlink, _netns, _ownership
DIR, MODULE = sys.argv[1], sys.argv[2]
KILL_AT = int(open(os.path.join(DIR, "kill-at")).read())
log = open(os.path.join(DIR, "events"), "w", buffering=1)
count = 0

def counted(kind, fn, writes=lambda *a, **kw: True):
    def wrapper(*args, **kwargs):
        global count
        try:
            return fn(*args, **kwargs)
        finally:
            if writes(*args, **kwargs):
                count += 1
                log.write(f"{count} {kind}\n")
                if count == KILL_AT:
                    os.killpg(os.getpgid(0), signal.SIGKILL)
    return wrapper

def ruleset_write(self, args, *rest, **kwargs):
    tool = os.path.basename(str(args[0])) if isinstance(args, list) else ""
    return tool.endswith("-restore") or (tool == "nft" and "-f" in args)

basic.AnsibleModule.run_command = counted("rules", basic.AnsibleModule.run_command, ruleset_write)
_netlink.Netlink.transact = counted("netlink", _netlink.Netlink.transact)
_netlink._libc_call = counted("libc", _netlink._libc_call, lambda name, *args: name != "setns")  # setns only enters
_links.write_sysctl = counted("sysctl", _links.write_sysctl)
_firewall.write_sysctl = counted("sysctl", _firewall.write_sysctl)
for name in ("mark_namespace", "unmark_namespace", "intend_link", "link_marked", "record_bridge_namespace"):
    setattr(_ownership, name, counted("note", getattr(_ownership, name)))
_netns.unmark_namespace = _ownership.unmark_namespace
os.replace = counted("file", os.replace)
sys.argv = [MODULE]
runpy.run_path(MODULE, run_name="__main__")
'''


def args_file(tmp: Path, name: str, args: dict) -> Path:
    path = tmp / f"{name}.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_module_name": "linuxnet.bridge.deployment"}}))
    if not (tmp / "launcher.py").exists():
        (tmp / "launcher.py").write_text(LAUNCHER)
        (tmp / "kill-at").write_text("0")
    script = tmp / f"{name}.sh"
    script.write_text(f"exec {sys.executable} {tmp}/launcher.py {tmp} {REPO}/plugins/modules/deployment.py < {path}\n")
    return script


def killed_at_event(lab, script: Path, n: int) -> bool:
    """Run ``script``, killed right after its n-th write event; False: it made fewer (it finished)."""
    (script.parent / "kill-at").write_text(str(n))
    try:
        proc = start(lab, script)
        proc.communicate(timeout=120)
    finally:
        (script.parent / "kill-at").write_text("0")
    return proc.returncode == -signal.SIGKILL


def events(script: Path) -> list[str]:
    """The write events of the last run of ``script`` ("rules", "netlink", ...), in order."""
    return [line.split()[1] for line in (script.parent / "events").read_text().splitlines()]


def finish(lab, script: Path) -> dict:
    proc = start(lab, script)
    out, err = proc.communicate(timeout=120)
    results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and results and not results[0].get("failed"), (results[:1] or err[-2000:])
    return results[0]


def snapshot(lab, tmp: Path) -> dict[str, Any]:
    return json.loads(lab.run(HOST, [sys.executable, str(tmp / "snapshot.py")], timeout=60).stdout)


def spread(rng: random.Random, seed: int, window: tuple[float, float]) -> float:
    """A random moment: seed 0's anywhere in the run (start-up included), the others' each in its
    share of ``window``, the part of the run that writes, so that together they cover all of it."""
    begin, end = window
    if seed == 0:
        return rng.uniform(0.05, end)
    return begin + (seed - 1 + rng.random()) * (end - begin) / max(len(SEEDS) - 1, 1)


def kill_points(log: list[str]) -> list[int]:
    """Event numbers to kill after: every ruleset write, the first event of each kind and EVENTS
    others, evenly spread. Of a teardown, the first ``libc`` is a namespace's umount2 before its name
    is unlinked, the first ``note`` its unmark: the kills that once stranded the name, and its files."""
    rules = {n for n, kind in enumerate(log, 1) if kind == "rules"}
    firsts = {log.index(kind) + 1 for kind in set(log)}
    others = [n for n, kind in enumerate(log, 1) if kind != "rules"]
    if EVENTS < len(others):
        others = [others[round(i * (len(others) - 1) / max(EVENTS - 1, 1))] for i in range(EVENTS)]
    return sorted(rules | firsts | set(others))


def progress(script: Path, log: list[str]) -> str:
    """How far a killed run got: its write events against an uninterrupted run's."""
    done = events(script)
    return f"{len(done)}/{len(log)} writes done" + (f", the last: {done[-1]}" if done else "")


def timed(lab, script: Path) -> tuple[dict, float]:
    t0 = time.monotonic()
    result = finish(lab, script)
    return result, time.monotonic() - t0


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_a_killed_deployment_run_is_finished_by_the_next_one(lab_factory, tmp_path, backend):
    lab = lab_factory({HOST: ADDR})
    tmp_path.chmod(0o755)
    (tmp_path / "snapshot.py").write_text(SNAPSHOT % {"tools": RULES[:4]})
    options = BACKENDS[backend]
    up = args_file(tmp_path, "up", {"networks": NETWORKS, "endpoints": ENDPOINTS, "state": "present", "return_plan": "on_change", **options})
    down = args_file(tmp_path, "down", {"state": "absent", **options})
    sh(lab, FOREIGN)
    empty = snapshot(lab, tmp_path)

    first = finish(lab, up)
    assert first["changed"] and set(first["changed_steps"]) == {"netns", "bridge", "veth", "firewall", "port_mapping"}, first
    converged = snapshot(lab, tmp_path)
    assert any("fd00:31:1::" in line for line in converged[f"addrs@{None}"]), "the dual-stack network has no IPv6 gateway"
    assert any(line for line in converged["ip6tables-nft-save" if backend == "iptables" else "nft"] if "LINUXNET" in line or "linuxnet" in line)
    again, up_reading = timed(lab, up)  # start-up and reads: a converge writes after that
    assert again["changed"] is False and events(up) == [], (again, events(up))
    finish(lab, down)
    nothing, down_reading = timed(lab, down)
    assert nothing["changed"] is False and events(down) == [], (nothing, events(down))
    # Nothing of ours is left: what a teardown keeps is ip_forward (as Docker does), the lock and
    # state files that record no items. That host is what every later teardown must leave.
    cleared = snapshot(lab, tmp_path)
    assert {k for k in cleared if cleared[k] != empty[k]} <= {"sysctl@None", "files", *RULES}, diff(empty, cleared)
    assert cleared["sysctl@None"].replace("ip_forward:1", "ip_forward:0") == empty["sysctl@None"]
    for tool in RULES:  # besides built-in chains and policies (iptables-nft makes them as it reads a table)
        assert not [line for line in cleared[tool] if "linuxnet" in line.lower()], (tool, cleared[tool])
        assert [line for line in empty[tool] if " -s " in line or "saddr" in line] == \
            [line for line in cleared[tool] if " -s " in line or "saddr" in line], (tool, cleared[tool])
    for path in cleared["files"]:
        assert path.startswith("/run/linuxnet/"), path
        if path.endswith(".json"):
            assert json.loads(sh(lab, f"cat {path}").stdout)["items"] in ({}, []), path

    problems, kills = [], []

    def cycle(label: str, kill_up, kill_down) -> None:
        """A killed converge, a converge, a third run; a killed teardown, a teardown; each checked
        (None: that run is not killed, only made)."""
        # forwarding off again, as on the first converge: the run that turns it on sets the FORWARD
        # policy DROP (dockerd's rule), so kills around that moment are covered too
        sh(lab, FORWARDING_OFF)
        if kill_up is None:
            finish(lab, up)
        else:
            what = kill_up()
            where = progress(up, up_events)
            kills.append(f"{label}: converge killed {what}: {where}")
            result = finish(lab, up)
            now = snapshot(lab, tmp_path)
            if now != converged:
                problems.append(f"{label}: converge killed {what} ({where}), then converged: {diff(converged, now)}")
            third = finish(lab, up)
            if third["changed"] is not False or events(up):
                problems.append(f"{label}: converge killed {what} ({where}): the third run changed something: "
                                f"{third.get('commands')} (the second: {result.get('commands')})")
        if kill_down is None:
            finish(lab, down)
            return
        what = kill_down()
        where = progress(down, down_events)
        kills.append(f"{label}: teardown killed {what}: {where}")
        finish(lab, down)
        now = snapshot(lab, tmp_path)
        if now != cleared:
            problems.append(f"{label}: teardown killed {what} ({where}), then torn down: {diff(cleared, now)}")
            finish(lab, down)  # the next cycle starts from an empty host

    def at_moment(script: Path, at: float, duration: float):
        def kill() -> str:
            killed(lab, script, at)
            return f"at {at:.2f}/{duration:.2f}s"
        return kill

    def at_event(script: Path, n: int, log: list[str]):
        def kill() -> str:
            if not killed_at_event(lab, script, n):
                raise AssertionError(f"{script.name}: no write event {n} (an uninterrupted run made {len(log)})")
            return f"after write event {n}/{len(log)} ({log[n - 1]})"
        return kill

    # The write events of a converge and a teardown from where each cycle starts (the first converge,
    # on a host that never had one, writes a few more: built-in chains, state files).
    sh(lab, FORWARDING_OFF)
    _result, up_duration = timed(lab, up)
    up_events = events(up)
    assert snapshot(lab, tmp_path) == converged
    _result, down_duration = timed(lab, down)
    down_events = events(down)
    assert snapshot(lab, tmp_path) == cleared
    print(f"\n[{backend}] converge writes: {' '.join(up_events)}\n[{backend}] teardown writes: {' '.join(down_events)}")
    # A random moment of the run, spread over it (mostly where it writes).
    up_window = (min(0.9 * up_reading, up_duration), up_duration)
    down_window = (min(0.9 * down_reading, down_duration), down_duration)
    for seed in SEEDS:
        rng = random.Random(f"{backend}-{seed}")
        cycle(f"seed {seed}", at_moment(up, spread(rng, seed, up_window), up_duration),
              at_moment(down, spread(rng, seed, down_window), down_duration))
    # Right after chosen writes: each ruleset write (between two tables of one step, between the
    # families, before the state files record the transaction), and some of the others spread over
    # the run (the link steps write in many small batches).
    up_points, down_points = kill_points(up_events), kill_points(down_events)
    for i, (n, m) in enumerate(itertools.zip_longest(up_points, down_points)):
        cycle(f"point {i}", n and at_event(up, n, up_events), m and at_event(down, m, down_events))
    print(f"\n[{backend}] " + "\n".join(kills))
    assert not problems, "\n".join(problems)
