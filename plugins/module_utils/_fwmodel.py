# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The firewall as the resources want it, independent of the tool that applies it.

The resources (``_firewall``, ``_port_mapping``) build a :class:`Model` per address family: chains,
ordered :class:`Rule` values, the rules they hook into built-in chains and the sysctls they need.
An adapter (``_iptables``, ``_nftables``) renders each rule kind in its own syntax, turns the model
into one transaction and reads the live ruleset back as a :class:`Table` per table. Each adapter
also tells what its pending operations do to the tables it read (``foresees(op)``, ``foresee(live,
operations)``): check mode predicts a later resource against it, and a run joins two resources'
writes into one transaction (``_deployment``).
"""

from __future__ import annotations

import fcntl
import functools
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError
from ansible_collections.linuxnet.bridge.plugins.module_utils._ownership import RUN_DIR

#: one firewall writer at a time on a host, whichever backend (an adapter locks before it reads)
LOCK_FILE = os.path.join(RUN_DIR, "iptables.lock")


@dataclass(frozen=True)
class Rule:
    """One rule: a kind of the adapters' vocabulary (``"dnat"``, ``"icc"``, ...) and its fields."""

    kind: str
    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, kind: str, **fields: str | None) -> Rule:
        return cls.ordered(kind, sorted(fields.items()))

    @classmethod
    def ordered(cls, kind: str, fields: Iterable[tuple[str, str | None]]) -> Rule:
        """The rule of ``fields`` given already in the order of their names, those None left out:
        ``Rule.of`` without its sort (a run makes tens of thousands)."""
        return cls(kind, tuple([field for field in fields if field[1] is not None]))

    def get(self, name: str) -> str | None:
        return dict(self.fields).get(name)


_FIELD = re.compile(r"\{(\w+)\}")
_SEGMENT = re.compile(r"(\[[^\]]*\])")
Convert = tuple[Callable[[str], str], Callable[[str], str]]  # (model value -> tool text, and back)


