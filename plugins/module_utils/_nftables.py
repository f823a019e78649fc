# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The nftables adapter: the firewall model in a table of our own, one ``nft -f`` transaction per run.

The collection owns one table, ``ip <name>`` (the chain prefix in lower case: ``ip linuxnet``).
Every chain of the model lives there as ``<table>-<chain>``: the built-in chains of iptables
become base chains hooked where Docker 29's ``docker-bridges`` hooks them (``filter-FORWARD`` at
forward/filter, ``nat-PREROUTING`` at prerouting/dstnat, ``nat-OUTPUT`` at output/-100,
``nat-POSTROUTING`` at postrouting/srcnat, ``raw-PREROUTING`` at prerouting/raw, ...), the
model's own chains regular chains (``filter-LINUXNET-ISOLATION-STAGE-1``, ``nat-LINUXNET``).
Each rule kind has one :class:`Template` in :data:`KINDS`, written exactly as ``nft list`` prints
it, so comparing the live table with the desired one is a string comparison, as with iptables.
Where many rules of one kind differ only in an address, port or bridge (published ports, the
isolation stages), :func:`compact` writes them as one rule with an anonymous set or map
(:data:`SETS_BY_FAMILY`), so the rule count does not grow with endpoints, ports or networks;
:func:`parse_list` reads such a rule back as the rules it stands for (the resources never see a set),
and the planner compares set rules with their elements sorted (nft lists them in an order of its own).

The planner keeps the iptables adapter's three kinds of chains: *owned* chains are flushed and
rewritten when they differ; *kept* chains (``filter-<P>-USER``, the admins' hook) are created
when missing and never flushed; base chains are shared by the firewall and port_mapping modules
(and whatever an admin adds there): only the rules a model claims are deleted (by handle) and
inserted. Everything else in the host's ruleset (firewalld's tables, Docker's ``docker-bridges``,
iptables-nft's ``ip filter``/``ip nat``, a user's) is never read or written. A base chain left
without rules is deleted, and so is the table once it has no chain left.

Errors are raised (:class:`NftablesError`), never turned into a module exit here.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
from typing import Callable

from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import ApplyError, Operation
from ansible_collections.linuxnet.bridge.plugins.module_utils._iptables import BRACKETED, BRACKETED_PATTERN, LINK_LOCAL6
from ansible_collections.linuxnet.bridge.plugins.module_utils._fwmodel import BuiltinRules, FirewallLock, Model, Rule, RuleTemplate, Table

NFT_FAMILIES = {"ipv4": "ip", "ipv6": "ip6"}  # one table per address family, as Docker 29's docker-bridges
ACTION = "nft"  # Operation.action of this adapter's operations
FAIL_HOOK_ENV = "LINUXNET_TEST_FAIL_TABLE"  # test hook: "nft" appends a failing command to the transaction
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")  # nft reads a leading digit as a number
#: ``ip``/``ip6`` tables of other tools, which a table of ours must not be (its chains would land in
#: theirs): iptables-nft's (one per iptables table), firewalld's (0.6-0.8), kube-proxy's (nftables mode).
FOREIGN_TABLES = frozenset({"filter", "nat", "raw", "mangle", "security", "firewalld", "firewalld_policy_drop", "kube-proxy"})
#: Words nft's parser takes as keywords where a table name goes (``add table ip flush`` is a syntax
#: error): every such word of 1-10 characters found by ``nft -c -f`` (nftables 1.0.6) on the words of
#: nft(8) and libnftables. nft would need the name quoted; a chain prefix simply avoids them.
NFT_KEYWORDS = frozenset("""
accept add ah all and arp bridge cgroup chain comment comp constant continue counter cpu create ct day dccp
define delete describe device devices dnat drop dst dup dynamic ecn element elements esp ether exists expires
exthdr fib flags flow flowtable flush frag fwd get goto handle hbh hook hour ibriport ibrname icmp icmpv6 igmp
iif iifgroup iifname iiftype include index inet insert interval ip ip6 ipsec jhash jump limit list log lt map
mark masquerade meta meter mh missing monitor ne netdev nftrace not notrack numgen obriport obrname offload
oif oifgroup oifname oiftype or osf pkttype policy position priority queue quota random redefine redirect
reject rename replace reset return rt rtclassid rule ruleset sctp secmark set size skgid skuid snat socket srh
symhash synproxy table tcp th time timeout tproxy type typeof udp udplite undefine update vlan vmap xt
""".split())

