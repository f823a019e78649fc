"""plan() and render() of the netns resource (pure; no root, no kernel).

``current`` is handmade in the shape ``gather()`` returns, so these tests pin the semantics of
the states (merged / replaced / overridden / deleted), ownership, idempotence and the exact
command lines, without a kernel. Behaviour against a kernel is in tests/integration.

Run: ``.venv/bin/python -m pytest tests/unit -q``
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.linuxnet.bridge.plugins.module_utils import _netlink, _netns, _ownership
from ansible_collections.linuxnet.bridge.plugins.module_utils._engine import HIDDEN
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import (
    FOREIGN,
    NETNS_OPERATIONS,
    NetnsResource,
    parse_hosts,
    render_hosts,
)
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError

from .fixtures.netlink import FakeModule, ns_current, plan, render


def test_netns_render():
    commands = render(
        NetnsResource,
        [
            {"name": "web", "resolv_conf": "nameserver 9.9.9.9\n", "hosts": [{"ip": "172.18.0.3", "names": ["db"]}]},
            {"name": "db"},
        ],
    )
    assert commands[:2] == ["ip netns add web", "ip -n web link set lo up"]
    assert commands[2] == "printf '%s' 'nameserver 9.9.9.9\n' > /etc/netns/web/resolv.conf"
    assert commands[3].startswith("printf '%s' '# managed by linuxnet.bridge\n") and commands[3].endswith(
        "172.18.0.3\tdb\n' > /etc/netns/web/hosts"
    )
    assert commands[4:] == ["ip netns add db", "ip -n db link set lo up"]


def test_netns_idempotent():
    hosts = [{"ip": "172.18.0.3", "names": ["db", "db.local"]}]
    config = [{"name": "web", "resolv_conf": "nameserver 9.9.9.9\n", "hosts": hosts}, {"name": "db"}]
    current = {"web": ns_current("web", resolv_conf="nameserver 9.9.9.9\n", hosts=hosts), "db": ns_current("db")}
    for state in ("merged", "replaced", "overridden"):
        commands, after = plan(NetnsResource, config, current, state)
        assert commands == [], state
        assert after == current


def test_netns_merged_creates_missing_only_and_leaves_others():
    current = {"old": ns_current("old"), "foreign": ns_current("foreign", owned=False)}
    commands, after = plan(NetnsResource, [{"name": "old"}, {"name": "new"}], current)
    assert commands == ["ip netns add new", "ip -n new link set lo up"]
    assert set(after) == {"old", "foreign", "new"}
    assert after["new"]["_owned"] is True


def test_netns_resolv_conf_merged_vs_replaced():
    current = {"web": ns_current("web", resolv_conf="nameserver 1.1.1.1\n", hosts=[{"ip": "10.0.0.1", "names": ["a"]}])}
    # changed text is rewritten in place
    commands, _after = plan(NetnsResource, [{"name": "web", "resolv_conf": "nameserver 9.9.9.9"}], current)
    assert commands == ["printf '%s' 'nameserver 9.9.9.9\n' > /etc/netns/web/resolv.conf"]
    # omitted: merged leaves the files, replaced/overridden remove them
    assert plan(NetnsResource, [{"name": "web"}], current, "merged")[0] == []
    for state in ("replaced", "overridden"):
        commands, after = plan(NetnsResource, [{"name": "web"}], current, state)
        assert commands == ["rm -f /etc/netns/web/resolv.conf", "rm -f /etc/netns/web/hosts"], state
        assert after["web"]["resolv_conf"] is None and after["web"]["hosts"] is None
    assert not [c for c in commands if "netns delete" in c]


def test_netns_overridden_removes_only_owned():
    current = {
        "keep": ns_current("keep"),
        "gone": ns_current("gone"),
        "user": ns_current("user", owned=False),
        "docker": {"name": "docker", "resolv_conf": None, "hosts": None},  # no _owned key at all
    }
    commands, after = plan(NetnsResource, [{"name": "keep"}], current, "overridden")
    assert commands == ["rm -rf /etc/netns/gone", "ip netns delete gone"]
    assert set(after) == {"keep", "user", "docker"}


def test_netns_deleted():
    current = {"a": ns_current("a"), "b": ns_current("b"), "user": ns_current("user", owned=False)}
    # no config: every owned namespace, never a foreign one
    commands, after = plan(NetnsResource, [], current, "deleted")
    assert commands == ["rm -rf /etc/netns/a", "ip netns delete a", "rm -rf /etc/netns/b", "ip netns delete b"]
    assert set(after) == {"user"}
    # listed: those the collection created; a foreign one the user names is left alone (the
    # module warns); absent ones are no-ops
    commands, after = plan(NetnsResource, [{"name": "user"}, {"name": "a"}, {"name": "absent"}], current, "deleted")
    assert commands == ["rm -rf /etc/netns/a", "ip netns delete a"]
    assert set(after) == {"b", "user"}
    assert plan(NetnsResource, [{"name": "absent"}], current, "deleted")[0] == []


def test_netns_stale_name_of_a_killed_run_is_made_again_or_removed():
    """A name whose namespace is gone (a create or delete killed between mount and unlink; gather
    marks it hidden, ``_engine.HIDDEN``): made again when wanted, its files kept when right; removed otherwise."""
    stale = {"a": {**ns_current("a", resolv_conf="nameserver 9.9.9.9\n"), HIDDEN: True}}
    commands, after = plan(NetnsResource, [{"name": "a", "resolv_conf": "nameserver 9.9.9.9\n"}], stale, "overridden")
    assert commands == ["ip netns add a", "ip -n a link set lo up"]
    assert HIDDEN not in after["a"]
    for state, config in (("overridden", []), ("deleted", [])):
        commands, after = plan(NetnsResource, config, stale, state)
        assert commands == ["rm -rf /etc/netns/a", "ip netns delete a"], state
        assert after == {}


def test_netns_hosts_round_trip():
    entries = [{"ip": "172.18.0.3", "names": ["db", "db.local"]}, {"ip": "fd00::3", "names": ["v6"]}]
    text = render_hosts(entries)
    assert text.startswith("# managed by linuxnet.bridge\n127.0.0.1\tlocalhost\n")
    assert parse_hosts(text) == entries
    # comments and blank lines of a hand-edited file are ignored
    assert parse_hosts("# x\n\n10.0.0.1 a b # c\n") == [{"ip": "10.0.0.1", "names": ["a", "b"]}]


def test_netns_hosts_entry_equal_to_a_standard_line_is_idempotent():
    # A user entry equal to one of the standard lines (127.0.0.1 localhost) is written to the
    # file, but parse_hosts() drops it when reading back, so every run rewrites the file.
    config = [{"name": "web", "hosts": [{"ip": "127.0.0.1", "names": ["localhost"]}, {"ip": "10.0.0.3", "names": ["db"]}]}]
    res = NetnsResource(FakeModule())
    wanted = res.normalize(config, "merged")[0]["hosts"]
    current = {"web": ns_current("web", hosts=parse_hosts(render_hosts(wanted)))}  # what gather() reads back
    assert plan(NetnsResource, config, current)[0] == []


def test_netns_plan_does_not_mutate_current():
    current = {"web": ns_current("web", resolv_conf="a\n")}
    snapshot = {k: dict(val) for k, val in current.items()}
    plan(NetnsResource, [{"name": "web", "resolv_conf": "b"}, {"name": "new"}], current, "overridden")
    assert current == snapshot


# --------------------------------------------------------------------------------- foreign namespaces, file bytes
# The host's places (/run/netns, the marks under /run/linuxnet/netns, /etc/netns) moved to a
# temporary directory: the namespaces are files there, the resolver files real files.


@pytest.fixture
def host(tmp_path, monkeypatch):
    run_netns, marks, etc = tmp_path / "run-netns", tmp_path / "marks", tmp_path / "etc-netns"
    for directory in (run_netns, marks, etc):
        directory.mkdir()
    monkeypatch.setattr(_netlink, "NETNS_RUN_DIR", str(run_netns))
    monkeypatch.setattr(_netns, "NETNS_RUN_DIR", str(run_netns))
    monkeypatch.setattr(_ownership, "NETNS_DIR", str(marks))
    monkeypatch.setattr(_netns, "ETC_NETNS", str(etc))
    monkeypatch.setattr(os.path, "ismount", lambda path: path.startswith(str(run_netns)))
    monkeypatch.setattr(_netns, "_is_mount", lambda name, names_dir: True)  # (gather's ismount of a name)

    def add(name: str, owned: bool, **files: bytes) -> None:
        (run_netns / name).touch()
        if owned:
            (marks / name).touch()
        if files:
            (etc / name).mkdir()
        for file, data in files.items():
            (etc / name / file.replace("_", ".")).write_bytes(data)

    add.etc = etc
    return add


def resource(check_mode: bool = True) -> NetnsResource:
    return NetnsResource(FakeModule(check_mode=check_mode))


def converge(config: list[dict], state: str = "merged") -> list[str]:
    """One run's plan on the files as they are, its writes applied to them; the commands."""
    res = resource()
    desired = res.normalize(config, state)
    res.check_references(desired, state)
    ops, _after = res.plan(desired, res.gather(desired, state), state)
    for op in ops:
        if op.action in ("write", "unlink"):
            NETNS_OPERATIONS[op.action](None, op)
    return [op.command for op in ops]


