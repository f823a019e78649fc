"""``python -m tests.bench``: run the benchmark of issue 7 and write ``bench/results/``.

Every measurement runs in a fresh lab host (tests/lab) that is destroyed right after it, also on
errors, Ctrl-C and SIGTERM. Processes we start carry ``LINUXNET_BENCH_RUN=<id>``; a later run
kills what a killed (SIGKILL) run left behind and destroys its labs. The machine's real network
namespace is snapshotted before and compared after (tests/guard.py); a difference fails the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from tests import guard
from tests.bench import report
from tests.bench import workload as w
from tests.bench.peers import GROUP, HOST, HOST_ADDRESS, PEERS, BenchError, Context, Peer, inspect, netavark_binary, prepare_lab, spot_check
from tests.bench.procwatch import Runner
from tests.lab import Lab
from tests.lab.core import destroy_state_dir
from tests.lab.playbook import ansible_env

REPO = w.REPO_ROOT
RUN_ENV = "LINUXNET_BENCH_RUN"
WORK_ROOT = Path(tempfile.gettempdir()) / "linuxnet-bench"
OWNER_FILE = "owner.json"
BARE_PLAYBOOK = """---
- name: Bare ansible-playbook start (no task)
  hosts: linuxnet_hosts
  gather_facts: false
  tasks: []
"""
PING_PLAYBOOK = """---
- name: One trivial module through the lab connection
  hosts: linuxnet_hosts
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- leftovers of killed runs


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
        return stat[stat.rfind(")") + 2:].split()[19]
    except (OSError, IndexError):
        return None


def _environ_has(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return needle in fh.read().split(b"\0")
    except OSError:
        return False


def _kill_marked(run_id: str) -> int:
    """SIGKILL every process that carries RUN_ENV=run_id (never ourselves)."""
    needle = f"{RUN_ENV}={run_id}".encode()
    killed = 0
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me and _environ_has(int(entry), needle):
            try:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def cleanup_stale(root: Path) -> None:
    """Remove what runs that died without cleaning up (kill -9) left: processes, labs, files."""
    if not root.is_dir():
        return
    for run_dir in sorted(root.iterdir()):
        owner_file = run_dir / OWNER_FILE
        try:
            owner = json.loads(owner_file.read_text())
        except (OSError, ValueError):
            continue
        pid = int(owner.get("pid", 0))
        if pid and _start_time(pid) == owner.get("start_time"):
            continue  # that run is alive (another user's benchmark): leave it alone
        killed = _kill_marked(owner.get("run_id", "-"))
        labs = 0
        for state in run_dir.glob("*/lab/state.json"):
            destroy_state_dir(state.parent)
            labs += 1
        shutil.rmtree(run_dir, ignore_errors=True)
        log(f"cleaned up a dead run in {run_dir}: {killed} process(es) killed, {labs} lab(s) destroyed")


# --------------------------------------------------------------------------- machine and versions


def _cmd(argv: list[str]) -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"<{exc}>"
    return (res.stdout or res.stderr).strip()


def machine_info() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/meminfo").read_text().splitlines()
                   if ln.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    try:
        from importlib.metadata import version

        pyroute2 = version("pyroute2")
        ansible_core = version("ansible-core")
        ansible = version("ansible")
    except Exception:  # noqa: BLE001
        pyroute2 = ansible_core = ansible = "?"
    galaxy = {}
    try:
        import yaml

        galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    except Exception:  # noqa: BLE001
        pass
    nv = netavark_binary()
    commit = _cmd(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _cmd(["git", "-C", str(REPO), "status", "--porcelain", "--", "plugins", "roles", "playbooks"])
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory": mem,
        "kernel": platform.release(),
        "os": _os_release(),
        "iptables": _cmd(["iptables", "--version"]),
        "iproute2": _cmd(["ip", "-V"]),
        "python": platform.python_version(),
        "ansible_core": ansible_core,
        "ansible": ansible,
        "pyroute2": pyroute2,
        "netavark": _cmd([nv, "--version"]) if nv else "not installed",
        "netavark_path": nv,
        "collection": f"{galaxy.get('namespace', 'linuxnet')}.{galaxy.get('name', 'bridge')} {galaxy.get('version', '?')}",
        "commit": commit + (" (+ local changes in plugins/roles/playbooks)" if dirty else ""),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.platform()


def new_run_dir(prefix: str) -> Path:
    """A fresh work directory under WORK_ROOT for one run of a bench tool, after removing what dead runs
    left; marked with its owner (so a later run can tell it is alive) and RUN_ENV set to its name
    (inherited by everything the run starts, so a killed run's processes can be found)."""
    WORK_ROOT.mkdir(mode=0o700, exist_ok=True)
    cleanup_stale(WORK_ROOT)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=WORK_ROOT))
    (work / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "start_time": _start_time(os.getpid()), "run_id": work.name}))
    os.environ[RUN_ENV] = work.name
    return work


