"""Tests of the sandboxed lab itself (``tests/lab``): isolation, cleanup, Ansible access.

Needs root (namespaces, mounts). Run: ``.venv/bin/python -m pytest tests/lab_tests -q``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

from tests import guard
from tests.lab import Lab, LabError
from tests.lab.core import LAB_TAG_RE, MARKER_ENV, STATE_FILE, _alive, find_lab_processes, lab_mount_tag, mount_tags

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

REPO_ROOT = Path(__file__).resolve().parents[2]
HOSTS = {"linuxnet1": "172.16.211.128", "outside": "172.16.211.1"}


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.lab", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_hosts_are_isolated(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(HOSTS)
    for name, addr in HOSTS.items():
        assert lab.run(name, ["hostname"]).stdout.strip() == name
        assert sorted(lab.run(name, ["ls", "/sys/class/net"]).stdout.split()) == ["ens160", "lo"]
        links = json.loads(lab.run(name, ["ip", "-j", "link", "show"]).stdout)
        assert sorted(link["ifname"] for link in links) == ["ens160", "lo"]
        assert all("UP" in link["flags"] for link in links)
        addrs = json.loads(lab.run(name, ["ip", "-j", "-4", "addr", "show", "dev", "ens160"]).stdout)
        assert [(a["local"], a["prefixlen"]) for a in addrs[0]["addr_info"]] == [(addr, 24)]
        routes = json.loads(lab.run(name, ["ip", "-j", "-4", "route", "show", "table", "all"]).stdout)
        assert not [r for r in routes if r["dst"] == "default"], routes
        main = json.loads(lab.run(name, ["ip", "-j", "-4", "route", "show"]).stdout)
        assert [r["dst"] for r in main] == ["172.16.211.0/24"]
    assert lab.run("linuxnet1", ["ping", "-c1", "-W2", "172.16.211.1"]).returncode == 0
    assert lab.run("outside", ["ping", "-c1", "-W2", "172.16.211.128"]).returncode == 0
    # nothing outside the lab is reachable
    assert lab.run("linuxnet1", ["ping", "-c1", "-W1", "8.8.8.8"], check=False).returncode != 0


def test_run_etc_netns_private(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory({"h1": "172.16.211.10"})
    real_run = set(os.listdir("/run"))
    inside_run = set(lab.run("h1", ["ls", "-A", "/run"]).stdout.split())
    assert not (real_run - {"netns", "lock"}) & inside_run, "real /run content visible inside"
    assert lab.run("h1", ["ls", "-A", "/run/netns"]).stdout.strip() == ""
    assert lab.run("h1", ["ls", "-A", "/etc/netns"]).stdout.strip() == ""
    real_netns_before = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else None
    ns = f"labtest{uuid.uuid4().hex[:6]}"
    lab.run("h1", ["ip", "netns", "add", ns])
    assert ns in lab.run("h1", ["ip", "netns", "list"]).stdout
    lab.run("h1", ["sh", "-c", f"mkdir -p /etc/netns/{ns} && echo x > /etc/netns/{ns}/resolv.conf"])
    probe = f"lab-probe-{uuid.uuid4().hex[:6]}"
    lab.run("h1", ["touch", f"/etc/{probe}", f"/run/{probe}"])
    real_netns_after = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else None
    assert real_netns_after == real_netns_before
    assert not os.path.exists(f"/etc/netns/{ns}")
    assert not os.path.exists(f"/etc/{probe}") and not os.path.exists(f"/run/{probe}")
    # the nested netns lives inside the sandbox only: no new entry in our netns list
    assert ns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout


def test_destroy_cleans_everything_and_is_idempotent(tmp_path: Path, real_netns_guard: Any) -> None:
    state_dir = tmp_path / "lab"
    lab = Lab.create(state_dir, HOSTS, {"routers": ["linuxnet1"]})
    marker = lab.marker
    # a daemon started later inside a lab host carries no marker: still killed (shares the netns)
    bg = lab.run("linuxnet1", ["sh", "-c", "sleep 1000 </dev/null >/dev/null 2>&1 & echo $!"])
    daemon = int(bg.stdout.strip())
    assert _alive(daemon)
    assert len(find_lab_processes(marker)) == 4  # fabric + 2 hosts + daemon
    lab.destroy()
    assert find_lab_processes(marker) == []
    assert not _alive(daemon)
    assert not state_dir.exists()
    lab.destroy()  # idempotent
    assert _cli("destroy", "--state-dir", str(state_dir)).returncode == 0
    assert _cli("destroy", "--state-dir", str(tmp_path / "never-existed")).returncode == 0


def test_destroy_kills_servers_in_named_namespaces(tmp_path: Path, real_netns_guard: Any) -> None:
    """A server started with `ip netns exec` shares neither the lab host's netns nor its mount
    namespace (the seed topology's web server): destroy must find it through /run/netns."""
    lab = Lab.create(tmp_path / "lab", HOSTS)
    try:
        out = lab.run("linuxnet1", ["sh", "-c", "ip netns add web && { ip netns exec web sleep 1000 "
                                                "</dev/null >/dev/null 2>&1 & echo $!; }"])
        server = int(out.stdout.split()[-1])
        time.sleep(0.3)  # ip netns exec has entered the namespace and exec'd sleep
        assert _alive(server)
        assert server in find_lab_processes(lab.marker)
    finally:
        lab.destroy()
    assert not _alive(server)


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rfind(b")") + 2 :].split()[1])


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_mount_tag() -> None:
    marker = f"tests.lab-{uuid.uuid4().hex}"
    tag = lab_mount_tag(marker)
    assert tag == "lab-" + marker.rsplit("-", 1)[1] and LAB_TAG_RE.fullmatch(tag)
    other = lab_mount_tag("some-other-marker-format")
    assert LAB_TAG_RE.fullmatch(other) and other == lab_mount_tag("some-other-marker-format")
    assert not mount_tags("self"), "the machine's own mount namespace must carry no lab tag"


