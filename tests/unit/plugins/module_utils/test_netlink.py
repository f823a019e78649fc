"""``_netlink``: the socket cache, and that no module needs pyroute2 (pure; no root, no kernel).

That the role and modules work on a managed host without pyroute2 is proven on a real kernel by
tests/integration/test_without_pyroute2.py.

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_netlink.py -q``
"""

from __future__ import annotations

import os

from ansible_collections.linuxnet.bridge.plugins.module_utils import _netlink

from .fixtures.netlink import FakeSocket, fake_link_dumps


def test_netlink_forget_closes_the_namespace_socket(monkeypatch):
    opened = []
    monkeypatch.setattr(_netlink._rtnl, "Reader", lambda: opened.append(FakeSocket()) or opened[-1])
    nl = _netlink.Netlink()
    first = nl.sock(None)
    nl.forget(None)
    assert first.closed
    assert nl.sock(None) is not first and len(opened) == 2
    nl.forget("never-opened")  # nothing to close: no error


def test_no_module_imports_pyroute2():
    """pyroute2 is no requirement (and costs a quarter of a second to import): no module or module_util loads it."""
    import subprocess
    import sys
    from pathlib import Path

    plugins = Path(_netlink.__file__).resolve().parents[1]
    names = [f"plugins.{p.parent.name}.{p.stem}" for d in ("module_utils", "modules") for p in sorted((plugins / d).glob("*.py"))
             if p.stem != "__init__"]
    code = ("import importlib, sys; [importlib.import_module('ansible_collections.linuxnet.bridge.' + n) for n in sys.argv[1:]];"
            " print(sorted(m for m in sys.modules if m.startswith('pyroute2')))")
    out = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(sys.path)}).stdout
    assert out.strip() == "[]"


def test_namespaces_in_use_are_those_a_process_lives_in(tmp_path, monkeypatch):
    """A name (in /run/netns) resolving to this process's namespace is in use; a file that is no
    namespace and a missing name are not. A symlink stands in for the bind mount: both stat as the
    namespace (nsfs device and inode), as /proc/PID/ns/net of a process inside does."""
    (tmp_path / "lived-in").symlink_to(f"/proc/{os.getpid()}/ns/net")
    (tmp_path / "plain-file").write_text("")
    monkeypatch.setattr(_netlink, "NETNS_RUN_DIR", str(tmp_path))
    assert _netlink.namespaces_in_use({"lived-in", "plain-file", "missing"}) == {"lived-in"}
    assert _netlink.namespaces_in_use(set()) == set()


def test_index_of_a_known_peer_comes_from_the_host_dump(monkeypatch):
    """The peer of a pair the run made (or gathered) is found by its host end's IFLA_LINK in the one
    host dump: requests on the peers of N new namespaces dump no namespace. A name that is no known
    peer, or whose host end is gone or is no veth, is looked up in its namespace's dump as before."""
    dumps = fake_link_dumps(monkeypatch,
                            [{"name": "v1", "index": 9, "kind": "veth", "link_netnsid": 0, "link": 2},
                             {"name": "v2", "index": 10, "kind": "veth", "link_netnsid": 1, "link": 3},
                             {"name": "dummy0", "index": 11, "kind": "dummy", "link_netnsid": None, "link": None}],
                            [{"name": "lo", "index": 1}, {"name": "eth0", "index": 2}, {"name": "eth1", "index": 4}])
    nl = _netlink.Netlink()
    for i, end in enumerate(("v1", "v2", "gone", "dummy0")):
        nl.pair(end, "eth0", f"c{i}")
    assert nl.index("eth0", "c0", "cmd") == 2
    assert nl.index("eth0", "c1", "cmd") == 3
    assert dumps == [None]  # the host, once
    assert nl.index("eth1", "c0", "cmd") == 4  # no known peer: c0's dump
    assert nl.index("eth0", "c2", "cmd") == 2  # its host end is gone: c2's dump
    assert nl.index("eth0", "c3", "cmd") == 2  # its "host end" is no veth: c3's dump
    assert dumps == [None, "c0", "c2", "c3"]
    nl.forget("c1")
    assert nl.index("eth0", "c1", "cmd") == 2 and dumps[-1] == "c1"  # forgotten with its namespace
    nl.pair("v1", "eth1", "c5")  # v1 made again with its peer elsewhere: c0's eth0 is no longer its peer
    nl.invalidate()  # as after a wave
    assert nl.index("eth1", "c5", "cmd") == 2 and dumps[-1] is None
    assert nl.index("eth0", "c0", "cmd") == 2 and dumps[-1] == "c0"


