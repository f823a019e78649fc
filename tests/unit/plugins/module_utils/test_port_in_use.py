"""port_mapping: host addresses that are never the host's, and host ports a host service already serves.

* ``host_ip`` multicast (224.0.0.0/4, ff00::/8), 255.255.255.255 and 0.0.0.0/8 is refused by
  ``normalize()`` naming the field (``host_ip`` or ``publish``), before anything changes.
* ``check_references`` warns (no error: a keepalived/VRRP address may come later) about a host_ip that
  is not one of the host's addresses, reading them once with the resource's netlink adapter.
* ``/proc/net/{tcp,tcp6,udp,udp6}`` parsing (TCP LISTEN, unconnected UDP; host-order words;
  IPv4-mapped addresses) and the matching of a mapping against the sockets (wildcard, same address,
  ranges, family, loopback) are pure; ``plan()`` warns about a mapping it adds whose port is served,
  reads the tables once per run and only when it adds mappings: a re-run reads nothing.

Run: ``.venv/bin/python -m pytest tests/unit -q`` (no root needed).
"""

from __future__ import annotations

import ipaddress
import struct
import sys
from pathlib import Path

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _port_mapping as pm
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError

from .test_port_mapping import BR, converge, host_with_firewall, normalize, resource

HEADER = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")


def hexed(address: str) -> str:
    """An address as the kernel prints it in /proc/net/*: each 32-bit word in host order."""
    packed = ipaddress.ip_address(address).packed
    return "".join("%08X" % struct.unpack("=I", packed[i:i + 4])[0] for i in range(0, len(packed), 4))


def line(address: str, port: int, state: str, remote: str = "0.0.0.0", rport: int = 0) -> str:
    if ":" in address and ":" not in remote:
        remote = "::"
    return (f"   0: {hexed(address)}:{port:04X} {hexed(remote)}:{rport:04X} {state} 00000000:00000000 00:00000000 "
            "00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n")


def table(*lines: str) -> str:
    return HEADER + "".join(lines)


def proc(tmp_path: Path, **tables: str) -> Path:
    for name in ("tcp", "tcp6", "udp", "udp6"):
        (tmp_path / name).write_text(tables.get(name, HEADER))
    return tmp_path


# ============================================================================== host addresses

@pytest.mark.parametrize("host_ip", ["224.0.0.1", "239.255.255.250", "255.255.255.255", "0.1.2.3"])
def test_host_ip_never_local_is_refused_naming_the_field(host_ip):
    with pytest.raises(ValidationError, match=r"config\[0\] \(bridge=docker0\)\.host_ip: .* never an address of the host"):
        normalize([{**BR, "host_ip": host_ip, "host_port": 80, "container_port": 80}])
    with pytest.raises(ValidationError, match=r"config\[0\] \(bridge=docker0\)\.publish: .*multicast, broadcast"):
        normalize([{**BR, "publish": f"{host_ip}:80:80"}])


@pytest.mark.parametrize("host_ip", ["ff02::1", "ff05::1:3", "ff0e::1"])
def test_ipv6_multicast_host_ip_is_refused(host_ip):
    with pytest.raises(ValidationError, match=r"config\[0\] \(bridge=br6\)\.host_ip: .*multicast"):
        normalize([{"bridge": "br6", "container_ip": "fd00::2", "host_ip": host_ip, "container_port": 80}])


@pytest.mark.parametrize("host_ip", ["1.2.3.4", "127.0.0.1", "192.0.2.10", "0.0.0.0"])
def test_other_ipv4_host_addresses_are_still_accepted(host_ip):
    assert normalize([{**BR, "host_ip": host_ip, "container_port": 80}])[0]["host_ip"] == (None if host_ip == "0.0.0.0" else host_ip)


class Addresses:
    """The resource's netlink adapter, as far as check_references reads it (counting the reads)."""

    def __init__(self, addresses: dict[int, list[str]]) -> None:
        self._addresses, self.reads = addresses, 0

    def addresses(self, netns: str | None) -> dict[int, list[str]]:
        assert netns is None
        self.reads += 1
        return self._addresses

    def links(self, netns: str | None) -> dict:
        raise AssertionError("the bridges are known: no link dump")


def checked(config: list[dict], addresses: dict[int, list[str]]) -> tuple[list[str], int]:
    res = resource()
    res.netlink = Addresses(addresses)
    res.bridges = {"docker0": ["172.17.0.1/16"], "br6": ["fd00::1/64"]}
    res.check_references(res.normalize(config, "merged"), "merged")
    return res.warnings, res.netlink.reads


