# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The batched reads of a veth gather against a real kernel, in a sandbox of their own.

``Netlink.endpoints`` enters each endpoint namespace once and asks its link, addresses and routes
in one datagram (``_rtnl.Reader.requests``); a link answer carries no counters (RTEXT_FILTER_SKIP_STATS).
Each must answer exactly what the one-request-at-a-time reads answered. The script runs under
``unshare --net --mount`` (a network and a private mount namespace, gone when it exits): its
named namespaces are bind mounts in a temporary directory of that mount namespace only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

COLLECTIONS = Path(__file__).resolve().parents[4] / ".collections"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip")
                                or not shutil.which("nsenter"), reason="a network and mount namespace of its own (root)")

SCRIPT = r"""
import json, os, socket, struct, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.linuxnet.bridge.plugins.module_utils import _netlink, _rtnl
run_dir = sys.argv[2]
_netlink.NETNS_RUN_DIR = run_dir
for name in ("a", "b"):
    _netlink.create_namespace(name).close()

def ip(netns, *args):
    subprocess.run(["nsenter", f"--net={run_dir}/{netns}", "ip", *args], check=True, capture_output=True)

# no duplicate address detection: a link-local address leaving its tentative state between two dumps
# compared byte for byte would change the second
subprocess.run(["nsenter", f"--net={run_dir}/a", "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"], check=True)
ip("a", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
ip("a", "link", "set", "eth0", "up")
ip("a", "link", "set", "eth1", "up")
ip("a", "address", "add", "10.0.0.2/24", "dev", "eth0")
ip("a", "route", "add", "default", "via", "10.0.0.1")
# more addresses than one datagram of a dump holds: the route dump asked behind it is refused (EBUSY)
batch = "".join(f"address add 10.1.{i // 200}.{i % 200 + 1}/32 dev eth0\n" for i in range(300))
subprocess.run(["nsenter", f"--net={run_dir}/a", "ip", "-batch", "-"], input=batch, text=True, check=True)
ip("a", "address", "add", "10.0.0.3/24", "dev", "eth1")
ip("a", "-6", "address", "add", "2001:db8::2/64", "dev", "eth1", "nodad")
ip("a", "-6", "route", "add", "default", "via", "2001:db8::1", "dev", "eth1")
subprocess.run(["nsenter", f"--net={run_dir}/a", "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1"], check=True)

def index(netns, name):
    reader = _netlink.open_in_namespace(netns, _rtnl.Reader)
    try:
        return next(link["index"] for link in reader.links() if link["name"] == name)
    finally:
        reader.close()

def one_at_a_time(netns, index):  # what Netlink.endpoint read before the batch
    try:
        reader = _netlink.open_in_namespace(netns, _rtnl.Reader)
    except _netlink.NamespaceMissing as exc:
        return ["missing", str(exc)]
    try:
        link = reader.link(index)
        if link is None:
            return [None, [], None, None]
        gateway6 = reader.default_gateway(socket.AF_INET6) if link["ipv6"] else None
        return [link, reader.addresses().get(index, []), reader.default_gateway(), gateway6]
    finally:
        reader.close()

wanted = [("a", index("a", "eth0")), ("b", 1), ("a", index("a", "eth1")), ("b", 99), ("gone", 2), ("a", 1)]
asked_alone = []
requests = _rtnl.Reader.requests
def counted(self, asked, flags=0):
    if len(asked) == 1:
        asked_alone.append([asked[0][0], asked[0][1][0]])  # (type, family)
    return requests(self, asked, flags)
mine = os.stat("/proc/thread-self/ns/net").st_ino
_rtnl.Reader.requests = counted
got = _netlink.Netlink().endpoints(wanted)
_rtnl.Reader.requests = requests
back = os.stat("/proc/thread-self/ns/net").st_ino == mine
answers = {f"{ns}/{i}": (["missing", str(found)] if isinstance(found, _netlink.NamespaceMissing) else list(found))
           for (ns, i), found in got.items()}
expected = {f"{ns}/{i}": one_at_a_time(ns, i) for ns, i in wanted}
# two dumps in one datagram: the second is refused while the first (301 addresses) runs, and asked again
reader = _netlink.open_in_namespace("a", _rtnl.Reader)
dumps = [(_rtnl.RTM_GETADDR, _rtnl._ALL_ADDRESSES, True), (_rtnl.RTM_GETROUTE, _rtnl._RTMSG.pack(0, 0, 0, 0, 0, 0, 0, 0, 0), True),
         (_rtnl.RTM_GETLINK, _rtnl._link_request(99), False)]
_rtnl.Reader.requests = counted
together = reader.requests(dumps)
_rtnl.Reader.requests = requests
alone = [reader.request(kind, body, dump) for kind, body, dump in dumps[:2]]
together = [answer if isinstance(answer, list) else ["error", answer.errno] for answer in together]
alone = [[list(answer) for answer in answers] for answers in alone] + [["error", 19]]  # ENODEV
together = [[list(answer) for answer in answers] if answers[0] != "error" else answers for answers in together]

def plain_request(reader, msg_type, body, dump, flags=0):  # Reader.request before it was requests of one
    reader.seq += 1
    flags |= _rtnl.NLM_F_REQUEST | (_rtnl.NLM_F_DUMP if dump else 0)
    reader.sock.send(_rtnl._HEADER.pack(_rtnl._HEADER.size + len(body), msg_type, flags, reader.seq, 0) + body)
    answers = []
    while True:
        for kind, seq, body in _rtnl._messages(reader.sock.recv(1 << 17)):
            if seq != reader.seq:
                continue
            if kind == _rtnl.NLMSG_DONE:
                return answers
            if kind == _rtnl.NLMSG_ERROR:
                error = _rtnl._errno(body)
                if error:
                    return ["error", error]
                return answers
            answers.append((kind, body))
        if answers and not dump:
            return answers

def quiet(netns):
    # No IPv6 on the veths (router solicitations and MLD reports move their counters and states) and
    # both carriers up (the kernel reports that a moment after `ip link set up`), bounded.
    for link in ("eth0", "eth1"):
        subprocess.run(["nsenter", f"--net={run_dir}/{netns}", "sysctl", "-qw", f"net.ipv6.conf.{link}.disable_ipv6=1"], check=True)
    for _ in range(500):
        up = subprocess.run(["nsenter", f"--net={run_dir}/{netns}", "ip", "-o", "link", "show", "up"], check=True,
                            capture_output=True, text=True).stdout
        if up.count("state UP") == 2:
            return
        time.sleep(0.01)

def new_request(reader, *args):
    try:
        return reader.request(*args)
    except OSError as exc:
        return ["error", exc.errno]

one_by_one = dumps + [(_rtnl.RTM_GETLINK, _rtnl._link_request(1), False), (_rtnl.RTM_GETLINK, _rtnl._link_request(0), True),
                      (_rtnl.RTM_NEWLINK, _rtnl._IFINFO.pack(0, 0, 1, 1, 1), False, _rtnl.NLM_F_ACK)]  # (lo up: set_up)
quiet("a")  # two answers to one dump compared byte for byte: nothing may move between them
request_same = [repr(new_request(reader, *args)) == repr(plain_request(reader, *args)) for args in one_by_one]
full = _rtnl.Reader()
plain = [_rtnl.parse_link(body) for kind, body in full.request(_rtnl.RTM_GETLINK, _rtnl._IFINFO.pack(0, 0, 0, 0, 0), dump=True) if kind == 16]
print(json.dumps({"answers": answers, "expected": expected, "back": back, "asked_alone": asked_alone,
                  "together_same": repr(together) == repr(alone), "request_same": request_same, "dumps": len(alone[0]),
                  "links": full.links(), "plain_links": plain}))
"""


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> dict:
    run_dir = tmp_path_factory.mktemp("run-netns")
    done = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", sys.executable, "-c", SCRIPT,
                           str(COLLECTIONS), str(run_dir)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_endpoints_answer_what_one_request_at_a_time_answered(batch):
    """Links, addresses (301 on one link), IPv4 and IPv6 default gateways, a missing link, a missing
    namespace, two links of one namespace: the same answers as before, the thread back home."""
    assert batch["answers"] == batch["expected"]
    eth0, eth1 = (answer for key, answer in batch["answers"].items() if key.startswith("a/") and key != "a/1")
    assert eth0[0]["name"] == "eth0" and len(eth0[1]) == 301 and eth0[2] == "10.0.0.1" and eth0[3] is None
    assert eth1[0]["name"] == "eth1" and eth1[1] == ["10.0.0.3/24", "2001:db8::2/64"] and eth1[3] == "2001:db8::1"
    assert batch["answers"]["b/99"] == [None, [], None, None]
    assert batch["answers"]["gone/2"] == ["missing", "gone"]
    assert batch["back"] is True