def test_an_adopted_socket_serves_its_namespace(monkeypatch):
    """The socket create_namespace returns is the namespace's socket: it is not entered again to open one."""
    def never_entered(netns, opener):
        raise AssertionError(f"{netns} entered to open a socket")

    monkeypatch.setattr(_netlink, "open_in_namespace", never_entered)
    nl = _netlink.Netlink()
    first, second = FakeSocket(), FakeSocket()
    nl.adopt("c1", first)
    assert nl.sock("c1") is first
    nl.adopt("c1", second)  # made again: the old socket is closed
    assert first.closed and nl.sock("c1") is second
    nl.close()
    assert second.closed


def test_sockets_keep_at_most_limit_namespaces_open_closing_the_least_recently_used():
    """The descriptors a run holds do not grow with the namespaces it touches: past ``limit``, the
    socket used longest ago is closed; the host's (None) is never closed for room."""
    sockets = _netlink.Sockets(limit=3)
    host = FakeSocket("host")
    sockets.put(None, host)
    made = {f"ns{i}": FakeSocket(f"ns{i}") for i in range(6)}
    for name in ("ns0", "ns1"):
        sockets.put(name, made[name])
    assert len(sockets._open) == 3 and not any(s.closed for s in (host, made["ns0"], made["ns1"]))
    assert sockets.get("ns0") is made["ns0"]  # ns0 is now the most recently used: ns1 goes first
    sockets.put("ns2", made["ns2"])
    assert made["ns1"].closed and "ns1" not in sockets._open and sockets.get("ns1") is None
    assert not host.closed and not made["ns0"].closed and len(sockets._open) == 3
    assert sockets.peek("ns0") is made["ns0"]  # peek leaves the order: ns0 (oldest but host) goes next
    sockets.put("ns3", made["ns3"])
    assert made["ns0"].closed and not made["ns2"].closed and not host.closed
    for i in range(4, 6):
        sockets.put(f"ns{i}", made[f"ns{i}"])
    assert sum(not s.closed for s in (host, *made.values())) == 3 and not host.closed
    again = FakeSocket("ns5 again")
    sockets.put("ns5", again)  # replacing closes the one it replaces, keeps the count
    assert made["ns5"].closed and sockets.get("ns5") is again and len(sockets._open) == 3
    sockets.close("ns5")
    assert again.closed and len(sockets._open) == 2
    sockets.close_all()
    assert host.closed and len(sockets._open) == 0

    one = _netlink.Sockets(limit=1)  # the socket just kept is never the one closed for room
    one.put(None, FakeSocket("host"))
    newest = FakeSocket("ns")
    one.put("ns", newest)
    assert one.get("ns") is newest and not newest.closed


def test_netlink_reopens_a_namespace_socket_closed_for_room_and_keeps_its_dumps(monkeypatch):
    """Netlink.sock of N namespaces holds at most MAX_SOCKETS of them; a namespace whose socket was
    closed for room gets a new one when next used (opened inside it), its cached dump still served."""
    opened: list[FakeSocket] = []

    def open_in(netns, _opener):
        opened.append(FakeSocket(netns))
        opened[-1].links = lambda: [{"name": "lo", "index": 1}]
        return opened[-1]

    monkeypatch.setattr(_netlink, "open_in_namespace", open_in)
    monkeypatch.setattr(_netlink, "MAX_SOCKETS", 4)
    nl = _netlink.Netlink()
    assert nl._sockets.limit == 4
    for i in range(10):
        nl.links(f"ns{i}")
    assert len(opened) == 10 and sum(not s.closed for s in opened) == 4
    assert [s.name for s in opened if not s.closed] == ["ns6", "ns7", "ns8", "ns9"]
    assert nl.link("lo", "ns0") == {"name": "lo", "index": 1} and len(opened) == 10  # the dump is cached
    first = nl.sock("ns0")  # closed for room: opened again
    assert first is opened[-1] and len(opened) == 11 and not first.closed and opened[6].closed
    assert nl.sock("ns0") is first and len(opened) == 11
    nl.close()
    assert all(s.closed for s in opened)
