"""Booted lab machines: Debian images run by ``systemd-nspawn --boot`` inside a lab's fabric.

A machine is a real host as users have one: systemd as PID 1, sshd, the distro's own
``python3``, a login user ``ansible`` with passwordless sudo, its own network namespace that is
new at every boot. Ansible reaches it over SSH (key per lab, a ProxyCommand that enters the
fabric network namespace), never through nsenter.

Layout of one machine (all under ``<state dir>/machines/<name>/``)::

    upper/ work/   the writable overlay: what the machine writes survives its reboots
    root/          mount point of the overlay (lower: the cached image, read-only)
    console.log    what nspawn and the guest's console printed

One **supervisor** process per machine (``unshare --mount``, so the overlay mount is private to
it; it carries the lab marker like every lab process) mounts the overlay and runs
``nsenter --net=<fabric> systemd-nspawn --boot ...``. ``--network-bridge=lan0`` puts the
machine's ``host0`` on the lab LAN, nothing else. When the guest reboots nspawn exits with 133
and the supervisor starts it again, which is what makes ``ansible.builtin.reboot`` work and a
reboot wipe links, namespaces, rules and sysctls; any other exit ends the supervisor.

The guest's PID 1 carries the lab marker too (``--setenv``), and killing it ends every process
of the machine's PID namespace: ``destroy`` finds machines like any other lab process.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Mapping, Sequence

from tests.lab.proc import NotReady, wait_ready
from tests.lab.images import ANSIBLE_UID, REPO_MOUNT, Image

__all__ = ["MachinePaths", "init_pid", "prepare_machine", "spawn_supervisor", "ssh_argv", "wait_ssh"]

SSH_KEY = "id_ed25519"
PROXY_SCRIPT = "ssh-proxy.sh"
MACHINES_DIR = "machines"
CONTROL_DIR = "cp"
#: Files of a lab's state dir that belong to its machines (removed by destroy).
STATE_FILES = (SSH_KEY, SSH_KEY + ".pub", PROXY_SCRIPT)
BOOT_TIMEOUT = 90.0


class MachineError(RuntimeError):
    """A machine could not be prepared, booted or reached."""


class MachinePaths:
    def __init__(self, state_dir: Path, name: str) -> None:
        self.base = state_dir / MACHINES_DIR / name
        self.upper = self.base / "upper"
        self.work = self.base / "work"
        self.root = self.base / "root"
        self.console = self.base / "console.log"


def ensure_ssh_key(state_dir: Path) -> Path:
    key = state_dir / SSH_KEY
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "linuxnet-lab", "-f", str(key)],
            check=True,
            timeout=30,
        )
    return key


def write_proxy(state_dir: Path, marker: str, fabric_pid: int) -> Path:
    """The SSH ProxyCommand: connect to HOST PORT from inside the lab's fabric network namespace.

    It refuses to run unless the pid still is the fabric of this lab (a reused pid would put
    the connection in somebody else's namespace).
    """
    path = state_dir / PROXY_SCRIPT
    path.write_text(
        "#!/bin/sh\n"
        "# Written by tests.lab: SSH ProxyCommand into the lab LAN (fabric network namespace).\n"
        f"tr '\\0' '\\n' < /proc/{fabric_pid}/environ 2>/dev/null | grep -qx 'LAB_MARKER={marker}' "
        "|| { echo 'lab fabric is gone' >&2; exit 255; }\n"
        f'exec nsenter --net=/proc/{fabric_pid}/ns/net -- nc "$1" "$2"\n',
        encoding="utf-8",
    )
    path.chmod(0o755)
    return path


def _write(path: Path, text: str, mode: int = 0o644, uid: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.chown(path, uid, uid)
    path.chmod(mode)


def prepare_machine(paths: MachinePaths, name: str, address: str, prefixlen: int, pubkey: str) -> None:
    """Per-machine files, written into the overlay's upper layer before the first boot."""
    for d in (paths.upper, paths.work, paths.root):
        d.mkdir(parents=True, exist_ok=True)
    etc = paths.upper / "etc"
    _write(etc / "hostname", f"{name}\n")
    _write(
        etc / "hosts",
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    )
    _write(
        etc / "systemd" / "network" / "10-lab.network",
        "[Match]\nName=host0\n\n[Network]\n"
        f"Address={address}/{prefixlen}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n",
    )
    home = paths.upper / "home" / "ansible"
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    os.chown(home, ANSIBLE_UID, ANSIBLE_UID)
    home.chmod(0o755)
    os.chown(ssh_dir, ANSIBLE_UID, ANSIBLE_UID)
    ssh_dir.chmod(0o700)
    _write(ssh_dir / "authorized_keys", pubkey, mode=0o600, uid=ANSIBLE_UID)


# Runs as the supervisor inside its own mount namespace (never the machine's: it refuses to).
_SUPERVISOR = r"""
set -u
[ "$(readlink /proc/self/ns/mnt)" != "$LAB_OUTER_MNTNS" ] || { echo "refusing: not in a new mntns" >&2; exit 97; }
mount -n -t overlay "$LAB_MOUNT_TAG" -o "lowerdir=$LAB_LOWER,upperdir=$LAB_UPPER,workdir=$LAB_WORK" "$LAB_ROOT" || exit 96
echo READY
exec </dev/null >>"$LAB_CONSOLE" 2>&1
while :; do
    echo "--- boot $(date -u +%FT%TZ)"
    rc=0
    nsenter --net="/proc/$LAB_FABRIC_PID/ns/net" -- systemd-nspawn --quiet --boot --register=no --keep-unit \
        --directory="$LAB_ROOT" --machine="$LAB_HOSTNAME" --hostname="$LAB_HOSTNAME" \
        --network-bridge="$LAB_BRIDGE" --bind-ro="$LAB_REPO:$LAB_REPO_MOUNT" \
        --resolv-conf=off --timezone=off --link-journal=no --console=read-only \
        --setenv="LAB_MARKER=$LAB_MARKER" || rc=$?
    echo "--- nspawn exited $rc"
    # 133: the guest rebooted. Anything else (poweroff, failure): the machine stays down.
    [ "$rc" -eq 133 ] || exit "$rc"
done
"""


def spawn_supervisor(
    paths: MachinePaths,
    name: str,
    image: Image,
    fabric_pid: int,
    bridge: str,
    env: Mapping[str, str],
    mount_tag: str,
) -> subprocess.Popen[bytes]:
    """Start the supervisor of machine *name*; return once its overlay is mounted."""
    for tool in ("systemd-nspawn", "nsenter", "unshare", "nc"):
        if shutil.which(tool) is None:
            raise MachineError(f"required tool {tool!r} not found (make deps installs it)")
    full_env = {
        **env,
        "LAB_HOSTNAME": name,
        "LAB_MOUNT_TAG": mount_tag,
        "LAB_LOWER": str(image.rootfs),
        "LAB_UPPER": str(paths.upper),
        "LAB_WORK": str(paths.work),
        "LAB_ROOT": str(paths.root),
        "LAB_CONSOLE": str(paths.console),
        "LAB_FABRIC_PID": str(fabric_pid),
        "LAB_BRIDGE": bridge,
        "LAB_REPO": str(image.repo),
        "LAB_REPO_MOUNT": REPO_MOUNT,
    }
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _SUPERVISOR],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
        cwd="/",
        start_new_session=True,
    )
    try:
        wait_ready(proc, timeout=30)
    except NotReady as exc:
        raise MachineError(f"machine {name}: supervisor did not mount its overlay: {exc}") from None
    return proc


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                out.extend(int(c) for c in fh.read().split())
    except OSError:
        pass
    return out


