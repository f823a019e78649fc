# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""iptables: parse ``iptables-save``, plan minimal ``iptables-restore --noflush`` payloads, apply them.

The planner is pure. It knows three kinds of chains:

* *owned chains* whose whole content is ours: rewritten (``:CHAIN - [0:0]`` flushes it inside
  the transaction) only when it differs;
* *kept chains* that must exist but whose content belongs to someone else (``<P>-USER``) or to
  another module: created when missing, never flushed;
* *built-in chains* shared with everyone (FORWARD, POSTROUTING, ...): only the rules a module
  claims as its own are deleted or inserted; foreign rules are never touched.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from typing import Callable

from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError, Operation, Resource

TABLES = ("filter", "nat")
BUILTIN = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}
RUN_DIR = "/run/linuxnet"
LOCK_FILE = os.path.join(RUN_DIR, "iptables.lock")
FAIL_HOOK_ENV = "LINUXNET_TEST_FAIL_TABLE"  # test hook: make the restore of this table fail


@dataclass
class Table:
    """One table of ``iptables-save`` output: chain policies and rules (text after ``-A CHAIN``)."""

    chains: dict[str, str] = field(default_factory=dict)
    rules: dict[str, list[str]] = field(default_factory=dict)

    def chain_rules(self, chain: str) -> list[str]:
        return self.rules.get(chain, [])


def parse_save(text: str) -> dict[str, Table]:
    tables: dict[str, Table] = {}
    current: Table | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = tables.setdefault(line[1:], Table())
        elif current is None or line == "COMMIT":
            continue
        elif line.startswith(":"):
            name, policy = line[1:].split()[:2]
            current.chains[name] = policy
            current.rules.setdefault(name, [])
        elif line.startswith("-A "):
            chain, spec = line.split(" ", 2)[1:]
            current.rules.setdefault(chain, []).append(spec)
    return tables


def empty_table(table: str) -> Table:
    return Table(chains={c: "ACCEPT" for c in BUILTIN[table]}, rules={c: [] for c in BUILTIN[table]})


@dataclass
class BuiltinRules:
    """Our rules in a shared chain: ``top`` in this order ahead of our ``bottom`` rules."""

    top: list[str] = field(default_factory=list)
    bottom: list[str] = field(default_factory=list)


@dataclass
class DesiredTable:
    owned: dict[str, list[str]] = field(default_factory=dict)
    kept: dict[str, list[str]] = field(default_factory=dict)
    builtin: dict[str, BuiltinRules] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)  # chains to delete if they exist
    policies: dict[str, str] = field(default_factory=dict)


def plan_table(table: str, live: Table, want: DesiredTable, ours: Callable[[str, str], bool]) -> list[str]:
    """Restore lines (without ``*table``/``COMMIT``) that turn ``live`` into ``want``; [] if equal."""
    declare: list[str] = []
    body: list[str] = []
    tail: list[str] = []
    for chain, policy in want.policies.items():
        if live.chains.get(chain) != policy:
            declare.append(f":{chain} {policy} [0:0]")
    for chain, initial in want.kept.items():
        if chain not in live.chains:
            declare.append(f":{chain} - [0:0]")
            body += [f"-A {chain} {spec}" for spec in initial]
    for chain, rules in want.owned.items():
        if chain not in live.chains or live.chain_rules(chain) != rules:
            declare.append(f":{chain} - [0:0]")
            body += [f"-A {chain} {spec}" for spec in rules]
    for chain in BUILTIN[table]:
        mine = want.builtin.get(chain, BuiltinRules())
        present = [spec for spec in live.chain_rules(chain) if ours(chain, spec)]
        if present == mine.top + mine.bottom:
            continue
        body += [f"-D {chain} {spec}" for spec in present]
        body += [f"-I {chain} {pos} {spec}" for pos, spec in enumerate(mine.top, start=1)]
        body += [f"-A {chain} {spec}" for spec in mine.bottom]
    for chain in want.remove:
        if chain in live.chains:
            # Rules elsewhere that jump here were claimed by `ours` and deleted above.
            tail += [f"-F {chain}", f"-X {chain}"]
    return declare + body + tail


def payload(table: str, lines: list[str]) -> str:
    return f"*{table}\n" + "".join(line + "\n" for line in lines) + "COMMIT\n"


def as_commands(table: str, lines: list[str], live: Table, binary: str = "iptables") -> list[str]:
    """The same change as individual ``iptables`` command lines, for humans."""
    commands = []
    for line in lines:
        if line.startswith(":"):
            chain, policy = line[1:].split()[:2]
            if chain in BUILTIN[table]:
                commands.append(f"{binary} -t {table} -P {chain} {policy}")
            else:
                commands.append(f"{binary} -t {table} {'-F' if chain in live.chains else '-N'} {chain}")
        else:
            commands.append(f"{binary} -t {table} {line}")
    return commands


def restore_operations(table: str, lines: list[str], live: Table) -> list[Operation]:
    """One Operation per human command; all lines of a table are applied in one restore."""
    commands = as_commands(table, lines, live)
    return [Operation(cmd, "restore", {"table": table, "line": line}) for cmd, line in zip(commands, lines)]