# How a daemon (parent pid 1 after `setsid -f`, no lab marker) is started inside lab host
# linuxnet1. It writes its pid to the lab host's private /run, then becomes `sleep 1000`.
_DAEMON = "echo $$ > /run/daemon.pid; exec sleep 1000 </dev/null >/dev/null 2>&1"
_MACHINE_LIKE = ("echo $$ > /run/daemon.pid; exec unshare --pid --fork --net --mount --propagation private "
                 "--mount-proc sleep 1000 </dev/null >/dev/null 2>&1")
_VARIANTS = {
    # the issue-11 leak: `ip netns exec` (own mount namespace), then the name is deleted
    "netns-exec-then-del": 'ip netns add x && ip netns exec x setsid -f sh -c "$D" && '
                           "while [ ! -s /run/daemon.pid ]; do sleep 0.05; done && ip netns del x",
    "unshare-m": 'unshare -m --propagation private setsid -f sh -c "$D"',
    "unshare-m-n": 'unshare -m -n --propagation private setsid -f sh -c "$D"',
    # like a booted nspawn machine: own pid, mount and network namespace
    "pid-mnt-net": 'setsid -f sh -c "$M"',
}


@pytest.mark.parametrize("variant", sorted(_VARIANTS))
def test_destroy_kills_daemons_in_child_namespaces(tmp_path: Path, real_netns_guard: Any, variant: str) -> None:
    lab = Lab.create(tmp_path / "lab", HOSTS)
    pinned: list[int] = []  # pidfds of the daemons, so the cleanup below can never hit a reused pid
    daemons: list[int] = []
    try:
        host = lab.pid("linuxnet1")
        subprocess.run(lab.nsenter_argv("linuxnet1", ["sh", "-c", _VARIANTS[variant]]),
                       env={**os.environ, "D": _DAEMON, "M": _MACHINE_LIKE},
                       capture_output=True, text=True, check=True, timeout=30)
        deadline = time.monotonic() + 10
        pid_text = ""
        while not pid_text and time.monotonic() < deadline:
            pid_text = lab.run("linuxnet1", ["cat", "/run/daemon.pid"], check=False).stdout.strip()
            time.sleep(0.05)
        daemon = int(pid_text)
        daemons.append(daemon)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # wait for the exec of sleep / the pid-ns child
            kids = _children(daemon)
            if variant == "pid-mnt-net":
                if kids and Path(f"/proc/{kids[0]}/cmdline").read_bytes().startswith(b"sleep"):
                    daemons.append(kids[0])
                    break
            elif Path(f"/proc/{daemon}/cmdline").read_bytes().startswith(b"sleep"):
                break
            time.sleep(0.02)
        pinned.extend(os.pidfd_open(d) for d in daemons)
        lab_ns = {os.readlink(f"/proc/{host}/ns/{k}") for k in ("net", "mnt")}
        for d in daemons:
            assert _alive(d)
            assert f"{MARKER_ENV}=".encode() not in Path(f"/proc/{d}/environ").read_bytes()
            assert lab_mount_tag(lab.marker) in mount_tags(d)
            assert os.readlink(f"/proc/{d}/ns/mnt") not in lab_ns  # own mount namespace
            if variant != "unshare-m":
                assert os.readlink(f"/proc/{d}/ns/net") not in lab_ns  # and a netns of its own
        assert _ppid(daemons[0]) == 1
        if variant == "netns-exec-then-del":
            assert lab.run("linuxnet1", ["ip", "netns", "list"]).stdout.strip() == ""
        if variant == "pid-mnt-net":
            assert os.readlink(f"/proc/{daemons[1]}/ns/pid") != os.readlink(f"/proc/{host}/ns/pid")
        assert set(daemons) <= set(find_lab_processes(lab.marker))
        lab.destroy()
        for d in daemons:
            assert not _alive(d), f"{variant}: pid {d} survived destroy"
    finally:
        lab.destroy()
        for fd in pinned:
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)  # only if destroy failed: never a reused pid
            except ProcessLookupError:
                pass
            os.close(fd)


