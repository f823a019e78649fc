"""Where a linuxnet run spends its time, task by task: ``python -m tests.bench.timeline --n 100``.

No sampling profiler: the role's converge, its no-change re-run and its teardown run once each
with ``ANSIBLE_DEBUG=1`` in a fresh lab host (``tests/lab``), and the timestamps Ansible logs split
every task into its phases on the controller and in the module process:

* start-up: from the first log line to the first task (Ansible's own start, the inventory, the
  extra variables of the workload, the playbook and the role);
* per task: the worker's start-up and the task's arguments (templating), the AnsiballZ payload
  build, the connection's commands (tmp dir, transfer, chmod, rm), the module process (from its
  start to its result), and the result handled in the main process.

Debug logging slows Ansible down by some percent; the shares are what this is for. Next to it,
without debug logging and alternating, medians of ``--repeat`` runs: the re-run, a bare start (no
task, the bench's baseline), the same bare start given the workload's variables (``-e @vars``,
what Ansible pays to load them whatever the role does) and one ``ping`` task. Writes
``bench/results/timeline-linuxnet.md`` (``--out``).

``--ssh``: the same against a booted Debian 12 lab machine over SSH, prepared and reached as the
``linuxnet-ssh`` peer (``peers.LinuxnetSSH``: pipelining, become, ControlMaster in the lab's
directory): converge (a new connection), re-run (reused), re-run and ping on a new connection
(the masters closed first) and on a reused one, teardown. Each module run's ssh command is split
by the connection plugin's debug lines and the machine's journal (sshd, sudo, the module's
invocation line, PID 1's reloads and unit starts; the machine shares the kernel's clock): connect,
session, become, transfer, module start-up, module work, exit. Writes
``bench/results/timeline-linuxnet-ssh.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path

from tests.bench import workload as w
from tests.bench.cli import BARE_PLAYBOOK, PING_PLAYBOOK, log, new_run_dir
from tests.bench.peers import GROUP, HOST, HOST_ADDRESS, Context, LinuxnetSSH, machine_unavailable, parse_recap, prepare_lab
from tests.bench.procwatch import Measurement, Runner
from tests.lab import Lab
from tests.lab.playbook import ansible_env

REPO = w.REPO_ROOT
PHASES = (("converge", "site.yml"), ("rerun", "site.yml"), ("teardown", "teardown.yml"))
_LINE = re.compile(r"^\s*(\d+) (\d+\.\d+): (.*)$")
_TASK = re.compile(r"^TASK \[(.*)\] \**$")


def parse(text: str) -> dict:
    """Start-up and per-task phases (seconds) from an ``ANSIBLE_DEBUG=1`` log."""
    events: list[tuple[float, str]] = []
    tasks: list[dict] = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            events.append((float(m.group(2)), m.group(3)))
            continue
        m = _TASK.match(line.strip())
        if m:
            tasks.append({"name": m.group(1).replace("linuxnet.bridge.bridge_network : ", ""), "at": len(events)})
    if not events:
        raise ValueError("no ANSIBLE_DEBUG lines in the log")
    out: dict = {"total": events[-1][0] - events[0][0], "tasks": [], "t0": events[0][0]}
    first = events[tasks[0]["at"]][0] if tasks and tasks[0]["at"] < len(events) else events[-1][0]
    out["startup"] = first - events[0][0]
    for i, task in enumerate(tasks):
        chunk = events[task["at"]: tasks[i + 1]["at"] if i + 1 < len(tasks) else len(events)]
        if not chunk:
            continue
        out["tasks"].append({"name": task["name"], **_task_phases(chunk)})
    last_task_end = max((t["end"] for t in out["tasks"]), default=first)
    out["end"] = events[-1][0] - last_task_end
    for t in out["tasks"]:
        del t["end"]
    return out


def _task_phases(chunk: list[tuple[float, str]]) -> dict:
    start = chunk[0][0]
    end = next((ts for ts, msg in reversed(chunk) if msg.startswith("no more pending results")), chunk[-1][0])

    def first(prefix: str, after: float = 0.0) -> float | None:
        return next((ts for ts, msg in chunk if ts >= after and msg.startswith(prefix)), None)

    phases = {"task": end - start, "end": end}
    # The payload: from Ansible's first ANSIBALLZ line (a build: "Acquiring lock" ... "Done creating module";
    # a payload kept by an earlier run or task: "using cached module") to the next line after its last one
    # (the wrapper around it, with the task's arguments, is assembled in between).
    payload = [i for i, (_ts, msg) in enumerate(chunk) if msg.startswith("ANSIBALLZ: ")]
    built_from = chunk[payload[0]][0] if payload else None
    built_to = chunk[min(payload[-1] + 1, len(chunk) - 1)][0] if payload else None
    run_from = next((ts for ts, msg in chunk if _is_module_run(msg)), None)
    if built_from is None or built_to is None or run_from is None:
        return phases  # no module through the connection (skipped, include, action only)
    # nsenter logs "done communicating" when the process ends; ssh does not.
    run_to = first("done communicating", run_from) or first("_low_level_execute_command() done", run_from) or run_from
    executed = first("calling self._execute()") or start
    # With pipelining the module run is the first command, after the payload build.
    first_cmd = min(ts for ts in (first("_low_level_execute_command(): starting"), built_from) if ts is not None)
    done = first("_execute() done", run_to) or run_to
    phases.update({
        "args": first_cmd - executed,  # templating the task's arguments, loading the action and connection
        "ansiballz": built_to - built_from,
        "module": run_to - run_from,
        "result": end - done,
    })
    phases["connection"] = max(0.0, phases["task"] - (executed - start) - phases["args"] - phases["ansiballz"]
                               - phases["module"] - phases["result"])
    phases["worker"] = executed - start  # queueing the task, forking the worker
    ssh = _ssh_marks(chunk, run_from, run_to)
    if ssh:
        phases["ssh"] = ssh
    return phases


def _is_module_run(msg: str) -> bool:
    """The command that runs the module: its AnsiballZ file, or (pipelining with become) the interpreter after
    the become marker."""
    return (msg.startswith("_low_level_execute_command(): executing:") and ("AnsiballZ_" in msg or "BECOME-SUCCESS-" in msg)
            and "rm -f" not in msg and "chmod" not in msg)


def _ssh_marks(chunk: list[tuple[float, str]], run_from: float, run_to: float) -> dict | None:
    """Absolute timestamps of the ssh connection plugin's steps in the module run (pipelining): the become
    marker seen on stdout, the module sent on stdin, its result read from stdout. None for other connections."""
    inside = [(ts, msg) for ts, msg in chunk if run_from <= ts <= run_to]
    sending = next((ts for ts, msg in inside if msg.startswith("Sending initial data")), None)
    sent = next((ts for ts, msg in inside if msg.startswith("Sent initial data")), None)
    if sending is None or sent is None:
        return None
    out = [ts for ts, msg in inside if ts >= sent and msg.startswith("stdout chunk (state=3)")]
    return {
        "start": run_from,
        "become": next((ts for ts, msg in inside if msg.startswith("become_success:")), None),
        "sending": sending,
        "sent": sent,
        "first_out": out[0] if out else None,
        "last_out": out[-1] if out else None,
        "done": run_to,
    }


RESTORE_UNIT = "linuxnet-bridge.service"  # plugins/module_utils/_persist.py UNIT
_JOURNAL = re.compile(r"^(\d+\.\d+) \S+ ([^\s\[:]+)(?:\[(\d+)\])?: (.*)$")
#: Journal lines of the machine that mark the steps of a module run over SSH (first match in the run).
JOURNAL_MARKS = (
    ("accepted", "sshd", "Accepted publickey"),  # a new connection: the master's key exchange and authentication done
    ("sudo", "sudo", "COMMAND="),  # sudo accepted the command (the become)
    ("invoked", None, "Invoked with"),  # AnsibleModule parsed its arguments: python3, AnsiballZ and imports done
)


def parse_journal(text: str) -> list[tuple[float, str, str]]:
    """``journalctl -o short-unix`` as (time, identifier, message): PID 1's lines (``systemd[1]``), sshd, sudo,
    logind and the modules' invocation lines; the user manager's and other services' lines are left out."""
    events = []
    for line in text.splitlines():
        m = _JOURNAL.match(line)
        if not m:
            continue
        ident, pid, msg = m.group(2), m.group(3), m.group(4)
        if (ident == "systemd" and pid == "1") or ident in ("sshd", "sudo", "systemd-logind") or msg.startswith("Invoked with"):
            events.append((float(m.group(1)), ident, msg))
    return events


