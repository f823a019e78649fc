"""Turn the raw results into ``latest.json``, ``latest.md`` and ``time_vs_n.svg`` (hand-written SVG)."""

from __future__ import annotations

import collections

import json
import math
import statistics
from pathlib import Path

from tests.bench import workload as w

PHASES = ("converge", "rerun", "teardown")
ORDER = ("linuxnet", "linuxnet-ssh", "netavark", "netavark-ssh", "naive", "floor")
COLORS = {"linuxnet": "#1f77b4", "linuxnet-ssh": "#9467bd", "netavark": "#d62728", "netavark-ssh": "#8c564b",
          "naive": "#ff7f0e", "floor": "#2ca02c"}
TITLES = {
    "linuxnet": "linuxnet: `ansible-playbook playbooks/site.yml` (role `linuxnet.bridge.bridge_network`), "
                "teardown `playbooks/teardown.yml`, through the lab's `community.docker.nsenter` connection "
                "(the controller's Python)",
    "linuxnet-ssh": "linuxnet-ssh: the same playbooks over SSH (pipelining, `become` through sudo) against a "
                    "booted Debian 12 lab machine (`tests/lab` machines: systemd-nspawn, sshd, user `ansible`) with "
                    "the distro's own python3 (no pyroute2); iptables, nftables and conntrack are "
                    "installed from the lab's local repository before the converge, not timed",
    "netavark": "netavark: per endpoint `ip netns add` + `netavark setup`; teardown `netavark teardown` + `ip netns del` "
                "(one shell loop in the lab host)",
    "netavark-ssh": "netavark-ssh: the same loop on the booted Debian 12 lab machine of linuxnet-ssh, with the "
                    "machine's own netavark (Debian's package, installed with iptables from the lab's local "
                    "repository before the converge, not timed); each phase is one `ssh ... sudo -n sh LOOP` "
                    "that runs the whole loop there, so the connection is paid once per phase, not per endpoint",
    "naive": "naive: `tests/bench/naive.yml`, `ansible.builtin.command` (`ip ...`) per object and "
             "`ansible.builtin.iptables` per rule",
    "floor": "floor: one `ip -batch` (host side), one `ip -n NS -batch` per namespace, one `sysctl`, "
             "one `iptables-restore --noflush`",
}


# --------------------------------------------------------------------------- statistics


def _runs(results: dict, peer: str, n: int, variant: str = "full") -> list[dict]:
    return [r for r in results["runs"] if r["peer"] == peer and r["n"] == n and r["variant"] == variant]


def values(runs: list[dict], phase: str, key: str) -> list:
    return [r["phases"][phase][key] for r in runs if phase in r["phases"] and r["phases"][phase].get(key) is not None]


def med(xs: list) -> float | None:
    return statistics.median(xs) if xs else None


def phase_stats(runs: list[dict], phase: str) -> dict | None:
    walls = values(runs, phase, "wall")
    if not walls:
        return None
    return {
        "n": len(walls),
        "median": statistics.median(walls),
        "min": min(walls),
        "max": max(walls),
        "processes": med(values(runs, phase, "processes")),
        "machine_processes": med(values(runs, phase, "machine_processes")),
        "maxrss_kb": max(values(runs, phase, "maxrss_kb") or [0]),
        "peak_tree_rss_kb": max(values(runs, phase, "peak_tree_rss_kb") or [0]),
        "changed": values(runs, phase, "changed"),
    }


def state_value(runs: list[dict], state: str, key: str) -> float | None:
    return med([r["state"][state][key] for r in runs if state in r["state"]])


def sizes(results: dict) -> list[int]:
    return sorted({r["n"] for r in results["runs"] if r["variant"] == "full"})


def peers(results: dict) -> list[str]:
    found = {r["peer"] for r in results["runs"]}
    return [p for p in ORDER if p in found]


def median_wall(results: dict, peer: str, n: int, phase: str = "converge") -> float | None:
    st = phase_stats(_runs(results, peer, n), phase)
    return st["median"] if st else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# --------------------------------------------------------------------------- formatting