def test_netns_a_foreign_namespace_is_refused_before_anything_a_marked_one_adopted(host):
    """A namespace of a configured name that the collection did not create (``ip netns add web``)
    is refused by merged, replaced and overridden, naming the field; a marked one is the
    collection's (its create was killed after the mark, or it is simply ours); deleted leaves it."""
    host("web", owned=False, resolv_conf=b"nameserver 192.0.2.1\n")
    host("mine", owned=True)
    config = [{"name": "mine"}, {"name": "web", "resolv_conf": "nameserver 192.0.2.53\n"}]
    for state in ("merged", "replaced", "overridden"):
        res = resource()
        with pytest.raises(ValidationError) as err:
            res.check_references(res.normalize(config, state), state)
        assert str(err.value) == f"config[1] (name=web).name: {FOREIGN}", state
        # plan refuses it too (a namespace made between the check and the gather)
        with pytest.raises(ValidationError, match=FOREIGN):
            plan(NetnsResource, config, {"web": ns_current("web", owned=False)}, state)
    for state in ("deleted", "gathered"):
        res = resource()
        res.check_references(res.normalize(config if state == "deleted" else [], state), state)
    assert converge([{"name": "mine", "resolv_conf": "nameserver 192.0.2.53\n"}]) == [
        f"printf '%s' 'nameserver 192.0.2.53\n' > {host.etc}/mine/resolv.conf"]
    assert (host.etc / "web" / "resolv.conf").read_bytes() == b"nameserver 192.0.2.1\n"