def ssh_split(marks: dict, journal: list[tuple[float, str, str]]) -> dict:
    """One module run over SSH (pipelining, become) split by the controller's marks and the machine's journal
    (the same clock: a lab machine shares the kernel). Seconds; a step whose mark is missing is left out.

    connect: the ssh started until sshd accepted the key (ProxyCommand, TCP, key exchange, authentication;
    only when this run opened a new connection); session: until sudo accepted the command (the session
    channel, PAM session, the remote shell, sudo's start); become: until the become marker reached the
    controller; transfer: the module written to ssh's stdin; startup: until AnsibleModule logged its
    invocation (python3 start, AnsiballZ unpacking, imports); work: until the result came back on stdout;
    exit: from the last output to ssh's exit as Ansible sees it (stderr closed or select timeout)."""
    found = {}
    for key, ident, text in JOURNAL_MARKS:
        found[key] = next((ts for ts, who, msg in journal if marks["start"] <= ts <= marks["done"]
                           and (ident is None or who == ident) and text in msg), None)
    out: dict = {"total": marks["done"] - marks["start"]}
    steps = [("connect", marks["start"], found["accepted"]),
             ("session", found["accepted"] or marks["start"], found["sudo"]),
             ("become", found["sudo"], marks["become"]),
             ("transfer", marks["sending"], marks["sent"]),
             ("startup", marks["sent"], found["invoked"]),
             ("work", found["invoked"] or marks["sent"], marks["first_out"]),
             ("exit", marks["last_out"], marks["done"])]
    for key, a, b in steps:
        if a is not None and b is not None:
            out[key] = b - a
    if found["sudo"] is None and marks["become"] is not None:
        out["session"] = marks["become"] - marks["start"]  # no journal: connection, session and sudo together
    # What the module asked of systemd: from PID 1's first reload to its last line about our restore unit.
    sysd = [ts for ts, who, msg in journal if who == "systemd" and marks["start"] <= ts <= marks["done"]
            and (msg.startswith("Reloading") or RESTORE_UNIT in msg)]
    if sysd:
        out["systemd"] = max(sysd) - min(sysd)
    out["events"] = [(ts - marks["start"], who, msg) for ts, who, msg in journal
                     if marks["start"] - 0.05 <= ts <= marks["done"] + 0.05]
    return out