class Backend:
    """iptables-save/iptables-restore of one variant (nft or legacy), serialised by a lock file."""

    def __init__(self, module, variant: str = "auto") -> None:
        self.module = module
        self.variant = self._detect() if variant == "auto" else variant
        suffix = {"iptables-nft": "-nft", "iptables-legacy": "-legacy"}.get(self.variant, "")
        self.save_bin = self._binary(f"iptables{suffix}-save", "iptables-save")
        self.restore_bin = self._binary(f"iptables{suffix}-restore", "iptables-restore")
        self._lock_fd: int | None = None

    def _binary(self, name: str, fallback: str) -> str:
        path = self.module.get_bin_path(name) or (self.module.get_bin_path(fallback) if self.variant == "auto" else None)
        if not path:
            self.module.fail_json(msg=f"{name} not found on the managed host: install the iptables package")
        return path

    def _detect(self) -> str:
        iptables = self.module.get_bin_path("iptables")
        if not iptables:
            self.module.fail_json(msg="iptables not found on the managed host: install the iptables package")
        rc, out, err = self.module.run_command([iptables, "--version"])
        text = out + err
        if "nf_tables" in text:
            return "iptables-nft"
        if "legacy" in text:
            return "iptables-legacy"
        return "iptables"

    def lock(self) -> None:
        """Serialise save→diff→restore between concurrent runs (two plays at the same moment)."""
        if self._lock_fd is None:
            os.makedirs(RUN_DIR, exist_ok=True)
            self._lock_fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def save(self) -> dict[str, Table]:
        tables = {}
        for table in TABLES:
            rc, out, err = self.module.run_command([self.save_bin, "-t", table])
            if rc != 0:
                self.module.fail_json(msg=f"{self.save_bin} -t {table} failed: {err.strip()}")
            tables[table] = parse_save(out).get(table) or empty_table(table)
        return tables

    def save_text(self, table: str) -> str:
        rc, out, err = self.module.run_command([self.save_bin, "-t", table])
        if rc != 0:
            raise ApplyError(f"{self.save_bin} -t {table} failed: {err.strip()}")
        return out

    def restore(self, table: str, text: str, noflush: bool = True) -> None:
        argv = [self.restore_bin, "-w"] + (["--noflush"] if noflush else [])
        if os.environ.get(FAIL_HOOK_ENV) == table and noflush:
            text = text.replace("COMMIT\n", "-A LINUXNET-NO-SUCH-CHAIN -j ACCEPT\nCOMMIT\n")
        rc, out, err = self.module.run_command(argv, data=text, binary_data=True)
        if rc != 0:
            raise ApplyError(f"{' '.join(argv)} failed for table {table}: {(err or out).strip()}")

    def apply_transactions(self, changes: dict[str, str]) -> None:
        """Apply one payload per table; if a later table fails, put earlier tables back as they were."""
        snapshots: dict[str, str] = {}
        done: list[str] = []
        try:
            for table, text in changes.items():
                snapshots[table] = self.save_text(table)
                self.restore(table, text)
                done.append(table)
        except ApplyError as exc:
            rolled = []
            for table in reversed(done):
                self.restore(table, snapshots[table], noflush=False)
                rolled.append(table)
            note = f" (table {', '.join(rolled)} restored to its previous content)" if rolled else ""
            raise ApplyError(f"{exc}{note}") from None


def read_sysctl(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def write_sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w", encoding="ascii") as handle:
            handle.write(value)
    except OSError as exc:
        raise ApplyError(f"cannot write {value} to {path}: {exc}") from None


def sysctl_name(path: str) -> str:
    return path[len("/proc/sys/"):].replace("/", ".") if path.startswith("/proc/sys/") else path


class TablesResource(Resource):
    """Base of the iptables resources: lock, live ruleset, ownership state file, one restore per table."""

    #: sub-directory of /run/linuxnet holding the state file of this resource
    state_dir = ""

    def __init__(self, module) -> None:
        super().__init__(module)
        self.prefix = "LINUXNET"
        self.backend: Backend | None = None
        self.live: dict[str, Table] = {}
        self.known: dict[str, dict] = {}
        self.final: dict[str, dict] = {}

    def state_path(self) -> str:
        return os.path.join(RUN_DIR, self.state_dir, f"{self.prefix}.json")

    def load_live(self) -> None:
        """Take the lock, then read the ruleset and the state file (in this order: no races)."""
        if self.backend is None:
            self.backend = Backend(self.module, self.params.get("backend", "auto"))
            if not self.module.check_mode:  # check mode only reads, and writes no lock file
                self.backend.lock()
        self.live = self.backend.save()
        try:
            with open(self.state_path(), encoding="utf-8") as handle:
                self.known = json.load(handle)["items"]
        except (OSError, ValueError, KeyError):
            self.known = {}

    def live_table(self, table: str) -> Table:
        return self.live.get(table) or empty_table(table)

    def table_operations(self, want: dict[str, DesiredTable], is_ours: Callable[[str, str], bool]) -> list[Operation]:
        ops: list[Operation] = []
        for table in TABLES:
            live = self.live_table(table)
            ops += restore_operations(table, plan_table(table, live, want[table], is_ours), live)
        return ops

    def apply(self, operations: list[Operation]) -> None:
        if self.backend is None:
            raise ApplyError("internal error: apply() before gather()")
        changes: dict[str, list[str]] = {}
        for op in operations:
            if op.action == "restore":
                changes.setdefault(op.args["table"], []).append(op.args["line"])
        self.backend.apply_transactions({t: payload(t, lines) for t, lines in changes.items()})
        self.apply_other([op for op in operations if op.action != "restore"])

    def apply_other(self, operations: list[Operation]) -> None:
        """Operations other than rule changes (sysctls), run after the rules are committed."""

    def persist(self) -> None:
        if self.final == self.known:
            return
        path = self.state_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump({"items": self.final}, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.unlock()