def fs(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def fr(x: float | None) -> str:
    return "–" if x is None else (f"{x:.2f}×" if x < 10 else f"{x:.1f}×")


def fi(x: float | None) -> str:
    return "–" if x is None else f"{x:.0f}"


def fmb(kb: float | None) -> str:
    return "–" if not kb else f"{kb / 1024:.0f}"


def cell(st: dict | None) -> str:
    if st is None:
        return "n/a"
    spread = f" ({fs(st['min'])}–{fs(st['max'])})" if st["n"] > 1 else ""
    return f"**{fs(st['median'])}**{spread}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _column in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


# --------------------------------------------------------------------------- markdown


def render_md(results: dict, analysis: bool = False) -> str:
    meta, machine = results.get("meta", {}), results.get("machine", {})
    ns = sizes(results)
    ps = peers(results)
    lines = ["# linuxnet.bridge benchmarks (issue 7)", ""]
    if meta.get("partial"):
        lines += ["> **Partial results**: the run was still going when this was written.", ""]
    counts = collections.Counter((r["peer"], r["n"]) for r in results.get("runs", []) if r["variant"] == "full")
    usual = collections.Counter(counts.values()).most_common(1)[0][0] if counts else meta.get("repeat", "?")
    odd = ", ".join(f"{p} N={n}: {c}" for (p, n), c in sorted(counts.items()) if c != usual)
    lines += [
        f"Last written by `{meta.get('command', 'python -m tests.bench')}` (started {meta.get('started', '?')}, "
        f"took {fs(meta.get('duration_s', 0) / 60, 1)} min); with `--merge`, the results of earlier runs for the "
        f"peers and sizes it did not measure are kept. {usual} repetition(s) per peer and N"
        + (f" (except {odd})" if odd else "") + ", "
        "each in a fresh lab host (`tests/lab`: a namespace sandbox, or for the `-ssh` peers a booted Debian machine "
        "in the lab; nothing runs in the machine's network namespace"
        + (", which was verified unchanged afterwards" if meta.get("real_netns_unchanged") else "") + ").",
        "",
        "Times are wall-clock seconds: **median** (min–max) over the repetitions.",
        "",
    ]
    lines += _busy(results, machine)
    if analysis:
        lines += ["What limits linuxnet, from profiles, and what was fixed: [ANALYSIS.md](ANALYSIS.md).", ""]
    lines += _targets17(results)
    lines += _targets(results, ns)
    lines += ["## Workload", "",
              "4 bridge networks (`10.100-103.0.0/16`), N endpoints spread round-robin over them (one network "
              "namespace and one veth each, explicit addresses), 3 published ports per endpoint "
              f"(`{w.HOST_PORT_BASE}+3i:80`, `+1:443` tcp, `+2:53/udp`), plus one endpoint `eprange` publishing "
              f"the 1000-port range `{w.RANGE_FIRST}-{w.RANGE_FIRST + w.RANGE_SIZE - 1}` (tcp). Every peer builds "
              "the same bridges, namespaces, veths, addresses, default routes and published ports.", ""]
    rows = []
    for n in ns:
        s = w.build(n).summary()
        rows.append([str(n), str(s["networks"]), str(s["endpoints"]), str(s["mappings"]), str(s["host_ports"])])
    lines += table(["N", "networks", "endpoints (netns)", "port mappings", "host ports"], rows) + [""]

    for n in ns:
        lines += [f"## N = {n}", ""]
        rows = []
        for p in ps:
            runs = _runs(results, p, n)
            if not runs:
                continue
            st = {ph: phase_stats(runs, ph) for ph in PHASES}
            changed = st["rerun"]["changed"] if st["rerun"] else []
            rows.append([
                f"**{p}**",
                cell(st["converge"]),
                cell(st["rerun"]) + (f" changed={max(changed)}" if changed else ""),
                cell(st["teardown"]),
                " / ".join(fi(st[ph]["processes"]) if st[ph] else "–" for ph in PHASES),
                " / ".join(fmb(st[ph]["peak_tree_rss_kb"]) if st[ph] else "–" for ph in PHASES),
                " / ".join(fmb(st[ph]["maxrss_kb"]) if st[ph] else "–" for ph in PHASES),
                fi(state_value(runs, "converged", "rules")),
                fi(state_value(runs, "torn_down", "rules")),
            ])
        lines += table(["peer", "first converge s", "idempotent re-run s", "teardown s",
                        "processes (conv / rerun / tear)", "peak tree RSS MB", "max process RSS MB",
                        "rules after converge", "rules after teardown"], rows) + [""]
    lines += _ratios(results, ns)
    lines += _ssh(results, ns)
    lines += _range_cost(results)
    lines += _baseline(results)
    lines += ["## Plot", "", "![time against N](time_vs_n.svg)", "",
              "Log-log; solid: first converge, dashed: idempotent re-run (Ansible peers), dotted: teardown.", ""]
    lines += _peers_section(ps)
    lines += _machine(machine, meta, _managed_host(results), _managed_host(results, NV_SSH))
    lines += _errors(results)
    lines += _method(meta)
    return "\n".join(lines) + "\n"


def _busy(results: dict, machine: dict) -> list[str]:
    """A warning when this run's measurements ran on a machine busier than its core count."""
    loads = [float(r["loadavg"][0]) for r in results.get("runs", []) if not r.get("merged_from") and r.get("loadavg")]
    cores = machine.get("cores") or 1
    if not loads or med(loads) <= cores:
        return []
    kept = sorted({(r["peer"], r["n"]) for r in results["runs"] if r.get("merged_from") and r["variant"] == "full"})
    return [f"> **Busy machine**: the 1-minute load average during this run's measurements was "
            f"{min(loads):.1f}–{max(loads):.1f} (median {med(loads):.1f}) on {cores} cores (other jobs on the "
            "machine). Its times are inflated and noisy: compare the peers measured in this run with each other "
            "(they are interleaved per repetition), not with the results kept from earlier runs"
            + (" (" + ", ".join(f"{p} N={n}" for p, n in kept) + ")" if kept else "")
            + "; ratios and targets that mix both are affected.", ""]


def _targets(results: dict, ns: list[int]) -> list[str]:
    out = ["## Targets of issue 7 and where we stand", ""]
    rows = []
    lx100 = median_wall(results, "linuxnet", 100)
    nv100 = median_wall(results, "netavark", 100)
    if lx100 and nv100:
        ok = lx100 < nv100
        rows.append(["N=100 first converge faster than netavark doing the same 100 setups",
                     f"linuxnet {fs(lx100)} s vs netavark {fs(nv100)} s ({fr(lx100 / nv100)})", "met" if ok else "**not met**"])
    else:
        rows.append(["N=100 first converge faster than netavark", "not measured", "–"])
    rr100 = median_wall(results, "linuxnet", 100, "rerun")
    bare = med([r["wall"] for r in results.get("baseline", {}).get("bare", [])])
    paired = [(r["phases"]["rerun"]["wall"], r["phases"]["bare"]["wall"]) for r in _runs(results, "linuxnet", 100)
              if "bare" in r["phases"] and "rerun" in r["phases"]]
    if paired:
        deltas = [rerun - start for rerun, start in paired]
        delta = med(deltas)
        rows.append(["N=100 idempotent re-run within 2 s of a bare `ansible-playbook` start",
                     f"re-run {fs(med([p[0] for p in paired]))} s, bare start in the same lab just before it "
                     f"{fs(med([p[1] for p in paired]))} s: median difference +{fs(delta)} s "
                     f"({', '.join('+' + fs(d) for d in deltas)})",
                     "met" if delta <= 2 else "**not met**"])
    elif rr100 is not None and bare is not None:
        ok = rr100 <= bare + 2
        rows.append(["N=100 idempotent re-run within 2 s of a bare `ansible-playbook` start",
                     f"re-run {fs(rr100)} s, bare start {fs(bare)} s: +{fs(rr100 - bare)} s", "met" if ok else "**not met**"])
    else:
        rows.append(["N=100 idempotent re-run within 2 s of a bare start", "not measured", "–"])
    t1000 = median_wall(results, "linuxnet", 1000)
    t100 = lx100
    if t1000 and t100:
        parts = []
        worst = 0.0
        for ph in PHASES:
            r = ratio(median_wall(results, "linuxnet", 1000, ph), median_wall(results, "linuxnet", 100, ph))
            if r is not None:
                parts.append(f"{ph} {fr(r)}")
                worst = max(worst, r)
        rows.append(["time(N=1000) / time(N=100) ≤ 12 (linuxnet)", ", ".join(parts), "met" if worst <= 12 else "**not met**"])
    else:
        rows.append(["time(N=1000) / time(N=100) ≤ 12", "N=1000 not measured in this run", "–"])
    rc = range_cost(results).get("linuxnet")
    if rc:
        # one mapping's rules whatever its size: dnat, accept, hairpin and the raw direct-routing drop
        ok = rc["rules"] is not None and rc["rules"] <= 4 and rc["processes"] is not None and rc["processes"] <= 0
        rows.append(["the 1000-port range costs a constant number of rules (those of one mapping: 4) and zero processes",
                     f"{fi(rc['rules'])} rules, {fi(rc['processes'])} processes (N={rc['n']})",
                     "met" if ok else "**not met**"])
    else:
        rows.append(["the 1000-port range costs constant rules and zero processes", "not measured", "–"])
    return out + table(["target", "measured", "status"], rows) + [""]


def paired_rerun(results: dict, peer: str, n: int) -> list[float]:
    """Per repetition: re-run minus the bare start timed in the same lab right before it."""
    return [r["phases"]["rerun"]["wall"] - r["phases"]["bare"]["wall"] for r in _runs(results, peer, n)
            if "bare" in r["phases"] and "rerun" in r["phases"]]


def paired_variables(results: dict, peer: str, n: int) -> list[float]:
    """Per repetition: the bare start given the workload's variables (``-e @vars``) minus the bare start,
    what Ansible pays to load them whatever the role does (a part of the re-run's difference)."""
    return [r["phases"]["bare_vars"]["wall"] - r["phases"]["bare"]["wall"] for r in _runs(results, peer, n)
            if "bare" in r["phases"] and "bare_vars" in r["phases"]]


def _targets17(results: dict) -> list[str]:
    """Issue 17's targets, each as a measured ratio (or difference) and met / missed."""
    rows = []

    def judge(target: str, value: float | None, limit: float, text: str, lower_is_better: bool = True) -> None:
        if value is None:
            rows.append([target, "not measured", "–"])
            return
        ok = value <= limit if lower_is_better else value >= limit
        rows.append([target, text, "met" if ok else "**missed**"])

    for n, limit in ((10, 1.5), (100, 0.25)):
        lx, nv = median_wall(results, "linuxnet", n), median_wall(results, "netavark", n)
        judge(f"N={n} converge ≤ {limit}× netavark", ratio(lx, nv), limit, f"{fs(lx)} s vs {fs(nv)} s: {fr(ratio(lx, nv))}")
    lx, nv = median_wall(results, "linuxnet", 1000), median_wall(results, "netavark", 1000)
    judge("N=1000 converge ≥ 20× faster than netavark", ratio(nv, lx), 20,
          f"{fs(lx)} s vs {fs(nv)} s: {fr(ratio(nv, lx))} faster", lower_is_better=False)
    for n, limit in ((100, 1.0), (1000, 2.0)):
        deltas = paired_rerun(results, "linuxnet", n)
        loading = paired_variables(results, "linuxnet", n)
        of_which = (f"; of it Ansible loading the workload's variables (the same bare start with `-e @vars`): "
                    f"{med(loading):+.2f} s" if loading else "")
        judge(f"N={n} no-change re-run ≤ {limit:g} s above a bare `ansible-playbook` start", med(deltas), limit,
              f"+{fs(med(deltas))} s ({', '.join('+' + fs(d) for d in deltas)}){of_which}")
    for n in sizes(results):
        lx, fl = median_wall(results, "linuxnet", n, "teardown"), median_wall(results, "floor", n, "teardown")
        judge(f"N={n} teardown ≤ 3× the floor", ratio(lx, fl), 3, f"{fs(lx)} s vs {fs(fl)} s: {fr(ratio(lx, fl))}")
    lx, fl = median_wall(results, "linuxnet", 1000), median_wall(results, "floor", 1000)
    judge("N=1000 converge ≤ 3× the floor", ratio(lx, fl), 3, f"{fs(lx)} s vs {fs(fl)} s: {fr(ratio(lx, fl))}")
    runs = _runs(results, "linuxnet", 1000)
    peak = [kb for ph in PHASES for kb in values(runs, ph, "maxrss_kb")]
    peak_mb = max(peak) / 1024 if peak else None
    judge("N=1000 peak memory of the module process ≤ 200 MB", peak_mb, 200,
          f"{fs(peak_mb, 0)} MB (the largest process of the run's tree, controller or module, any phase; "
          "`python -m tests.bench.modprofile --memory` measures the module's work alone)")
    for n in (10, 100):
        ssh = median_wall(results, SSH, n)
        nv, where = ssh_netavark(results, n)
        limit = 1.5 if n == 10 else 0.25
        judge(f"over SSH (booted machine), N={n} converge ≤ {limit}× netavark", ratio(ssh, nv), limit,
              f"{fs(ssh)} s vs {fs(nv)} s: {fr(ratio(ssh, nv))} ({where})")
    return ["## Targets of issue 17 and where we stand", "",
            "Ratios of medians measured side by side (interleaved per repetition) unless marked otherwise; a "
            "busy machine (see above) inflates linuxnet's Python and Ansible time more than netavark's and the "
            "floor's.", ""] + table(["target", "measured", "status"], rows) + [""] + _ansible_floor(results)


def ssh_netavark(results: dict, n: int, phase: str = "converge") -> tuple[float | None, str]:
    """The netavark time linuxnet-ssh is judged against at *n*, and where it was measured.

    netavark-ssh (the same booted machine, over SSH) when it was measured at *n*; else the
    namespace-lab netavark.
    """
    nv = median_wall(results, NV_SSH, n, phase)
    if nv is not None:
        return nv, "netavark on the same booted machine, one `ssh` per phase"
    return median_wall(results, "netavark", n, phase), "netavark in the namespace lab"


def _ansible_floor(results: dict) -> list[str]:
    """What any Ansible run of one module costs here, next to the small-N targets that are ratios to it."""
    base = results.get("baseline", {})
    bare = med([r["wall"] for r in base.get("bare", [])])
    ping = med([r["wall"] for r in base.get("ping", [])])
    if bare is None or ping is None:
        return []
    out = [f"What Ansible alone costs here: a bare `ansible-playbook` start {fs(bare)} s, the same playbook with one "
           f"`ansible.builtin.ping` task {fs(ping)} s (the price of any module run through the connection: "
           f"{fs(ping - bare)} s)."]
    for n, limit in ((10, 1.5), (100, 0.25)):
        nv, lx = median_wall(results, "netavark", n), median_wall(results, "linuxnet", n)
        if nv and lx:
            out.append(f"At N={n} the target allows {fs(nv * limit)} s; one ping task takes {fr(ratio(ping, nv))} "
                       f"of netavark's converge, and linuxnet's converge is {fs(lx - ping)} s above that ping playbook.")
    return [" ".join(out), ""]


def _ratios(results: dict, ns: list[int]) -> list[str]:
    out = ["## Ratios (medians)", ""]
    rows = []
    ssh = SSH in peers(results)
    nv_ssh = ssh and NV_SSH in peers(results)
    for n in ns:
        def r(a, b, ph="converge"):
            return fr(ratio(median_wall(results, a, n, ph), median_wall(results, b, n, ph)))

        row = [str(n),
               f"{r('linuxnet', 'netavark')} / {r('linuxnet', 'netavark', 'teardown')}",
               f"{r('linuxnet', 'floor')} / {r('linuxnet', 'floor', 'teardown')}",
               f"{r('naive', 'linuxnet')} / {r('naive', 'linuxnet', 'rerun')} / {r('naive', 'linuxnet', 'teardown')}"]
        if ssh:
            row += [f"{r(SSH, 'linuxnet')} / {r(SSH, 'linuxnet', 'rerun')} / {r(SSH, 'linuxnet', 'teardown')}",
                    f"{r(SSH, 'netavark')} / {r(SSH, 'netavark', 'teardown')}"]
        if nv_ssh:
            row += [f"{r(SSH, NV_SSH)} / {r(SSH, NV_SSH, 'teardown')}"]
        rows.append(row)
    header = ["N", "linuxnet / netavark (converge / teardown)", "linuxnet / floor (converge / teardown)",
              "naive / linuxnet (converge / re-run / teardown)"]
    if ssh:
        header += ["linuxnet-ssh / linuxnet (converge / re-run / teardown)",
                   "linuxnet-ssh / netavark (converge / teardown)"]
    if nv_ssh:
        header += ["linuxnet-ssh / netavark-ssh, both on the booted machine (converge / teardown)"]
    out += table(header, rows) + [""]
    if 100 in ns and 1000 in ns:
        rows = []
        for p in peers(results):
            rows.append([p] + [fr(ratio(median_wall(results, p, 1000, ph), median_wall(results, p, 100, ph))) for ph in PHASES])
        out += ["Scaling, time(N=1000) / time(N=100) (10× the endpoints; ≤ 10 is linear or better):", ""]
        out += table(["peer", "converge", "re-run", "teardown"], rows) + [""]
    return out


SSH = "linuxnet-ssh"
NV_SSH = "netavark-ssh"


def _managed_host(results: dict, peer: str = SSH) -> dict:
    for r in reversed(results.get("runs", [])):
        if r["peer"] == peer and r.get("managed_host"):
            return r["managed_host"]
    return {}


def _ssh(results: dict, ns: list[int]) -> list[str]:
    """linuxnet over SSH next to linuxnet over nsenter and netavark (issue 11)."""
    ssh_ns = [n for n in ns if _runs(results, SSH, n)]
    if not ssh_ns:
        return []
    host = _managed_host(results)
    out = ["## linuxnet over SSH: the speed on a real connection (issue 11)", "",
           "The role's playbooks over SSH with pipelining and `become` against a booted Debian 12 machine "
           f"({host.get('os', 'Debian 12')}: python3 {host.get('python3', '?')}, iptables {host.get('iptables', '?')}, "
           f"nftables {host.get('nftables', '?')}, conntrack {host.get('conntrack', '?')}, all the distro's own "
           "packages, no pyroute2), next to the same playbooks through "
           "the lab's nsenter connection (the controller's Python, no pipelining) and netavark. "
           "Same workload, same checks (namespace count, ping from the first and the last endpoint, "
           "rules counted with the machine's own `iptables-save`, changed=0 on the re-run). The packages "
           "are installed before the converge and not timed (`apt-get install` over SSH from the lab's local "
           "repository). Ansible keeps its default SSH ControlMaster (`ControlPersist=60s`), in a control "
           "directory of each measurement: the first converge opens the SSH connection, the re-run (and the "
           "bare start timed right before it) and the teardown reuse it, as for a user who runs playbooks one "
           "after another.", ""]
    nv_ssh = NV_SSH in peers(results)
    if nv_ssh:
        nvh = _managed_host(results, NV_SSH)
        connect = med([float(r["managed_host"]["ssh_true_s"]) for r in results["runs"]
                       if r["peer"] == NV_SSH and r.get("managed_host", {}).get("ssh_true_s")])
        out += ["netavark-ssh runs netavark's loop on the same kind of machine (a fresh one per measurement) "
                f"with the machine's own netavark {nvh.get('netavark', '?')} (`{nvh.get('netavark_path', '?')}`, "
                "Debian's package from the lab's local repository, installed before the converge, not timed): "
                "one `ssh` per phase runs the whole loop, so the connection is paid once per phase, as the "
                "converge playbook of linuxnet-ssh pays it once"
                + (f" (an `ssh ... sudo -n true` to the machine took {fs(connect)} s, median)" if connect else "")
                + ". Issue 17's SSH targets compare with it.", ""]
    rows = []
    for n in ssh_ns:
        for ph in PHASES:
            nsenter = median_wall(results, "linuxnet", n, ph)
            ssh = median_wall(results, SSH, n, ph)
            netavark = median_wall(results, "netavark", n, ph)
            if nsenter is None and ssh is None:
                continue
            delta = "–" if nsenter is None or ssh is None else ("+" if ssh >= nsenter else "") + fs(ssh - nsenter)
            row = [str(n), ph, fs(nsenter), f"**{fs(ssh)}**", delta, fr(ratio(ssh, nsenter)), fs(netavark),
                   fr(ratio(ssh, netavark))]
            if nv_ssh:
                remote = median_wall(results, NV_SSH, n, ph)
                row += [fs(remote), fr(ratio(ssh, remote))]
            rows.append(row)
    header = ["N", "phase", "linuxnet over nsenter s", "linuxnet over SSH s", "SSH − nsenter s",
              "SSH / nsenter", "netavark (namespace lab) s", "SSH / netavark"]
    if nv_ssh:
        header += ["netavark over SSH s", "SSH / netavark over SSH"]
    out += table(header, rows) + [""]
    rows = []
    for n in ssh_ns:
        paired = [(r["phases"]["rerun"]["wall"], r["phases"]["bare"]["wall"]) for r in _runs(results, SSH, n)
                  if "bare" in r["phases"] and "rerun" in r["phases"]]
        if paired:
            deltas = [a - b for a, b in paired]
            rows.append([str(n), fs(med([p[0] for p in paired])), fs(med([p[1] for p in paired])),
                         f"+{fs(med(deltas))} ({', '.join('+' + fs(d) for d in deltas)})",
                         "yes" if med(deltas) <= 2 else "**no**"])
    if rows:
        out += ["Idempotent re-run over SSH against a bare `ansible-playbook` start timed in the same lab right "
                "before it (the 2 s target of issue 7, here on a real connection):", ""]
        out += table(["N", "re-run s", "bare start s", "difference (median; each repetition)", "within 2 s"],
                     rows) + [""]
    out += ["Process counts and memory of linuxnet-ssh are the controller's only (`ansible-playbook`, its "
            "workers, `ssh`): what runs on the machine (sshd, sudo, the modules' python3) is in the machine's "
            "own PID namespace, not in the measured process tree. Over nsenter the modules run as children "
            "of the measured tree and are counted. Medians of different labs are compared: this machine's speed "
            "drifts between them (load averages in `latest.json`).", ""]
    return out


def range_cost(results: dict) -> dict:
    """Per peer: what the 1000-port range adds (full minus the same workload without it)."""
    out = {}
    norange = [r for r in results["runs"] if r["variant"] == "norange"]
    if not norange:
        return out
    n = min(r["n"] for r in norange)
    for p in peers(results):
        base, full = _runs(results, p, n, "norange"), _runs(results, p, n)
        if not base or not full:
            continue
        b, f = phase_stats(base, "converge"), phase_stats(full, "converge")
        out[p] = {
            "n": n,
            "rules": _diff(state_value(full, "converged", "rules"), state_value(base, "converged", "rules")),
            "processes": _diff(f["processes"], b["processes"]),
            "time": _diff(f["median"], b["median"]),
        }
    return out


def _diff(a, b):
    return None if a is None or b is None else a - b


def _range_cost(results: dict) -> list[str]:
    rc = range_cost(results)
    if not rc:
        return []
    n = next(iter(rc.values()))["n"]
    out = ["## Cost of the 1000-port range", "",
           f"First converge at N={n} with `eprange` publishing `{w.RANGE_FIRST}-{w.RANGE_FIRST + w.RANGE_SIZE - 1}` minus "
           "the same workload where `eprange` publishes nothing (medians; time differences are within noise "
           "when they are a few tenths of a second).", ""]
    rows = [[p, fs(v["rules"], 0) if v["rules"] is not None else "–", fi(v["processes"]), fs(v["time"])] for p, v in rc.items()]
    return out + table(["peer", "rules", "processes", "seconds"], rows) + [""]


def _baseline(results: dict) -> list[str]:
    base = results.get("baseline", {})
    if not base:
        return []
    rows = []
    for name, label in (("bare", "bare `ansible-playbook` start: one play, no task"),
                        ("ping", "one `ansible.builtin.ping` task through the lab connection"),
                        ("bare-ssh", "bare `ansible-playbook` start, machine inventory (opens no connection)"),
                        ("ping-ssh", "one `ansible.builtin.ping` task over SSH to a machine (pipelining, become)")):
        runs = base.get(name) or []
        if runs:
            walls = [r["wall"] for r in runs]
            rows.append([label, f"**{fs(statistics.median(walls))}** ({fs(min(walls))}–{fs(max(walls))})",
                         fi(med([r["processes"] for r in runs if r.get("processes") is not None])),
                         fmb(max(r["peak_tree_rss_kb"] for r in runs))])
    return ["## Ansible baseline", ""] + table(["run", "seconds", "processes", "peak tree RSS MB"], rows) + [
        "", "The lab hosts are reached with the `community.docker.nsenter` connection, which has no pipelining: "
        "every module run costs several `nsenter` + shell processes (temp dir, file copy, run, cleanup). "
        "The difference ping − bare is the price of one module run through that connection."
        + (" Over SSH (a booted machine) the first ping opens the SSH connection and the later ones reuse it "
           "(ControlPersist): their times are, in order, "
           + ", ".join(fs(r["wall"]) for r in base["ping-ssh"]) + " s." if base.get("ping-ssh") else ""), "",
        "The speed of this machine (a shared VM) drifts by tens of percent within minutes, so for the re-run "
        "target every linuxnet repetition also times a bare start in its own lab right before its re-run, and "
        "the target is judged on those pairs.", ""]


def _peers_section(ps: list[str]) -> list[str]:
    out = ["## Peers", ""]
    out += [f"* {TITLES[p]}" for p in ps]
    out += ["* The idempotent re-run applies to the Ansible peers only (its recap must report changed=0, a "
            "correctness check of the benchmark). netavark has no re-run (podman never calls `setup` twice), "
            "and the floor is a lower bound for the work itself.",
            "* iproute2's batch mode has no per-line namespace switch, so the floor needs 1 + (N+1) `ip` "
            "processes; its rules are rendered by the collection's own renderer, so floor and linuxnet end "
            "with the same ruleset.",
            "* The naive playbook and netavark run up to N=100. The naive playbook spawns about 600 "
            "processes per endpoint (one Ansible task run per object and rule). netavark's setups slow down "
            "as the ruleset grows (each reads and rewrites the iptables rules it needs): an N=1000 run on "
            "this machine had set up 391 of the 1001 endpoints after 9.5 minutes and was stopped, so one "
            "repetition would take hours."]
    if SSH in ps:
        from tests.bench.peers import LinuxnetSSH

        out += [f"* linuxnet-ssh runs up to N={LinuxnetSSH.max_n}: {LinuxnetSSH.cap_reason}."]
    if NV_SSH in ps:
        from tests.bench.peers import NetavarkSSH

        out += [f"* netavark-ssh runs up to N={NetavarkSSH.max_n}: {NetavarkSSH.cap_reason}."]
    return out + [""]


def _machine(machine: dict, meta: dict, managed: dict | None = None, managed_nv: dict | None = None) -> list[str]:
    _MH, _NH = managed or {}, managed_nv or {}
    rows = [
        ["cores", f"{machine.get('cores')} ({machine.get('cpu', '')})"],
        ["memory", machine.get("memory", "")],
        ["kernel", machine.get("kernel", "")],
        ["OS", machine.get("os", "")],
        ["iptables", machine.get("iptables", "")],
        ["iproute2", machine.get("iproute2", "")],
        ["python", machine.get("python", "")],
        ["ansible-core / ansible", f"{machine.get('ansible_core')} / {machine.get('ansible')}"],
        ["pyroute2", machine.get("pyroute2", "")],
        ["netavark", f"{machine.get('netavark')} ({machine.get('netavark_path')})"],
        ["collection", f"{machine.get('collection')} at {machine.get('commit')}"],
        *([["linuxnet-ssh managed host", ", ".join(f"{k} {v}" for k, v in sorted(_MH.items()))]] if _MH else []),
        *([["netavark-ssh managed host", ", ".join(f"{k} {v}" for k, v in sorted(_NH.items()) if k != "ssh_true_s")]]
          if _NH else []),
        ["load average (1/5/15 min) at start / end",
         f"{' '.join(machine.get('loadavg_start', []))} / {' '.join(machine.get('loadavg_end', []))}"],
    ]
    return ["## Machine", ""] + table(["", ""], rows) + [""]


def _errors(results: dict) -> list[str]:
    out = []
    if results.get("skipped"):
        out += ["## Skipped peers", ""] + [f"* {s['peer']}: {s['why']}" for s in results["skipped"]] + [""]
    if results.get("errors"):
        done = {(r["peer"], r["n"], r["variant"], r["rep"]) for r in results["runs"]}
        out += ["## Failed measurements", "",
                "Dropped from the tables; a measurement that succeeded when retried in a fresh lab says so.", ""]
        for e in results["errors"]:
            again = " (retried: succeeded)" if (e["peer"], e["n"], e["variant"], e["rep"]) in done else ""
            out.append(f"* {e['peer']} N={e['n']} {e['variant']} rep {e['rep']}{again}: `{e['error'].splitlines()[0]}`")
        out += [""]
    return out


def _method(meta: dict) -> list[str]:
    counting = meta.get("process_counting", "")
    return ["## Method", "",
            "* Each (peer, N, repetition) gets a fresh lab host; the converge, the re-run and the teardown are "
            "measured in it, then it is destroyed. Peers are interleaved per repetition.",
            "* **processes**: every process the measured command's tree forked (threads excluded), counted "
            + ("exactly through the kernel's process-events connector (fork events are followed from the "
               "command's pid down), so other work on the machine is not counted. The machine-wide "
               "`processes` counter of `/proc/stat` is recorded too (`latest.json`: `machine_processes`); "
               "it also counts everything else running at that moment."
               if counting == "proc-connector" else
               "with the machine-wide `processes` counter of `/proc/stat`, which also counts everything else "
               "running on the machine at the same time (the process-events connector was unavailable).")
            + " The Ansible peers' counts include the `nsenter` processes of the lab connection; linuxnet-ssh "
            "and netavark-ssh count the controller's processes only (`ssh` and its proxy; what runs on the machine "
            "is in its own PID namespace).",
            "* **peak tree RSS**: the sum of the RSS of all live processes of the tree, sampled every 50 ms; "
            "**max process RSS**: `ru_maxrss` of the largest single process (GNU time `%M`).",
            "* **rules**: `-A` lines in `iptables-save` of the lab host (all tables; a machine: its own "
            "`iptables-save`, run in its namespaces).",
            "* After each converge the first and the last endpoint must ping their gateway, and the namespace "
            "count must be N+1; after teardown no namespace may be left. A failed check drops the measurement.",
            "* Other engineers share this machine: timings include their load (see the load averages).", ""]


# --------------------------------------------------------------------------- SVG plot


def render_svg(results: dict) -> str:
    ns = sizes(results)
    ps = peers(results)
    W, H = 760, 480
    left, right, top, bottom = 70, 190, 40, 60
    series = []
    for p in ps:
        for ph, dash in (("converge", ""), ("rerun", "6,4"), ("teardown", "2,3")):
            pts = []
            for n in ns:
                st = phase_stats(_runs(results, p, n), ph)
                if st:
                    pts.append((n, st["median"], st["min"], st["max"]))
            if pts:
                series.append((p, ph, dash, pts))
    all_y = [y for s in series for pt in s[3] for y in pt[1:]] or [1.0]
    all_x = ns or [1]
    y0 = 10 ** math.floor(math.log10(max(min(all_y), 1e-3)))
    y1 = 10 ** math.ceil(math.log10(max(all_y)))
    x0 = 10 ** math.floor(math.log10(min(all_x)))
    x1 = 10 ** math.ceil(math.log10(max(all_x)))
    if x1 == x0:
        x1 = x0 * 10
    if y1 == y0:
        y1 = y0 * 10

    def X(v):
        return left + (math.log10(v) - math.log10(x0)) / (math.log10(x1) - math.log10(x0)) * (W - left - right)

    def Y(v):
        return H - bottom - (math.log10(max(v, y0)) - math.log10(y0)) / (math.log10(y1) - math.log10(y0)) * (H - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{(W - right + left) / 2}" y="22" text-anchor="middle" font-size="15">'
           'linuxnet.bridge benchmark: wall time against N endpoints</text>']
    decade = x0
    while decade <= x1 * 1.0001:
        x = X(decade)
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{H - bottom}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{H - bottom + 18}" text-anchor="middle">{decade:g}</text>')
        decade *= 10
    d = y0
    while d <= y1 * 1.0001:
        for m in (1, 2, 5):
            v = d * m
            if v > y1 * 1.0001:
                break
            y = Y(v)
            out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{W - right}" y2="{y:.1f}" stroke="{"#ccc" if m == 1 else "#eee"}"/>')
            out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
        d *= 10
    out.append(f'<rect x="{left}" y="{top}" width="{W - left - right}" height="{H - top - bottom}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{(W - right + left) / 2}" y="{H - 18}" text-anchor="middle">N (endpoints, log scale)</text>')
    out.append(f'<text x="18" y="{(H - bottom + top) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 18 {(H - bottom + top) / 2})">seconds (median, log scale; bars: min–max)</text>')
    for p, ph, dash, pts in series:
        color = COLORS.get(p, "#555")
        path = " ".join(f"{'M' if i == 0 else 'L'}{X(n):.1f},{Y(y):.1f}" for i, (n, y, _a, _b) in enumerate(pts))
        style = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="2"{style}/>')
        for n, y, lo, hi in pts:
            out.append(f'<line x1="{X(n):.1f}" y1="{Y(lo):.1f}" x2="{X(n):.1f}" y2="{Y(hi):.1f}" stroke="{color}"/>')
            out.append(f'<circle cx="{X(n):.1f}" cy="{Y(y):.1f}" r="3.5" fill="{color}"/>')
    ly = top + 10
    for p in ps:
        color = COLORS.get(p, "#555")
        for ph, dash in (("converge", ""), ("rerun", "6,4"), ("teardown", "2,3")):
            if not any(s[0] == p and s[1] == ph for s in series):
                continue
            style = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<line x1="{W - right + 14}" y1="{ly}" x2="{W - right + 44}" y2="{ly}" stroke="{color}" stroke-width="2"{style}/>')
            out.append(f'<text x="{W - right + 50}" y="{ly + 4}">{p} {ph}</text>')
            ly += 18
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- files


def merge_previous(results: dict, path: Path) -> dict:
    """Add runs of the previous latest.json for (peer, N, variant) this run did not measure."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return results
    have = {(r["peer"], r["n"], r["variant"]) for r in results["runs"]}
    kept = [dict(r, merged_from=old.get("meta", {}).get("started")) for r in old.get("runs", [])
            if (r["peer"], r["n"], r["variant"]) not in have]
    merged = dict(results)
    merged["runs"] = kept + results["runs"]
    if not merged.get("baseline") and old.get("baseline"):
        merged["baseline"] = old["baseline"]
    if kept:
        merged.setdefault("meta", {})["merged_from"] = old.get("meta", {}).get("started")
    return merged


def write(results: dict, out: Path, merge: bool = False) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    data = merge_previous(results, out / "latest.json") if merge else results
    paths = [out / "latest.json", out / "latest.md", out / "time_vs_n.svg"]
    paths[0].write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    paths[1].write_text(render_md(data, analysis=(out / "ANALYSIS.md").exists()))
    paths[2].write_text(render_svg(data))
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.bench.report [DIR]``: re-render latest.md and the plot from DIR/latest.json."""
    import sys

    out = Path((argv if argv is not None else sys.argv[1:] or [str(w.REPO_ROOT / "bench" / "results")])[0])
    data = json.loads((out / "latest.json").read_text())
    (out / "latest.md").write_text(render_md(data, analysis=(out / "ANALYSIS.md").exists()))
    (out / "time_vs_n.svg").write_text(render_svg(data))
    print(f"rendered {out / 'latest.md'} and {out / 'time_vs_n.svg'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