def render(results: dict, repeat: int) -> str:
    lines = ["# Where a linuxnet run spends its time (controller and module process)", "",
             "`python -m tests.bench.timeline`: the role's playbooks with `ANSIBLE_DEBUG=1` in a fresh lab host, "
             "split by the timestamps Ansible logs (debug logging slows Ansible down a little: the shares are what "
             "this is for). Per task: `worker` = queueing and forking the task's worker; `args` = templating the "
             "task's arguments, loading the action and the connection; `ansiballz` = building the module payload "
             "(or taking the one kept by an earlier run) and its wrapper; "
             "`connection` = the connection's commands (tmp dir, transfer, chmod, rm); `module` = the module "
             "process, from its start to its result; `result` = the result handled in the main process.", ""]
    for n, data in results.items():
        base = data["baseline"]
        lines += [f"## N = {n}", "", f"Load average (1 min) at the end: {data.get('loadavg', '?')} on {os.cpu_count()} CPUs.", "",
                  f"Without debug logging, medians of {repeat} alternating runs: re-run {base['rerun']:.2f} s, bare start "
                  f"{base['bare']:.2f} s (re-run - bare = **{base['rerun'] - base['bare']:+.2f} s**), the same bare start "
                  f"given the workload's variables (`-e @vars`) {base['bare_vars']:.2f} s (Ansible loading them: "
                  f"{base['bare_vars'] - base['bare']:+.2f} s), one ping task {base['ping']:.2f} s "
                  f"({base['ping'] - base['bare']:+.2f} s).", ""]
        for phase, tl in data["phases"].items():
            lines += _task_table(phase, tl)
    return "\n".join(lines) + "\n"


def _task_table(phase: str, tl: dict) -> list[str]:
    lines = [f"### {phase}: {tl['total']:.2f} s with debug logging (start-up {tl['startup']:.2f} s)", "",
             "| task | s | worker | args | ansiballz | connection | module | result |",
             "|---|---|---|---|---|---|---|---|"]
    for t in tl["tasks"]:
        cells = [f"{t[k]:.2f}" if k in t else "" for k in ("worker", "args", "ansiballz", "connection", "module", "result")]
        lines.append(f"| {t['name'][:70]} | {t['task']:.2f} | " + " | ".join(cells) + " |")
    return lines + [f"| (after the last task) | {tl['end']:.2f} | | | | | | |", ""]


