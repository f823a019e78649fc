"""Helpers shared by the integration tests of the firewall and port_mapping modules.

* Lab hosts ``linuxnet1`` (``HOST``, 172.16.211.128) and ``outside`` (172.16.211.1) on a lab LAN.
* ``Traffic``: listeners and parallel probes in lab hosts and their namespaces, with the product's
  own prober (``playbooks/files/linuxnet_probe.py``, the one verify.yml runs; dual-stack): the
  listeners answer with the peer address they saw, so a check can tell who arrived (masquerade,
  SNAT, hairpin). ``Probe6``: a small dual-stack TCP listener/prober of the IPv6 tests.
* Playbook runs of the modules (``playbook``, ``fw_task``, ``run``, ``res``), the lab host's ruleset
  (``save``, ``ours``, ``foreign``, ``duplicates``, ``state_file``), logging ``iptables-restore``
  wrappers (``restore_wrappers``, ``restores``) and endpoints made with plain ``ip`` (``make_endpoints``,
  ``add_ipv6``).
* The three firewall backends (``BACKENDS``) the traffic tests are parametrized over, what each
  writes (``write_wrappers``, ``writes``: ``nft -f`` and every ``ip(6)tables*-restore``), our
  ruleset read back with the backend's own tool (``ruleset``) and whatever of ours is left in any
  backend (``leftovers``).
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.lab.core import Lab

from tests.unit.plugins.module_utils.fixtures.rulesets import GUARD

REPO = Path(__file__).resolve().parents[2]
PROBE = REPO / "playbooks" / "files" / "linuxnet_probe.py"

HOST, OUTSIDE = "linuxnet1", "outside"
ADDR, OUT_ADDR = "172.16.211.128", "172.16.211.1"
HOSTS = {HOST: ADDR, OUTSIDE: OUT_ADDR}
PORT = 7000
TIMEOUT = 1.5  # seconds a probe waits for an answer

#: The three firewall backends every traffic test of firewall and port_mapping runs on: name -> module options.
BACKENDS: dict[str, dict[str, str]] = {
    "iptables-nft": {"firewall_backend": "iptables", "iptables_variant": "iptables-nft"},
    "iptables-legacy": {"firewall_backend": "iptables", "iptables_variant": "iptables-legacy"},
    "nftables": {"firewall_backend": "nftables"},
}

# ------------------------------------------------------------------------------ traffic


class Traffic:
    """Listeners (peer-reporting TCP/UDP) in lab hosts and namespaces, and parallel probes."""

    def __init__(self, lab: Lab, workdir: Path) -> None:
        self.lab = lab
        self.workdir = workdir
        self.pids: list[int] = []

    def spawn(self, host: str, netns: str | None, argv: list[str], tag: str, seconds: int = 600) -> Path:
        """Run ``argv`` in the background (time-limited, in its own process group, carrying the lab
        marker so that the lab's destroy finds it too); returns its log file (stdout + stderr)."""
        argv = ["timeout", str(seconds)] + argv
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        log = self.workdir / f"{tag}.log"
        quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in argv)
        script = f"LAB_MARKER='{self.lab.marker}' setsid {quoted} >'{log}' 2>&1 </dev/null & echo $!"
        self.pids.append(int(self.lab.run(host, ["sh", "-c", script]).stdout.strip()))
        return log

    def start(self, host: str, netns: str | None, tcp=(PORT,), udp=(PORT,), seconds: int = 600) -> None:
        """Listeners that answer every TCP connection / UDP datagram with the peer address they saw."""
        waiting = []
        for kind, ports in (("tcp", tcp), ("udp", udp)):
            for port in ports:
                tag = f"{host}-{netns or 'host'}-{kind}{port}-{len(self.pids)}"
                ready = self.workdir / f"{tag}.ready"
                argv = [sys.executable, str(PROBE), "serve", kind, str(port), str(seconds), str(ready)]
                waiting.append((tag, ready, self.spawn(host, netns, argv, tag, seconds)))
        deadline = time.monotonic() + 10
        for tag, ready, log in waiting:
            while not ready.exists():
                assert time.monotonic() < deadline, f"listener {tag} did not start: {log.read_text()}"
                time.sleep(0.02)
            assert ready.read_text() == "ready", f"listener {tag}: port in use"

    def stop(self) -> None:
        for pid in self.pids:
            try:
                os.killpg(pid, signal.SIGTERM)  # setsid: the listener is its own process group
            except ProcessLookupError:
                pass
        self.pids.clear()

    def probe(self, host: str, checks: list[tuple], expects: list[bool] | None = None) -> list[dict]:
        """checks: (netns or None, kind, address, port), IPv4 or IPv6; all run at once from lab host ``host``.
        expects: per check, whether it must get through: the prober retries those once, patiently
        (verify.yml's way), never the others. Each result: ok (the packet made it and, for TCP, the
        listener answered), reply, error."""
        expects = expects or [False] * len(checks)
        items = [{"source": ns, "kind": kind, "address": addr, "port": port, "timeout": TIMEOUT, "reply": True, "expect": want}
                 for (ns, kind, addr, port), want in zip(checks, expects)]
        arg = base64.b64encode(json.dumps(items).encode()).decode()
        out = self.lab.run(host, [sys.executable, str(PROBE), "run", arg], timeout=60).stdout
        return [{"ok": r["observed"], "reply": r["reply"], "error": r["error"]} for r in json.loads(out)]

    def expect(self, host: str, expectations: dict[tuple, Any]) -> None:
        """{check: True|False|"peer address the server must have seen"}; one failure list for all."""
        checks = list(expectations)
        results = self.probe(host, checks, [want is not False for want in expectations.values()])
        problems = []
        for check, want, got in zip(checks, expectations.values(), results):
            src = f"{host}{'/' + check[0] if check[0] else ''}"
            what = f"{src} -> {check[2]}:{check[3]}/{check[1]}"
            if want is False and got["ok"]:
                problems.append(f"{what}: reached ({got['reply']}) but must not")
            elif want is not False and not got["ok"]:
                problems.append(f"{what}: not reached ({got['error']})")
            elif isinstance(want, str) and got["reply"].split()[:len(want.split())] != want.split():
                problems.append(f"{what}: server answered {got['reply']!r}, expected {want!r} (peer [port])")
        assert not problems, "\n".join(problems)


