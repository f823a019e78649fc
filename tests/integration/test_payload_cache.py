"""The module payloads the controller keeps from one ansible-playbook run to the next (issue 17), with
the real ansible-playbook against a lab host.

* The first run builds the netns module's payload and keeps it (beside the run's temporary
  directory, ``local_tmp``); the next run takes it instead of building it, and the module it runs
  does its work (the namespace is there, the re-run reports no change).
* A changed module_utils file (in a copy of the collection) is never run from the old payload: the
  next run builds a new one and replaces the kept one.

Whether Ansible built the payload or took it is read from its debug log (``ANSIBALLZ: ...``). The
pure parts (the key, trust, seeding, keeping): tests/unit/plugins/plugin_utils/test_payload_cache.py.
Run (root): ``.venv/bin/python -m pytest tests/integration/test_payload_cache.py -q``
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import ADDR, HOST, REPO, sh
from tests.lab.playbook import ansible_env

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

CACHE_NAME = "linuxnet.bridge-ansiballz"
PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: A namespace
      linuxnet.bridge.netns:
        config: [{name: pc1}]
"""


def _run(lab, tmp_path: Path, collections: Path) -> str:
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(PLAYBOOK)
    env = ansible_env({"ANSIBLE_LOCAL_TEMP": str(tmp_path / "local_tmp"), "ANSIBLE_DEBUG": "1",
                       "ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_STDOUT_CALLBACK": "default"})
    done = subprocess.run([str(Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "ansible-playbook"),
                           "-i", str(lab.inventory_path), str(playbook)],
                          env=env, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return done.stdout


def _built(log: str) -> bool:
    """Whether the run built the netns payload (else it took one from the run's cache, seeded)."""
    ours = [line for line in log.splitlines() if "ANSIBALLZ:" in line]
    assert ours, "no ANSIBALLZ debug lines: has ansible-core's debug log changed?"
    if any("ANSIBALLZ: Creating module" in line for line in ours):
        return True
    assert any("ANSIBALLZ: using cached module" in line and "modules.netns-" in line for line in ours), ours
    return False


def _kept(tmp_path: Path) -> list[str]:
    return sorted(os.listdir(tmp_path / "local_tmp" / CACHE_NAME))


@pytest.fixture
def lab(lab_factory, tmp_path):
    tmp_path.chmod(0o755)
    return lab_factory({HOST: ADDR})


def test_the_next_run_takes_the_kept_payload_and_a_changed_source_is_built_again(lab, tmp_path):
    collection = tmp_path / "collections" / "ansible_collections" / "linuxnet" / "bridge"
    shutil.copytree(REPO / "plugins", collection / "plugins", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "meta", collection / "meta")
    shutil.copy(REPO / "galaxy.yml", collection / "galaxy.yml")
    collections = tmp_path / "collections"

    first = _run(lab, tmp_path, collections)
    assert _built(first) and "changed=1" in first
    kept = _kept(tmp_path)
    assert len(kept) == 1 and kept[0].endswith(".ansible_collections.linuxnet.bridge.plugins.modules.netns-ZIP_DEFLATED-none")
    assert os.stat(tmp_path / "local_tmp" / CACHE_NAME / kept[0]).st_mode & 0o777 == 0o600

    second = _run(lab, tmp_path, collections)
    assert not _built(second) and "changed=0" in second and "ok=1" in second
    assert "pc1" in sh(lab, "ip netns list").stdout.split()
    assert _kept(tmp_path) == kept  # nothing written

    with open(collection / "plugins" / "module_utils" / "_netns.py", "a", encoding="utf-8") as source:
        source.write("\n# a changed source\n")
    third = _run(lab, tmp_path, collections)
    assert _built(third) and "changed=0" in third
    now = _kept(tmp_path)
    assert len(now) == 1 and now != kept  # the payload of the old sources is gone