#: (table, built-in chain) -> (type, hook, priority) of its base chain, as ``nft list`` prints it.
#: Docker 29's docker-bridges: filter-FORWARD forward/filter, nat-PREROUTING prerouting/dstnat,
#: nat-OUTPUT output/dstnat (-100), nat-POSTROUTING postrouting/srcnat, raw-PREROUTING prerouting/raw.
BASE = {
    ("raw", "PREROUTING"): ("filter", "prerouting", "raw"),
    ("raw", "OUTPUT"): ("filter", "output", "raw"),
    ("mangle", "PREROUTING"): ("filter", "prerouting", "mangle"),
    ("mangle", "INPUT"): ("filter", "input", "mangle"),
    ("mangle", "FORWARD"): ("filter", "forward", "mangle"),
    ("mangle", "OUTPUT"): ("route", "output", "mangle"),
    ("mangle", "POSTROUTING"): ("filter", "postrouting", "mangle"),
    ("nat", "PREROUTING"): ("nat", "prerouting", "dstnat"),
    ("nat", "INPUT"): ("nat", "input", "100"),
    ("nat", "OUTPUT"): ("nat", "output", "-100"),
    ("nat", "POSTROUTING"): ("nat", "postrouting", "srcnat"),
    ("filter", "INPUT"): ("filter", "input", "filter"),
    ("filter", "FORWARD"): ("filter", "forward", "filter"),
    ("filter", "OUTPUT"): ("filter", "output", "filter"),
}
TABLES = ("raw", "mangle", "nat", "filter")  # prefixes of our chain names


class NftablesError(ApplyError):
    """nft is missing or failed (while reading or writing); the engine reports it."""


_TOKEN = r'[^\s":{}]+'  # one field: no blank, quote, colon (address:port) or brace
_ADDRESS6 = r"[0-9a-f:.]+(?:/\d+)?"  # IPv6 addresses have colons: their fields say so
_PATTERNS = {
    "ipv4": {"portmap": r"[^{}]+", "elements": r"[^{}]+", "pairs": r"[^{}]+"},
    "ipv6": {"portmap": r"[^{}]+", "elements": r"[^{}]+", "pairs": r"[^{}]+", **{name: _ADDRESS6 for name in ("subnet", "source", "host_ip", "container_ip")}},
}


def _bare(host: str) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """nft lists a host-sized source network (/32, /128) as the bare address."""
    return (lambda s: s[:-len(host)] if s.endswith(host) else s, lambda s: s if "/" in s else s + host)


# Fields whose model value is not nft's text: (to nft, from nft).
_CONVERT: dict[str, dict[str, tuple[Callable[[str], str], Callable[[str], str]]]] = {
    "ipv4": {"verdict": (str.lower, str.upper), "source": _bare("/32")},
    "ipv6": {"verdict": (str.lower, str.upper), "source": _bare("/128")},
}


def Template(text: str, derive: Callable[[dict], dict] | None = None,  # the constructor of KINDS entries
             reduce: Callable[[dict], dict | None] | None = None, family: str = "ipv4", bracketed: bool = False) -> RuleTemplate:
    """``bracketed``: container_ip is an IPv6 DNAT target, ``[addr]:port`` (without them nft reads addr:port as one address)."""
    patterns, convert = _PATTERNS[family], _CONVERT[family]
    if bracketed:
        patterns, convert = {**patterns, "container_ip": BRACKETED_PATTERN}, {**convert, "container_ip": BRACKETED}
    return RuleTemplate(text, _TOKEN, patterns, convert, derive, reduce)


def ipv6_text(text: str, kind: str = "") -> str:
    """A rule of KINDS as an ``ip6`` table lists it: ``ip6 saddr``/``ip6 daddr``; an IPv6 DNAT skips
    link-local sources unless the port has ``sources`` of its own (Docker 29: ``! -s fe80::/10``)."""
    if kind == "dnat":
        text = text.replace("[ip saddr {source} ]", f"[ip saddr {{source}} |ip saddr != {LINK_LOCAL6} ]")
    return text.replace("ip saddr", "ip6 saddr").replace("ip daddr", "ip6 daddr").replace("dnat ip to", "dnat ip6 to")


def _portmap(fields: dict) -> dict:
    """A shifted port range (``/base`` in iptables): nft has no offset, a map of the ports does it in one rule."""
    if fields.get("base") is not None:
        first, last = (int(p) for p in (fields["dport"].split("-") + [fields["dport"]])[:2])
        to_first = int(fields["to_ports"].split("-")[0])
        fields["portmap"] = ", ".join(f"{p} : {p - first + to_first}" for p in range(first, last + 1))
    return fields


def _unportmap(fields: dict) -> dict | None:
    """None (no rule of ours, as parse_rule skips any other) when a pair of the map is not ``a : b``
    (state=parsed reads any text)."""
    if "portmap" in fields:
        pairs = [pair.split(" : ") for pair in fields.pop("portmap").split(", ")]
        if any(len(pair) != 2 or not all(part.strip() for part in pair) for pair in pairs):
            return None
        fields["base"] = pairs[0][0].strip()
        fields["to_ports"] = f"{pairs[0][1].strip()}-{pairs[-1][1].strip()}"
    return fields