SSH_STEPS = ("connect", "session", "become", "transfer", "startup", "work", "exit", "systemd")
CONVERGE, RERUN, RERUN_NEW = "converge (a new connection)", "re-run (the connection reused)", "re-run (a new connection)"


def _first_converge(phases: dict) -> list[str]:
    """The first converge against the re-runs, step by step: what the first converge pays that a re-run does not."""
    def split(label: str) -> dict:
        runs = [t["ssh"] for t in phases.get(label, {}).get("tasks", []) if "ssh" in t]
        return {"playbook": phases[label]["total"], **runs[0]} if len(runs) == 1 else {}

    conv, warm, new = split(CONVERGE), split(RERUN), split(RERUN_NEW)
    if not (conv and warm):
        return []
    lines = ["What the first converge pays that a re-run does not (debug logging; the module run's ssh command "
             "split as below; `work` includes `systemd`):", "",
             "| step | converge (a new connection) | re-run (reused) | re-run (a new connection) | converge - re-run (reused) |",
             "|---|---|---|---|---|"]
    for key in ("playbook", "total", *SSH_STEPS):
        cells = [f"{d[key]:.2f}" if key in d else "" for d in (conv, warm, new)]
        diff = f"{conv.get(key, 0.0) - warm.get(key, 0.0):+.2f}" if key in conv or key in warm else ""
        name = {"playbook": "whole playbook", "total": "module run (ssh command)"}.get(key, key)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {diff} |")
    return lines + [""]


