"""The four peers of the benchmark. Each builds the workload inside a lab host, never on the machine.

* ``linuxnet``: ``ansible-playbook playbooks/site.yml`` (the role), ``playbooks/teardown.yml``;
* ``linuxnet-ssh``: the same playbooks over SSH (pipelining, become) against a booted Debian 12
  lab machine (``tests/lab`` machines: systemd, sshd, the distro's own python3, no pyroute2);
* ``netavark``: per endpoint ``ip netns add`` + ``netavark setup`` (teardown: ``netavark teardown``
  + ``ip netns del``), driven by one shell loop inside the lab host;
* ``netavark-ssh``: the same loop on the booted Debian 12 lab machine, with the machine's own
  netavark (Debian's package), the whole loop in one ``ssh`` invocation;
* ``naive``: ``tests/bench/naive.yml`` (one command per object, one iptables call per rule);
* ``floor``: one ``ip -batch`` for the host side, one ``ip -n NS -batch`` per namespace (iproute2
  cannot switch namespaces inside a batch), one ``sysctl``, one ``iptables-restore``.

Every command that touches the network runs through ``Lab.nsenter_argv`` (the lab host's net,
mount and uts namespaces; for a machine, all namespaces of its PID 1), through Ansible's nsenter
connection to the lab host, or over SSH into the lab machine (through the lab's fabric).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench import workload as w
from tests.bench.procwatch import Measurement, Runner
from tests.lab import Lab
from tests.lab import machine as lab_machine
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
    on disk. This remount happens in the lab host's own mount namespace only. A booted machine
    keeps /etc on its disk (overlay) like a real host: nothing to do there.
    """
    if HOST in lab.machines:
        return
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
    #: What the peer's prepare found out about the managed host (a machine: its distro, python3,
    #: iptables, nftables), recorded with the measurement.
    info: dict = field(default_factory=dict)

    def lab_argv(self, argv: list[str]) -> list[str]:
        return self.lab.nsenter_argv(HOST, argv)

    def ansible_env(self) -> dict[str, str]:
        """Environment of every ansible-playbook of this measurement.

        SSH: Ansible's default ControlMaster/ControlPersist (60 s) stays on, as users have it, but
        the control sockets live in this measurement's own directory: every lab machine has the
        same address and user, so the shared ``~/.ansible/cp`` could hand a new lab (or another
        engineer's concurrent lab) a master connection to a different machine. The first playbook
        of a measurement (the converge) therefore opens the connection, later ones reuse it.
        """
        extra = {"ANSIBLE_NOCOLOR": "1"}
        if HOST in self.lab.machines:
            cp = self.workdir / "cp"
            cp.mkdir(mode=0o700, exist_ok=True)
            extra["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(cp)
        return ansible_env(extra)

    def close_ssh(self) -> None:
        """End the SSH master connections of this measurement (before its lab is destroyed).

        A master outlives ansible-playbook (ControlPersist) and, once its lab is gone, would
        linger for up to a minute; its process title hides the run's environment marker. The
        machine inventory's ``ansible_control_path_dir`` (the lab's own ``cp``) wins over the
        ``ANSIBLE_SSH_CONTROL_PATH_DIR`` of :meth:`ansible_env`, so the masters live there; both
        directories are closed.
        """
        for cp in (self.workdir / "cp", Path(self.lab.state_dir) / lab_machine.CONTROL_DIR):
            if not cp.is_dir():
                continue
            for sock in cp.iterdir():
                if sock.is_socket():
                    subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "lab-machine"],
                                   capture_output=True, timeout=10, check=False)

    def ssh_argv(self, argv: list[str], become: bool = True) -> list[str]:
        """argv that runs *argv* on the lab machine over SSH (as root through sudo when *become*)."""
        return lab_machine.ssh_argv(self.lab.state_dir, self.lab.address(HOST), argv, become=become)

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"


class Peer:
    name = ""
    title = ""
    rerun_supported = True
    max_n: int | None = None
    #: Why N above max_n is not measured (logged and shown in the report).
    cap_reason = ""
    #: N above max_n but up to this is measured once (the first repetition only), not skipped.
    once_max_n: int | None = None
    #: Debian suite of a booted lab machine to measure in (tests/lab machines); None: a namespace lab host.
    machine: str | None = None
    #: Time a bare ``ansible-playbook`` start in the same lab right before the re-run.
    paired_bare = False

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
        m = ctx.runner.run(argv, env=ctx.ansible_env(), log=log, timeout=ctx.timeout)
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
    paired_bare = True

    def prepare(self, ctx: Context) -> None:
        (ctx.workdir / "linuxnet-vars.json").write_text(json.dumps(w.linuxnet_vars(ctx.wl)))

    def _args(self, ctx: Context) -> list[str]:
        return ["-e", "@" + str(ctx.workdir / "linuxnet-vars.json")]

    def bare_args(self, ctx: Context) -> list[str]:
        """What the paired bare start given the workload's variables adds to its command line."""
        return self._args(ctx)

    def converge(self, ctx: Context) -> Measurement:
        return self._playbook(ctx, REPO / "playbooks" / "site.yml", "converge", self._args(ctx))

    def rerun(self, ctx: Context) -> Measurement:
        m = self._playbook(ctx, REPO / "playbooks" / "site.yml", "rerun", self._args(ctx))
        if m.extra["changed"] != 0:
            raise BenchError(f"{self.name} re-run reported changed={m.extra['changed']} (must be 0); log {m.log}")
        return m

    def teardown(self, ctx: Context) -> Measurement:
        return self._playbook(ctx, REPO / "playbooks" / "teardown.yml", "teardown", self._args(ctx))