def test_guard_flags_processes_left_in_lab_namespaces(tmp_path: Path, real_netns_guard: Any,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    saved = tmp_path / "guard.json"
    # a lab process that already ran at save time (a lab kept on purpose) is not a leftover
    kept = subprocess.Popen(["sleep", "1000"], stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, MARKER_ENV: f"tests.lab-{uuid.uuid4().hex}"})
    deadline = time.monotonic() + 10
    while f"{MARKER_ENV}=".encode() not in Path(f"/proc/{kept.pid}/environ").read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert guard.main(["save", str(saved)]) == 0
    assert not [ln for ln in guard.leftover_processes(json.loads(saved.read_text())["_processes"])
                if ln.startswith(f"pid={os.getpid()} ")], "the guard flagged itself"
    # a process in a network namespace that did not exist at save time (our own sandbox)
    stray = subprocess.Popen(["unshare", "--net", "--", "sleep", "1000"], stdin=subprocess.DEVNULL,
                             start_new_session=True)
    # a process in our own netns that carries a lab marker
    marked = subprocess.Popen(["sleep", "1000"], stdin=subprocess.DEVNULL, start_new_session=True,
                              env={**os.environ, MARKER_ENV: f"tests.lab-{uuid.uuid4().hex}"})
    # the processes of a lab that is still there (marker, mount tag, new netns)
    lab = Lab.create(tmp_path / "lab", HOSTS)
    try:
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{stray.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        while Path(f"/proc/{stray.pid}/cmdline").read_bytes() != b"sleep\x001000\x00":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        capsys.readouterr()
        assert guard.main(["check", str(saved)]) == 1
        err = capsys.readouterr().err
        assert f"pid={stray.pid} (new netns net:[" in err and "): sleep 1000" in err, err
        assert f"pid={marked.pid} ({MARKER_ENV}=tests.lab-" in err, err
        for name in HOSTS:
            assert f"pid={lab.pid(name)} ({MARKER_ENV}={lab.marker}; mount tag {lab_mount_tag(lab.marker)};" in err, err
        assert f"pid={os.getpid()} " not in err and f"pid={kept.pid} " not in err
    finally:
        for proc in (stray, marked, kept):  # by pid (we started them); the lab by its marker
            proc.kill()
            proc.wait()
        lab.destroy()
    left = "\n".join(guard.leftover_processes(json.loads(saved.read_text())["_processes"]))
    for pid in (stray.pid, marked.pid, *lab.pids.values()):
        assert f"pid={pid} " not in left, left


def test_cli_roundtrip(tmp_path: Path, real_netns_guard: Any) -> None:
    sd = str(tmp_path / "cli")
    try:
        res = _cli("create", "--state-dir", sd, "--host", "a=172.16.211.128", "--host", "b=172.16.211.1",
                   "--group", "g=a,b")
        assert res.returncode == 0, res.stderr
        assert "172.16.211.128" in res.stdout
        assert _cli("status", "--state-dir", sd).returncode == 0
        assert _cli("exec", "--state-dir", sd, "a", "--", "sh", "-c", "exit 7").returncode == 7
        assert _cli("exec", "--state-dir", sd, "a", "--", "ping", "-c1", "-W2", "172.16.211.1").returncode == 0
        assert _cli("create", "--state-dir", sd, "--host", "a=172.16.211.9").returncode == 2  # already running
    finally:
        assert _cli("destroy", "--state-dir", sd).returncode == 0
    assert not Path(sd).exists()


@pytest.mark.parametrize(
    "hosts",
    [{"Bad": "172.16.211.2"}, {"a.b": "172.16.211.2"}, {"a": "10.0.0.1"}, {"a": "172.16.211.255"},
     {"a": "172.16.211.2", "b": "172.16.211.2"}],
)
def test_invalid_input_rejected(tmp_path: Path, hosts: dict[str, str]) -> None:
    with pytest.raises(LabError):
        Lab.create(tmp_path / "x", hosts)
    assert not (tmp_path / "x" / STATE_FILE).exists()


def test_crash_mid_create_is_cleaned(tmp_path: Path, real_netns_guard: Any) -> None:
    sd = tmp_path / "crash"
    hosts = [f"--host=h{i}=172.16.211.{10 + i}" for i in range(12)]
    proc = subprocess.Popen([sys.executable, "-m", "tests.lab", "create", "--state-dir", str(sd), *hosts],
                            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                state = json.loads((sd / STATE_FILE).read_text())
            except (OSError, ValueError):
                state = {}
            if len(state.get("pids", {})) >= 2:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert state.get("complete") is False, "create finished before we could crash it"
    marker = state["marker"]
    assert find_lab_processes(marker), "expected leftovers of the crashed create"
    assert _cli("destroy", "--state-dir", str(sd)).returncode == 0
    assert find_lab_processes(marker) == []
    assert not sd.exists()


def test_half_written_state_is_cleaned(tmp_path: Path) -> None:
    """A state file holding only the marker (crash right after writing it) is enough."""
    sd = tmp_path / "half"
    sd.mkdir()
    marker = f"tests.lab-{uuid.uuid4().hex}"
    (sd / STATE_FILE).write_text(json.dumps({"version": 1, "marker": marker, "pids": {}}))
    stray = subprocess.Popen(["sleep", "1000"], env={**os.environ, MARKER_ENV: marker}, start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while stray.pid not in find_lab_processes(marker) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _cli("destroy", "--state-dir", str(sd)).returncode == 0
        assert stray.wait(timeout=5) == -signal.SIGKILL
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()
    assert not (sd / STATE_FILE).exists()


def test_ansible_reaches_lab_hosts(lab_factory: Callable[..., Lab], run_playbook: Callable[..., Any]) -> None:
    lab = lab_factory(HOSTS, {"routers": ["linuxnet1"]})
    playbook = """
- name: Probe lab hosts
  hosts: all
  gather_facts: true
  tasks:
    - name: Ping across the LAN
      ansible.builtin.command: ping -c1 -W2 172.16.211.1
      when: inventory_hostname == 'linuxnet1'
      changed_when: false
"""
    res = run_playbook(lab.inventory_path, playbook).assert_ok()
    facts = {t.host: t.result["ansible_facts"] for t in res.tasks if t.task == "Gathering Facts"}
    for name in HOSTS:
        assert facts[name]["ansible_hostname"] == name
        assert sorted(facts[name]["ansible_interfaces"]) == ["ens160", "lo"]
        assert facts[name]["ansible_ens160"]["ipv4"]["address"] == HOSTS[name]
    assert res.task("Ping across the LAN", "linuxnet1").result["rc"] == 0
    assert res.stats["linuxnet1"]["failures"] == 0
    # plain `ansible` ad-hoc setup through the same inventory
    adhoc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible")), "-i", str(lab.inventory_path), "routers",
         "-m", "ansible.builtin.setup", "-a", "filter=ansible_hostname"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
             "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert adhoc.returncode == 0, adhoc.stdout + adhoc.stderr
    assert "linuxnet1" in adhoc.stdout and "outside" not in adhoc.stdout