def render_ssh(results: dict, repeat: int) -> str:
    lines = ["# Where a linuxnet run spends its time over SSH (controller, connection, machine)", "",
             "`python -m tests.bench.timeline --ssh`: the role's playbooks with `ANSIBLE_DEBUG=1` over SSH (pipelining, "
             "become, Ansible's ControlMaster with its sockets in the lab's directory) against a booted Debian 12 lab "
             "machine prepared as the `linuxnet-ssh` peer prepares it (packages from the lab's repository, not timed). "
             "The per-task table is the nsenter timeline's (`module` = the whole ssh command that runs the module). "
             "The SSH table splits that command by the connection plugin's debug lines and the machine's journal "
             "(the machine shares the kernel's clock): `connect` = ssh started until sshd accepted the key "
             "(ProxyCommand, TCP, key exchange, authentication; only on a new connection); `session` = until sudo "
             "accepted the command (on the reused connection: the new channel through the master, the remote shell "
             "and sudo's start); `become` = until the become marker reached the controller; `transfer` = the module "
             "written to ssh's stdin; `startup` = until the module logged its invocation (python3 start, AnsiballZ "
             "unpacking, imports, argument parsing); `work` = until its result came back; `exit` = from the last "
             "output until Ansible saw ssh end; `systemd` (part of `work`) = from PID 1's first reload to its last line "
             "about the restore unit `linuxnet-bridge.service` (what the module asked of systemd). Interpreter discovery never runs (the inventory sets "
             "`ansible_python_interpreter`). Debug logging slows the controller down a little.", ""]
    for n, data in results.items():
        base = data["baseline"]
        host = ", ".join(f"{k} {v}" for k, v in sorted(data.get("managed_host", {}).items()))
        lines += [f"## N = {n}", "",
                  f"Load average (1 min) at the end: {data.get('loadavg', '?')} on {os.cpu_count()} CPUs. Managed host: {host}. "
                  f"Control sockets after the converge: {', '.join(data.get('control_sockets', [])) or 'none found'}.", "",
                  f"Without debug logging, medians of {repeat} alternating runs: bare start {base['bare']:.2f} s; "
                  f"re-run {base['rerun']:.2f} s on the reused connection, {base['rerun_fresh']:.2f} s on a new one "
                  f"(**{base['rerun_fresh'] - base['rerun']:+.2f} s**); one ping task {base['ping']:.2f} s reused, "
                  f"{base['ping_fresh']:.2f} s new (**{base['ping_fresh'] - base['ping']:+.2f} s**).", ""]
        if data.get("walls"):
            lines += ["Each run without debug logging, in order, with its tail (from the end of its last module "
                      "process on the machine, sudo's session closed in the journal, to ansible-playbook's exit):", "",
                      "| run | s (tail s) |", "|---|---|"]
            for key, walls in data["walls"].items():
                tails = data.get("tails", {}).get(key, [None] * len(walls))
                cells = [f"{wall:.2f}" + (f" ({t:.2f})" if t is not None else "") for wall, t in zip(walls, tails)]
                lines.append(f"| {key} | {', '.join(cells)} |")
            lines.append("")
        lines += _first_converge(data["phases"])
        for phase, tl in data["phases"].items():
            lines += _task_table(phase, tl)
            runs = [t for t in tl["tasks"] if "ssh" in t]
            if not runs:
                continue
            lines += ["| module run over SSH | at s | total | " + " | ".join(SSH_STEPS) + " |",
                      "|---|---|---|" + "---|" * len(SSH_STEPS)]
            for t in runs:
                sp = t["ssh"]
                at = f"{sp['at']:.2f}" if "at" in sp else ""
                cells = [f"{sp[k]:.2f}" if k in sp else "" for k in SSH_STEPS]
                lines.append(f"| {t['name'][:50]} | {at} | {sp['total']:.2f} | " + " | ".join(cells) + " |")
            lines.append("")
            for t in runs:
                if t["ssh"]["events"]:
                    lines += [f"On the machine during `{t['name'][:50]}` (journal; seconds after the ssh command started):", ""]
                    lines += [f"* +{dt:.3f} {who}: {msg[:110]}" for dt, who, msg in t["ssh"]["events"][:40]]
                    lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.timeline", description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--n", type=int, action="append", help="endpoint count N (repeatable; default 100)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each baseline and of the re-run without debug (default 3)")
    p.add_argument("--ssh", action="store_true",
                   help="over SSH against a booted Debian 12 lab machine, as the linuxnet-ssh peer (default out: "
                        "bench/results/timeline-linuxnet-ssh.md)")
    p.add_argument("--snapshot", action="store_true",
                   help="run a copy of the collection taken at the start (others editing the work tree during the run "
                        "would otherwise change the code measured, and the re-run's changed=0 check would fail: the "
                        "boot-time restore bundle holds the module_utils' sources)")
    p.add_argument("--out", help="report (default bench/results/timeline-linuxnet.md)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (lab hosts)", file=sys.stderr)
        return 2
    if args.ssh and machine_unavailable():
        print(machine_unavailable(), file=sys.stderr)
        return 2
    args.out = args.out or str(REPO / "bench" / "results" / f"timeline-linuxnet{'-ssh' if args.ssh else ''}.md")
    os.chdir(REPO)

    def _interrupt(signum, _frame):  # unwind like Ctrl-C, so that the lab is destroyed
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _interrupt)
    work = new_run_dir("timeline-")
    (work / "bare.yml").write_text(BARE_PLAYBOOK)
    (work / "ping.yml").write_text(PING_PLAYBOOK)
    playbooks, code_env = snapshot_collection(work) if args.snapshot else (REPO / "playbooks", {})
    runner = Runner()
    results: dict = {}
    try:
        for n in args.n or [100]:
            results[n] = (_measure_ssh if args.ssh else _measure)(runner, work / f"n{n}", n, args.repeat, playbooks, code_env)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(render_ssh(results, args.repeat) if args.ssh else render(results, args.repeat))
        log(f"wrote {args.out}")
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        runner.close()
        shutil.rmtree(work, ignore_errors=True)


