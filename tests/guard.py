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
        path.write_text(json.dumps(snapshot(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"guard: saved snapshot of the real network namespace to {path}")
        return 0
    old = json.loads(path.read_text(encoding="utf-8"))
    d = diff(old, snapshot())
    if d:
        print("guard: the REAL network namespace CHANGED:", file=sys.stderr)
        print("\n".join(d), file=sys.stderr)
        return 1
    print("guard: real network namespace unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