_NAT = "[snat to {snat_source}|masquerade]"
# One rendering per kind of _iptables.KINDS, as `nft list` prints it; a {chain} is a model chain
# name (the adapter adds the table prefix). Parsing tries the kinds in this order.
KINDS = {
    # firewall: Docker's bridge driver
    "return": Template("return"),
    "jump": Template("jump {chain}"),
    # `! flag` tests that no bit is set; `!= a | b` would compare the whole value (and drop every reply)
    "localnet_guard": Template("ip saddr != 127.0.0.0/8 ip daddr 127.0.0.0/8 ct status ! dnat ct state ! established,related drop"),
    "established": Template('oifname "{bridge}" ct state established,related accept'),
    "isolated": Template('oifname "{bridge}" drop'),
    "to_chain": Template('oifname "{bridge}" jump {chain}'),
    "outbound": Template('iifname "{bridge}" oifname != "{bridge}" accept'),
    "isolate": Template('iifname "{bridge}" oifname != "{bridge}" jump {chain}'),
    "icc": Template('iifname "{bridge}" oifname "{bridge}" {verdict}'),
    "internal_in": Template('ip saddr != {subnet} oifname "{bridge}" drop'),
    "internal_out": Template('ip daddr != {subnet} iifname "{bridge}" drop'),
    "protect": Template('iifname != "{bridge}" oifname "{bridge}" drop'),
    "published_in": Template('oifname "{bridge}" ct status dnat jump {chain}'),
    "published_reply": Template("ct direction reply ct status dnat return"),
    "local_jump": Template("fib daddr type local jump {chain}"),
    "local_nat": Template('oifname "{bridge}" fib saddr type local ' + _NAT),
    "out_nat": Template('ip saddr {subnet} oifname != "{bridge}" ' + _NAT),
    # port_mapping: published ports (a range is one rule, a shifted range one rule with a port map)
    # sources (beyond Docker): one DNAT and one accept per allowed source network
    "dnat": Template("[ip saddr {source} ][ip daddr {host_ip} ]{proto} dport {dport} dnat to {container_ip}:"
                     "[{proto} dport map { {portmap} }|{to_ports}]", _portmap, _unportmap),
    "accept_port": Template('[ip saddr {source} ]ip daddr {container_ip} iifname != "{bridge}" oifname "{bridge}" {proto} dport {dport} accept'),
    "hairpin": Template("ip saddr {container_ip} ip daddr {container_ip} {proto} dport {dport} masquerade"),
    "loopback_drop": Template('ip daddr {host_ip} iifname != "lo" {proto} dport {dport} drop'),
    "direct_drop": Template('ip daddr {container_ip} iifname != "{bridge}" {proto} dport {dport} drop'),
}
IPV4_ONLY = frozenset({"localnet_guard", "loopback_drop"})  # no route_localnet for IPv6 (see _iptables.IPV4_ONLY)
#: The same kinds in our ``ip6`` table, derived from KINDS (each rule format is written once).
#: Docker's IPv6 internal-network drops spare traffic that stays on the bridge (see _iptables.INTERNAL6).
INTERNAL6 = {
    "internal_in": 'ip6 saddr != {subnet} iifname != "{bridge}" oifname "{bridge}" drop',
    "internal_out": 'ip6 daddr != {subnet} iifname "{bridge}" oifname != "{bridge}" drop',
}
KINDS6 = {kind: Template(INTERNAL6.get(kind) or ipv6_text(t.text, kind), t.derive, t.reduce, "ipv6", kind == "dnat")
          for kind, t in KINDS.items() if kind not in IPV4_ONLY}
KINDS_BY_FAMILY = {"ipv4": KINDS, "ipv6": KINDS6}


class SetForm:
    """Many rules of one kind as one rule with anonymous sets or maps: ``text`` is the rule, with a
    placeholder (``{elements}``, ``{pairs}``) where each set's elements go, each element written as
    ``elements[placeholder]``; the rules must agree on every other field. Written as ``nft list``
    prints it; nft lists the elements in an order of its own, so they are compared sorted."""

    def __init__(self, kind: str, text: str, elements: dict[str, str], family: str, when: Callable[[dict], bool]) -> None:
        self.kind, self.when = kind, when
        self.rule = Template(text, family=family)
        self.elements = {name: Template(element, family=family) for name, element in elements.items()}
        self.first = next(iter(self.elements.values()))  # the set whose elements are the rules
        self.group = tuple(name for name in dict.fromkeys(self.rule.names) if name not in self.elements)
        self.fields = frozenset(self.group).union(*(t.names for t in self.elements.values()))

    def fits(self, rule: Rule) -> bool:
        fields = dict(rule.fields)
        return rule.kind == self.kind and set(fields) <= self.fields and self.when(fields)

    def key(self, rule: Rule) -> tuple:
        return (id(self),) + tuple(rule.get(name) for name in self.group)

    def render(self, rules: list[Rule], table: str = "filter") -> str:
        fields = {n: rules[0].get(n) for n in self.group}
        if fields.get("chain") is not None:
            fields["chain"] = chain_name(table, fields["chain"])
        for name, element in self.elements.items():
            fields[name] = ", ".join(sorted({element.render(dict(r.fields)) for r in rules}))
        return self.rule.render(fields)

    def expand(self, spec: str) -> tuple[str, list[Rule]] | None:
        """(table, the rules) a set rule of this form stands for; None if ``spec`` is none."""
        fields = self.rule.parse(spec)
        if fields is None:
            return None
        table = "filter"
        if "chain" in fields:
            parts = split_name(fields["chain"])
            if parts is None:
                return None
            table, fields["chain"] = parts
        texts = [fields.pop(name) for name in self.elements][0]
        rules = []
        for text in texts.split(", "):
            element = self.first.parse(text.strip())
            if element is None:
                return None
            rules.append(Rule.of(self.kind, **fields, **element))
        # every set must be the one these rules give (stage-1's pairs, say), in any order
        listed = self.rule.parse(spec) or {}
        canonical = self.rule.render({**listed, **{n: ", ".join(sorted(listed[n].split(", "))) for n in self.elements}})
        return (table, rules) if self.render(rules, table) == canonical else None