def _measure(runner: Runner, work: Path, n: int, repeat: int, playbooks: Path = REPO / "playbooks",
             code_env: dict[str, str] | None = None) -> dict:
    work.mkdir()
    lab = Lab.create(work / "lab", hosts={HOST: HOST_ADDRESS}, groups={GROUP: [HOST]})
    try:
        prepare_lab(lab)
        variables = work / "vars.json"
        variables.write_text(json.dumps(w.linuxnet_vars(w.build(n))))
        playbook_bin = str(Path(sys.executable).with_name("ansible-playbook"))

        def run(name: str, playbook: Path, extra: list[str], debug: bool, check_changed: int | None = None) -> float:
            env = ansible_env({"ANSIBLE_NOCOLOR": "1", **(code_env or {}), **({"ANSIBLE_DEBUG": "1"} if debug else {})})
            return _play(runner, work, n, name, [playbook_bin, "-i", str(lab.inventory_path), str(playbook), *extra],
                         env, check_changed).wall

        with_vars = ["-e", f"@{variables}"]
        phases = {}
        for phase, playbook in PHASES[:2]:
            log(f"timeline N={n}: {phase}")
            run(phase, playbooks / playbook, with_vars, True, 0 if phase == "rerun" else None)
            phases[phase] = parse((work / f"{phase}.log").read_text(errors="replace"))
        walls: dict[str, list[float]] = {"rerun": [], "bare": [], "bare_vars": [], "ping": []}
        for i in range(repeat):
            log(f"timeline N={n}: baselines {i + 1}/{repeat}")
            walls["bare"].append(run("bare", work.parent / "bare.yml", [], False))
            walls["rerun"].append(run("rerun-plain", playbooks / "site.yml", with_vars, False, 0))
            walls["bare_vars"].append(run("bare", work.parent / "bare.yml", with_vars, False))
            walls["ping"].append(run("ping", work.parent / "ping.yml", [], False))
        phase, playbook = PHASES[2]
        log(f"timeline N={n}: {phase}")
        run(phase, playbooks / playbook, with_vars, True)
        phases[phase] = parse((work / f"{phase}.log").read_text(errors="replace"))
        run("ping-debug", work.parent / "ping.yml", [], True)  # what any module run costs, for comparison
        phases["one ping task (for comparison)"] = parse((work / "ping-debug.log").read_text(errors="replace"))
        return {"phases": phases, "baseline": {k: statistics.median(v) for k, v in walls.items()},
                "loadavg": Path("/proc/loadavg").read_text().split()[0]}
    finally:
        lab.destroy()


def _play(runner: Runner, work: Path, n: int, name: str, argv: list[str], env: dict[str, str],
          check_changed: int | None) -> Measurement:
    """One ansible-playbook run, logged to ``work/<name>.log``; RuntimeError unless it succeeded (and,
    with ``check_changed``, reported that many changes). A bare start has no recap line."""
    logfile = work / f"{name}.log"
    m = runner.run(argv, env=env, log=logfile)
    text = logfile.read_text(errors="replace")
    recap = parse_recap(text).get(HOST, {"failed": 0, "unreachable": 0, "changed": 0} if name == "bare" else None)
    if m.rc != 0 or not recap or recap["failed"] or recap["unreachable"]:
        raise RuntimeError(f"{name} N={n} failed (rc={m.rc}):\n{text[-3000:]}")
    if check_changed is not None and recap["changed"] != check_changed:
        raise RuntimeError(f"{name} N={n}: changed={recap['changed']}, expected {check_changed}")
    return m


def snapshot_collection(work: Path) -> tuple[Path, dict[str, str]]:
    """Copy the collection (and its playbooks) into *work*; its playbooks directory and the environment that
    makes Ansible load the copy (``ANSIBLE_COLLECTIONS_PATH`` wins over ansible.cfg's ``collections_path``)."""
    root = work / "collections"
    target = root / "ansible_collections" / "linuxnet" / "bridge"
    for name in ("galaxy.yml", "meta", "plugins", "roles", "playbooks"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / name)
    return target / "playbooks", {"ANSIBLE_COLLECTIONS_PATH": str(root)}


def _close_masters(ctx: Context, check: bool = True) -> None:
    """End this lab's SSH master connections, so that the next playbook opens a new one.

    The inventory's ``ansible_control_path_dir`` (the lab's ``cp``) wins over the
    ``ANSIBLE_SSH_CONTROL_PATH_DIR`` of ``Context.ansible_env``: close both directories' masters."""
    for directory in (ctx.workdir, ctx.lab.state_dir):
        Context(ctx.runner, ctx.lab, directory, ctx.wl).close_ssh()
    deadline = time.monotonic() + 5
    while _sockets(ctx) and time.monotonic() < deadline:
        time.sleep(0.05)  # the master removes its socket shortly after it acknowledged the exit
    left = _sockets(ctx)
    if left and check:
        raise RuntimeError(f"SSH masters still open after ssh -O exit: {left}")


def _tail(lab: Lab, began: float, ended: float) -> float | None:
    """Seconds from the end of the run's last module process on the machine (sudo's session closed, in its
    journal) to ansible-playbook's exit: the result handled, ssh's end awaited, the recap. None if not found."""
    text = lab.run(HOST, ["journalctl", "-q", "--no-pager", "-o", "short-unix", "--since", f"@{int(began)}"], timeout=60).stdout
    closed = [ts for ts, who, msg in parse_journal(text) if who == "sudo" and "session closed" in msg and began <= ts <= ended]
    return ended - closed[-1] if closed else None


