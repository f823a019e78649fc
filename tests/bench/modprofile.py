"""cProfile of the deployment module's work: ``python -m tests.bench.modprofile --n 100 [--n 1000]``.

Runs ``_deployment.converge()`` (first converge, then the no-change re-run) and
``_deployment.remove()`` for the benchmark workload of size N inside a fresh lab host, each in
its own Python process under cProfile, with a stand-in module (params, check_mode, run_command,
warn) as the boot-time restore uses: what is measured is the collection's own code and the
kernel calls it makes, without Ansible's controller, connection and AnsiballZ start-up (the
import times are measured separately with ``python -X importtime``). Prints per phase the wall
time, the peak RSS of the process, the commands it ran, its netlink write batches (host, namespaces)
and its waits for the kernel's cleanup of deleted namespaces, and the top functions; ``--out FILE``
writes the same as Markdown. ``--memory``: no cProfile, ``ansible.module_utils.basic`` imported
first, so the peak RSS is what the module process needs. Root only (lab hosts).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from tests.bench import workload as w
from tests.bench.cli import log, new_run_dir
from tests.bench.peers import GROUP, HOST, HOST_ADDRESS, prepare_lab
from tests.lab import Lab

REPO = w.REPO_ROOT

# Runs inside the lab host: argv[1] is a JSON request; the answer (JSON) goes to argv[2].
SCRIPT = r"""
import cProfile, io, json, pstats, resource, subprocess, sys, time
sys.path.insert(0, %(collections)r)
request = json.loads(open(sys.argv[1]).read())
started = time.perf_counter()
if not request["profile"]:
    import ansible.module_utils.basic  # as the module process has it (memory)
from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment, _netlink
imported = time.perf_counter() - started
commands = []
writes = []  # netlink write batches: [host or namespaces, messages, seconds]
waits = []  # seconds waiting for the kernel to destroy the pairs of deleted namespaces

def timed(function, record):
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            record(args, time.perf_counter() - began)
    return wrapper

_netlink.Netlink.transact = timed(_netlink.Netlink.transact,
                                  lambda a, s: writes.append(["host" if a[1] is None else "namespaces", len(a[2]), s]))
_deployment._await_pairs_gone = timed(_deployment._await_pairs_gone, lambda a, s: waits.append(s))

class Shim:  # the contract's module: params, check_mode, run_command, warn, fail_json
    params, check_mode, _diff = {}, False, False
    def run_command(self, argv, check_rc=False, data=None):
        began = time.perf_counter()
        done = subprocess.run(argv, input=data, capture_output=True, text=True)
        commands.append([" ".join(argv[:3]) if isinstance(argv, list) else argv, time.perf_counter() - began])
        return done.returncode, done.stdout, done.stderr
    def warn(self, msg):
        pass
    def fail_json(self, **kw):
        raise AssertionError(kw)

profile = cProfile.Profile()
started = time.perf_counter()
if request["profile"]:
    profile.enable()
if request["what"] == "remove":
    result = _deployment.remove(Shim())
else:
    result = _deployment.converge(Shim(), request["networks"], request["endpoints"], chain_prefix=request["prefix"])
profile.disable()
wall = time.perf_counter() - started
text = io.StringIO()
if request["profile"]:
    stats = pstats.Stats(profile, stream=text)
    stats.sort_stats("cumulative").print_stats(28)
    stats.sort_stats("cumulative").print_stats("module_utils", 40)  # the collection's own functions
    stats.sort_stats("tottime").print_stats(16)
json.dump({"wall": wall, "import": imported, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "changed": result["changed"], "commands": {k: len(v) for k, v in result["commands"].items()},
           "processes": commands, "writes": writes, "waits": waits, "profile": text.getvalue()}, open(sys.argv[2], "w"))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.modprofile", description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--n", type=int, action="append", help="workload size (repeatable; default 100)")
    p.add_argument("--out", help="also write the report (Markdown) here")
    p.add_argument("--memory", action="store_true",
                   help="no cProfile; import ansible.module_utils.basic first, as the module does (peak RSS as the module's)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (lab hosts)", file=sys.stderr)
        return 2
    work = new_run_dir("modprofile-")
    script = work / "run_phase.py"
    script.write_text(SCRIPT % {"collections": str(REPO / ".collections")})
    report: list[str] = []
    try:
        for n in args.n or [100]:
            wl_vars = w.linuxnet_vars(w.build(n))
            lab = Lab.create(work / f"lab{n}", hosts={HOST: HOST_ADDRESS}, groups={GROUP: [HOST]})
            try:
                prepare_lab(lab)
                imports = lab.run(HOST, [sys.executable, "-X", "importtime", "-c",
                                         f"import sys; sys.path.insert(0, {str(REPO / '.collections')!r});"
                                         " import ansible.module_utils.basic;"
                                         " from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment"],
                                  timeout=120).stderr
                report += [f"# N={n}", "", "## imports (self/cumulative us, top 25 by cumulative)", "", "```",
                           *sorted(imports.splitlines()[1:], key=lambda ln: -int(ln.split("|")[1]))[:25], "```", ""]
                for phase in ("converge", "rerun", "remove"):
                    request = {"what": phase, "networks": wl_vars["linuxnet_networks"],
                               "endpoints": wl_vars["linuxnet_endpoints"], "prefix": wl_vars["linuxnet_chain_prefix"],
                               "profile": not args.memory}
                    (work / "request.json").write_text(json.dumps(request))
                    answer = work / "answer.json"
                    done = lab.run(HOST, [sys.executable, str(script), str(work / "request.json"), str(answer)],
                                   timeout=1800, check=False)
                    if done.returncode != 0:
                        print(done.stderr[-4000:], file=sys.stderr)
                        return 1
                    got = json.loads(answer.read_text())
                    procs: dict[str, list] = {}
                    for name, seconds in got["processes"]:
                        name = os.path.basename(name)
                        procs[name] = [procs.get(name, [0, 0.0])[0] + 1, round(procs.get(name, [0, 0.0])[1] + seconds, 3)]
                    writes: dict[str, list] = {}
                    for where, messages, seconds in got["writes"]:
                        count, sent, spent = writes.get(where, [0, 0, 0.0])
                        writes[where] = [count + 1, sent + messages, round(spent + seconds, 3)]
                    head = (f"## N={n} {phase}: {got['wall']:.2f} s (import {got['import']:.2f} s), peak RSS"
                            f" {got['maxrss_mb']:.0f} MB, changed={got['changed']}, commands {got['commands']},"
                            f" processes (count, s) {procs}, netlink writes (batches, messages, s) {writes},"
                            f" waits for the pairs of deleted namespaces {sum(got['waits']):.3f} s")
                    log(head)
                    report += [head, "", "```", got["profile"].strip(), "```", ""]
            finally:
                lab.destroy()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(report) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