def _single(fields: dict) -> bool:  # a DNAT of one port to one port (a range stays one rule of its own)
    return "base" not in fields and "-" not in fields.get("dport", "") and "-" not in fields.get("to_ports", "")


# Published ports (beyond Docker 29, which writes a rule per port): the rules of one kind that
# differ only in the container address and ports are one set (or map) lookup, so the rule count
# does not grow with endpoints or ports. Per-port `sources` stay in the rule (one set rule per source).
_E = "elements"
_SETS = {
    "direct_drop": [('ip daddr . {proto} dport { {elements} } iifname != "{bridge}" drop', {_E: "{container_ip} . {dport}"}, None)],
    "accept_port": [('[ip saddr {source} ]ip daddr . {proto} dport { {elements} } iifname != "{bridge}" oifname "{bridge}" accept',
                     {_E: "{container_ip} . {dport}"}, None)],
    "hairpin": [("ip saddr . ip daddr . {proto} dport { {elements} } masquerade", {_E: "{container_ip} . {container_ip} . {dport}"}, None)],
    "dnat": [("[ip saddr {source} ]dnat ip to ip daddr . {proto} dport map { {elements} }",
              {_E: "{host_ip} . {dport} : {container_ip} . {to_ports}"}, lambda f: _single(f) and "host_ip" in f),
             ("[ip saddr {source} ]dnat ip to {proto} dport map { {elements} }",
              {_E: "{dport} : {container_ip} . {to_ports}"}, lambda f: _single(f) and "host_ip" not in f)],
    # Isolation: one rule per stage-1 and two per stage-2, whatever the number of networks. "From a
    # bridge to any other interface" is "iifname in the set, and (iifname, oifname) no (br, br) pair".
    "isolate": [('iifname { {elements} } iifname . oifname != { {pairs} } jump {chain}',
                 {_E: '"{bridge}"', "pairs": '"{bridge}" . "{bridge}"'}, None)],
    "published_in": [('oifname { {elements} } ct status dnat jump {chain}', {_E: '"{bridge}"'}, None)],
    "isolated": [('oifname { {elements} } drop', {_E: '"{bridge}"'}, None)],
}
SETS_BY_FAMILY = {family: {kind: [SetForm(kind, ipv6_text(text, kind) if family == "ipv6" else text, elements, family,
                                          when or (lambda f: True)) for text, elements, when in forms]
                           for kind, forms in _SETS.items()}
                  for family in ("ipv4", "ipv6")}
#: kinds whose rules in one chain may be reordered: port_mapping's, which check_conflicts keeps disjoint (or equal in target)
ORDER_FREE = frozenset({"loopback_drop", "direct_drop", "accept_port", "hairpin", "dnat"})
#: kinds that match one output bridge (``oifname "br"``): two of them for different bridges never match one packet
BY_OUTPUT = frozenset({"published_in", "isolated"})


def _by_kind(rules: list[Rule]) -> list[Rule]:
    """Runs of BY_OUTPUT rules sorted by kind (stage-2's per-network pairs become a run per kind),
    when each bridge's rules keep their order; the rules of different bridges commute."""
    out: list[Rule] = []
    run: list[Rule] = []
    for rule in rules + [Rule("")]:
        if rule.kind in BY_OUTPUT:
            run.append(rule)
            continue
        rank = {kind: i for i, kind in enumerate(dict.fromkeys(r.kind for r in run))}
        ordered = sorted(run, key=lambda r: rank[r.kind])
        same = all([r for r in ordered if r.get("bridge") == b] == [r for r in run if r.get("bridge") == b]
                   for b in {r.get("bridge") for r in run})
        out += (ordered if same else run) + ([rule] if rule.kind else [])
        run = []
    return out


def _form(rule: Rule, family: str) -> SetForm | None:
    return next((form for form in SETS_BY_FAMILY[family].get(rule.kind, ()) if form.fits(rule)), None)


def compact(rules: list[Rule], table: str = "filter", family: str = "ipv4") -> list[str]:
    """``rules`` as the specs we write: rules of one set form and group are one set rule (two or more).

    A list of port_mapping's kinds only is grouped wherever its rules are (their order does not
    matter); any other list only where they are neighbours."""
    order_free = all(rule.kind in ORDER_FREE for rule in rules)
    rules = _by_kind(rules)
    groups: list[tuple[tuple | None, list[Rule]]] = []
    where: dict[tuple, int] = {}
    for rule in rules:
        form = _form(rule, family)
        key = form.key(rule) if form is not None else None
        if key is not None and (key in where if order_free else groups and groups[-1][0] == key):
            groups[where[key] if order_free else -1][1].append(rule)
            continue
        if key is not None:
            where[key] = len(groups)
        groups.append((key, [rule]))
    out = []
    for _key, group in groups:
        form = _form(group[0], family) if len(group) > 1 else None
        out.append(form.render(group, table) if form is not None else render_rule(group[0], table, family))
    return out


