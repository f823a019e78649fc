"""Sandboxed test lab: namespace-isolated "hosts" on a private LAN for Ansible tests.

See ``tests/lab/README.md``. Public API::

    from tests.lab import Lab
    with Lab.create(tmp_path / "lab", hosts={"a": "172.16.211.128", "b": "172.16.211.1"}) as lab:
        lab.run("a", ["ping", "-c1", "172.16.211.1"])
        inventory = lab.inventory_path
"""

from __future__ import annotations

from tests.lab.core import LAB_NETWORK, Lab, LabError, destroy_state_dir, validate_host_name
from tests.lab.playbook import PlaybookResult, TaskResult, run_playbook

__all__ = [
    "LAB_NETWORK",
    "Lab",
    "LabError",
    "PlaybookResult",
    "TaskResult",
    "destroy_state_dir",
    "run_playbook",
    "validate_host_name",
]
