"""Property-based tests (Hypothesis) of the validators and renderers: whatever input is accepted,
what reaches a kernel tool, a file or a path is exactly what was intended.

* a name can never add a line or a word to restore text, an nft script or a command line: rendering a config
  with hostile-but-accepted names gives the same lines and words, one for one, as rendering it
  with plain placeholder names;
* a namespace name can never make a path leave ``/etc/netns/<name>/`` or ``/run/linuxnet/...``;
* every line of a hosts or resolv.conf file comes from one item (one entry, one keyword).

Bounded (150 examples each, derandomized, no deadline): a few seconds in all.

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_properties.py -q``
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex

import pytest

hypothesis = pytest.importorskip("hypothesis")  # requirements-dev.txt; bootstrap installs it
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ansible_collections.linuxnet.bridge.plugins.module_utils import _ownership  # noqa: E402
from ansible_collections.linuxnet.bridge.plugins.module_utils import _topology  # noqa: E402
from ansible_collections.linuxnet.bridge.plugins.module_utils import _validate as v  # noqa: E402
from ansible_collections.linuxnet.bridge.plugins.module_utils._bridge import BridgeResource  # noqa: E402
from ansible_collections.linuxnet.bridge.plugins.module_utils._firewall import FirewallResource  # noqa: E402
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import (  # noqa: E402
    ETC_NETNS,
    HOSTS_HEADER,
    NetnsResource,
    parse_hosts,
    render_hosts,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._veth import VethResource  # noqa: E402

from .fixtures.firewall import FakeModule, rendered  # noqa: E402

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True)

# Hostile text: separators, quotes, shell and restore metacharacters, control and non-ASCII characters.
HOSTILE = st.one_of(
    st.text(alphabet=st.sampled_from(list("aZ09_.-@+/%:;#*!$`'\"\\ \t\n\r\x00\x0b\x85\u2028é")), max_size=18),
    st.sampled_from(["..", ".", "lo", "all", "default", "evil\n", "a b", "x\n-A FORWARD -j ACCEPT"]),
)
# Mostly names that pass (their odd corners: '.', '@', '+', '-' first, 15 and 16 bytes), else hostile text.
VALIDISH = st.from_regex(r"[A-Za-z0-9_.@+-]{1,16}", fullmatch=True)
NAMEISH = st.one_of(VALIDISH, VALIDISH, VALIDISH, HOSTILE)
PREFIXISH = st.one_of(st.from_regex(r"[A-Z][A-Z0-9_-]{0,9}", fullmatch=True), st.sampled_from(["DOCKER", "FORWARD", "X Y"]))
IPV4 = st.ip_addresses(v=4).map(str)


def accepted(validator, value, *args):
    try:
        return validator(value, "field", *args)
    except v.ValidationError:
        return None


# ------------------------------------------------------------------------------ validators


@PROPERTY
@given(NAMEISH)
def test_an_accepted_interface_name_is_one_plain_word(value):
    name = accepted(v.interface_name, value)
    if name is not None:
        assert re.fullmatch(r"[A-Za-z0-9_.@+-]{1,15}", name) and name not in (".", "..", "all", "default")


@PROPERTY
@given(NAMEISH)
def test_an_accepted_namespace_name_stays_inside_its_directories(value):
    name = accepted(v.netns_name, value)
    if name is None:
        return
    assert re.fullmatch(r"[A-Za-z0-9_.@+-]{1,64}", name) and name not in (".", "..")
    for base in (ETC_NETNS, _ownership.NETNS_DIR, "/run/netns"):
        path = os.path.normpath(os.path.join(base, name, "hosts"))
        assert path == f"{base}/{name}/hosts", path
    note = os.path.normpath(_ownership._creating(name, "eth0"))
    assert os.path.dirname(note) == _ownership.CREATING_DIR


@PROPERTY
@given(HOSTILE)
def test_accepted_words_carry_no_separator(value):
    for validator in (v.hostname, v.label):
        word = accepted(validator, value)
        if word is not None:
            assert word and word.isprintable() and not any(ch.isspace() or ch in "'\"\\" for ch in word), (validator, word)


@PROPERTY
@given(st.one_of(HOSTILE, st.builds(lambda ip, p: f"{ip}/{p}", IPV4, st.integers(-1, 40))))
def test_an_accepted_address_is_canonical_and_usable(value):
    cidr = accepted(v.cidr, value)
    if cidr is None:
        return
    iface = ipaddress.ip_interface(cidr)
    assert str(iface) == cidr and iface.version == 4 and iface.network.prefixlen >= 8
    assert not (iface.ip.is_multicast or iface.ip.is_loopback or iface.ip in ipaddress.ip_network("0.0.0.0/8"))


@PROPERTY
@given(st.one_of(HOSTILE, st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))))
def test_an_accepted_mac_is_unicast_and_not_zero(value):
    mac = accepted(v.mac, value)
    if mac is not None:
        first = int(mac[:2], 16)
        assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac) and not first & 1 and mac != "00:00:00:00:00:00"


# ------------------------------------------------------------------------------ files: one line per item


@PROPERTY
@given(st.lists(st.fixed_dictionaries({"ip": st.one_of(IPV4, HOSTILE), "names": st.lists(NAMEISH, min_size=1, max_size=3)}),
                max_size=5))
def test_every_hosts_line_comes_from_one_entry(raw):
    res = NetnsResource(FakeModule(host_groups=[]))
    try:
        item = res.normalize([{"name": "ns1", "hosts": raw}], "merged")[0]
    except v.ValidationError:
        return
    text = render_hosts(item["hosts"])
    lines = text[len(HOSTS_HEADER):].splitlines()
    assert text.startswith(HOSTS_HEADER) and len(lines) == len(item["hosts"])
    for line, entry in zip(lines, item["hosts"]):
        assert line.split() == [entry["ip"], *entry["names"]]
    assert parse_hosts(text) == item["hosts"]


@PROPERTY
@given(st.fixed_dictionaries({}, optional={"nameservers": st.lists(st.one_of(IPV4, HOSTILE), max_size=3),
                                           "search": st.lists(NAMEISH, max_size=3),
                                           "options": st.lists(NAMEISH, max_size=3)}))
def test_every_resolv_conf_line_comes_from_one_item(dns):
    try:
        text = _topology._resolv_conf(dns, "linuxnet_endpoints[0]")
    except v.ValidationError:
        return
    expected = [["nameserver", ns] for ns in dns.get("nameservers") or []]
    expected += [["search", *dns["search"]]] if dns.get("search") else []
    expected += [["options", *dns["options"]]] if dns.get("options") else []
    assert [line.split() for line in text.splitlines()] == expected


# ------------------------------------------------------------------------------ restore text and commands


def shape(lines: list[str], split=str.split) -> list[int]:
    """Words per line, in a name-independent order."""
    return sorted(len(split(line)) for line in lines)


# Names the validators accept, in all their odd corners (hostile ones are refused: see above).
NAMES = st.lists(VALIDISH.filter(lambda n: accepted(v.interface_name, n)), min_size=2, max_size=2, unique=True)


@PROPERTY
@given(NAMES, PREFIXISH)
def test_names_add_no_line_or_word_to_restore_text(bridges, prefix):
    def config(names: list[str]) -> list[dict]:
        return [{"name": "n1", "bridge": names[0], "subnet": "172.17.0.0/16", "icc": False},
                {"name": "n2", "bridge": names[1], "subnet": "172.18.0.0/16", "internal": True}]

    try:
        lines = rendered(config(bridges), prefix)
    except v.ValidationError:
        return
    plain = rendered(config(["brplain0", "brplain1"]), "PLAIN")
    assert len(lines) == len(plain) and shape(lines) == shape(plain)
    grammar = re.compile(r"\*(filter|nat)|COMMIT|:[A-Za-z0-9_-]+ (-|ACCEPT|DROP) \[0:0\]|-[AIDFXN] [A-Za-z0-9_-]+( [^\s'\"]+)*")
    assert all(grammar.fullmatch(line) for line in lines), [line for line in lines if not grammar.fullmatch(line)]


@PROPERTY
@given(NAMES, PREFIXISH)
def test_names_add_no_line_or_word_to_nft_scripts(bridges, prefix):
    def script(names: list[str], chain_prefix: str) -> list[str]:
        config = [{"name": "n1", "bridge": names[0], "subnet": "172.17.0.0/16", "icc": False},
                  {"name": "n2", "bridge": names[1], "subnet": "172.18.0.0/16", "internal": True}]
        res = FirewallResource(FakeModule(chain_prefix=chain_prefix, firewall_backend="nftables"))
        return res.render(res.normalize(config, "rendered"))

    try:
        lines = script(bridges, prefix)
    except v.ValidationError:
        return
    plain = script(["brplain0", "brplain1"], "PLAIN")
    assert len(lines) == len(plain) and shape(lines) == shape(plain)
    # one statement per line, names only inside quotes or as the table/chain words nft reads as identifiers
    grammar = re.compile(r'(add|insert) (table|chain|rule) ip [a-z0-9_-]+( [A-Za-z0-9_-]+)?( [^\s#;{}]+| "[^"\s]+"| \{[^}]*\})*')
    assert all(grammar.fullmatch(line) for line in lines), [line for line in lines if not grammar.fullmatch(line)]


@PROPERTY
@given(st.lists(VALIDISH.filter(lambda n: accepted(v.interface_name, n)), min_size=4, max_size=4, unique=True))
def test_names_add_no_word_to_link_commands(names):
    def config(n: list[str]) -> tuple[list[dict], list[dict], list[dict]]:
        return ([{"name": n[0]}],
                [{"name": n[1], "addresses": ["10.0.0.1/24"], "mtu": 1400}],
                [{"name": n[2], "peer": n[3], "peer_netns": n[0], "master": n[1], "addresses": ["10.0.0.2/24"],
                  "gateway": "10.0.0.1", "mac": "docker", "hairpin": True}])

    def commands(n: list[str]) -> list[str]:
        ns, br, veth = config(n)
        out = []
        for cls, items in ((NetnsResource, ns), (BridgeResource, br), (VethResource, veth)):
            res = cls(FakeModule(host_groups=[]))
            out += res.render(res.normalize(items, "rendered"))
        return out

    try:
        got = commands(names)
    except v.ValidationError:
        return
    plain = commands(["nsplain", "brplain", "vplain", "pplain"])
    assert shape(got, shlex.split) == shape(plain, shlex.split) and all("\n" not in c for c in got)