#: What the role needs on a Debian host (roles/bridge_network/vars/Debian.yml), from the lab
#: machine's local repository (the machine reaches no registry).
MACHINE_PACKAGES = ("iptables", "nftables", "conntrack")
_HOST_INFO = r"""
. /etc/os-release
echo "os=$PRETTY_NAME"
echo "python3=$(python3 -c 'import platform; print(platform.python_version())')"
"""
# The installed version of each package named in "$@".
_VERSIONS = r"""
for p in "$@"; do echo "$p=$(dpkg-query -W -f '${Version}' "$p" 2>/dev/null)"; done
"""


def machine_unavailable() -> str | None:
    """None if booted lab machines can run here, else why not."""
    for tool in ("systemd-nspawn", "nc", "ssh"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (lab machines need it: see tests/lab/README.md, 'Booted machines')"
    return None


class LinuxnetSSH(Linuxnet):
    """The same playbooks as ``linuxnet``, over SSH with pipelining against a booted Debian machine."""

    name = "linuxnet-ssh"
    title = ("linuxnet over SSH (the same playbooks, SSH with pipelining and become, against a booted "
             "Debian 12 lab machine with its own python3)")
    machine = "bookworm"
    max_n = 100
    cap_reason = ("issue 11 asks for N=10 and 100: what a real connection adds is a cost per module run, "
                  "the same at every N (the role runs the same tasks), so N=1000 would repeat the nsenter "
                  "peer's scaling")

    def available(self) -> str | None:
        return machine_unavailable()

    def prepare(self, ctx: Context) -> None:
        """Install what the role needs (not timed): ``apt-get install`` over SSH from the local repository."""
        super().prepare(ctx)
        install_on_machine(ctx, self.name, MACHINE_PACKAGES)


def install_on_machine(ctx: Context, peer: str, packages: tuple[str, ...]) -> None:
    """``apt-get install`` *packages* over SSH from the machine's local repository (not timed); record versions."""
    script = ("export DEBIAN_FRONTEND=noninteractive; apt-get -q update && "
              "apt-get -q -y --no-install-recommends install " + " ".join(packages))
    log = ctx.log(f"{peer}-packages")
    with log.open("w") as fh:
        res = subprocess.run(ctx.ssh_argv(["sh", "-c", script]), stdin=subprocess.DEVNULL, stdout=fh,
                             stderr=subprocess.STDOUT, timeout=600, check=False)
    if res.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise BenchError(f"{peer}: package install on the machine failed rc={res.returncode}; log {log}:\n{tail}")
    res = subprocess.run(ctx.ssh_argv(["sh", "-c", _HOST_INFO + _VERSIONS, "info", *packages], become=False),
                         capture_output=True, text=True, timeout=60, check=False)
    ctx.info.update(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)


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
    # Above N=100 each setup reads and rewrites a ruleset that keeps growing (N=1000: tens of
    # minutes per phase), so N=1000 is measured once, not three times.
    max_n = 100
    once_max_n = 1000
    cap_reason = "each setup reads and rewrites a ruleset that keeps growing; N=1000 is measured once"
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

    @staticmethod
    def loop(directory: str, binary: str, phase: str) -> str:
        """The shell loop of *phase* over the endpoints listed in *directory* (inputs: ``<ep>.json``)."""
        nv = shlex.quote(binary)
        if phase == "converge":
            body = ('  ip netns add "$ep"\n'
                    f'  {nv} --config {NETAVARK_CONFIG} setup "/run/netns/$ep" < "$DIR/$ep.json" > /dev/null')
        else:
            body = (f'  {nv} --config {NETAVARK_CONFIG} teardown "/run/netns/$ep" < "$DIR/$ep.json"\n'
                    '  ip netns del "$ep"')
        return (f"DIR={shlex.quote(directory)}\nmkdir -p {NETAVARK_CONFIG}\n"
                f'while read -r ep; do\n{body}\ndone < "$DIR/endpoints"\n')

    def converge(self, ctx: Context) -> Measurement:
        return self._script(ctx, "converge", self.loop(str(ctx.workdir / "netavark"), self.binary or "netavark",
                                                       "converge"))

    def teardown(self, ctx: Context) -> Measurement:
        return self._script(ctx, "teardown", self.loop(str(ctx.workdir / "netavark"), self.binary or "netavark",
                                                       "teardown"))


#: Where netavark-ssh keeps its inputs and loop scripts on the machine (its own disk, root only).
MACHINE_NETAVARK_DIR = "/root/bench-netavark"
_FIND_NETAVARK = ("for p in $(command -v netavark) /usr/lib/podman/netavark /usr/libexec/podman/netavark; do "
                  '[ -x "$p" ] && { echo "$p"; exit 0; }; done; exit 1')


class NetavarkSSH(Netavark):
    """``netavark``'s loop on the booted Debian 12 lab machine: its own netavark, one ``ssh`` per phase.

    The inputs and both loop scripts are copied to the machine in ``prepare`` (not timed); each
    phase is one ``ssh ... sudo -n sh SCRIPT`` that runs the whole loop there, so the connection is
    paid once per phase (as ``linuxnet-ssh`` pays it once per playbook; no ControlMaster here: its
    first playbook opens the connection too), not once per endpoint.
    """

    name = "netavark-ssh"
    title = ("netavark over SSH (the same loop, run on the booted Debian 12 lab machine with Debian's netavark, "
             "one `ssh` per phase)")
    machine = "bookworm"
    max_n = 100
    once_max_n = None
    cap_reason = "the linuxnet-ssh peer it is compared with runs N ≤ 100"
    #: netavark needs iptables (its firewall driver runs iptables); iproute2 is in the image.
    PACKAGES = ("netavark", "iptables")

    def available(self) -> str | None:
        return machine_unavailable()

    def prepare(self, ctx: Context) -> None:
        install_on_machine(ctx, self.name, self.PACKAGES)
        res = subprocess.run(ctx.ssh_argv(["sh", "-c", _FIND_NETAVARK]), capture_output=True, text=True,
                             timeout=60, check=False)
        if res.returncode != 0:
            raise BenchError(f"{self.name}: no netavark binary on the machine after installing it: {res.stderr}")
        binary = res.stdout.strip()
        ctx.info["netavark_path"] = binary
        super().prepare(ctx)  # the inputs, in the workdir
        d = ctx.workdir / "netavark"
        for phase in ("converge", "teardown"):
            (d / f"{phase}.sh").write_text("set -eu\n" + self.loop(MACHINE_NETAVARK_DIR, binary, phase))
        tar = subprocess.run(["tar", "-C", str(d), "-cf", "-", "."], capture_output=True, timeout=120, check=True)
        res = subprocess.run(ctx.ssh_argv(["sh", "-c", f"mkdir -p {MACHINE_NETAVARK_DIR} && "
                                                       f"tar -C {MACHINE_NETAVARK_DIR} -xf -"]),
                             input=tar.stdout, capture_output=True, timeout=300, check=False)
        if res.returncode != 0:
            raise BenchError(f"{self.name}: copying the inputs to the machine failed: {res.stderr.decode(errors='replace')}")
        # What one connection costs (part of each timed phase): an ``ssh ... sudo -n true``.
        m = ctx.runner.run(ctx.ssh_argv(["true"]), log=ctx.log(f"{self.name}-ssh-true"), timeout=60)
        if m.rc == 0:
            ctx.info["ssh_true_s"] = f"{m.wall:.2f}"

    def _remote(self, ctx: Context, phase: str) -> Measurement:
        """One ``ssh`` that runs the whole loop of *phase* on the machine, as root."""
        log = ctx.log(f"{self.name}-{phase}")
        m = ctx.runner.run(ctx.ssh_argv(["sh", f"{MACHINE_NETAVARK_DIR}/{phase}.sh"]), log=log, timeout=ctx.timeout)
        if m.rc != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise BenchError(f"{self.name} {phase}: rc={m.rc}; log {log}:\n{tail}")
        return m

    def converge(self, ctx: Context) -> Measurement:
        return self._remote(ctx, "converge")

    def teardown(self, ctx: Context) -> Measurement:
        return self._remote(ctx, "teardown")


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


PEERS: dict[str, type[Peer]] = {
    "linuxnet": Linuxnet,
    "linuxnet-ssh": LinuxnetSSH,
    "netavark": Netavark,
    "netavark-ssh": NetavarkSSH,
    "naive": Naive,
    "floor": Floor,
}


# --------------------------------------------------------------------------- inspection (not timed)


def inspect(ctx: Context) -> dict:
    """What is in the lab host now: rules per table, chains, namespaces, links.

    ``Lab.run`` enters the lab host's namespaces; for a machine, all namespaces of its PID 1 as
    root (the machine's own iptables-save and ip).
    """
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