def init_pid(supervisor_pid: int) -> int | None:
    """The guest's PID 1 as seen from here (nspawn's child whose pid namespace is new), if booted."""
    own_pidns = os.readlink("/proc/self/ns/pid")
    todo = _children(supervisor_pid)
    for _depth in range(4):
        nxt: list[int] = []
        for pid in todo:
            try:
                if os.readlink(f"/proc/{pid}/ns/pid") != own_pidns:
                    return pid
            except OSError:
                continue
            nxt.extend(_children(pid))
        todo = nxt
    return None


def ssh_options(state_dir: Path, with_key: bool = True) -> list[str]:
    key = ["-i", str(state_dir / SSH_KEY)] if with_key else []
    return [
        "-o", f"ProxyCommand={state_dir / PROXY_SCRIPT} %h %p",
        "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR",
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=10",
        # A machine that reboots vanishes without closing the connection: notice it.
        "-o", "ServerAliveInterval=5",
        "-o", "ServerAliveCountMax=3",
        *key,
    ]  # fmt: skip


def ssh_argv(state_dir: Path, address: str, argv: Sequence[str], become: bool = True) -> list[str]:
    """argv that runs *argv* on the machine at *address* over SSH (as root with sudo)."""
    remote = shlex.join((["sudo", "-n"] if become else []) + list(argv))
    return ["ssh", *ssh_options(state_dir), f"ansible@{address}", remote]


def wait_ssh(state_dir: Path, name: str, address: str, supervisor: subprocess.Popen[bytes], timeout: float = BOOT_TIMEOUT) -> float:
    """Wait until ``ssh true`` succeeds (an open port is not enough); return the seconds waited."""
    started = time.monotonic()
    deadline = started + timeout
    last = ""
    while time.monotonic() < deadline:
        if supervisor.poll() is not None:
            raise MachineError(f"machine {name} stopped (rc={supervisor.returncode}){console_tail(state_dir, name)}")
        res = subprocess.run(
            ssh_argv(state_dir, address, ["true"], become=False),
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if res.returncode == 0:
            return time.monotonic() - started
        last = res.stderr.strip()
        time.sleep(0.3)
    raise MachineError(
        f"machine {name} ({address}) not reachable over SSH after {timeout:.0f} s: {last}{console_tail(state_dir, name)}"
    )


def console_tail(state_dir: Path, name: str, lines: int = 40) -> str:
    """The end of a machine's console.log, for errors: destroy removes the file with the lab."""
    try:
        text = MachinePaths(state_dir, name).console.read_text(errors="replace")
    except OSError:
        return ""
    tail = "\n".join(text.splitlines()[-lines:])
    return f"\n--- last {lines} lines of {name}'s console ---\n{tail}"
