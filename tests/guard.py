"""Read-only snapshot of the machine's REAL network namespace, to prove tests left it alone.

Usage (from the repository root)::

    python -m tests.guard save FILE     # write a snapshot (JSON)
    python -m tests.guard check FILE    # compare with the snapshot; exit 1 + diff if changed
    python -m tests.guard show          # print the current snapshot

What is captured (all by reading only; nothing is ever changed):

* ``ip -o link``: interface name, flags (so up/down), master, mtu, link type —
  counters, ifindex-independent;
* ``ip route show table all`` and ``ip -6 route show table all`` (``expires`` timers
  stripped), ``ip rule`` / ``ip -6 rule``;
* ``ip netns list`` and the content of ``/run/netns`` and ``/etc/netns``;
* ``iptables-save`` and ``ip6tables-save`` with ``#`` comment lines and
  ``[packets:bytes]`` counters stripped;
* forwarding / bridge-netfilter related sysctls of the real namespace;
* the mount points of the current mount namespace (to catch leaked mounts).

``save`` also records (under ``_processes``) the network namespace inode of every process
and the lab processes that already run. ``check`` then also fails, naming pid and cmdline,
on every process left in a lab namespace (see ``leftover_processes``):

* a process carrying a ``LAB_MARKER`` environment variable (any lab's),
* a process whose ``/proc/PID/mountinfo`` carries a lab mount tag (``lab-<32 hex>``, see
  ``tests.lab.core.lab_mount_tag``): ``ip netns exec`` / ``unshare -m`` children of a lab
  host, booted lab machines,
* a process whose network namespace did not exist at ``save`` time.

Not flagged: the guard itself, pid 1, processes that already matched at ``save`` (a lab kept
on purpose), and, for the new-netns rule only, the guard's own network namespace and
processes that run in a system service's cgroup (``/system.slice/...``, for example
``PrivateNetwork=yes`` units) other than the guard's own.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from tests.lab.core import LAB_TAG_RE, MARKER_ENV

_LINK_RE = re.compile(r"^\d+:\s+(?P<name>[^:@]+)(?:@[^:]+)?:\s+<(?P<flags>[^>]*)>(?P<rest>.*)$")
_COUNTER_RE = re.compile(r"\[\d+:\d+\]")
_SYSCTLS = (
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/forwarding",
    "net/ipv4/conf/default/forwarding",
    "net/ipv4/conf/all/rp_filter",
    "net/ipv4/conf/all/proxy_arp",
    "net/ipv6/conf/all/forwarding",
    "net/ipv6/conf/default/forwarding",
    "net/ipv6/conf/all/disable_ipv6",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/bridge/bridge-nf-call-arptables",
)


def _run(argv: Sequence[str]) -> str:
    if shutil.which(argv[0]) is None:
        return f"<{argv[0]} not installed>"
    try:
        res = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"<{' '.join(argv)} failed: {exc}>"
    if res.returncode != 0:
        return f"<{' '.join(argv)} rc={res.returncode}: {res.stderr.strip()}>"
    return res.stdout


def _links() -> list[str]:
    out = []
    for line in _run(["ip", "-o", "link", "show"]).splitlines():
        m = _LINK_RE.match(line)
        if not m:
            out.append(line.strip())
            continue
        rest = m.group("rest").split("\\")[0].split()
        attrs = dict(zip(rest[::2], rest[1::2]))
        ltype = ""
        if "link/" in line:
            ltype = line.split("link/", 1)[1].split()[0]
        out.append(
            f"{m.group('name')} <{m.group('flags')}> mtu={attrs.get('mtu', '?')} "
            f"master={attrs.get('master', '-')} type={ltype}"
        )
    return sorted(out)


def _routes(*args: str) -> list[str]:
    lines = _run(["ip", *args, "route", "show", "table", "all"]).splitlines()
    return sorted(re.sub(r"\s+expires \S+", "", ln).rstrip() for ln in lines if ln.strip())


def _tables(tool: str) -> list[str]:
    text = _run([tool])
    return [_COUNTER_RE.sub("", ln).rstrip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def _dir(path: str) -> list[str] | str:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return "<absent>"
    except OSError as exc:
        return f"<{exc}>"


def _sysctls() -> dict[str, str]:
    out: dict[str, str] = {}
    for key in _SYSCTLS:
        try:
            out[key] = Path("/proc/sys", key).read_text().strip()
        except OSError:
            out[key] = "<absent>"
    return out


def _mounts() -> list[str]:
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            sep = parts.index("-")
            out.append(f"{parts[4]} {parts[sep + 1]}")
    return sorted(out)


def snapshot() -> dict[str, Any]:
    """Capture the real network namespace state (read-only)."""
    return {
        "links": _links(),
        "routes4": _routes("-4"),
        "routes6": _routes("-6"),
        "rules4": _run(["ip", "-4", "rule", "show"]).splitlines(),
        "rules6": _run(["ip", "-6", "rule", "show"]).splitlines(),
        "netns": sorted(_run(["ip", "netns", "list"]).splitlines()),
        "run_netns": _dir("/run/netns"),
        "etc_netns": _dir("/etc/netns"),
        "iptables": _tables("iptables-save"),
        "ip6tables": _tables("ip6tables-save"),
        # The legacy backend keeps separate tables; the tests use it too.
        "iptables_legacy": _tables("iptables-legacy-save") if shutil.which("iptables-legacy-save") else [],
        "sysctls": _sysctls(),
        "mounts": _mounts(),
    }


# --------------------------------------------------------------------------- lab processes

PROCESSES_KEY = "_processes"


def _proc_read(pid: int | str, name: str) -> bytes:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _netns_of(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _start_time(pid: int | str) -> str:
    stat = _proc_read(pid, "stat")
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else "?"


def _identity(pid: int) -> str:
    """``pid:starttime``: survives pid reuse (a new process with the same pid differs)."""
    return f"{pid}:{_start_time(pid)}"


def _cgroup(pid: int | str) -> str:
    for line in _proc_read(pid, "cgroup").decode(errors="replace").splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


def _cmdline_text(pid: int) -> str:
    raw = _proc_read(pid, "cmdline")
    text = raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    return text or "[" + _proc_read(pid, "comm").decode(errors="replace").strip() + "]"


def _is_zombie(pid: int) -> bool:
    stat = _proc_read(pid, "stat")
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state in (b"", b"Z", b"X")


def _lab_reasons(pid: int, known_netns: set[str] | None, own_net: str | None = None) -> list[str]:
    reasons = []
    markers = [e.split(b"=", 1)[1].decode(errors="replace") for e in _proc_read(pid, "environ").split(b"\0")
               if e.startswith(MARKER_ENV.encode() + b"=")]
    if markers:
        reasons.append(f"{MARKER_ENV}={markers[0]}")
    tags = sorted(set(LAB_TAG_RE.findall(_proc_read(pid, "mountinfo").decode(errors="replace"))))
    if tags:
        reasons.append("mount tag " + ",".join(tags))
    if known_netns is not None:
        net = _netns_of(pid)
        if net is not None and net not in known_netns and net != own_net:
            reasons.append(f"new netns {net}")
    return reasons


def _is_other_service(pid: int, own_cgroup: str) -> bool:
    cg = _cgroup(pid)
    return cg.startswith("/system.slice/") and cg != own_cgroup


def process_snapshot() -> dict[str, Any]:
    """Netns inodes of all processes now, and the processes that already look like a lab's."""
    netns = {ns for pid in _pids() if (ns := _netns_of(pid)) is not None}
    own = _netns_of("self")
    if own is not None:
        netns.add(own)
    before = sorted(_identity(pid) for pid in _pids() if pid != os.getpid() and _lab_reasons(pid, None))
    return {"netns": sorted(netns), "lab_processes": before}


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def leftover_processes(saved: dict[str, Any] | None) -> list[str]:
    """One line ``pid=N reasons: cmdline`` per process left in a lab namespace.

    *saved* is :func:`process_snapshot` taken before the tests (``None``: only the marker
    and mount tag rules apply).
    """
    me = os.getpid()
    own_net = _netns_of("self")
    own_cgroup = _cgroup("self")
    known = set(saved["netns"]) if saved is not None else None
    already = set(saved.get("lab_processes", [])) if saved is not None else set()
    out = []
    for pid in sorted(_pids()):
        if pid in (me, 1) or _is_zombie(pid):
            continue
        reasons = _lab_reasons(pid, known, own_net)  # our own netns is never "new"
        if not reasons or _identity(pid) in already:
            continue
        if len(reasons) == 1 and reasons[0].startswith("new netns ") and _is_other_service(pid, own_cgroup):
            continue  # e.g. a PrivateNetwork=yes system service started during the tests
        out.append(f"pid={pid} ({'; '.join(reasons)}): {_cmdline_text(pid)}")
    return out