# A dual-stack TCP listener (answers with the peer address it saw) and a prober for either family,
# its checks "address,port,timeout" run at once.
PROBE6 = r'''
import socket, sys
from concurrent.futures import ThreadPoolExecutor
if sys.argv[1] == "serve":
    port = int(sys.argv[2])
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    sock.listen(16)
    open(sys.argv[3], "w").write("ready")
    while True:
        conn, peer = sock.accept()
        conn.sendall((peer[0].replace("::ffff:", "") + "\n").encode())
        conn.close()
def probe(check):
    address, port, timeout = check.rsplit(",", 2)
    try:
        with socket.create_connection((address, int(port)), timeout=float(timeout)) as sock:
            return sock.recv(200).decode().strip() or "-"
    except OSError:
        return "-"
with ThreadPoolExecutor(max_workers=16) as pool:
    print("\n".join(pool.map(probe, sys.argv[2:])))
'''
BLOCKED_TIMEOUT = 1.0  # a probe that must not get through: its whole cost when it is right
# A probe that must get through waits past Linux's first SYN retransmission (1 s): the first inbound
# IPv6 SYN to a fresh endpoint can be lost (neighbour discovery), and a real client's retry gets there.
REACH_TIMEOUT = 2.5


class Probe6:
    """Dual-stack TCP listeners (``serve``) and probes (``peers``, ``expect``) from lab hosts and namespaces."""

    def __init__(self, lab: Lab, workdir: Path) -> None:
        self.lab, self.script = lab, workdir / "probe6.py"
        self.script.write_text(PROBE6)
        self.traffic = Traffic(lab, workdir)

    def serve(self, host: str, netns: str | None, port: int = PORT) -> None:
        ready = self.traffic.workdir / f"{host}-{netns}-{port}.ready"
        self.traffic.spawn(host, netns, [sys.executable, str(self.script), "serve", str(port), str(ready)], f"{host}-{netns}-{port}")
        for _attempt in range(200):
            if ready.exists():
                return
            time.sleep(0.02)
        raise AssertionError(f"listener {host}/{netns}:{port} did not start")

    def peers(self, host: str, netns: str | None, targets: list[tuple[str, int]], timeout: float | list[float] = BLOCKED_TIMEOUT) -> list[str]:
        """The peer address each target's listener saw ("-": not reached); timeout: one for all, or one per target."""
        timeouts = timeout if isinstance(timeout, list) else [timeout] * len(targets)
        argv = [sys.executable, str(self.script), "probe"] + [f"{a},{p},{t}" for (a, p), t in zip(targets, timeouts)]
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        return self.lab.run(host, argv, timeout=60).stdout.split()

    def expect(self, host: str, netns: str | None, expected: dict[tuple[str, int], str]) -> None:
        """{(address, port): peer the listener must see, "-" for not reached}; a target that must be
        reached gets REACH_TIMEOUT, one that must not BLOCKED_TIMEOUT."""
        timeouts = [BLOCKED_TIMEOUT if want == "-" else REACH_TIMEOUT for want in expected.values()]
        got = dict(zip(expected, self.peers(host, netns, list(expected), timeouts)))
        wrong = {target: (want, got[target]) for target, want in expected.items() if got[target] != want}
        assert not wrong, f"from {host}/{netns}: (expected, seen) {wrong}"