def expand(spec: str) -> list[str]:
    """A listed rule as the rules of ours it stands for (a set rule of :data:`SETS_BY_FAMILY` is one per
    element, sorted as :func:`compact` writes them); any other rule as itself."""
    for family, sets in SETS_BY_FAMILY.items():
        for forms in sets.values():
            for form in forms:
                found = form.expand(spec)
                if found is not None:
                    table, rules = found
                    return [render_rule(r, table, family) for r in sorted(rules, key=lambda r: form.first.render(dict(r.fields)))]
    return [spec]


def chain_name(table: str, chain: str) -> str:
    """The nft name of a model chain: ``filter-FORWARD``, ``nat-LINUXNET``."""
    return f"{table}-{chain}"


def split_name(name: str) -> tuple[str, str] | None:
    table, _sep, chain = name.partition("-")
    return (table, chain) if table in TABLES and chain else None


def render_rule(rule: Rule, table: str = "filter", family: str = "ipv4") -> str:
    fields = dict(rule.fields)
    if "chain" in fields:
        fields["chain"] = chain_name(table, fields["chain"])
    return KINDS_BY_FAMILY[family][rule.kind].render(fields)


def parse_rule(spec: str, family: str = "ipv4") -> Rule | None:
    """A rule as ``nft list`` prints it (without ``# handle``); None if it is no kind of ours."""
    for kind, template in KINDS_BY_FAMILY[family].items():
        fields = template.parse(spec)
        if fields is not None:
            if "chain" in fields:
                parts = split_name(fields["chain"])
                if parts is None:
                    continue
                fields["chain"] = parts[1]
            return Rule.of(kind, **fields)
    return None


class NftTable(Table):
    """A live table with the handle of each rule (``handles[chain][i]`` is ``rules[chain][i]``'s).

    A set rule is listed as the rules it stands for (:func:`expand`), so the resources read the
    rules they wrote; ``origins[chain][i]`` numbers the listed rule that ``rules[chain][i]`` came from."""

    def __init__(self) -> None:
        super().__init__()
        self.handles: dict[str, list[int]] = {}
        self.origins: dict[str, list[int]] = {}


def listed(current: Table, chain: str, table: str = "filter", family: str = "ipv4") -> list[tuple[str, int]]:
    """The rules of ``chain`` as nft lists them, (spec, handle): the expanded rules of one set rule
    are that set rule again, in :func:`compact`'s words."""
    specs = current.chain_rules(chain)
    handles = getattr(current, "handles", {}).get(chain, [])
    origins = getattr(current, "origins", {}).get(chain, [])
    if len(handles) != len(specs):
        handles = [0] * len(specs)
    if len(origins) != len(specs):
        origins = list(range(len(specs)))
    out: list[tuple[str, int]] = []
    i = 0
    while i < len(specs):
        j = i
        while j + 1 < len(specs) and origins[j + 1] == origins[i]:
            j += 1
        if j == i:
            out.append((specs[i], handles[i]))
        else:
            rules = [parse_rule(spec, family) for spec in specs[i:j + 1]]
            form = _form(rules[0], family) if all(rules) else None
            # (a set rule of someone else's that reads as rules of ours and of others: never equal to one of ours)
            out.append((form.render(rules, table) if form is not None else " ".join(specs[i:j + 1]), handles[i]))
        i = j + 1
    return out


def empty_table(table: str = "filter") -> NftTable:
    return NftTable()


_HANDLE = re.compile(r"^(.*?)\s*# handle (\d+)$")
_POLICY = re.compile(r"\bpolicy (\w+);")


def table_text(text: str, nft_family: str, name: str) -> str | None:
    """The block ``table <nft_family> <name> { ... }`` of ``nft list ruleset`` (or ``nft list table``)
    text, for parse_list; None when the text has no such table."""
    out: list[str] = []
    depth = 0
    for raw in text.splitlines():
        line = _HANDLE.sub(r"\1", raw.strip()).strip()
        if not depth:
            if line.split() == ["table", nft_family, name, "{"]:
                depth = 1
                out.append(raw)
            continue
        out.append(raw)
        depth += line.count("{") - line.count("}")
    return "\n".join(out) + "\n" if out else None