def test_each_namespace_is_two_requests_and_its_ipv6_routes_only_when_a_link_has_ipv6(batch):
    """Per namespace: links + addresses in one datagram, then the IPv4 routes; the IPv6 routes once,
    where a link asked for has IPv6 on (eth1 and lo in a, lo in b); none for the missing namespace."""
    ipv4, ipv6 = [_ROUTE, 2], [_ROUTE, 10]
    asked = batch["asked_alone"]  # a's two, b's two, then the datagram of two dumps below refused one
    assert sorted(asked[0:2]) == sorted(asked[2:4]) == [ipv4, ipv6] and asked[4:] == [[_ROUTE, 0]], asked


def test_a_dump_refused_behind_a_longer_one_is_asked_again_alone(batch):
    """Two dumps and a get in one datagram: the route dump sent behind the address dump (301 addresses)
    is refused (EBUSY) and asked again on its own; every answer is what it is asked alone."""
    assert batch["dumps"] > 300 and batch["together_same"] is True
    assert batch["asked_alone"][4:] == [[_ROUTE, 0]]


def test_request_answers_as_it_did_before_it_was_requests_of_one(batch):
    """Reader.request (dumps, gets, a missing link's ENODEV, a write with NLM_F_ACK) answers as its own loop did."""
    assert batch["request_same"] == [True] * 6


def test_links_without_counters_parse_the_same(batch):
    """RTEXT_FILTER_SKIP_STATS drops only what parse_link never reads."""
    assert batch["links"] == batch["plain_links"] and any(link["name"] == "lo" for link in batch["links"])


_ROUTE = 26  # RTM_GETROUTE