# ------------------------------------------------------------------------------ ansible helpers


def playbook(*tasks: dict) -> str:
    return yaml.safe_dump([{"name": "lab", "hosts": HOST, "gather_facts": False, "tasks": list(tasks)}], sort_keys=False)


MODULE_OPTIONS = ("chain_prefix", "iptables_variant", "firewall_backend")


def fw_task(name: str, config: Any = None, state: str = "merged", **options: Any) -> dict:
    """backend: a name of BACKENDS (or of an iptables variant); the other options go to the task."""
    if "backend" in options:
        options.update(BACKENDS.get(options["backend"], {"iptables_variant": options["backend"]}))
        del options["backend"]
    args: dict[str, Any] = {"state": state, **{k: v for k, v in options.items() if k in MODULE_OPTIONS}}
    if config is not None:
        args["config"] = config
    extra = {k: v for k, v in options.items() if k not in MODULE_OPTIONS}
    return {"name": name, "linuxnet.bridge.firewall": args, **extra}


def run(run_playbook, lab: Lab, *tasks: dict, ok: bool = True, **kwargs: Any):
    result = run_playbook(lab.inventory_path, playbook(*tasks), **kwargs)
    if ok:
        result.assert_ok()
        for t in result.tasks:
            assert not t.failed, f"task {t.task} failed: {json.dumps(t.result, indent=1)[:3000]}"
    return result


def res(result, name: str) -> dict:
    return result.task(name, HOST).result


def sh(lab: Lab, script: str, host: str = HOST, check: bool = True):
    return lab.run(host, ["sh", "-c", script], check=check)


# The lab LAN's IPv6 addresses of the managed host and the probe host (verify's linuxnet_host_address6).
ADDR6, OUT_ADDR6 = "2001:db8:ff::128", "2001:db8:ff::1"


def lan_ipv6_inventory(lab: Lab, directory: Path) -> Path:
    """Give both lab hosts their IPv6 address on the lab LAN and write an inventory that tells
    verify.yml about them (``linuxnet_host_address6``); returns its path."""
    sh(lab, f"ip -6 addr add {ADDR6}/64 dev ens160 nodad")
    sh(lab, f"ip -6 addr add {OUT_ADDR6}/64 dev ens160 nodad", host=OUTSIDE)
    inventory = lab.inventory()
    inventory["all"]["hosts"][HOST]["linuxnet_host_address6"] = ADDR6
    inventory["all"]["hosts"][OUTSIDE]["linuxnet_host_address6"] = OUT_ADDR6
    path = directory / "inventory-ipv6.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def save(lab: Lab, variant: str = "iptables-nft") -> list[str]:
    """iptables-save of the lab host without comments and counters."""
    text = lab.run(HOST, [f"{variant}-save"]).stdout
    return [re.sub(r"\[\d+:\d+\]", "[0:0]", line) for line in text.splitlines() if line and not line.startswith("#")]


def ours(line: str, bridges: tuple[str, ...] = ("lnx-",), prefix: str = "LINUXNET") -> bool:
    return prefix in line or GUARD in line or any(f" {b}" in line for b in bridges)


def foreign(lines: list[str], **kwargs: Any) -> list[str]:
    return [line for line in lines if not ours(line, **kwargs)]


def duplicates(lines: list[str]) -> list[str]:
    rules = [line for line in lines if line.startswith("-A ")]
    return sorted({line for line in rules if rules.count(line) > 1})


def state_file(lab: Lab, prefix: str = "LINUXNET") -> str:
    return sh(lab, f"cat /run/linuxnet/firewall/{prefix}.json 2>/dev/null || true").stdout