def parse_list(text: str) -> tuple[dict[str, NftTable], list[str]]:
    """``nft -a list table`` -> our tables by name, and the names of chains that are none of ours."""
    tables: dict[str, NftTable] = {}
    other: list[str] = []
    chain: tuple[NftTable, str] | None = None
    skip = 0  # depth inside a set, map or other block that is no chain
    for raw in text.splitlines():
        line = _HANDLE.sub(r"\1", raw.strip()).strip()
        if skip:
            skip += line.count("{") - line.count("}")
            continue
        if not line or line.startswith("table "):
            continue
        if line.startswith("chain ") and line.endswith("{"):
            name = line.split()[1]
            parts = split_name(name)
            if parts is None:
                other.append(name)
                chain = None
                skip = 1
                continue
            table = tables.setdefault(parts[0], NftTable())
            table.chains[parts[1]] = "-"
            table.rules[parts[1]] = []
            table.handles[parts[1]] = []
            table.origins[parts[1]] = []
            chain = (table, parts[1])
        elif line == "}":
            chain = None
        elif chain is None:
            skip = line.count("{") - line.count("}")  # a set, map, flowtable ...
        elif line.startswith("type ") and " hook " in line:
            m = _POLICY.search(line)
            chain[0].chains[chain[1]] = (m.group(1) if m else "accept").upper()
        else:
            m = _HANDLE.match(raw.strip())
            origin = len(chain[0].rules[chain[1]]) and chain[0].origins[chain[1]][-1] + 1
            for spec in expand(line):
                chain[0].rules[chain[1]].append(spec)
                chain[0].handles[chain[1]].append(int(m.group(2)) if m else 0)
                chain[0].origins[chain[1]].append(origin)
    return tables, other


def ownership(model: Model, table: str) -> Callable[[str, str], bool]:
    """Predicate: is this rule of a base chain ours? Jumps into our chains, and claimed rules."""
    claimed = {chain: {render_rule(r, table, model.family) for r in rules} for chain, rules in model.claimed.items()}
    targets = {f"jump {chain_name(table, c)}" for c in model.chains} | {f"goto {chain_name(table, c)}" for c in model.chains}

    def is_ours(chain: str, spec: str) -> bool:
        if any(spec == t or spec.endswith(" " + t) for t in targets):
            return True
        return spec in claimed.get(chain, set())

    return is_ours


def _base_decl(ref: str, table: str, chain: str, policy: str) -> str:
    kind, hook, priority = BASE[(table, chain)]
    return f"add chain {ref} {chain_name(table, chain)} {{ type {kind} hook {hook} priority {priority}; policy {policy.lower()}; }}"


def plan_tables(name: str, model: Model, live: dict[str, Table], other_chains: tuple[str, ...] = ()) -> list[str]:
    """nft commands (one script) that turn our live table (of ``model.family``) into ``model``'s; [] if nothing differs."""
    ref = f"{NFT_FAMILIES[model.family]} {name}"

    def render_rule(rule: Rule, table: str) -> str:
        return _render(rule, table, model.family)

    def render_rules(rules: list[Rule], table: str) -> list[str]:
        return compact(rules, table, model.family)

    declare: list[str] = []  # every chain first: a rule may only jump to a chain that exists
    body: list[str] = []
    tail: list[str] = []
    drop_base: list[str] = []
    after: set[str] = set(other_chains)  # every chain of the table once the script has run
    exists = bool(other_chains) or any(t.chains for t in live.values())
    for table, current in live.items():
        if table not in model.tables:
            after |= {chain_name(table, c) for c in current.chains}
    for table, want in model.tables.items():
        current = live.get(table) or empty_table(table)
        ours = ownership(model, table)
        after |= {chain_name(table, c) for c in current.chains}
        declared: set[str] = set()
        for chain, policy in want.policies.items():
            if current.chains.get(chain) != policy:
                declare.append(_base_decl(ref, table, chain, policy))
                declared.add(chain)
        for chain, initial in want.kept.items():
            if chain not in current.chains:
                declare.append(f"add chain {ref} {chain_name(table, chain)}")
            present = current.chain_rules(chain)
            body += [f"add rule {ref} {chain_name(table, chain)} {spec}"
                     for spec in (render_rule(r, table) for r in initial) if spec not in present]
        for chain, owned in want.owned.items():
            rules = render_rules(owned, table)
            if chain in current.chains and [spec for spec, _h in listed(current, chain, table, model.family)] == rules:
                continue
            (body if chain in current.chains else declare).append(
                f"{'flush' if chain in current.chains else 'add'} chain {ref} {chain_name(table, chain)}")
            body += [f"add rule {ref} {chain_name(table, chain)} {spec}" for spec in rules]
        for (t, chain) in BASE:
            if t != table or (chain not in current.chains and chain not in want.builtin and chain not in declared):
                continue
            mine = want.builtin.get(chain, BuiltinRules())
            top, bottom = render_rules(mine.top, table), render_rules(mine.bottom, table)
            rows = listed(current, chain, table, model.family)
            # a set rule is ours when every rule it stands for is
            present = [(spec, h) for spec, h in rows if all(ours(chain, one) for one in expand(spec))]
            full = chain_name(table, chain)
            if len(rows) - len(present) + len(top) + len(bottom) == 0:
                if chain in current.chains or chain in declared:
                    drop_base.append(f"delete chain {ref} {full}")  # its rules go with it
                after.discard(full)
                continue
            after.add(full)
            if [spec for spec, _h in present] == top + bottom:
                continue
            if chain not in current.chains and chain not in declared:
                declare.append(_base_decl(ref, table, chain, want.policies.get(chain, "ACCEPT")))
            body += [f"delete rule {ref} {full} handle {h}" for _spec, h in present]
            body += [f"insert rule {ref} {full} {spec}" for spec in reversed(top)]
            body += [f"add rule {ref} {full} {spec}" for spec in bottom]
        for chain in want.remove:
            if chain in current.chains:
                # Rules elsewhere that jump here were claimed by `ours` and deleted above.
                tail += [f"flush chain {ref} {chain_name(table, chain)}", f"delete chain {ref} {chain_name(table, chain)}"]
                after.discard(chain_name(table, chain))
        after |= {chain_name(table, c) for c in want.owned} | {chain_name(table, c) for c in want.kept}
    if not after:
        return [f"delete table {ref}"] if exists else []
    lines = declare + body + drop_base + tail  # base chains (and the jumps in them) go before the chains they jump to
    if lines and not exists:
        lines.insert(0, f"add table {ref}")
    return lines


