# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The iptables adapter: rule texts, ``iptables-save`` parsing, minimal ``iptables-restore --noflush`` payloads.

Each rule kind of the model has one :class:`Template` in :data:`KINDS`, which both renders it and
parses it back, written exactly as ``iptables-save`` prints it: comparing the live ruleset with the
desired one is a string comparison. The planner is pure. It knows three kinds of chains:

* *owned chains* whose whole content is ours: rewritten (``:CHAIN - [0:0]`` flushes it inside
  the transaction) only when it differs;
* *kept chains* that must exist but whose content belongs to someone else (``<P>-USER``) or to
  another module: created when missing, never flushed; a rule of their initial content that is
  missing (``<P>-USER``'s RETURN after an ``iptables -F``) is appended again;
* *built-in chains* shared with everyone (FORWARD, POSTROUTING, ...): only the rules a model
  claims as its own are deleted or inserted; foreign rules are never touched.

Errors are raised (:class:`IptablesError`), never turned into a module exit here.
"""

from __future__ import annotations

import functools
import os
from typing import Callable

from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError, Operation
from ansible_collections.linuxnet.bridge.plugins.module_utils._fwmodel import (
    BuiltinRules,
    DesiredTable,
    FirewallLock,
    Model,
    Rule,
    RuleTemplate,
    Table,
    _branches,
)

TABLES = ("filter", "nat", "raw")  # in the order their transactions are applied
BUILTIN = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}
COMMANDS = {"ipv4": "iptables", "ipv6": "ip6tables"}  # by address family
VARIANTS = ("auto", "iptables-nft", "iptables-legacy")
VARIANT_SUFFIX = {"iptables-nft": "-nft", "iptables-legacy": "-legacy"}  # of the binaries (iptables-nft-save)
#: the legacy (x_tables) tables loaded in the network namespace, by family: none loaded, no rule anywhere
#: (reading the file loads nothing, where iptables-legacy-save -t would load its table)
LEGACY_TABLES = {"ipv4": "/proc/net/ip_tables_names", "ipv6": "/proc/net/ip6_tables_names"}
FAIL_HOOK_ENV = "LINUXNET_TEST_FAIL_TABLE"  # test hook: make the restore of this table fail


class IptablesError(ApplyError):
    """iptables is missing or failed (while reading or writing); the engine reports it."""


# A field is one token without "/" (an address before "/32", a port before "/base"), except these.
_PATTERNS = {
    "ipv4": {"subnet": r"\S+", "source": r"[0-9.]+/\d+"},
    "ipv6": {"subnet": r"\S+", "source": r"[0-9a-f:.]+/\d+"},
}
_TOKEN = r"[^\s/]+"
# A port range is "first-last" in the model, "first:last" in a match.
_CONVERT = {"dport": (lambda v: v.replace("-", ":"), lambda v: v.replace(":", "-"))}


def Template(text: str, family: str = "ipv4", bracketed: bool = False) -> RuleTemplate:  # the constructor of KINDS entries
    """``bracketed``: container_ip is an IPv6 DNAT target, written ``[addr]`` before its ``:port``."""
    if not bracketed:
        return RuleTemplate(text, _TOKEN, _PATTERNS[family], _CONVERT)
    return RuleTemplate(text, _TOKEN, {**_PATTERNS[family], "container_ip": BRACKETED_PATTERN}, {**_CONVERT, "container_ip": BRACKETED})


# ([ ] in a template text is an optional segment: the brackets of an IPv6 DNAT target are a conversion)
BRACKETED = (lambda address: f"[{address}]", lambda text: text[1:-1])
BRACKETED_PATTERN = r"\[[0-9a-f:.]+\]"


def ipv6_text(text: str) -> str:
    """A rule of KINDS as ip6tables-save prints it: host addresses are /128."""
    return text.replace("/32", "/128")


_NAT = "[SNAT --to-source {snat_source}|MASQUERADE]"
# Parsing tries the kinds in this order: a kind with a literal target comes before the one that
# would read that target as a chain name (``-j DROP`` is no jump into a chain called DROP).
KINDS = {
    # firewall: Docker's bridge driver
    "return": Template("-j RETURN"),
    "jump": Template("-j {chain}"),
    "localnet_guard": Template("! -s 127.0.0.0/8 -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"),
    "established": Template("-o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
    "isolated": Template("-o {bridge} -j DROP"),
    "to_chain": Template("-o {bridge} -j {chain}"),
    "outbound": Template("-i {bridge} ! -o {bridge} -j ACCEPT"),
    "isolate": Template("-i {bridge} ! -o {bridge} -j {chain}"),
    "icc": Template("-i {bridge} -o {bridge} -j {verdict}"),
    "internal_in": Template("! -s {subnet} -o {bridge} -j DROP"),
    "internal_out": Template("! -d {subnet} -i {bridge} -j DROP"),
    # Docker 28/29's per-network default (setDefaultForwardRule): nothing enters the bridge from
    # outside unless a rule of <P> (a published port) accepted it, whatever the FORWARD policy.
    "protect": Template("! -i {bridge} -o {bridge} -j DROP"),
    # DNATed packets from another network may reach the ports published in this one (moby#49509).
    "published_in": Template("-o {bridge} -m conntrack --ctstate DNAT -j {chain}"),
    # ... and their replies go back (the connection was accepted on the way in)
    "published_reply": Template("-m conntrack --ctstate DNAT --ctdir REPLY -j RETURN"),
    "local_jump": Template("-m addrtype --dst-type LOCAL -j {chain}"),
    "local_nat": Template("-o {bridge} -m addrtype --src-type LOCAL -j " + _NAT),
    "out_nat": Template("-s {subnet} ! -o {bridge} -j " + _NAT),
    # port_mapping: published ports
    # sources (beyond Docker): one DNAT and one ACCEPT per allowed source network, "-s a.b.c.d/n"
    "dnat": Template("[-s {source} ][-d {host_ip}/32 ]-p {proto} -m {proto} --dport {dport} -j DNAT --to-destination {container_ip}:{to_ports}[/{base}]"),
    "accept_port": Template("[-s {source} ]-d {container_ip}/32 ! -i {bridge} -o {bridge} -p {proto} -m {proto} --dport {dport} -j ACCEPT"),
    "hairpin": Template("-s {container_ip}/32 -d {container_ip}/32 -p {proto} -m {proto} --dport {dport} -j MASQUERADE"),
    # raw PREROUTING, Docker 28.0's filterPortMappedOnLoopback: a port published on a loopback address
    # is reached from this host only, not by a neighbour routing 127.0.0.1 to us (route_localnet lets it
    # through). Before direct_drop: that text would read this rule as one for a bridge called "lo".
    "loopback_drop": Template("-d {host_ip}/32 ! -i lo -p {proto} -m {proto} --dport {dport} -j DROP"),
    # raw PREROUTING, Docker 28.0's filterDirectAccess: a published container port is reachable
    # through the DNAT only, not by routing to the container's address from outside its bridge.
    "direct_drop": Template("-d {container_ip}/32 ! -i {bridge} -p {proto} -m {proto} --dport {dport} -j DROP"),
}
# Kinds without an IPv6 form: no route_localnet for IPv6, so no 127.0.0.0/8-style publishing to guard.
IPV4_ONLY = frozenset({"localnet_guard", "loopback_drop"})
#: The same kinds in ip6tables (derived from KINDS: each rule format is written once).
#: Docker 29's IPv6 DNAT skips link-local sources (``! -s fe80::/10``); a port's own ``sources`` replace it.
LINK_LOCAL6 = "fe80::/10"
#: Docker's IPv6 internal-network drops (setupInternalNetworkRules) spare traffic that stays on the
#: bridge: with bridge-nf-call-ip6tables, bridged neighbour discovery (fe80:: to ff02::1:ff..) passes FORWARD.
INTERNAL6 = {
    "internal_in": "! -s {subnet} ! -i {bridge} -o {bridge} -j DROP",
    "internal_out": "! -d {subnet} -i {bridge} ! -o {bridge} -j DROP",
}
KINDS6 = {kind: Template(ipv6_text(t.text).replace("[-s {source} ]", f"[-s {{source}} |! -s {LINK_LOCAL6} ]") if kind == "dnat"
                         else INTERNAL6.get(kind) or ipv6_text(t.text), "ipv6", bracketed=kind == "dnat")
          for kind, t in KINDS.items() if kind not in IPV4_ONLY}
KINDS_BY_FAMILY = {"ipv4": KINDS, "ipv6": KINDS6}


# Rendered rules by (rule, family): a run renders the same rule for several chains and models
# (pure). Bounded: a process that plans many times (deployment_info, the tests, a library user)
# empties it when full rather than keep every rule it ever rendered; a run of the benchmark's
# N=1000 renders about 12,000 distinct rules, so one run's fit.
_RENDERED: dict[tuple[Rule, str], str] = {}
RENDERED_MAX = 1 << 15


def render_rule(rule: Rule, family: str = "ipv4") -> str:
    key = (rule, family)
    try:
        text = _RENDERED.get(key)  # (no KeyError raised and caught: most rules of a run are new to it)
    except TypeError:  # a field value that is no string (not hashable)
        return KINDS_BY_FAMILY[family][rule.kind].render(dict(rule.fields))
    if text is None:
        if len(_RENDERED) >= RENDERED_MAX:
            _RENDERED.clear()
        text = _RENDERED[key] = KINDS_BY_FAMILY[family][rule.kind].render(dict(rule.fields))
    return text


# family -> (its KINDS, the signatures of each kind (see _signatures), {(first token, target, target
# is last): the kinds, in order, that can match a rule of that shape})
_BY_TARGET: dict[str, tuple[dict, dict[str, set | None], dict[tuple[str, str, bool], list]]] = {}
SHAPES_MAX = 1 << 10  # shapes remembered per family (a parsed running_config may have any)


def _signatures(template: RuleTemplate) -> set[tuple[str | None, str | None, bool]] | None:
    """(first token, target after its one ``-j``, whether the target is the last token) of each text
    the template renders (``[A|B]`` taken either way), None where a field stands (any word); None
    when a text has no single literal ``-j`` followed by a target: it may match any rule.

    A field matches one token (no whitespace), so a rule that the template matches and that has one
    ``-j`` token has the template's ``-j``, target and first token where the text has them."""
    texts = [""]
    for segment in template.segments:
        branches = _branches(segment) if segment.startswith("[") else (segment,)
        texts = [text + branch for text in texts for branch in branches]
    found = set()
    for text in texts:
        tokens = text.split()
        if tokens.count("-j") != 1 or tokens[-1] == "-j":
            return None
        at = tokens.index("-j") + 1
        found.add(tuple(None if "{" in word else word for word in (tokens[0], tokens[at])) + (at == len(tokens) - 1,))
    return found


def _candidates(family: str, first: str, target: str, last: bool) -> list:
    """The kinds of ``family``, in order, that can match a rule with one ``-j`` of this shape: parsing tries only those."""
    kinds = KINDS_BY_FAMILY[family]
    if family not in _BY_TARGET or _BY_TARGET[family][0] is not kinds:
        _BY_TARGET[family] = (kinds, {kind: _signatures(template) for kind, template in kinds.items()}, {})
    _kinds, signatures, shapes = _BY_TARGET[family]
    key = (first, target, last)
    if key not in shapes:
        if len(shapes) >= SHAPES_MAX:
            shapes.clear()
        shapes[key] = [(kind, template) for kind, template in kinds.items() if signatures[kind] is None or any(
            f in (None, first) and t in (None, target) and end == last for f, t, end in signatures[kind])]
    return shapes[key]


def parse_rule(spec: str, family: str = "ipv4") -> Rule | None:
    """The rule ``iptables-save`` printed as ``-A CHAIN <spec>``; None if it is no kind of ours."""
    tokens = spec.split()
    if tokens.count("-j") == 1 and tokens[-1] != "-j":
        # a kind matches only a rule with its first token and its target after its (only) -j
        at = tokens.index("-j") + 1
        candidates = _candidates(family, tokens[0], tokens[at], at == len(tokens) - 1)
    else:
        candidates = KINDS_BY_FAMILY[family].items()
    for kind, template in candidates:
        m = template.regex.match(spec)
        if m is None:  # (most kinds fail here)
            continue
        fields = template.fields(m)
        if fields is not None:
            return Rule.ordered(kind, sorted(fields.items()))  # (Rule.of without unpacking: parsing makes thousands)
    return None


def parse_save(text: str) -> dict[str, Table]:
    tables: dict[str, Table] = {}
    current: Table | None = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("-A "):  # (first: nearly every line is a rule)
            if current is not None:
                # "-A FORWARD" alone is a rule too (`iptables -A FORWARD`: no match, no target, a counter)
                parts = line.split(" ", 2)
                current.rules.setdefault(parts[1], []).append(parts[2] if len(parts) > 2 else "")
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = tables.setdefault(line[1:], Table())
        elif current is None or line == "COMMIT":
            continue
        elif line.startswith(":"):
            name, policy = (line[1:].split() + ["-", "-"])[:2]  # running_config (parsed) may be any text
            current.chains[name] = policy
            current.rules.setdefault(name, [])
    return tables


def split_save_tables(text: str) -> dict[str, str]:
    """The tables of an ``iptables-save`` text, each as the text of its own ``*table`` line to its
    ``COMMIT`` (what ``iptables-save -t table`` prints, less its comments); a table without its
    ``COMMIT`` (a cut text) is left out."""
    found: dict[str, str] = {}
    name, lines = None, []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("*"):
            name, lines = stripped[1:], [stripped]
        elif name is not None and stripped and not stripped.startswith("#"):
            lines.append(stripped)
            if stripped == "COMMIT":
                found[name] = "\n".join(lines) + "\n"
                name = None
    return found


def legacy_tables(family: str) -> set[str]:
    """The iptables-legacy tables loaded in this network namespace (none when x_tables is not loaded)."""
    try:
        with open(LEGACY_TABLES[family], encoding="ascii") as handle:
            return set(handle.read().split())
    except OSError:
        return set()


def empty_table(table: str) -> Table:
    return Table(chains={c: "ACCEPT" for c in BUILTIN[table]}, rules={c: [] for c in BUILTIN[table]})


def ownership(model: Model) -> Callable[[str, str], bool]:
    """Predicate: is this rule of a built-in chain ours? Jumps into our chains, and claimed rules."""
    claimed = {chain: {render_rule(r, model.family) for r in rules} for chain, rules in model.claimed.items()}

    def is_ours(chain: str, spec: str) -> bool:
        if spec in claimed.get(chain, ()):  # (first: most rules of ours in a built-in chain are claimed)
            return True
        tokens = spec.split()
        return len(tokens) >= 2 and tokens[-2] == "-j" and tokens[-1] in model.chains

    return is_ours


def plan_table(table: str, live: Table, want: DesiredTable, ours: Callable[[str, str], bool],
               family: str = "ipv4") -> list[str]:
    """Restore lines (without ``*table``/``COMMIT``) that turn ``live`` into ``want``; [] if equal."""
    render = functools.partial(render_rule, family=family)
    declare: list[str] = []
    body: list[str] = []
    tail: list[str] = []
    for chain, policy in want.policies.items():
        if live.chains.get(chain) != policy:
            declare.append(f":{chain} {policy} [0:0]")
    for chain, initial in want.kept.items():
        if chain not in live.chains:
            declare.append(f":{chain} - [0:0]")
        present = live.chain_rules(chain)
        body += [f"-A {chain} {spec}" for spec in map(render, initial) if spec not in present]
    for chain, owned in want.owned.items():
        rules = [render(rule) for rule in owned]
        if chain not in live.chains or live.chain_rules(chain) != rules:
            declare.append(f":{chain} - [0:0]")
            body += [f"-A {chain} {spec}" for spec in rules]
    for chain in BUILTIN[table]:
        mine = want.builtin.get(chain, BuiltinRules())
        top, bottom = [render(r) for r in mine.top], [render(r) for r in mine.bottom]
        present = [spec for spec in live.chain_rules(chain) if ours(chain, spec)]
        if present == top + bottom:
            continue
        body += [f"-D {chain} {spec}" for spec in present]
        body += [f"-I {chain} {pos} {spec}" for pos, spec in enumerate(top, start=1)]
        body += [f"-A {chain} {spec}" for spec in bottom]
    for chain in want.remove:
        if chain in live.chains:
            # Rules elsewhere that jump here were claimed by `ours` and deleted above.
            tail += [f"-F {chain}", f"-X {chain}"]
    return declare + body + tail


def restore_line(table: Table, line: str) -> None:
    """What one line of an ``iptables-restore --noflush`` payload (as :func:`plan_table` writes them) does to ``table``."""
    if line.startswith(":"):
        chain, policy = line[1:].split()[:2]
        table.chains[chain] = policy
        if policy == "-":  # a user chain, created or flushed
            table.rules[chain] = []
        return
    verb, _sep, rest = line.partition(" ")
    chain, _sep, spec = rest.partition(" ")
    rules = table.rules.setdefault(chain, [])
    if verb == "-A":
        rules.append(spec)
    elif verb == "-I":
        position, _sep, tail = spec.partition(" ")
        index, spec = (int(position) - 1, tail) if position.isdigit() else (0, spec)
        rules.insert(index, spec)
    elif verb == "-D" and spec in rules:
        rules.remove(spec)
    elif verb == "-F":
        rules.clear()
    elif verb == "-X":
        table.chains.pop(chain, None)
        table.rules.pop(chain, None)


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


class Iptables(FirewallLock):
    """The adapter for one address family (iptables or ip6tables) and variant (nft or legacy).

    Creating one runs nothing: the binaries are looked up at the first save. A lock file
    serialises save→diff→restore between concurrent runs (two plays at the same moment).
    """

    #: the firewall_backend this adapter is (a run's shared adapters wrap it: no isinstance)
    backend = "iptables"
    #: one iptables-save reads every table (see :meth:`save`): a run's reader asks for all of them at once
    read_together = TABLES

    def __init__(self, module, family: str = "ipv4", variant: str = "auto", leftovers_of: str | None = None, tag: str = "") -> None:
        """``leftovers_of``: None for the chosen backend's adapter; for one that removes what is ours
        from a variant not chosen, the chosen iptables variant ("auto": found at run time; "": the
        nftables backend is chosen). ``tag`` sets its operations apart from another variant's."""
        self.module = module
        self.family = family
        self.variant = variant
        self.leftovers_of = leftovers_of
        self.command = COMMANDS[family]
        #: Operation.action of this adapter's operations: one restore per table, family and variant
        self.action = ("restore" if family == "ipv4" else "restore6") + tag
        self.tag = tag  # (and of the commands shown: iptables-legacy -t filter ...)
        self.render = functools.partial(render_rule, family=family)
        self.parse = functools.partial(parse_rule, family=family)
        self.parse.templates = KINDS_BY_FAMILY[family]  # type: ignore[attr-defined]  # (_fwmodel.parsable_as)
        self._snapshots: dict[str, str] = {}  # the tables the last apply changed, as they were before
        # each table as this adapter last read it, until it restores that table: the snapshot an
        # apply rolls back to (the run holds the firewall lock from its read to its end)
        self._texts: dict[str, str] = {}
        self._bins: tuple[str, str] | None = None
        #: optional tables (raw) that could not be read, with iptables-save's reason
        self.unavailable: dict[str, str] = {}

    # -- pure ---------------------------------------------------------------------------------
    empty = staticmethod(empty_table)

    def plan(self, model: Model, live: dict[str, Table]) -> list[Operation]:
        """One Operation per human command; all lines of a table are applied in one restore."""
        ops = []
        ours = ownership(model)  # one predicate for every table (it renders each claimed rule)
        for table in [t for t in TABLES if t in model.tables]:
            current = live.get(table) or empty_table(table)
            lines = plan_table(table, current, model.tables[table], ours, self.family)
            if lines and table in self.unavailable:
                raise IptablesError(
                    f"the {table} table is not available on the managed host ({self.unavailable[table]}); it needs "
                    "CONFIG_IP_NF_RAW for the protection against direct routing: set gateway_mode: nat-unprotected "
                    "on the networks to do without it"
                )
            commands = as_commands(table, lines, current, self.command + self.tag)
            ops += [Operation(cmd, self.action, {"table": table, "line": line}) for cmd, line in zip(commands, lines)]
        return ops

    def render_model(self, model: Model) -> list[str]:
        """The restore payload that builds ``model`` on an empty host."""
        tables = [t for t in TABLES if t in model.tables]
        ours = ownership(model)
        text = "".join(payload(t, plan_table(t, empty_table(t), model.tables[t], ours, self.family)) for t in tables)
        return text.splitlines()

    def foresees(self, op: Operation) -> bool:
        """Is ``op`` one of this adapter's, whose effect :meth:`foresee` can tell? (every restore line)"""
        return op.action == self.action

    def foresee(self, live: dict[str, Table], operations: list[Operation]) -> None:
        """``live`` (the tables as this adapter read them) as restoring this adapter's ``operations``
        would leave them: a later step plans on it, and its lines join the same restore per table."""
        for op in operations:
            if op.action == self.action and op.args["table"] in live:
                restore_line(live[op.args["table"]], op.args["line"])

    # -- kernel -------------------------------------------------------------------------------
    def _binaries(self) -> tuple[str, str]:
        if self._bins is None:
            variant = self._detect() if self.variant == "auto" else self.variant
            suffix = VARIANT_SUFFIX.get(variant, "")
            if self.leftovers_of is not None and variant == "iptables-legacy" and not self.module.get_bin_path(f"{self.command}-legacy-save"):
                # iptables before 1.8 has no -legacy binaries: its plain ones are legacy
                suffix = "" if self._detect() != "iptables-nft" else suffix
            self._bins = (self._binary(f"{self.command}{suffix}-save"), self._binary(f"{self.command}{suffix}-restore"))
        return self._bins

    def _binary(self, name: str) -> str:
        path = self.module.get_bin_path(name)
        if not path:
            raise IptablesError(f"{name} not found on the managed host: install the iptables package")
        return path

    def _detect(self) -> str:
        binary = self.module.get_bin_path(self.command)
        if not binary:
            raise IptablesError(f"{self.command} not found on the managed host: install the iptables package")
        rc, out, err = self.module.run_command([binary, "--version"])
        text = out + err
        if "nf_tables" in text:
            return "iptables-nft"
        if "legacy" in text:
            return "iptables-legacy"
        return "iptables"

    def save(self, tables: tuple[str, ...] = ("filter", "nat")) -> dict[str, Table]:
        if self.leftovers_of is None:
            return self._save(tables)
        # a variant not chosen: read only what can hold rules of ours; a table without a chain is nothing to clean
        if self.variant == "iptables-legacy":
            loaded = legacy_tables(self.family)
            if not loaded or self._is_chosen():
                return {table: Table() for table in tables}
            read = self._save(tuple(t for t in tables if t in loaded)) if loaded & set(tables) else {}
            return {table: read.get(table) or empty_table(table) for table in tables}
        if self._is_chosen():
            return {table: Table() for table in tables}
        return self._save(tables)

    def _is_chosen(self) -> bool:
        """Is this variant the one the chosen adapter uses (``auto`` found it)? Then it is not ours to clean."""
        if self.leftovers_of != "auto":
            return False
        plain = self.module.get_bin_path(self.command)
        mine = self.module.get_bin_path(f"{self.command}{VARIANT_SUFFIX[self.variant]}")
        if not plain or not mine:  # no binary of this variant: nothing to read (no plain one: auto fails first)
            return True
        # names of one xtables-*-multi binary tell without running anything; else ask (iptables --version)
        other = self.module.get_bin_path(self.command + next(s for v, s in VARIANT_SUFFIX.items() if v != self.variant))
        if os.path.realpath(plain) in (os.path.realpath(mine), other and os.path.realpath(other)):
            return os.path.realpath(plain) == os.path.realpath(mine)
        return self._detect() == self.variant

    def _save(self, tables: tuple[str, ...]) -> dict[str, Table]:
        # One iptables-save for several tables: iptables-nft-save fetches the whole ruleset from the
        # kernel whatever its -t (three reads cost three times one).
        together = self.save_all(tables) if len(tables) > 1 else {}
        live = {}
        for table in tables:
            try:
                if table in together:
                    text = self._texts[table] = together[table]
                else:
                    text = self.save_text(table)
            except IptablesError as exc:
                if table != "raw":  # a kernel without CONFIG_IP_NF_RAW (moby#49557) still runs the rest
                    raise
                self.unavailable[table] = str(exc)
                text = ""
            live[table] = parse_save(text).get(table) or empty_table(table)
        return live

    def save_all(self, tables: tuple[str, ...]) -> dict[str, str]:
        """The text of each of ``tables`` that one ``iptables-save`` (no -t) tells, as ``-t TABLE`` prints
        it (less its comments); the others are read alone with -t, as always: all of them when it fails.

        iptables-nft-save leaves out a table the kernel does not have, whose ``-t`` text is its built-in
        chains, empty, policy ACCEPT (a table it cannot read is named in a comment instead: read alone).
        iptables-legacy-save leaves out the tables not loaded in the namespace, which ``-t`` loads (or
        fails to: a kernel without raw)."""
        save_bin = self._binaries()[0]
        rc, out, _err = self.module.run_command([save_bin])
        if rc != 0:
            return {}
        found = split_save_tables(out)
        if save_bin.endswith("-nft-save"):
            for table in tables:
                if table not in found and table in BUILTIN and f"`{table}'" not in out:
                    found[table] = payload(table, [f":{chain} ACCEPT [0:0]" for chain in BUILTIN[table]])
        return found

    def save_text(self, table: str) -> str:
        save_bin = self._binaries()[0]
        rc, out, err = self.module.run_command([save_bin, "-t", table])
        if rc != 0:
            raise IptablesError(f"{save_bin} -t {table} failed: {err.strip()}")
        self._texts[table] = out
        return out

    def restore(self, table: str, text: str, noflush: bool = True) -> None:
        self._texts.pop(table, None)  # what was read of it is no longer true
        argv = [self._binaries()[1], "-w"] + (["--noflush"] if noflush else [])
        if os.environ.get(FAIL_HOOK_ENV) == table and noflush:
            text = text.replace("COMMIT\n", "-A LINUXNET-NO-SUCH-CHAIN -j ACCEPT\nCOMMIT\n")
        rc, out, err = self.module.run_command(argv, data=text, binary_data=True)
        if rc != 0:
            raise IptablesError(f"{' '.join(argv)} failed for table {table}: {(err or out).strip()}")

    def apply(self, operations: list[Operation]) -> None:
        """Apply one payload per table; if a later table fails, put earlier tables back as they were."""
        changes: dict[str, list[str]] = {}
        for op in operations:
            changes.setdefault(op.args["table"], []).append(op.args["line"])
        snapshots: dict[str, str] = {}
        done: list[str] = []
        self._snapshots = {}
        try:
            for table, lines in changes.items():
                # the text read for the plan is the table now (no restore since, under the lock): no second save
                snapshots[table] = self._texts[table] if table in self._texts else self.save_text(table)
                self.restore(table, payload(table, lines))
                done.append(table)
        except ApplyError as exc:
            rolled = []
            for table in reversed(done):
                self.restore(table, snapshots[table], noflush=False)
                rolled.append(table)
            note = f" (table {', '.join(rolled)} restored to its previous content)" if rolled else ""
            # every table this apply wrote is back as it was
            raise IptablesError(f"{exc}{note}", unchanged=True) from None
        self._snapshots = {table: snapshots[table] for table in done}

    def rollback(self) -> list[str]:
        """Put back the tables the last apply changed (the other family's restore failed); their names."""
        rolled = []
        for table, text in reversed(list(self._snapshots.items())):
            self.restore(table, text, noflush=False)
            rolled.append(f"{self.command} {table}")
        self._snapshots = {}
        return rolled