def test_a_host_ip_not_on_the_host_is_a_warning_read_once():
    host = {1: ["127.0.0.1/8", "::1/128"], 2: ["192.0.2.10/24", "2001:db8::10/64"], 3: ["172.17.0.1/16"]}
    config = [{**BR, "host_ip": "1.2.3.4", "container_port": 80}, {**BR, "host_ip": "1.2.3.4", "container_port": 81},
              {**BR, "host_ip": "192.0.2.10", "container_port": 82}, {**BR, "host_ip": "127.0.0.5", "container_port": 83},
              {**BR, "container_port": 84}, {"bridge": "br6", "container_ip": "fd00::2", "host_ip": "2001:db8::99", "container_port": 85},
              {"bridge": "br6", "container_ip": "fd00::2", "host_ip": "2001:db8::10", "container_port": 86}]
    warnings, reads = checked(config, host)
    assert reads == 1
    assert warnings == [
        "config[0] (bridge=docker0).host_ip: 1.2.3.4 is not an address of this host now: the published port takes no "
        "traffic until it is (fine for a virtual address that keepalived/VRRP adds later)",
        "config[5] (bridge=br6).host_ip: 2001:db8::99 is not an address of this host now: the published port takes no "
        "traffic until it is (fine for a virtual address that keepalived/VRRP adds later)",
    ]


def test_no_host_ip_reads_no_addresses():
    assert checked([{**BR, "container_port": 80}, {**BR, "host_ip": "127.0.0.1", "container_port": 81}], {}) == ([], 0)


# ============================================================================== /proc/net parsing

def test_a_real_little_endian_line():
    text = table("   0: 0100007F:2328 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 77 1 0 100 0 0 10 0\n")
    expected = "127.0.0.1" if sys.byteorder == "little" else "1.0.0.127"
    assert pm.parse_sockets(text, "tcp") == {9000: {expected}}


def test_tcp_listeners_only_and_ipv4_mapped_addresses():
    text = table(line("0.0.0.0", 9000, "0A"), line("10.0.0.1", 22, "0A"),
                 line("10.0.0.1", 22, "01", "10.0.0.9", 40000),  # an accepted connection: not a listener
                 line("10.0.0.1", 41000, "01", "10.0.0.9", 9000))  # an outgoing one
    assert pm.parse_sockets(text, "tcp") == {9000: {"0.0.0.0"}, 22: {"10.0.0.1"}}
    text6 = table(line("::", 9000, "0A"), line("::ffff:192.0.2.1", 8080, "0A"), line("2001:db8::1", 443, "0A"),
                  line("2001:db8::1", 443, "06", "2001:db8::9", 5000))
    assert pm.parse_sockets(text6, "tcp") == {9000: {"::"}, 8080: {"192.0.2.1"}, 443: {"2001:db8::1"}}


def test_udp_unconnected_sockets_only():
    text = table(line("0.0.0.0", 53, "07"), line("127.0.0.53", 53, "07"),
                 line("10.0.0.1", 45000, "01", "10.0.0.9", 53))  # a connected client socket
    assert pm.parse_sockets(text, "udp") == {53: {"0.0.0.0", "127.0.0.53"}}
    assert pm.parse_sockets(HEADER, "udp") == {} and pm.parse_sockets("", "tcp") == {}


def mapping(publish: str, container_ip: str = "10.0.0.2") -> dict:
    return normalize([{"bridge": "br0", "container_ip": container_ip, "publish": publish}])[0]


SOCKETS = {"tcp": {9000: {"0.0.0.0"}, 22: {"192.0.2.10"}, 8080: {"127.0.0.1"}, 5432: {"::"}, 443: {"2001:db8::10"},
                   3000: {"10.9.9.9", "192.0.2.10"}, 631: {"::1"}},
           "udp": {53: {"0.0.0.0"}}}


@pytest.mark.parametrize("publish, container_ip, hits", [
    ("9000:80", "10.0.0.2", [("0.0.0.0", 9000)]),  # the reviewer's case
    ("192.0.2.10:9000:80", "10.0.0.2", [("0.0.0.0", 9000)]),  # a wildcard listener serves every address
    ("22:22", "10.0.0.2", [("192.0.2.10", 22)]),  # all addresses: sshd on one of them
    ("192.0.2.10:22:22", "10.0.0.2", [("192.0.2.10", 22)]),
    ("192.0.2.11:22:22", "10.0.0.2", []),  # another address of the host
    ("8080:80", "10.0.0.2", [("127.0.0.1", 8080)]),  # the DNAT of all addresses takes 127.0.0.0/8 too (OUTPUT)
    ("192.0.2.10:8080:80", "10.0.0.2", []),
    ("127.0.0.1:8080:80", "10.0.0.2", [("127.0.0.1", 8080)]),
    ("5432:5432", "10.0.0.2", [("::", 5432)]),  # a dual-stack socket takes IPv4 too
    ("[::]:5432:5432", "fd00::2", [("::", 5432)]),
    ("[::]:9000:80", "fd00::2", []),  # an IPv4 listener is not in an IPv6 mapping's way
    ("443:443", "fd00::2", [("2001:db8::10", 443)]),
    ("443:443", "10.0.0.2", []),
    ("[::]:631:631", "fd00::2", []),  # IPv6 has no route_localnet: ::1 stays the listener's
    ("8990-9010:8990-9010", "10.0.0.2", [("0.0.0.0", 9000)]),  # any port of a range
    ("1-65535:1-65535", "10.0.0.2", [("192.0.2.10", 22), ("10.9.9.9", 3000), ("192.0.2.10", 3000), ("::", 5432),
                                     ("127.0.0.1", 8080), ("0.0.0.0", 9000)]),
    ("9000:80/udp", "10.0.0.2", []),  # per protocol
    ("53:53/udp", "10.0.0.2", [("0.0.0.0", 53)]),
    ("9000:80/sctp", "10.0.0.2", []),  # per protocol (SCTP endpoints: test_port_in_use_sctp.py)
])
def test_sockets_in_the_way(publish, container_ip, hits):
    assert pm.sockets_in_the_way(mapping(publish, container_ip), SOCKETS) == hits