_render = render_rule
_VERBS = frozenset({("add", "table"), ("delete", "table"), ("add", "chain"), ("flush", "chain"), ("delete", "chain"),
                    ("add", "rule"), ("insert", "rule"), ("delete", "rule")})


def script_line(line: str, ref: str) -> tuple[str, str, tuple[str, str] | None, str] | None:
    """A line :func:`plan_tables` writes for the table ``ref`` (``ip linuxnet``): (verb, object, (table,
    chain) or None for the table itself, the rest); None for any other line."""
    verb, _sep, rest = line.partition(" ")
    what, _sep, rest = rest.partition(" ")
    if (verb, what) not in _VERBS or not (rest == ref or rest.startswith(ref + " ")):
        return None
    if what == "table":
        return (verb, what, None, "") if rest == ref else None
    name, _sep, tail = rest[len(ref) + 1:].partition(" ")
    parts = split_name(name)
    if parts is None or (what == "rule" and not tail) or (verb == "delete" and what == "rule" and not tail.startswith("handle ")):
        return None
    return verb, what, parts, tail


_FORESEEN = itertools.count(1 << 30)


def foresee_line(live: dict[str, Table], line: str, ref: str) -> None:
    """What one line of our ``nft -f`` script does to ``live`` (our tables as :func:`parse_list` reads
    them); rules it adds have handle 0 (nft gives them one): a script deletes only rules it read."""
    verb, what, parts, tail = script_line(line, ref) or ("", "", None, "")
    if what == "table":
        if verb == "delete":
            for name in list(live):
                live[name] = empty_table(name)
        return
    if parts is None:
        return
    current = live.get(parts[0])
    if not isinstance(current, NftTable):  # (a table of no chain read as a plain empty one)
        current = live[parts[0]] = _as_nft(current)
    chain = parts[1]
    if what == "chain":
        if verb == "delete":
            for listing in (current.chains, current.rules, current.handles, current.origins):
                listing.pop(chain, None)
            return
        if verb == "add":
            m = _POLICY.search(tail)
            if m is not None or chain not in current.chains:
                current.chains[chain] = m.group(1).upper() if m else "-"
        if verb == "flush" or chain not in current.rules:
            current.rules[chain], current.handles[chain], current.origins[chain] = [], [], []
        return
    rules, handles, origins = (table.setdefault(chain, []) for table in (current.rules, current.handles, current.origins))
    if len(handles) != len(rules) or len(origins) != len(rules):  # (a table built by hand)
        handles[:], origins[:] = [0] * len(rules), list(range(len(rules)))
    if verb == "delete":
        handle = int(tail.split()[1])
        keep = [i for i, h in enumerate(handles) if h != handle]
        for listing in (rules, handles, origins):
            listing[:] = [listing[i] for i in keep]
        return
    specs = expand(tail)
    origin = next(_FORESEEN)  # one number for the rules of one set rule (listed() groups them), no listed one's
    at = 0 if verb == "insert" else len(rules)
    rules[at:at] = specs
    handles[at:at] = [0] * len(specs)
    origins[at:at] = [origin] * len(specs)


def _as_nft(table: Table | None) -> NftTable:
    out = NftTable()
    if table is not None:
        out.chains, out.rules = dict(table.chains), {c: list(r) for c, r in table.rules.items()}
        out.handles = {c: [0] * len(r) for c, r in out.rules.items()}
        out.origins = {c: list(range(len(r))) for c, r in out.rules.items()}
    return out


def table_name(value: object) -> str:
    """Our table's name (the chain prefix in lower case), checked as an nft identifier."""
    text = str(value).lower() if isinstance(value, str) else ""
    if not _TABLE_NAME.fullmatch(text):
        raise v.ValidationError(f"nft table name: {value!r} must be 1-32 characters of a-z, 0-9, '_' and '-', starting with a letter or '_'")
    problem = reserved_table(text)
    if problem:
        raise v.ValidationError(f"chain_prefix: {value!r} {problem}")
    return text


