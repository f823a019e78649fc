"""Lab QEMU virtual machines (``tests/lab/vm.py``): boot, a command over SSH, clean teardown.

Needs root, and minutes: the VM runs under TCG (no usable KVM here). Skipped unless
``LINUXNET_TEST_VM=1`` (``make test-vm`` sets it); a skip is not a pass. The VM image is built on
first use (about a minute) and cached.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab import Lab, LabError
from tests.lab import vm
from tests.lab.core import _alive, _ns, destroy_state_dir, find_lab_processes
from tests.lab.images import image_cache_dir

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")
needs_vm = pytest.mark.skipif(
    os.environ.get("LINUXNET_TEST_VM") != "1",
    reason="QEMU VM test (minutes under TCG): run it with `make test-vm` (LINUXNET_TEST_VM=1)",
)

HOSTS = {"v1": "172.16.211.128", "outside": "172.16.211.1"}


def _pids_mentioning(text: str) -> list[int]:
    """Live processes whose command line mentions *text* (e.g. a QEMU still holding a disk)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if text.encode() in fh.read() and _alive(int(entry)):
                    found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.mark.parametrize(
    ("vms", "machines", "message"),
    [
        ({"nohost": "bookworm"}, None, "not a host of the lab"),
        ({"v1": "sid"}, None, "unknown suite"),
        ({"v1": "bookworm"}, {"v1": "bookworm"}, "both a machine and a VM"),
    ],
)
def test_vm_arguments_are_checked_before_anything_starts(
    tmp_path: Path, vms: dict[str, str], machines: dict[str, str] | None, message: str
) -> None:
    with pytest.raises(LabError, match=message):
        Lab.create(tmp_path / "lab", HOSTS, vms=vms, machines=machines)
    assert not (tmp_path / "lab").exists()


def test_kernel_command_line_carries_the_vm_settings() -> None:
    line = vm.kernel_cmdline("v1", "172.16.211.128", 24, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample linuxnet-lab\n")
    assert "root=/dev/vda" in line.split()
    assert {"systemd.hostname=v1", "lab.address=172.16.211.128/24", "lab.sshkey=ssh-ed25519,AAAAC3NzaC1lZDI1NTE5AAAAIExample"} <= set(line.split())
    assert vm.tap_name("a-very-long-vm-name") == "t-a-very-long-v"
    assert vm.mac_address("172.16.211.128") == "52:54:00:10:d3:80"


@needs_vm
def test_vm_boots_answers_ssh_and_destroy_leaves_nothing(tmp_path: Path, real_netns_guard: dict[str, Any]) -> None:
    state = tmp_path / "lab"
    try:
        lab = Lab.create(state, HOSTS, vms={"v1": "bookworm"})
        qemu = lab.pid("v1")
        # QEMU carries the marker and runs in the fabric's netns, never in ours.
        assert qemu in find_lab_processes(lab.marker)
        assert os.path.basename(os.readlink(f"/proc/{qemu}/exe")).startswith("qemu-system")
        assert lab.fabric_pid is not None
        assert _ns(qemu, "net") == _ns(lab.fabric_pid, "net") != _ns("self", "net")
        # A command over SSH (as root through sudo): its own kernel, name and lab address.
        res = lab.run("v1", ["sh", "-c", "uname -r; hostname; id -u; ip -4 -o addr show host0"], timeout=120)
        assert res.returncode == 0, res.stderr
        kernel, hostname, uid, addr = res.stdout.splitlines()[:4]
        assert kernel != platform.release() and kernel.endswith("-cloud-amd64")
        assert (hostname, uid) == ("v1", "0")
        assert "172.16.211.128/24" in addr
        # The lab LAN reaches it; the VM has no way out.
        assert lab.run("outside", ["ping", "-c1", "-W5", "172.16.211.128"], check=False).returncode == 0
        assert lab.run("v1", ["ip", "-4", "route", "show", "default"], timeout=120).stdout.strip() == ""
        # Inventory: a real host over SSH, marked as a VM.
        inv = yaml.safe_load(lab.inventory_path.read_text())["all"]["hosts"]["v1"]
        assert inv["ansible_connection"] == "ssh" and inv["lab_vm"] is True
        assert inv["ansible_python_interpreter"] == "/usr/bin/python3"
        # Its disk is an overlay in the state dir on the cached image.
        paths = vm.VmPaths(state, "v1")
        assert paths.disk.is_file()
        pids = find_lab_processes(lab.marker)
        lab.destroy()
        assert not [p for p in pids if _alive(p)], "lab processes survived destroy"
        assert not _pids_mentioning(str(state)), "a process still uses the lab's state dir"
        assert not (state / vm.VMS_DIR).exists()
        cache = image_cache_dir().resolve()
        leftovers = [p for p in tmp_path.rglob("*") if p.suffix in (".qcow2", ".img", ".raw")]
        assert not leftovers, f"disk images left outside the cache {cache}: {leftovers}"
    finally:
        destroy_state_dir(state)