def test_netns_files_that_are_not_utf8_are_read_and_ours_rewritten_once(host):
    """A Latin-1 resolv.conf of a foreign namespace fails no run (gathered shows U+FFFD); one of
    ours with bad bytes, or with \\r\\n line ends, is rewritten once, then the plan is empty."""
    host("foreign", owned=False, resolv_conf=b"# caf\xe9\nnameserver 192.0.2.1\n", hosts=b"10.0.0.1 caf\xe9\n")
    gathered = resource().gather([], "gathered")
    assert resource().public(gathered["foreign"]) == {
        "name": "foreign", "resolv_conf": "# caf\ufffd\nnameserver 192.0.2.1\n",
        "hosts": [{"ip": "10.0.0.1", "names": ["caf\ufffd"]}]}

    text = "nameserver 192.0.2.53\n"
    hosts = [{"ip": "10.0.0.2", "names": ["db"]}]
    mine = [{"name": "mine", "resolv_conf": text, "hosts": hosts}]
    host("mine", owned=True, resolv_conf=b"nameserver 192.0.2.53 # caf\xe9\n", hosts=render_hosts(hosts).encode() + b"#\xff\n")
    resolv, hosts_file = host.etc / "mine" / "resolv.conf", host.etc / "mine" / "hosts"
    assert len(converge(mine)) == 2  # both rewritten, though the hosts file's entries are the wanted ones
    assert (resolv.read_bytes(), hosts_file.read_bytes()) == (text.encode(), render_hosts(hosts).encode())
    assert converge(mine) == []
    resolv.write_bytes(b"nameserver 192.0.2.53\r\n")
    assert converge(mine) == [f"printf '%s' '{text}' > {resolv}"]
    assert resolv.read_bytes() == text.encode() and converge(mine) == []
    # a wanted text holding U+FFFD equals what bad bytes read as: still rewritten
    odd = [{"name": "mine", "resolv_conf": "nameserver 192.0.2.53 # \ufffd\n"}]
    resolv.write_bytes(b"nameserver 192.0.2.53 # \xff\n")
    assert len(converge(odd)) == 1 and resolv.read_bytes() == "nameserver 192.0.2.53 # \ufffd\n".encode()
    assert converge(odd) == []
    # replaced without the files removes them, bad bytes or not
    resolv.write_bytes(b"\xff\n")
    assert converge([{"name": "mine"}], "replaced") == [f"rm -f {resolv}", f"rm -f {hosts_file}"]


def test_is_mount_of_a_name_is_what_os_path_ismount_says(tmp_path, monkeypatch):
    """gather's one-lstat mount check answers as os.path.ismount: a file, a directory, a symlink (to a
    mount point too), a missing name, and real mount points (/proc, /sys under /)."""
    (tmp_path / "file").touch()
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to("/proc")
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    for directory, names in ((tmp_path, ("file", "dir", "link", "dangling", "missing")), (Path("/"), ("proc", "sys", "tmp", "etc"))):
        monkeypatch.setattr(_netns, "NETNS_RUN_DIR", str(directory))
        names_dir = _netns._names_dir()
        assert [_netns._is_mount(name, names_dir) for name in names] == [os.path.ismount(directory / name) for name in names]
    assert _netns._is_mount("proc", _netns._names_dir()) is True
