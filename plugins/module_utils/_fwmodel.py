# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The firewall as the resources want it, independent of the tool that applies it.

The resources (``_firewall``, ``_port_mapping``) build a :class:`Model` per address family: chains,
ordered :class:`Rule` values, the rules they hook into built-in chains and the sysctls they need.
An adapter (``_iptables`` today) renders each rule kind in its own syntax, turns the model into one
transaction and reads the live ruleset back as a :class:`Table` per table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError


@dataclass(frozen=True)
class Rule:
    """One rule: a kind of the adapters' vocabulary (``"dnat"``, ``"icc"``, ...) and its fields."""

    kind: str
    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, kind: str, **fields: str | None) -> Rule:
        return cls(kind, tuple(sorted((k, v) for k, v in fields.items() if v is not None)))

    def get(self, name: str) -> str | None:
        return dict(self.fields).get(name)


@dataclass
class Table:
    """One live table as an adapter read it: chain policies, and rules in the adapter's own text."""

    chains: dict[str, str] = field(default_factory=dict)
    rules: dict[str, list[str]] = field(default_factory=dict)

    def chain_rules(self, chain: str) -> list[str]:
        return self.rules.get(chain, [])


@dataclass
class BuiltinRules:
    """Our rules in a shared (built-in) chain: ``top`` in this order ahead of our ``bottom`` rules."""

    top: list[Rule] = field(default_factory=list)
    bottom: list[Rule] = field(default_factory=list)


@dataclass
class DesiredTable:
    """*owned* chains are wholly ours; *kept* chains are created with ``kept[c]`` but never flushed."""

    owned: dict[str, list[Rule]] = field(default_factory=dict)
    kept: dict[str, list[Rule]] = field(default_factory=dict)
    builtin: dict[str, BuiltinRules] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)  # chains to delete if they exist
    policies: dict[str, str] = field(default_factory=dict)


@dataclass
class Model:
    """What one resource wants in one address family."""

    tables: dict[str, DesiredTable]
    #: rules of built-in chains that are ours wherever they are (wanted now or managed before)
    claimed: dict[str, set[Rule]] = field(default_factory=dict)
    #: chains of ours: a rule in a built-in chain that jumps into one is ours too
    chains: frozenset[str] = frozenset()
    sysctls: dict[str, str] = field(default_factory=dict)
    family: str = "ipv4"


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
