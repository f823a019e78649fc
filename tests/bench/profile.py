"""Profile the linuxnet peer: ``python -m tests.bench.profile --n 100 [--py-spy PATH]``.

Runs the role's first converge, idempotent re-run and teardown for the benchmark workload of
size N in a fresh lab host, each under ``py-spy record --subprocesses`` (controller, the forked
Ansible worker and every module process inside the lab host are sampled), with the
``ansible.posix.profile_tasks`` callback for per-task times. Writes
``bench/results/profile-linuxnet-n<N>.md``: the task times and, per process kind, the hottest
functions (self and inclusive samples). py-spy is not a project dependency: give its path
(``pip install --target DIR py-spy`` works) or have it on PATH.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import sys
from pathlib import Path

from tests.bench import workload as w
from tests.bench.cli import log, new_run_dir
from tests.bench.peers import GROUP, HOST, HOST_ADDRESS, parse_recap, prepare_lab
from tests.bench.procwatch import Runner
from tests.lab import Lab
from tests.lab.playbook import ansible_env

REPO = w.REPO_ROOT
PHASES = (("converge", "site.yml"), ("rerun", "site.yml"), ("teardown", "teardown.yml"))
_LOCATION = re.compile(r" \(([^():]*?)(?::\d+)?\)$")


def group_of(processes: list[str]) -> str:
    """Kind of the sampled process, from py-spy's ``process PID:"cmdline"`` frames (root first)."""
    last = processes[-1] if processes else ""
    m = re.search(r"AnsiballZ_(\w+)\.py", last)
    if m:
        return f"module {m.group(1)}"
    if len(processes) <= 1:
        return "controller (main process)"
    if len(processes) == 2:
        return "controller (forked task worker)"
    return "other"


def analyse(raw: Path) -> dict:
    """Samples per process kind, and per kind the top functions (self, inclusive)."""
    groups: collections.Counter = collections.Counter()
    self_c: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    incl: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in raw.read_text(errors="replace").splitlines():
        stack, _sep, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        processes = [f for f in frames if f.startswith("process ")]
        funcs = [_LOCATION.sub(lambda m: f" ({m.group(1)})", f) for f in frames if not f.startswith("process ")]
        g = group_of(processes)
        groups[g] += count
        if funcs:
            self_c[g][funcs[-1]] += count
            for f in set(funcs):
                incl[g][f] += count
    return {"groups": groups, "self": self_c, "inclusive": incl}


def task_times(text: str) -> list[tuple[str, str]]:
    out = []
    if "TASKS RECAP" not in text:
        return out
    for line in text.split("TASKS RECAP", 1)[1].splitlines():
        m = re.match(r"^(.*?) -+ (\d+\.\d+)s$", line.strip())
        if m:
            out.append((m.group(1).replace("linuxnet.bridge.bridge_network : ", ""), m.group(2)))
    return out


_BORING = re.compile(r"^(<module>|_run_code|_run_module_code|run_module|_run_module|_ansiballz_main|invoke_module|main) ")


def render(n: int, results: dict, rate: int) -> str:
    lines = [f"# Profile of the linuxnet peer, N={n}", "",
             f"`python -m tests.bench.profile --n {n}`: py-spy {rate} Hz, `--subprocesses` (the controller, its forked "
             "task workers and every module process in the lab host). Sampling slows the run down; the wall times "
             "here are for orientation only (see latest.md for the benchmark).", ""]
    for phase, data in results.items():
        a = data["analysis"]
        total = sum(a["groups"].values()) or 1
        lines += [f"## {phase}: {data['wall']:.1f} s under the profiler", "", "Task times (profile_tasks):", ""]
        lines += ["| task | s |", "|---|---|"] + [f"| {t} | {s} |" for t, s in data["tasks"][:12]] + [""]
        lines += ["Samples per process kind:", "", "| process | samples | share |", "|---|---|---|"]
        lines += [f"| {g} | {c} | {100 * c / total:.0f}% |" for g, c in a["groups"].most_common()] + [""]
        for g, c in a["groups"].most_common(5):
            if c < total * 0.04:
                continue
            lines += [f"### {phase} / {g}", "", "| inclusive | function | | self | function |", "|---|---|---|---|---|"]
            inc = [(f, k) for f, k in a["inclusive"][g].most_common(60) if not _BORING.match(f)][:14]
            slf = a["self"][g].most_common(14)
            for i in range(max(len(inc), len(slf))):
                left = inc[i] if i < len(inc) else ("", "")
                right = slf[i] if i < len(slf) else ("", "")
                lines.append(f"| {left[1]} | `{left[0][:110]}` | | {right[1]} | `{right[0][:110]}` |")
            lines.append("")
    return "\n".join(lines) + "\n"


def find_py_spy(given: str | None) -> str | None:
    for candidate in (given, shutil.which("py-spy")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.profile", description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--py-spy", dest="py_spy")
    p.add_argument("--rate", type=int, default=100)
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    p.add_argument("--keep", action="store_true", help="keep the raw py-spy files and logs")
    args = p.parse_args(argv)
    py_spy = find_py_spy(args.py_spy)
    if not py_spy:
        print("py-spy not found: pip install --target /tmp/pyspy py-spy, then --py-spy /tmp/pyspy/bin/py-spy",
              file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("needs root (lab hosts)", file=sys.stderr)
        return 2
    os.chdir(REPO)
    work = new_run_dir("profile-")
    runner = Runner()
    lab = None
    results: dict = {}
    try:
        lab = Lab.create(work / "lab", hosts={HOST: HOST_ADDRESS}, groups={GROUP: [HOST]})
        prepare_lab(lab)
        (work / "vars.json").write_text(json.dumps(w.linuxnet_vars(w.build(args.n))))
        env = ansible_env({"ANSIBLE_NOCOLOR": "1", "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"})
        for phase, playbook in PHASES:
            raw = work / f"{phase}.raw"
            # --nonblocking: never pause the sampled processes (pausing a module that writes a large
            # result to its pipe has been seen to truncate the result).
            argv = [py_spy, "record", "--subprocesses", "--nonblocking", "--rate", str(args.rate), "--format", "raw",
                    "-o", str(raw),
                    "--", str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(lab.inventory_path),
                    str(REPO / "playbooks" / playbook), "-e", f"@{work / 'vars.json'}"]
            log(f"profiling {phase} N={args.n} ...")
            m = runner.run(argv, env=env, log=work / f"{phase}.log")
            text = (work / f"{phase}.log").read_text(errors="replace")
            recap = parse_recap(text).get(HOST)
            if m.rc != 0 or not recap or recap["failed"] or recap["unreachable"]:
                print(text[-4000:], file=sys.stderr)
                return 1
            results[phase] = {"wall": m.wall, "tasks": task_times(text), "analysis": analyse(raw)}
            log(f"{phase}: {m.wall:.1f}s")
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"profile-linuxnet-n{args.n}.md"
        path.write_text(render(args.n, results, args.rate))
        log(f"wrote {path}")
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        runner.close()
        if lab is not None:
            lab.destroy()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