class RuleTemplate:
    """One rule kind in one tool's syntax, rendering and parsing it (each adapter has a table of them).

    ``{field}`` is a placeholder; ``[A|B]`` is A when A's fields are given, else B. A field matches
    *token* unless *patterns* names it; *convert* maps model values to the tool's text and back;
    *derive*/*reduce* compute extra fields from the model's (render) and back (parse).
    """

    def __init__(self, text: str, token: str, patterns: dict[str, str] | None = None,
                 convert: dict[str, Convert] | None = None, derive: Callable[[dict], dict] | None = None,
                 reduce: Callable[[dict], dict] | None = None) -> None:
        self.text = text
        self.segments = _SEGMENT.split(text)
        self.names = _FIELD.findall(text)
        self.convert = convert or {}
        self.derive, self.reduce = derive, reduce
        patterns = patterns or {}
        seen: set[str] = set()

        def pattern(part: str) -> str:
            out, pos = "", 0
            for m in _FIELD.finditer(part):
                name = m.group(1)
                group = f"(?P={name})" if name in seen else f"(?P<{name}>{patterns.get(name, token)})"
                out, pos = out + re.escape(part[pos:m.start()]) + group, m.end()
                seen.add(name)
            return out + re.escape(part[pos:])

        regex = "".join(pattern(seg) if not seg.startswith("[") else "(?:{}|{})".format(*map(pattern, _branches(seg)))
                        for seg in self.segments)
        self._pattern = "^" + regex + "$"
        # parsing: only a group of an optional segment can be None; the groups converted back (a
        # group per field name, in the order of the text)
        self._maybe_none = any(seg.startswith("[") and _FIELD.search(seg) for seg in self.segments)
        self._back = [(name, self.convert[name][1]) for name in dict.fromkeys(self.names) if name in self.convert]
        # The segments split once into (literal, field) pieces: rendering is joins, no regex (a
        # no-change run at N=1000 renders tens of thousands of rules).
        self._parts = []
        for seg in self.segments:
            first, second = _branches(seg) if seg.startswith("[") else (seg, None)
            names = _FIELD.findall(first) if second is not None else None
            self._parts.append((names, self._pieces(first), self._pieces(second or "")))
        #: the names of each optional segment's first branch, and by the branches taken, a format
        #: string and the fields it converts first: rendering is one str.format_map
        self._optional = [names for names, _first, _second in self._parts if names is not None]
        self._given = [name for names in self._optional for name in names]  # (flat: one list comprehension)
        self._formats: dict[tuple[bool, ...], tuple[str, list[tuple[str, Callable[[str], str]]]]] = {}
        #: literal text that every rule of this kind contains (the pieces outside optional segments)
        self.literals = [literal for names, first, _second in self._parts if names is None
                         for literal, _name, _convert in first if literal.strip()]

    @functools.cached_property
    def regex(self) -> re.Pattern:
        """Compiled when first used: a run parses the kinds of the rules it reads (the module process
        importing the adapters' 200-odd templates compiled none: about 0.03 s of every run)."""
        return re.compile(self._pattern)

    def _pieces(self, part: str) -> list[tuple[str, str | None, Callable[[str], str]]]:
        pieces, pos = [], 0
        for m in _FIELD.finditer(part):
            name = m.group(1)
            pieces.append((part[pos:m.start()], name, self.convert.get(name, (str, str))[0]))
            pos = m.end()
        return pieces + [(part[pos:], None, str)]

    def render(self, fields: dict[str, str]) -> str:
        if self.derive is not None:
            fields = self.derive(dict(fields))
        get = fields.get
        given = tuple([get(name) is not None for name in self._given])
        try:
            form, converted = self._formats[given]
        except KeyError:
            form, converted = self._formats[given] = self._format(given)
        if not converted:
            return form.format_map(fields)
        values = dict(fields)
        for name, convert in converted:
            if name in values:  # (a missing one stays missing: format_map raises KeyError for the first in the text)
                values[name] = convert(values[name])
        return form.format_map(values)

    def _format(self, given: tuple[bool, ...]) -> tuple[str, list[tuple[str, Callable[[str], str]]]]:
        """The pieces of the branches taken when the names of :attr:`_given` are ``given`` (not None) or
        not, as one format string, and the fields it converts first."""
        flags, at = [], 0
        for names in self._optional:  # (each segment's names: the next len(names) of given)
            flags.append(all(given[at:at + len(names)]))
            at += len(names)
        taken = iter(flags)
        form, converted = [], {}
        for names, first, second in self._parts:
            for literal, name, convert in first if names is None or next(taken) else second:
                form.append(literal.replace("{", "{{").replace("}", "}}"))
                if name is not None:
                    form.append("{" + name + "}")
                    if convert is not str:
                        converted[name] = convert
        return "".join(form), list(converted.items())

    def parse(self, spec: str) -> dict[str, str] | None:
        m = self.regex.match(spec)
        return None if m is None else self.fields(m)

    def fields(self, m: re.Match) -> dict[str, str] | None:
        """The fields of a rule that :attr:`regex` matched (``m``): a caller that matched already parses no second time."""
        # (a group is a str already: only the converted fields need a call)
        fields = m.groupdict()
        if self._maybe_none:
            fields = {k: v for k, v in fields.items() if v is not None}
        for name, back in self._back:
            if name in fields:
                fields[name] = back(fields[name])
        return self.reduce(fields) if self.reduce is not None else fields


def parsable_as(parse: Callable[[str], Rule | None], specs: list[str], kinds: tuple[str, ...]) -> list[str]:
    """The ``specs`` that ``parse`` may read as a rule of one of ``kinds``: a spec lacking the longest
    literal of each kind's template (``parse.templates``, kind -> RuleTemplate, of the adapter) is
    none of them (a chain of thousands of rules of other kinds is not parsed). All of them when
    ``parse`` tells no templates."""
    templates = getattr(parse, "templates", None)
    if templates is None:
        return specs
    keys = [max(templates[kind].literals, key=len, default="") for kind in kinds if kind in templates]
    if "" in keys:  # a kind without literal text matches anything
        return specs
    found = []
    for spec in specs:
        for key in keys:
            if key in spec:
                found.append(spec)
                break
    return found


def _branches(segment: str) -> tuple[str, str]:
    """``[A|B]`` -> (A, B); ``[A]`` -> (A, "")."""
    first, second = (segment[1:-1].split("|") + [""])[:2]
    return first, second


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


class FirewallLock:
    """The adapters' lock: held from before a resource reads the ruleset until its run ends."""

    _lock_fd: int | None = None

    def lock(self) -> None:
        if self._lock_fd is None:
            os.makedirs(RUN_DIR, exist_ok=True)
            self._lock_fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None


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