def reserved_table(name: str) -> str | None:
    """Why ``name`` (a chain prefix in lower case) cannot be our nft table's name; None if it can."""
    if name in FOREIGN_TABLES:
        return f"would name the nft table ip {name}, which is another tool's (iptables-nft, firewalld, kube-proxy): use e.g. LINUXNET"
    if name in NFT_KEYWORDS:
        return f"would name the nft table ip {name}, but nft reads {name!r} as a keyword there: use e.g. LINUXNET"
    return None


class Nftables(FirewallLock):
    """The adapter for our own ``ip`` table. Creating one runs nothing; ``nft`` is looked up at the first read.

    It takes the iptables adapter's lock file, so that runs of either backend (and a backend
    switch, which touches both) are serialised.
    """

    action = ACTION
    backend = "nftables"
    #: one listing reads every table (see SavedOnce): a reader asks for all of them at once
    read_together = TABLES

    def __init__(self, module, table: str = "linuxnet", family: str = "ipv4") -> None:
        self.module = module
        self.family = family
        self.nft_family = NFT_FAMILIES[family]  # our table is `ip <name>` or `ip6 <name>`
        self._table = table
        self.render = functools.partial(render_rule, family=family)
        self.parse = functools.partial(parse_rule, family=family)
        self.parse.templates = KINDS_BY_FAMILY[family]  # type: ignore[attr-defined]  # (_fwmodel.parsable_as)
        self.unavailable: dict[str, str] = {}  # nft has every table; for the iptables adapter's interface
        self.other_chains: tuple[str, ...] = ()
        self._bin: str | None = None

    @property
    def table(self) -> str:
        # checked at first use, not in __init__: the resource validates chain_prefix first (normalize)
        return table_name(self._table)

    # -- pure ---------------------------------------------------------------------------------
    empty = staticmethod(empty_table)

    def script(self, model: Model, live: dict[str, Table]) -> list[str]:
        return plan_tables(self.table, model, live, self.other_chains)

    def plan(self, model: Model, live: dict[str, Table]) -> list[Operation]:
        """One Operation per nft command; all of them are applied in one ``nft -f`` transaction."""
        return [Operation(f"nft '{line}'", ACTION, {"line": line}) for line in self.script(model, live)]

    def render_model(self, model: Model) -> list[str]:
        """The ``nft -f`` script that builds ``model`` on a host without our table."""
        return plan_tables(self.table, model, {})

    def foresees(self, op: Operation) -> bool:
        """Is ``op`` a line of this adapter's table (``ip`` or ``ip6``) that :meth:`foresee` can tell?"""
        return op.action == ACTION and script_line(op.args["line"], f"{self.nft_family} {self.table}") is not None

    def foresee(self, live: dict[str, Table], operations: list[Operation]) -> None:
        """``live`` (our table as this adapter read it) as the ``nft -f`` of ``operations`` would leave it:
        a later step plans on it, and its lines join the same transaction."""
        operations = [op for op in operations if op.action == ACTION]
        ref = f"{self.nft_family} {self.table}" if operations else ""
        for op in operations:
            if script_line(op.args["line"], ref) is not None:
                foresee_line(live, op.args["line"], ref)
                if op.args["line"] == f"delete table {ref}":
                    self.other_chains = ()  # (they go with the table)

    # -- kernel -------------------------------------------------------------------------------
    def binary(self) -> str:
        if self._bin is None:
            path = self.module.get_bin_path("nft")
            if not path:
                raise NftablesError("nft not found on the managed host: install the nftables package")
            self._bin = path
        return self._bin

    def list_text(self) -> str:
        """``nft -a list table ip <name>`` (``ip6`` for IPv6); "" when the table does not exist."""
        argv = [self.binary(), "-a", "list", "table", self.nft_family, self.table]
        rc, out, err = self.module.run_command(argv)
        if rc != 0:
            if "No such file or directory" in err:
                return ""
            raise NftablesError(f"{' '.join(argv)} failed: {err.strip()}")
        return out

    def save(self, tables: tuple[str, ...] = ("filter", "nat")) -> dict[str, Table]:
        parsed, other = parse_list(self.list_text())
        self.other_chains = tuple(other)
        live: dict[str, Table] = {table: empty_table(table) for table in tables}
        live.update(parsed)
        return live

    def apply(self, operations: list[Operation]) -> None:
        """One ``nft -f`` transaction: everything or, if nft refuses any line, nothing."""
        lines = [op.args["line"] for op in operations if op.action == ACTION]
        if not lines:
            return
        if os.environ.get(FAIL_HOOK_ENV) == "nft":
            lines.append(f"add rule {self.nft_family} {self.table} linuxnet-no-such-chain accept")
        argv = [self.binary(), "-f", "/dev/stdin"]
        rc, out, err = self.module.run_command(argv, data="".join(line + "\n" for line in lines), binary_data=True)
        if rc != 0:
            raise NftablesError(f"nft -f failed, nothing was changed: {(err or out).strip()}", unchanged=True)


__all__ = ["KINDS", "Nftables", "NftablesError", "parse_list", "parse_rule", "plan_tables", "render_rule", "table_text"]