def test_the_warning_names_field_port_socket_and_mapping():
    item = mapping("9000:80")
    assert pm.in_use_warning(3, item, [("0.0.0.0", 9000)]) == (
        "config[3] (bridge=br0).host_port: port 9000/tcp is in use on this host (a listening socket on 0.0.0.0): "
        "the published port 0.0.0.0:9000/tcp -> 10.0.0.2 takes its traffic (that service no longer answers from "
        "outside); publish another host port or move the service")
    udp = mapping("[::]:53-60:53-60/udp", "fd00::2")
    assert "port 53/udp is in use on this host (a bound socket on [::] and 1 more socket(s) on ports of 53-60)" in \
        pm.in_use_warning(0, udp, [("::", 53), ("2001:db8::1", 54)])


# ============================================================================== plan(): when it reads

def test_plan_warns_on_the_run_that_adds_the_mapping_and_reads_nothing_on_a_rerun(tmp_path, monkeypatch):
    monkeypatch.setattr(pm.PortMappingResource, "proc_net", str(proc(
        tmp_path, tcp=table(line("0.0.0.0", 9000, "0A"), line("192.0.2.10", 22, "0A")), udp6=table(line("::", 5353, "07")))))
    reads = []
    real_read = pm.PortMappingResource.read_sockets
    monkeypatch.setattr(pm.PortMappingResource, "read_sockets",
                        lambda self, protocols: reads.append(sorted(protocols)) or real_read(self, protocols))
    kernel = host_with_firewall()
    config = [{**BR, "publish": "9000:80"}, {**BR, "publish": "8000:80"}, {**BR, "publish": "5353:5353/udp"},
              {**BR, "publish": "9000:80/sctp"}]
    for check_mode in (True, False):  # check mode predicts the same warnings
        first = converge(kernel, {}, config, check_mode=check_mode)
        assert first.commands and reads == [["sctp", "tcp", "udp"]]
        assert [w.split(":")[0] for w in first.warnings] == ["config[0] (bridge=docker0).host_port", "config[2] (bridge=docker0).host_port"]
        assert "port 9000/tcp is in use on this host (a listening socket on 0.0.0.0)" in first.warnings[0]
        assert "port 5353/udp is in use on this host (a bound socket on [::])" in first.warnings[1]
        reads.clear()
    again = converge(kernel, first.known, config)
    assert again.commands == [] and again.warnings == [] and reads == []  # our own DNAT holds no socket
    # adding one mapping reads its protocol's tables only, and warns about it only
    more = converge(kernel, again.known, config + [{**BR, "publish": "22:22"}])
    assert reads == [["tcp"]] and len(more.warnings) == 1 and "port 22/tcp" in more.warnings[0]
    reads.clear()
    assert converge(kernel, more.known, config, state="deleted").warnings == [] and reads == []


def test_each_table_is_read_once_per_run_and_a_missing_one_is_empty(tmp_path, monkeypatch):
    (tmp_path / "tcp").write_text(table(line("0.0.0.0", 9000, "0A")))  # no tcp6, udp, udp6: IPv6 off
    res = resource()
    res.proc_net = str(tmp_path)
    assert res.read_sockets(["tcp", "udp"]) == {"tcp": {9000: {"0.0.0.0"}}, "udp": {}}
    (tmp_path / "tcp").write_text(HEADER)
    assert res.read_sockets(["tcp"])["tcp"] == {9000: {"0.0.0.0"}}  # (read before in this run)
    added = [(0, normalize([{**BR, "publish": "9000:80"}])[0])]
    res.warn_in_use(added)
    res.warn_in_use(added)  # a deployment may plan twice: one warning
    assert len(res.warnings) == 1
