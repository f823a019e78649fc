"""Fleet run: ``python -m tests.bench.fleet --hosts 1,4 --n 10 [--forks 4] [--repeat 1]``.

One playbook run of the role against K lab hosts at once (Ansible forks), each host building the
benchmark workload of size N: the converge, the no-change re-run and the teardown, timed as a
whole (wall) and per host (first task start to last task result, callback
``bench_host_times``). Issue 17 asks that the per-host time stays flat as K grows: the module
runs in each host in parallel, up to the controller's forks (and this machine's cores). Every lab
is destroyed, also on errors; results go to ``bench/results/fleet.md`` and ``fleet.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

from tests.bench import workload as w
from tests.bench.cli import log, new_run_dir
from tests.bench.peers import ETC_NETNS_SIZE, GROUP, parse_recap
from tests.bench.procwatch import Runner
from tests.lab import Lab
from tests.lab.playbook import ansible_env

REPO = w.REPO_ROOT
PHASES = (("converge", "site.yml"), ("rerun", "site.yml"), ("teardown", "teardown.yml"))


def sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def run_fleet(work: Path, runner: Runner, k: int, n: int, forks: int) -> dict:
    hosts = {f"fleet{i}": f"172.16.211.{128 + i}" for i in range(1, k + 1)}
    lab = Lab.create(work / f"lab-k{k}", hosts=hosts, groups={GROUP: list(hosts)})
    try:
        prepare_lab_all(lab, hosts)
        (work / "vars.json").write_text(json.dumps(w.linuxnet_vars(w.build(n))))
        out: dict = {"hosts": k, "n": n, "forks": forks}
        for phase, playbook in PHASES:
            times = work / f"times-k{k}-{phase}.json"
            env = ansible_env({"ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).with_name("callback_plugins")),
                               "ANSIBLE_CALLBACKS_ENABLED": "bench_host_times", "LINUXNET_BENCH_HOST_TIMES": str(times)})
            argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(lab.inventory_path),
                    "-f", str(forks), str(REPO / "playbooks" / playbook), "-e", f"@{work / 'vars.json'}"]
            m = runner.run(argv, env=env, log=work / f"k{k}-{phase}.log")
            text = (work / f"k{k}-{phase}.log").read_text(errors="replace")
            recap = parse_recap(text)
            if m.rc != 0 or set(recap) != set(hosts) or any(r["failed"] or r["unreachable"] for r in recap.values()):
                raise RuntimeError(f"K={k} {phase}: rc={m.rc}\n{text[-3000:]}")
            if phase == "rerun" and any(r["changed"] for r in recap.values()):
                raise RuntimeError(f"K={k} re-run changed something: {recap}")
            per_host = json.loads(times.read_text())
            out[phase] = {"wall": round(m.wall, 2), "per_host": {h: round(s, 2) for h, s in sorted(per_host.items())},
                          "per_host_median": round(statistics.median(per_host.values()), 2),
                          "per_host_max": round(max(per_host.values()), 2)}
            log(f"K={k} N={n} {phase}: wall {m.wall:.2f} s, per host median {out[phase]['per_host_median']} s")
        return out
    finally:
        lab.destroy()


def prepare_lab_all(lab: Lab, hosts: dict[str, str]) -> None:
    """peers.prepare_lab for every host (it handles the bench's one host): /etc/netns large enough."""
    for name in hosts:
        lab.run(name, ["mount", "-n", "-o", f"remount,size={ETC_NETNS_SIZE}", "/etc/netns"], timeout=30)


def render(results: list[dict], load: list[str]) -> str:
    lines = ["# Fleet run (issue 17)", "",
             "`python -m tests.bench.fleet`: one `ansible-playbook` run of the role against K namespace lab hosts "
             "(forks as given), each building the benchmark workload of size N. Per host: seconds from the host's "
             "first task start to its last task result (callback `tests/bench/callback_plugins/bench_host_times.py`). "
             f"Load average at the start: {' '.join(load)} (2 cores, shared).", "",
             "| K hosts | N | forks | converge wall / per host median (max) s | re-run wall / per host | teardown wall / per host |",
             "|---|---|---|---|---|---|"]
    for r in results:
        cells = [f"{r[p]['wall']} / {r[p]['per_host_median']} ({r[p]['per_host_max']})" for p, _title in PHASES]
        lines.append(f"| {r['hosts']} | {r['n']} | {r['forks']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.fleet", description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--hosts", type=sizes, default=[1, 4], help="fleet sizes K (default 1,4)")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--forks", type=int, default=0, help="Ansible forks (default: K)")
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (lab hosts)", file=sys.stderr)
        return 2
    os.chdir(REPO)
    work = new_run_dir("fleet-")
    runner = Runner()
    load = Path("/proc/loadavg").read_text().split()[:3]
    results = []
    try:
        for k in args.hosts:
            results.append(run_fleet(work, runner, k, args.n, args.forks or k))
    finally:
        runner.close()
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fleet.json").write_text(json.dumps({"loadavg_start": load, "results": results}, indent=1))
    (out / "fleet.md").write_text(render(results, load))
    log(f"wrote {out / 'fleet.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