def _render(snap: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for key in sorted(snap):
        val = snap[key]
        if isinstance(val, dict):
            lines += [f"{key}: {k} = {v}" for k, v in sorted(val.items())]
        elif isinstance(val, list):
            lines += [f"{key}: {v}" for v in val]
        else:
            lines.append(f"{key}: {val}")
    return lines


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Unified diff lines between two snapshots (empty if equal)."""
    return list(difflib.unified_diff(_render(old), _render(new), "saved", "now", lineterm="", n=1))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("save", "check", "show") or (args[0] != "show" and len(args) != 2):
        print(__doc__, file=sys.stderr)
        return 2
    if args[0] == "show":
        print("\n".join(_render(snapshot())))
        return 0
    path = Path(args[1])
    if args[0] == "save":
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {**snapshot(), PROCESSES_KEY: process_snapshot()}
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"guard: saved snapshot of the real network namespace to {path}")
        return 0
    old = json.loads(path.read_text(encoding="utf-8"))
    saved_procs = old.pop(PROCESSES_KEY, None)
    rc = 0
    d = diff(old, snapshot())
    if d:
        print("guard: the REAL network namespace CHANGED:", file=sys.stderr)
        print("\n".join(d), file=sys.stderr)
        rc = 1
    else:
        print("guard: real network namespace unchanged")
    left = leftover_processes(saved_procs)
    if left:
        print(f"guard: {len(left)} process(es) LEFT in lab namespaces:", file=sys.stderr)
        print("\n".join(left), file=sys.stderr)
        rc = 1
    else:
        print("guard: no process left in a lab namespace")
    return rc


if __name__ == "__main__":
    sys.exit(main())