def sysctls(lab: Lab) -> str:
    return sh(lab, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/bridge/bridge-nf-call-iptables").stdout


WRAPPER = """#!/bin/sh
echo "$(basename "$0") $*" >> {log}
exec /usr/sbin/$(basename "$0") "$@"
"""


def restore_wrappers(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A PATH whose iptables-*restore log every call; returns (task environment, log file)."""
    wrap = tmp_path / "wrap"
    wrap.mkdir()
    log = tmp_path / "restores.log"
    log.write_text("")
    for name in ("iptables-restore", "iptables-nft-restore", "iptables-legacy-restore"):
        path = wrap / name
        path.write_text(WRAPPER.format(log=log))
        path.chmod(0o755)
    return {"PATH": f"{wrap}:/usr/sbin:/usr/bin:/sbin:/bin"}, log


def restores(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line]


WRITERS = ("nft", *(f"{f}tables{v}-restore" for f in ("ip", "ip6") for v in ("", "-nft", "-legacy")))


def write_wrappers(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A PATH on which every tool that writes a ruleset (nft, ip(6)tables*-restore) logs its calls;
    returns (task environment, log file). ``writes`` keeps the writing calls."""
    wrap = tmp_path / "wrap-writers"
    wrap.mkdir()
    log = tmp_path / "writers.log"
    log.write_text("")
    for name in WRITERS:
        (wrap / name).write_text(WRAPPER.format(log=log))
        (wrap / name).chmod(0o755)
    return {"PATH": f"{wrap}:/usr/sbin:/usr/bin:/sbin:/bin"}, log


def writes(log: Path) -> list[str]:
    """The logged calls that write: every *-restore, and nft -f (nft list/--check only read)."""
    return [line for line in restores(log) if line.split()[0] != "nft" or " -f " in f"{line} "]


def ruleset(lab: Lab, backend: str, family: int = 4) -> str:
    """Our ruleset of one family, read back with the backend's own tool (ip(6)tables-*-save, nft list)."""
    if backend == "nftables":
        return sh(lab, f"nft list table {'ip' if family == 4 else 'ip6'} linuxnet 2>/dev/null || true").stdout
    tool = backend.replace("iptables", "ip6tables") if family == 6 else backend
    return lab.run(HOST, [f"{tool}-save"]).stdout


def leftovers(lab: Lab, prefix: str = "LINUXNET") -> dict[str, list[str]]:
    """Whatever of ours is in any backend and family (empty when nothing is): every iptables variant's
    save for both families, and the nft tables named after the prefix."""
    found = {}
    for tool in ("iptables-nft-save", "iptables-legacy-save", "ip6tables-nft-save", "ip6tables-legacy-save"):
        lines = [line for line in sh(lab, f"{tool} 2>/dev/null || true").stdout.splitlines()
                 if not line.startswith("#") and ours(line, prefix=prefix)]
        if lines:
            found[tool] = lines
    tables = [line for line in sh(lab, "nft list tables").stdout.splitlines() if line.split()[-1] == prefix.lower()]
    if tables:
        found["nft"] = tables
    return found


def add_ipv6(lab: Lab, bridges: dict[str, str], endpoints: dict[str, tuple[str, str]]) -> None:
    """IPv6 for bridges {name: gateway/64} and endpoints {netns: (bridge, address)} made by
    make_endpoints (nodad; accept_ra=0 on the bridge, as the link modules do; default route via the bridge)."""
    lines = ["set -e"]
    for bridge, gateway in bridges.items():
        lines += [f"sysctl -qw net.ipv6.conf.{bridge}.disable_ipv6=0 net.ipv6.conf.{bridge}.accept_ra=0",
                  f"ip -6 addr add {gateway} dev {bridge} nodad"]
    for ns, (bridge, address) in endpoints.items():
        lines += [f"ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.eth0.disable_ipv6=0",
                  f"ip -n {ns} -6 addr add {address}/64 dev eth0 nodad",
                  f"ip -n {ns} -6 route add default via {bridges[bridge].split('/')[0]}"]
    sh(lab, "\n".join(lines))


def make_endpoints(lab: Lab, bridges: dict[str, str], endpoints: dict[str, tuple[str, str]]) -> None:
    """Bridges {name: gateway/prefix} and endpoint namespaces {netns: (bridge, address)} inside the lab
    host, with plain ip commands (one shell run; the netlink modules have tests of their own).
    Like dockerd's endpoints: MAC 02:42 + address, default route via the bridge, hairpin mode on."""
    lines = ["set -e"]
    for bridge, gateway in bridges.items():
        lines.append(f"ip link add {bridge} type bridge && ip addr add {gateway} dev {bridge} && ip link set {bridge} up")
    for ns, (bridge, address) in endpoints.items():
        prefix = bridges[bridge].split("/")[1]
        mac = "02:42:" + ":".join(f"{int(o):02x}" for o in address.split("."))
        lines += [
            f"ip netns add {ns} && ip -n {ns} link set lo up",
            f"ip link add v{ns} type veth peer name eth0 netns {ns}",
            f"ip link set v{ns} master {bridge} && ip link set v{ns} up && bridge link set dev v{ns} hairpin on",
            f"ip -n {ns} link set eth0 address {mac} && ip -n {ns} addr add {address}/{prefix} dev eth0",
            f"ip -n {ns} link set eth0 up && ip -n {ns} route add default via {bridges[bridge].split('/')[0]}",
        ]
    sh(lab, "\n".join(lines))