# --------------------------------------------------------------------------- the run


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        WORK_ROOT.mkdir(mode=0o700, exist_ok=True)
        cleanup_stale(WORK_ROOT)
        self.run_dir = WORK_ROOT / self.run_id
        self.run_dir.mkdir(mode=0o700)
        (self.run_dir / OWNER_FILE).write_text(json.dumps(
            {"pid": os.getpid(), "start_time": _start_time(os.getpid()), "run_id": self.run_id}))
        os.environ[RUN_ENV] = self.run_id  # inherited by everything we start, also inside labs
        self.runner = Runner()
        self.lab: Lab | None = None
        self.results: dict = {"runs": [], "baseline": {}, "skipped": [], "capped": [], "errors": []}

    # -- one lab per measurement ----------------------------------------------------------------
    def _new_lab(self, workdir: Path, machine: str | None = None) -> Lab:
        """A fresh lab with one host: a namespace lab host, or a booted Debian machine of suite *machine*."""
        self.lab = Lab.create(workdir / "lab", hosts={HOST: HOST_ADDRESS}, groups={GROUP: [HOST]},
                              machines={HOST: machine} if machine else None)
        prepare_lab(self.lab)
        return self.lab

    def _drop_lab(self) -> None:
        self.runner.kill_current()
        if self.lab is not None:
            lab, self.lab = self.lab, None
            lab.destroy()

    def _paired_bare(self, ctx: Context, extra: tuple[str, ...] = (), label: str = "bare"):
        """A bare ``ansible-playbook`` start in the same lab right before the re-run.

        This machine's speed drifts by tens of percent within minutes (a shared VM), so the
        re-run target compares each re-run with a bare start measured next to it, not with the
        baseline measured at the start of the benchmark. With *extra* (the peer's ``-e @vars``)
        it is the same bare start given the workload's variables: what Ansible pays to load them
        whatever the role does (reported next to the target, not judged).
        """
        path = ctx.workdir / "bare.yml"
        path.write_text(BARE_PLAYBOOK)
        m = self.runner.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(ctx.lab.inventory_path),
                             str(path), *extra], env=ctx.ansible_env(), log=ctx.workdir / f"{label}.log")
        if m.rc != 0:
            raise BenchError(f"paired {label} start failed rc={m.rc}; log {ctx.workdir / f'{label}.log'}")
        return m

    def measure(self, peer: Peer, wl: w.Workload, rep: int, variant: str) -> dict:
        workdir = self.run_dir / f"n{wl.n}-{variant}-{peer.name}-{rep}"
        workdir.mkdir()
        lab = self._new_lab(workdir, peer.machine)
        record: dict = {"peer": peer.name, "n": wl.n, "variant": variant, "rep": rep, "phases": {}, "state": {},
                        "loadavg": Path("/proc/loadavg").read_text().split()[:3]}
        ctx = Context(self.runner, lab, workdir, wl, timeout=self.args.timeout)
        try:
            peer.prepare(ctx)
            if ctx.info:
                record["managed_host"] = dict(ctx.info)
            record["state"]["empty"] = inspect(ctx)
            m = peer.converge(ctx)
            record["phases"]["converge"] = m.as_dict()
            state = inspect(ctx)
            record["state"]["converged"] = state
            ping = spot_check(ctx)
            record["state"]["ping"] = ping
            if state["netns"] != len(wl.endpoints):
                raise BenchError(f"{peer.name}: {state['netns']} namespaces after converge, want {len(wl.endpoints)}")
            if not all(ping.values()):
                raise BenchError(f"{peer.name}: endpoints cannot reach their gateway: {ping}")
            if variant == "full":
                if peer.rerun_supported:
                    if peer.paired_bare:
                        record["phases"]["bare"] = self._paired_bare(ctx).as_dict()
                        record["phases"]["bare_vars"] = self._paired_bare(ctx, tuple(peer.bare_args(ctx)), "bare-vars").as_dict()
                    record["phases"]["rerun"] = peer.rerun(ctx).as_dict()
                    record["state"]["rerun"] = inspect(ctx)
                record["phases"]["teardown"] = peer.teardown(ctx).as_dict()
                record["state"]["torn_down"] = inspect(ctx)
                if record["state"]["torn_down"]["netns"] != 0:
                    raise BenchError(f"{peer.name}: namespaces left after teardown: {record['state']['torn_down']}")
        finally:
            if HOST in lab.machines:
                ctx.close_ssh()
            self._drop_lab()
            if not self.args.keep_work:
                shutil.rmtree(workdir, ignore_errors=True)
        return record

    def baseline(self, machine: str | None = None) -> None:
        """Bare ``ansible-playbook`` starts and one ``ping`` task, in a namespace lab host or a machine.

        On a machine (keys ``bare-ssh``, ``ping-ssh``) the first ping opens the SSH connection and
        the later ones reuse it (ControlPersist, as for users running playbooks one after another).
        """
        suffix = "-ssh" if machine else ""
        workdir = self.run_dir / f"baseline{suffix}"
        workdir.mkdir()
        lab = self._new_lab(workdir, machine)
        env = ansible_env({"ANSIBLE_NOCOLOR": "1"})
        if machine:
            (workdir / "cp").mkdir(mode=0o700)
            env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(workdir / "cp")  # see peers.Context.ansible_env
        try:
            for name, text in (("bare", BARE_PLAYBOOK), ("ping", PING_PLAYBOOK)):
                path = workdir / f"{name}.yml"
                path.write_text(text)
                runs = []
                for _attempt in range(max(3, self.args.repeat)):
                    m = self.runner.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i",
                                         str(lab.inventory_path), str(path)], env=env, log=workdir / f"{name}.log")
                    if m.rc != 0:
                        raise BenchError(f"baseline {name}{suffix} failed rc={m.rc}; log {workdir / name}.log")
                    runs.append(m.as_dict())
                self.results["baseline"][name + suffix] = runs
                walls = ", ".join(f"{r['wall']:.2f}" for r in runs)
                log(f"baseline {name}{suffix}: median {statistics.median(r['wall'] for r in runs):.2f}s ({walls})")
        finally:
            if machine:
                Context(self.runner, lab, workdir, w.build(1)).close_ssh()
            self._drop_lab()

    def run(self) -> int:
        args = self.args
        peers: list[Peer] = []
        for name in args.peers:
            peer = PEERS[name]()
            why = peer.available()
            if why:
                self.results["skipped"].append({"peer": name, "why": why})
                log(f"skipping {name}: {why}")
            else:
                peers.append(peer)
        self.results["machine"] = machine_info()
        self.results["meta"] = {
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": "python -m tests.bench " + " ".join(sys.argv[1:]),
            "sizes": args.sizes,
            "repeat": args.repeat,
            "peers": [p.name for p in peers],
            "process_counting": "proc-connector" if self.runner.events.available else "machine-wide /proc/stat",
            "proc_events_error": self.runner.events.error,
        }
        t0 = time.monotonic()
        try:
            if not args.no_baseline:
                self.baseline()
                for suite in sorted({p.machine for p in peers if p.machine}):
                    self.baseline(suite)
            for n in args.sizes:
                wl = w.build(n)
                for peer in peers:
                    if peer.max_n is not None and n > peer.max_n and not self._once(peer, n):
                        log(f"skipping {peer.name} N={n} (runs N <= {peer.max_n})" +
                            (f": {peer.cap_reason}" if peer.cap_reason else ""))
                        self.results["capped"].append({"peer": peer.name, "n": n, "max_n": peer.max_n,
                                                       "why": peer.cap_reason})
                for rep in range(1, args.repeat + 1):
                    for peer in peers:
                        if peer.max_n is not None and n > peer.max_n and not (rep == 1 and self._once(peer, n)):
                            continue
                        self._one(peer, wl, rep, "full")
                if n == args.sizes[0] and not args.no_range_cost:
                    # The cost of the port range: the smallest N again, eprange publishing nothing.
                    wl = w.build(n, range_ports=False)
                    for rep in range(1, args.repeat + 1):
                        for peer in peers:
                            if peer.max_n is None or n <= peer.max_n:
                                self._one(peer, wl, rep, "norange")
                self._checkpoint(t0)
        finally:
            self._drop_lab()
            self.results["meta"]["duration_s"] = round(time.monotonic() - t0, 1)
            self.results["meta"]["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            self.results["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
        failed = {(e["peer"], e["n"], e["variant"], e["rep"]) for e in self.results["errors"]}
        done = {(r["peer"], r["n"], r["variant"], r["rep"]) for r in self.results["runs"]}
        return 1 if failed - done else 0

    @staticmethod
    def _once(peer: Peer, n: int) -> bool:
        """Whether *peer* is measured once (first repetition only) at *n*, above its max_n."""
        return peer.once_max_n is not None and n <= peer.once_max_n

    def _one(self, peer: Peer, wl: w.Workload, rep: int, variant: str) -> None:
        label = f"{peer.name} N={wl.n}{'' if variant == 'full' else ' ' + variant} rep {rep}/{self.args.repeat}"
        for attempt in range(1, self.args.retries + 2):
            log(f"{label} ..." + (f" (attempt {attempt})" if attempt > 1 else ""))
            try:
                rec = self.measure(peer, wl, rep, variant)
                break
            except Exception as exc:  # noqa: BLE001 - any failure drops this measurement, not the run
                text = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
                self.results["errors"].append({"peer": peer.name, "n": wl.n, "variant": variant, "rep": rep,
                                               "attempt": attempt, "error": text})
                log(f"{label}: ERROR {text}")
                if self.args.fail_fast:
                    raise
        else:
            return
        self.results["runs"].append(rec)
        ph = rec["phases"]
        log(f"{label}: " + "  ".join(
            f"{k} {v['wall']:.2f}s/{v['processes']}p" + (f"/changed={v['changed']}" if "changed" in v else "")
            for k, v in ph.items()) + f"  rules={rec['state']['converged']['rules']}")

    def _checkpoint(self, t0: float) -> None:
        self.results["meta"]["duration_s"] = round(time.monotonic() - t0, 1)
        self.results["meta"]["partial"] = True
        report.write(self.results, Path(self.args.out), merge=self.args.merge)
        self.results["meta"].pop("partial", None)

    def close(self) -> None:
        try:
            self._drop_lab()
        finally:
            self.runner.close()
            if not self.args.keep_work:
                shutil.rmtree(self.run_dir, ignore_errors=True)


def _sizes(text: str) -> list[int]:
    sizes = sorted({int(x) for x in text.split(",") if x.strip()})
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes: comma-separated positive integers, e.g. 10,100,1000")
    return sizes


def _peers(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    for name in names:
        if name not in PEERS:
            raise argparse.ArgumentTypeError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--sizes", type=_sizes, default=[10, 100], help="endpoint counts N (default 10,100)")
    p.add_argument("--repeat", type=int, default=3, help="repetitions per peer and N, each in a fresh lab (default 3)")
    p.add_argument("--peers", type=_peers, default=list(PEERS), help="subset of " + ",".join(PEERS))
    p.add_argument("--out", default=str(REPO / "bench" / "results"), help="results directory (default bench/results)")
    p.add_argument("--merge", action="store_true",
                   help="keep results of earlier runs (latest.json) for peer/N pairs this run does not measure")
    p.add_argument("--timeout", type=float, default=7200, help="seconds per command (default 7200)")
    p.add_argument("--no-baseline", action="store_true", help="skip the bare ansible-playbook baseline")
    p.add_argument("--no-range-cost", action="store_true",
                   help="skip the runs without the port range (that isolate the cost of the 1000-port range)")
    p.add_argument("--keep-work", action="store_true", help="keep inputs and logs in " + str(WORK_ROOT))
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failed measurement")
    p.add_argument("--retries", type=int, default=1,
                   help="measure again (fresh lab) after a failed measurement, this many times (default 1)")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("tests.bench needs root: lab hosts are namespaces (see tests/lab/README.md)", file=sys.stderr)
        return 2
    os.chdir(REPO)

    def _interrupt(signum, _frame):  # unwind like Ctrl-C, so that labs are destroyed
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup: keep ignoring SIGHUP
            signal.signal(sig, _interrupt)
    before = guard.snapshot()
    bench = Bench(args)
    rc = 0
    try:
        rc = bench.run()
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc or 'SIGINT'}): destroying the lab and stopping")
        rc = 130
    except BenchError as exc:
        log(f"failed: {exc}")
        rc = 1
    finally:
        bench.close()
        changes = guard.diff(before, guard.snapshot())
        bench.results.setdefault("meta", {})["real_netns_unchanged"] = not changes
        if changes:
            log("THE REAL NETWORK NAMESPACE CHANGED:\n" + "\n".join(changes))
            rc = 3
        if bench.results.get("runs") or bench.results.get("baseline"):
            paths = report.write(bench.results, Path(args.out), merge=args.merge)
            log("wrote " + ", ".join(str(p) for p in paths))
    return rc