def _sockets(ctx: Context) -> list[str]:
    return [str(s) for d in (ctx.workdir, ctx.lab.state_dir) if (d / "cp").is_dir() for s in (d / "cp").iterdir()
            if s.is_socket()]


def _measure_ssh(runner: Runner, work: Path, n: int, repeat: int, playbooks: Path = REPO / "playbooks",
                 code_env: dict[str, str] | None = None) -> dict:
    """The timeline over SSH: a booted Debian 12 machine prepared as the linuxnet-ssh peer prepares it."""
    work.mkdir()
    peer = LinuxnetSSH()
    lab = Lab.create(work / "lab", hosts={HOST: HOST_ADDRESS}, groups={GROUP: [HOST]}, machines={HOST: peer.machine})
    ctx = Context(runner, lab, work, w.build(n))
    try:
        prepare_lab(lab)
        peer.prepare(ctx)  # linuxnet-vars.json and the packages from the lab's repository (not timed)
        playbook_bin = str(Path(sys.executable).with_name("ansible-playbook"))
        with_vars = peer.bare_args(ctx)
        site, teardown = playbooks / "site.yml", playbooks / "teardown.yml"
        bare, ping = work.parent / "bare.yml", work.parent / "ping.yml"

        def run(name: str, playbook: Path, extra: list[str], debug: bool, check_changed: int | None = None,
                fresh: bool = False, tail: str | None = None) -> float:
            if fresh:
                _close_masters(ctx)
            env = {**ctx.ansible_env(), **(code_env or {}), **({"ANSIBLE_DEBUG": "1"} if debug else {})}
            began = time.time()
            m = _play(runner, work, n, name, [playbook_bin, "-i", str(lab.inventory_path), str(playbook), *extra],
                      env, check_changed)
            if tail:
                tails[tail].append(_tail(lab, began, began + m.wall))
            return m.wall

        def timed(label: str, name: str, playbook: Path, extra: list[str], **kw) -> None:
            log(f"timeline ssh N={n}: {label}")
            run(name, playbook, extra, True, **kw)
            tl = parse((work / f"{name}.log").read_text(errors="replace"))
            journal = parse_journal(lab.run(HOST, ["journalctl", "-q", "--no-pager", "-o", "short-unix",
                                                   "--since", f"@{int(tl['t0']) - 1}"], timeout=60).stdout)
            for task in tl["tasks"]:
                if "ssh" in task:
                    marks = task["ssh"]
                    task["ssh"] = {**ssh_split(marks, journal), "at": marks["start"] - tl["t0"]}
            phases[label] = tl

        phases: dict = {}
        timed(CONVERGE, "converge", site, with_vars)
        masters = _sockets(ctx)
        timed(RERUN, "rerun", site, with_vars, check_changed=0)
        walls: dict[str, list[float]] = {k: [] for k in ("bare", "rerun", "ping", "rerun_fresh", "ping_fresh")}
        tails: dict[str, list[float | None]] = {k: [] for k in walls if k != "bare"}
        for i in range(repeat):
            log(f"timeline ssh N={n}: runs without debug logging {i + 1}/{repeat}")
            walls["bare"].append(run("bare", bare, [], False))
            walls["rerun"].append(run("rerun-plain", site, with_vars, False, 0, tail="rerun"))
            walls["ping"].append(run("ping", ping, [], False, tail="ping"))
            walls["rerun_fresh"].append(run("rerun-plain", site, with_vars, False, 0, fresh=True, tail="rerun_fresh"))
            walls["ping_fresh"].append(run("ping", ping, [], False, fresh=True, tail="ping_fresh"))
        timed(RERUN_NEW, "rerun-fresh", site, with_vars, check_changed=0, fresh=True)
        timed("teardown (the connection reused)", "teardown", teardown, with_vars)
        timed("one ping task (a new connection)", "ping-fresh", ping, [], fresh=True)
        timed("one ping task (the connection reused)", "ping-warm", ping, [])
        return {"phases": phases, "baseline": {k: statistics.median(v) for k, v in walls.items()},
                "loadavg": Path("/proc/loadavg").read_text().split()[0], "managed_host": dict(ctx.info),
                "control_sockets": masters, "walls": walls, "tails": tails}
    finally:
        try:
            _close_masters(ctx, check=False)
        finally:
            lab.destroy()


if __name__ == "__main__":
    sys.exit(main())
