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
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
from pathlib import Path

from tests.bench import workload as w
from tests.bench.cli import BARE_PLAYBOOK, PING_PLAYBOOK, log, new_run_dir
from tests.bench.peers import GROUP, HOST, HOST_ADDRESS, parse_recap, prepare_lab
from tests.bench.procwatch import Runner
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
    out: dict = {"total": events[-1][0] - events[0][0], "tasks": []}
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
    built_from = first("ANSIBALLZ: Creating module")
    built_to = first("ANSIBALLZ: Done creating module")
    run_from = next((ts for ts, msg in chunk if msg.startswith("_low_level_execute_command(): executing:")
                     and "AnsiballZ_" in msg and "rm -f" not in msg and "chmod" not in msg), None)
    if built_from is None or built_to is None or run_from is None:
        return phases  # no module through the connection (skipped, include, action only)
    run_to = first("done communicating", run_from) or run_from
    executed = first("calling self._execute()") or start
    first_cmd = first("_low_level_execute_command(): starting") or built_from
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
    return phases


def render(results: dict, repeat: int) -> str:
    lines = ["# Where a linuxnet run spends its time (controller and module process)", "",
             "`python -m tests.bench.timeline`: the role's playbooks with `ANSIBLE_DEBUG=1` in a fresh lab host, "
             "split by the timestamps Ansible logs (debug logging slows Ansible down a little: the shares are what "
             "this is for). Per task: `worker` = queueing and forking the task's worker; `args` = templating the "
             "task's arguments, loading the action and the connection; `ansiballz` = building the module payload; "
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
            lines += [f"### {phase}: {tl['total']:.2f} s with debug logging (start-up {tl['startup']:.2f} s)", "",
                      "| task | s | worker | args | ansiballz | connection | module | result |",
                      "|---|---|---|---|---|---|---|---|"]
            for t in tl["tasks"]:
                cells = [f"{t[k]:.2f}" if k in t else "" for k in ("worker", "args", "ansiballz", "connection", "module", "result")]
                lines.append(f"| {t['name'][:70]} | {t['task']:.2f} | " + " | ".join(cells) + " |")
            lines += [f"| (after the last task) | {tl['end']:.2f} | | | | | | |", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.timeline", description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--n", type=int, action="append", help="endpoint count N (repeatable; default 100)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each baseline and of the re-run without debug (default 3)")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "timeline-linuxnet.md"))
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (lab hosts)", file=sys.stderr)
        return 2
    os.chdir(REPO)
    work = new_run_dir("timeline-")
    (work / "bare.yml").write_text(BARE_PLAYBOOK)
    (work / "ping.yml").write_text(PING_PLAYBOOK)
    runner = Runner()
    results: dict = {}
    try:
        for n in args.n or [100]:
            results[n] = _measure(runner, work / f"n{n}", n, args.repeat)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(render(results, args.repeat))
        log(f"wrote {args.out}")
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        runner.close()
        shutil.rmtree(work, ignore_errors=True)


def _measure(runner: Runner, work: Path, n: int, repeat: int) -> dict:
    work.mkdir()
    lab = Lab.create(work / "lab", hosts={HOST: HOST_ADDRESS}, groups={GROUP: [HOST]})
    try:
        prepare_lab(lab)
        variables = work / "vars.json"
        variables.write_text(json.dumps(w.linuxnet_vars(w.build(n))))
        playbook_bin = str(Path(sys.executable).with_name("ansible-playbook"))

        def run(name: str, playbook: Path, extra: list[str], debug: bool, check_changed: int | None = None) -> float:
            env = ansible_env({"ANSIBLE_NOCOLOR": "1", **({"ANSIBLE_DEBUG": "1"} if debug else {})})
            logfile = work / f"{name}.log"
            m = runner.run([playbook_bin, "-i", str(lab.inventory_path), str(playbook), *extra], env=env, log=logfile)
            text = logfile.read_text(errors="replace")
            recap = parse_recap(text).get(HOST, {"failed": 0, "unreachable": 0, "changed": 0} if name == "bare" else None)
            if m.rc != 0 or not recap or recap["failed"] or recap["unreachable"]:
                raise RuntimeError(f"{name} N={n} failed (rc={m.rc}):\n{text[-3000:]}")
            if check_changed is not None and recap["changed"] != check_changed:
                raise RuntimeError(f"{name} N={n}: changed={recap['changed']}, expected {check_changed}")
            return m.wall

        with_vars = ["-e", f"@{variables}"]
        phases = {}
        for phase, playbook in PHASES[:2]:
            log(f"timeline N={n}: {phase}")
            run(phase, REPO / "playbooks" / playbook, with_vars, True, 0 if phase == "rerun" else None)
            phases[phase] = parse((work / f"{phase}.log").read_text(errors="replace"))
        walls: dict[str, list[float]] = {"rerun": [], "bare": [], "bare_vars": [], "ping": []}
        for i in range(repeat):
            log(f"timeline N={n}: baselines {i + 1}/{repeat}")
            walls["bare"].append(run("bare", work.parent / "bare.yml", [], False))
            walls["rerun"].append(run("rerun-plain", REPO / "playbooks" / "site.yml", with_vars, False, 0))
            walls["bare_vars"].append(run("bare", work.parent / "bare.yml", with_vars, False))
            walls["ping"].append(run("ping", work.parent / "ping.yml", [], False))
        phase, playbook = PHASES[2]
        log(f"timeline N={n}: {phase}")
        run(phase, REPO / "playbooks" / playbook, with_vars, True)
        phases[phase] = parse((work / f"{phase}.log").read_text(errors="replace"))
        run("ping-debug", work.parent / "ping.yml", [], True)  # what any module run costs, for comparison
        phases["one ping task (for comparison)"] = parse((work / "ping-debug.log").read_text(errors="replace"))
        return {"phases": phases, "baseline": {k: statistics.median(v) for k, v in walls.items()},
                "loadavg": Path("/proc/loadavg").read_text().split()[0]}
    finally:
        lab.destroy()


if __name__ == "__main__":
    sys.exit(main())
