"""port_mapping: a published SCTP port that a listening SCTP endpoint of the host serves is warned about.

The endpoints are read from ``/proc/net/sctp/eps``, which exists only while the sctp module is loaded
(no file: no SCTP socket can exist, nothing to check, no error). Its lines are the kernel's
``"%8pK %8pK %-3d %-3d %-4d %-5d %5u %5lu "`` (ENDPT SOCK STY SST HBKT LPORT UID INODE) followed by
every bound address, ``%pI4 `` or the full ``%pI6 `` form (net/sctp/proc.c, ipv6.c).

The lab kernel has no SCTP (CONFIG_IP_SCTP unset): the sample below is written in that format, and no
integration test opens a real SCTP endpoint.

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_port_in_use_sctp.py -q`` (no root).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _port_mapping as pm

from .test_port_in_use import mapping
from .test_port_mapping import BR, converge, host_with_firewall, resource

# M3UA on the wildcard (UDP-style), Diameter on the IPv6 wildcard (TCP-style, dual-stack), a
# multi-homed NGAP endpoint, an IPv6 endpoint with an IPv4-mapped address, and (never seen in eps:
# the kernel unhashes an endpoint that stops listening) one in state CLOSED (7).
EPS = (
    " ENDPT     SOCK   STY SST HBKT LPORT   UID INODE LADDRS\n"
    "ffff8d0b0a7e0000 ffff8d0b05a1c000 2   10  25   2905      0 58016 0.0.0.0 \n"
    "ffff8d0b0a7e1000 ffff8d0b05a1c800 1   10  28   3868      0 58017 0000:0000:0000:0000:0000:0000:0000:0000 \n"
    "ffff8d0b0a7e2000 ffff8d0b05a1d000 2   10  12   38412     0 58018 192.0.2.10 198.51.100.10 \n"
    "ffff8d0b0a7e3000 ffff8d0b05a1d800 1   10  60   36412   998 58019 2001:0db8:0000:0000:0000:0000:0000:0010 "
    "0000:0000:0000:0000:0000:ffff:c000:020b \n"
    "ffff8d0b0a7e4000 ffff8d0b05a1e000 1   7   8    5000      0 58020 0.0.0.0 \n"
)
# as read with kptr_restrict: pointers printed as zeros
EPS_RESTRICTED = (" ENDPT     SOCK   STY SST HBKT LPORT   UID INODE LADDRS\n"
                  "0000000000000000 0000000000000000 2   10  25   2905      0 58016 0.0.0.0 \n")


def test_listening_endpoints_and_all_their_addresses():
    assert pm.parse_sctp_endpoints(EPS) == {
        2905: {"0.0.0.0"},
        3868: {"::"},
        38412: {"192.0.2.10", "198.51.100.10"},
        36412: {"2001:db8::10", "192.0.2.11"},  # an IPv4-mapped address is its IPv4 address, as in tcp6
    }
    assert pm.parse_sctp_endpoints(EPS_RESTRICTED) == {2905: {"0.0.0.0"}}


def test_header_only_empty_and_odd_lines_give_nothing():
    header = EPS.splitlines(keepends=True)[0]
    assert pm.parse_sctp_endpoints(header) == {} and pm.parse_sctp_endpoints("") == {}
    odd = header + "ffff 1 2 10 3 notaport 0 1 0.0.0.0 \n" + "ffff 1 2 10 3 9 0 1 not-an-address \n" + "ffff 1 2 10\n"
    assert pm.parse_sctp_endpoints(odd) == {}


SOCKETS = {"sctp": pm.parse_sctp_endpoints(EPS), "tcp": {38412: {"0.0.0.0"}}}


@pytest.mark.parametrize("publish, container_ip, hits", [
    ("2905:2905/sctp", "10.0.0.2", [("0.0.0.0", 2905)]),
    ("3868:3868/sctp", "10.0.0.2", [("::", 3868)]),  # a dual-stack endpoint takes IPv4 too
    ("[::]:3868:3868/sctp", "fd00::2", [("::", 3868)]),
    ("38412:38412/sctp", "10.0.0.2", [("192.0.2.10", 38412), ("198.51.100.10", 38412)]),  # every address of it
    ("198.51.100.10:38412:38412/sctp", "10.0.0.2", [("198.51.100.10", 38412)]),
    ("192.0.2.99:38412:38412/sctp", "10.0.0.2", []),  # an address the endpoint is not bound to
    ("38412:38412", "10.0.0.2", [("0.0.0.0", 38412)]),  # tcp: the tcp table's socket, not the endpoint
    ("[::]:36412:36412/sctp", "fd00::2", [("2001:db8::10", 36412)]),
    ("192.0.2.11:36412:36412/sctp", "10.0.0.2", [("192.0.2.11", 36412)]),
    ("5000:5000/sctp", "10.0.0.2", []),  # not listening
])
def test_sctp_endpoints_in_the_way(publish, container_ip, hits):
    assert pm.sockets_in_the_way(mapping(publish, container_ip), SOCKETS) == hits


def _proc(tmp_path: Path, eps: str | None) -> Path:
    tmp_path.mkdir()
    for name in ("tcp", "tcp6", "udp", "udp6"):
        (tmp_path / name).write_text("  sl  local_address rem_address   st\n")
    if eps is not None:
        (tmp_path / "sctp").mkdir()
        (tmp_path / "sctp" / "eps").write_text(eps)
    return tmp_path


def test_the_table_is_read_once_and_without_the_module_it_is_empty(tmp_path):
    res = resource()
    res.proc_net = str(_proc(tmp_path / "without", None))  # no sctp module: no /proc/net/sctp
    assert res.read_sockets(["sctp", "tcp"]) == {"sctp": {}, "tcp": {}}
    res = resource()
    res.proc_net = str(_proc(tmp_path / "with", EPS))
    assert res.read_sockets(["sctp"])["sctp"][2905] == {"0.0.0.0"}
    (tmp_path / "with" / "sctp" / "eps").write_text(EPS.splitlines(keepends=True)[0])
    assert res.read_sockets(["sctp"])["sctp"][2905] == {"0.0.0.0"}  # (read before in this run)


def test_plan_warns_about_a_served_sctp_port_on_the_run_that_adds_it(tmp_path, monkeypatch):
    config = [{**BR, "publish": "2905:2905/sctp"}, {**BR, "publish": "2906:2906/sctp"}, {**BR, "publish": "2905:2905"}]
    monkeypatch.setattr(pm.PortMappingResource, "proc_net", str(_proc(tmp_path / "without", None)))
    assert converge(host_with_firewall(), {}, config).warnings == []
    monkeypatch.setattr(pm.PortMappingResource, "proc_net", str(_proc(tmp_path / "with", EPS)))
    kernel = host_with_firewall()
    for check_mode in (True, False):  # check mode predicts the same warning
        first = converge(kernel, {}, config, check_mode=check_mode)
        assert len(first.warnings) == 1, first.warnings
        assert first.warnings[0].startswith("config[0] (bridge=docker0).host_port: port 2905/sctp is in use on this host ")
        assert "on 0.0.0.0)" in first.warnings[0]
    again = converge(kernel, first.known, config)
    assert again.commands == [] and again.warnings == []  # a re-run adds nothing: no warning
