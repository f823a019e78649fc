"""Command line interface of the lab (``python -m tests.lab``).

Commands::

    create  --state-dir DIR --host NAME=ADDR [--host ...] [--group GROUP=N1,N2 ...]
            [--machine NAME=SUITE ...] [--vm NAME=SUITE ...]
    destroy --state-dir DIR
    status  --state-dir DIR
    exec    --state-dir DIR NAME -- CMD [ARG ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Sequence

from tests.lab.core import Lab, LabError, destroy_state_dir


def _parse_hosts(values: Sequence[str]) -> dict[str, str]:
    hosts: dict[str, str] = {}
    for value in values:
        name, sep, addr = value.partition("=")
        if not sep or not name or not addr:
            raise LabError(f"--host expects NAME=ADDR, got {value!r}")
        if name in hosts:
            raise LabError(f"duplicate host {name!r}")
        hosts[name] = addr
    return hosts


def _parse_groups(values: Sequence[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for value in values:
        group, sep, members = value.partition("=")
        if not sep or not group:
            raise LabError(f"--group expects GROUP=NAME1,NAME2, got {value!r}")
        groups.setdefault(group, []).extend(m for m in members.split(",") if m)
    return groups


def _parse_machines(values: Sequence[str], option: str = "--machine") -> dict[str, str]:
    machines: dict[str, str] = {}
    for value in values:
        name, sep, suite = value.partition("=")
        if not sep or not name or not suite:
            raise LabError(f"{option} expects NAME=SUITE, got {value!r}")
        machines[name] = suite
    return machines


def _print_table(lab: Lab) -> None:
    rows = [("HOST", "PID", "ADDRESS", "ALIVE")]
    for name, st in lab.status().items():
        rows.append((name, str(st["pid"]), st["address"], "yes" if st["alive"] else "NO"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"inventory: {lab.inventory_path}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.lab", description="Namespace-sandboxed Ansible test lab.")
    sub = p.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("create", help="create lab hosts on a private LAN")
    c.add_argument("--state-dir", required=True)
    c.add_argument("--host", action="append", required=True, metavar="NAME=ADDR")
    c.add_argument("--group", action="append", default=[], metavar="GROUP=NAME1,NAME2")
    c.add_argument(
        "--machine", action="append", default=[], metavar="NAME=SUITE",
        help="boot host NAME as a Debian machine (bullseye, bookworm, trixie) reached over SSH",
    )  # fmt: skip
    c.add_argument(
        "--vm", action="append", default=[], metavar="NAME=SUITE",
        help="boot host NAME as a QEMU virtual machine (own kernel; slow under TCG) reached over SSH",
    )  # fmt: skip

    d = sub.add_parser("destroy", help="kill all lab processes and remove state (idempotent)")
    d.add_argument("--state-dir", required=True)

    s = sub.add_parser("status", help="show lab hosts")
    s.add_argument("--state-dir", required=True)

    e = sub.add_parser("exec", help="run a command inside a lab host")
    e.add_argument("--state-dir", required=True)
    e.add_argument("name")
    e.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARG ...]")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.cmd == "create":
            lab = Lab.create(
                args.state_dir,
                _parse_hosts(args.host),
                _parse_groups(args.group),
                machines=_parse_machines(args.machine),
                vms=_parse_machines(args.vm, "--vm"),
            )
            _print_table(lab)
            return 0
        if args.cmd == "destroy":
            killed = destroy_state_dir(args.state_dir)
            print(f"destroyed: killed {len(killed)} process(es)")
            return 0
        if args.cmd == "status":
            lab = Lab.load(args.state_dir)
            _print_table(lab)
            return 0 if all(st["alive"] for st in lab.status().values()) else 1
        if args.cmd == "exec":
            cmd = list(args.command)
            if cmd and cmd[0] == "--":
                cmd = cmd[1:]
            if not cmd:
                raise LabError("exec needs a command after --")
            lab = Lab.load(args.state_dir)
            return subprocess.call(lab.nsenter_argv(args.name, cmd))
    except LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 2
    return 2
