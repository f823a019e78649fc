"""The four peers of the benchmark. Each builds the workload inside a lab host, never on the machine.

* ``linuxnet``: ``ansible-playbook playbooks/site.yml`` (the role), ``playbooks/teardown.yml``;
* ``netavark``: per endpoint ``ip netns add`` + ``netavark setup`` (teardown: ``netavark teardown``
  + ``ip netns del``), driven by one shell loop inside the lab host;
* ``naive``: ``tests/bench/naive.yml`` (one command per object, one iptables call per rule);
* ``floor``: one ``ip -batch`` for the host side, one ``ip -n NS -batch`` per namespace (iproute2
  cannot switch namespaces inside a batch), one ``sysctl``, one ``iptables-restore``.

Every command that touches the network runs through ``Lab.nsenter_argv`` (the lab host's net,
mount and uts namespaces) or through Ansible's nsenter connection to the lab host.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.bench import workload as w
from tests.bench.procwatch import Measurement, Runner
from tests.lab import Lab
from tests.lab.playbook import ansible_env

HOST = "bench1"
HOST_ADDRESS = "172.16.211.128"
GROUP = "linuxnet_hosts"
REPO = w.REPO_ROOT
NETAVARK_CONFIG = "/run/bench-netavark"  # inside the lab host's private /run
_RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                    r"\s+failed=(?P<failed>\d+)")


ETC_NETNS_SIZE = "1g"


def prepare_lab(lab: Lab) -> None:
    """Enlarge the lab host's private /etc/netns tmpfs (4 MB in tests/lab) inside the lab host.

    The role writes /etc/netns/<endpoint>/hosts with one line per endpoint sharing a user-defined
    network: at N=1000 that is 1001 files of ~250 lines, more than 4 MB. A real host keeps /etc
    on disk. This remount happens in the lab host's own mount namespace only.
    """
    lab.run(HOST, ["mount", "-n", "-o", f"remount,size={ETC_NETNS_SIZE}", "/etc/netns"], timeout=30)


class BenchError(RuntimeError):
    """A peer did not do what the benchmark asked: the numbers would be meaningless."""


def netavark_binary() -> str | None:
    found = shutil.which("netavark")
    if found:
        return found
    for path in ("/usr/lib/podman/netavark", "/usr/libexec/podman/netavark"):
        if Path(path).exists():
            return path
    return None


def parse_recap(text: str) -> dict[str, dict[str, int]]:
    recap: dict[str, dict[str, int]] = {}
    seen = False
    for line in text.splitlines():
        if line.startswith("PLAY RECAP"):
            seen = True
            continue
        m = _RECAP.match(line.strip()) if seen else None
        if m:
            recap[m.group("host")] = {k: int(v) for k, v in m.groupdict().items() if k != "host"}
    return recap


@dataclass
class Context:
    runner: Runner
    lab: Lab
    workdir: Path  # on the machine's /tmp, which lab hosts share (inputs and logs only)
    wl: w.Workload
    timeout: float = 7200

    def lab_argv(self, argv: list[str]) -> list[str]:
        return self.lab.nsenter_argv(HOST, argv)

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"


class Peer:
    name = ""
    title = ""
    rerun_supported = True
    max_n: int | None = None

    def available(self) -> str | None:
        """None if the peer can run here, else why not."""
        return None

    def prepare(self, ctx: Context) -> None:
        pass

    def converge(self, ctx: Context) -> Measurement:
        raise NotImplementedError

    def rerun(self, ctx: Context) -> Measurement | None:
        return None

    def teardown(self, ctx: Context) -> Measurement:
        raise NotImplementedError

    def describe(self) -> str:
        return self.title


class AnsiblePeer(Peer):
    """A peer that runs ansible-playbook against the lab inventory."""

    def _playbook(self, ctx: Context, playbook: Path, label: str, extra: list[str]) -> Measurement:
        argv = [str(Path(_venv_bin()) / "ansible-playbook"), "-i", str(ctx.lab.inventory_path), str(playbook), *extra]
        log = ctx.log(f"{self.name}-{label}")
        m = ctx.runner.run(argv, env=ansible_env({"ANSIBLE_NOCOLOR": "1"}), log=log, timeout=ctx.timeout)
        text = log.read_text(errors="replace")
        recap = parse_recap(text).get(HOST)
        if m.rc != 0 or recap is None or recap["failed"] or recap["unreachable"]:
            tail = "\n".join(text.splitlines()[-40:])
            raise BenchError(f"{self.name} {label}: ansible-playbook rc={m.rc}, recap={recap}; log {log}:\n{tail}")
        m.extra["changed"] = recap["changed"]
        m.extra["ok"] = recap["ok"]
        return m


def _venv_bin() -> str:
    import sys

    return str(Path(sys.executable).parent)


class Linuxnet(AnsiblePeer):
    name = "linuxnet"
    title = "linuxnet (ansible-playbook playbooks/site.yml, role linuxnet.bridge.bridge_network)"

    def prepare(self, ctx: Context) -> None:
        (ctx.workdir / "linuxnet-vars.json").write_text(json.dumps(w.linuxnet_vars(ctx.wl)))

    def _args(self, ctx: Context) -> list[str]:
        return ["-e", "@" + str(ctx.workdir / "linuxnet-vars.json")]

    def converge(self, ctx: Context) -> Measurement:
        return self._playbook(ctx, REPO / "playbooks" / "site.yml", "converge", self._args(ctx))

    def rerun(self, ctx: Context) -> Measurement:
        m = self._playbook(ctx, REPO / "playbooks" / "site.yml", "rerun", self._args(ctx))
        if m.extra["changed"] != 0:
            raise BenchError(f"linuxnet re-run reported changed={m.extra['changed']} (must be 0); log {m.log}")
        return m

    def teardown(self, ctx: Context) -> Measurement:
        return self._playbook(ctx, REPO / "playbooks" / "teardown.yml", "teardown", self._args(ctx))


class Naive(AnsiblePeer):
    name = "naive"
    title = "naive playbook (ansible.builtin.command `ip ...` per object, ansible.builtin.iptables per rule)"
    max_n = 100
    playbook = Path(__file__).with_name("naive.yml")

    def prepare(self, ctx: Context) -> None:
        (ctx.workdir / "naive-vars.json").write_text(json.dumps(w.naive_vars(ctx.wl)))

    def _args(self, ctx: Context, state: str) -> list[str]:
        return ["-e", "@" + str(ctx.workdir / "naive-vars.json"), "-e", f"bench_state={state}"]

    def converge(self, ctx: Context) -> Measurement:
        return self._playbook(ctx, self.playbook, "converge", self._args(ctx, "present"))

    def rerun(self, ctx: Context) -> Measurement:
        m = self._playbook(ctx, self.playbook, "rerun", self._args(ctx, "present"))
        if m.extra["changed"] != 0:
            raise BenchError(f"naive re-run reported changed={m.extra['changed']} (must be 0); log {m.log}")
        return m

    def teardown(self, ctx: Context) -> Measurement:
        return self._playbook(ctx, self.playbook, "teardown", self._args(ctx, "absent"))


class ScriptPeer(Peer):
    """A peer driven by one shell script run inside the lab host."""

    rerun_supported = False

    def _script(self, ctx: Context, label: str, body: str) -> Measurement:
        path = ctx.workdir / f"{self.name}-{label}.sh"
        path.write_text("set -eu\n" + body)
        log = ctx.log(f"{self.name}-{label}")
        m = ctx.runner.run(ctx.lab_argv(["sh", str(path)]), log=log, timeout=ctx.timeout)
        if m.rc != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise BenchError(f"{self.name} {label}: rc={m.rc}; log {log}:\n{tail}")
        return m


class Netavark(ScriptPeer):
    name = "netavark"
    max_n = 100  # N=1000 takes hours: each setup reads and rewrites a ruleset that keeps growing
    title = "netavark (`ip netns add` + `netavark setup` per endpoint; `netavark teardown` + `ip netns del`)"

    def __init__(self) -> None:
        self.binary = netavark_binary()

    def available(self) -> str | None:
        return None if self.binary else "netavark not installed (Debian: apt install netavark)"

    def prepare(self, ctx: Context) -> None:
        d = ctx.workdir / "netavark"
        d.mkdir(exist_ok=True)
        for name, text in w.netavark_inputs(ctx.wl).items():
            (d / f"{name}.json").write_text(text)
        (d / "endpoints").write_text("".join(ep.name + "\n" for ep in ctx.wl.endpoints))

    def _loop(self, ctx: Context, body: str) -> str:
        d = shlex.quote(str(ctx.workdir / "netavark"))
        return (f"DIR={d}\nmkdir -p {NETAVARK_CONFIG}\n"
                f'while read -r ep; do\n{body}\ndone < "$DIR/endpoints"\n')

    def converge(self, ctx: Context) -> Measurement:
        nv = shlex.quote(self.binary or "netavark")
        return self._script(ctx, "converge", self._loop(ctx, (
            '  ip netns add "$ep"\n'
            f'  {nv} --config {NETAVARK_CONFIG} setup "/run/netns/$ep" < "$DIR/$ep.json" > /dev/null')))

    def teardown(self, ctx: Context) -> Measurement:
        nv = shlex.quote(self.binary or "netavark")
        return self._script(ctx, "teardown", self._loop(ctx, (
            f'  {nv} --config {NETAVARK_CONFIG} teardown "/run/netns/$ep" < "$DIR/$ep.json"\n'
            '  ip netns del "$ep"')))


class Floor(ScriptPeer):
    name = "floor"
    title = "floor (one `ip -batch`, one `ip -n NS -batch` per namespace, one `iptables-restore`)"

    def prepare(self, ctx: Context) -> None:
        d = ctx.workdir / "floor"
        d.mkdir(exist_ok=True)
        host, inside = w.floor_ip_batches(ctx.wl)
        (d / "host.batch").write_text(host)
        for name, text in inside.items():
            (d / f"{name}.batch").write_text(text)
        (d / "endpoints").write_text("".join(ep.name + "\n" for ep in ctx.wl.endpoints))
        rules = w.floor_rules(ctx.wl)
        (d / "rules.restore").write_text(rules)
        (d / "rules-teardown.restore").write_text(w.floor_rules_teardown(rules))
        (d / "teardown.batch").write_text(w.floor_ip_teardown(ctx.wl))
        (d / "sysctls").write_text(" ".join(w.floor_sysctls(ctx.wl)))

    def converge(self, ctx: Context) -> Measurement:
        d = shlex.quote(str(ctx.workdir / "floor"))
        sysctls = " ".join(shlex.quote(s) for s in w.floor_sysctls(ctx.wl))
        return self._script(ctx, "converge", (
            f"ip -batch {d}/host.batch\n"
            f'while read -r ep; do ip -n "$ep" -batch "{d}/$ep.batch"; done < {d}/endpoints\n'
            f"sysctl -q -w {sysctls}\n"
            f"iptables-restore -w --noflush < {d}/rules.restore\n"))

    def teardown(self, ctx: Context) -> Measurement:
        d = shlex.quote(str(ctx.workdir / "floor"))
        return self._script(ctx, "teardown", (
            f"iptables-restore -w --noflush < {d}/rules-teardown.restore\n"
            f"ip -batch {d}/teardown.batch\n"))


PEERS: dict[str, type[Peer]] = {"linuxnet": Linuxnet, "netavark": Netavark, "naive": Naive, "floor": Floor}


# --------------------------------------------------------------------------- inspection (not timed)


def inspect(ctx: Context) -> dict:
    """What is in the lab host now: rules per table, chains, namespaces, links."""
    save = ctx.lab.run(HOST, ["iptables-save"], timeout=120).stdout
    rules: dict[str, int] = {}
    chains = 0
    table = ""
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:]
            rules.setdefault(table, 0)
        elif line.startswith("-A "):
            rules[table] = rules.get(table, 0) + 1
        elif line.startswith(":"):
            chains += 1
    netns = ctx.lab.run(HOST, ["ip", "netns", "list"], timeout=120).stdout.splitlines()
    links = ctx.lab.run(HOST, ["ip", "-o", "link", "show"], timeout=120).stdout.splitlines()
    return {
        "rules": sum(rules.values()),
        "rules_by_table": rules,
        "chains": chains,
        "netns": len([ln for ln in netns if ln.strip()]),
        "links": len(links),
    }


def spot_check(ctx: Context) -> dict:
    """Traffic proof that the peer built working networks: first and last endpoint ping their gateway."""
    result = {}
    for ep in (ctx.wl.endpoints[0], ctx.wl.endpoints[-1]):
        res = ctx.lab.run(HOST, ["ip", "netns", "exec", ep.name, "ping", "-n", "-c1", "-W2", ep.network.gateway],
                          check=False, timeout=30)
        result[ep.name] = res.returncode == 0
    return result
