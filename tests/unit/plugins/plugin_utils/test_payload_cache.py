"""The module payloads kept on the controller from one run to the next (issue 17).

What it saves is measured by ``tests.bench.timeline`` (the ``ansiballz`` column); that Ansible really
takes a kept payload, and that the module it runs is the same, by
``tests/integration/test_payload_cache.py``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from ansible import constants as C
from ansible.plugins.action.normal import ActionModule as NormalAction

from ansible_collections.linuxnet.bridge.plugins.action.netns import ActionModule as NetnsAction
from ansible_collections.linuxnet.bridge.plugins.plugin_utils import _payload_cache
from ansible_collections.linuxnet.bridge.plugins.plugin_utils._payload_cache import CACHE_NAME, PayloadCache, payload_key

FQN = "ansible_collections.linuxnet.bridge.plugins.modules.netns"
ENTRY = f"{FQN}-ZIP_DEFLATED-none"


def _sources(tmp_path: Path) -> tuple[Path, Path]:
    module = tmp_path / "modules" / "netns.py"
    utils = tmp_path / "module_utils"
    (utils / "sub").mkdir(parents=True)
    module.parent.mkdir()
    module.write_text("import x\n")
    (utils / "_a.py").write_text("A = 1\n")
    (utils / "sub" / "_b.py").write_text("B = 1\n")
    return module, utils


def test_the_key_follows_every_source_of_the_payload(tmp_path: Path) -> None:
    module, utils = _sources(tmp_path)
    first = payload_key(module, utils)
    assert payload_key(module, utils) == first
    keys = {first}
    for path, text in ((utils / "sub" / "_b.py", "B = 2\n"), (utils / "_a.py", "A = 2\n"), (module, "import y\n")):
        path.write_text(text)
        keys.add(payload_key(module, utils))
    (utils / "_new.py").write_text("")
    keys.add(payload_key(module, utils))
    assert len(keys) == 5


def test_the_key_follows_ansible_core(tmp_path: Path, monkeypatch) -> None:
    module, utils = _sources(tmp_path)
    first = payload_key(module, utils)
    monkeypatch.setattr(_payload_cache, "ansible_version", "0.0.1")
    assert payload_key(module, utils) != first
    monkeypatch.undo()
    extra = tmp_path / "configured_module_utils"
    extra.mkdir()
    monkeypatch.setattr(_payload_cache, "_module_utils_roots", lambda: [extra])
    before = payload_key(module, utils)
    (extra / "basic.py").write_text("# stands in for ansible.module_utils.basic\n")
    assert payload_key(module, utils) != before


def _built(run_cache: Path, data: bytes = b"payload") -> None:
    run_cache.mkdir(parents=True, exist_ok=True)
    (run_cache / ENTRY).write_bytes(data)
    (run_cache / f"{ENTRY}.lock").write_bytes(b"")
    (run_cache / f"{ENTRY}-part").write_bytes(b"half")
    (run_cache / "ansible_collections.linuxnet.bridge.plugins.modules.netns_x-ZIP_DEFLATED-none").write_bytes(b"other")
    (run_cache / "ansible.legacy.ping-ZIP_DEFLATED-none").write_bytes(b"ping")


def _cache(tmp_path: Path, key: str = "k1") -> PayloadCache:
    return PayloadCache(str(tmp_path / CACHE_NAME), tmp_path / "netns.py", FQN, key)


def test_a_payload_kept_by_one_run_is_seeded_into_the_next(tmp_path: Path) -> None:
    _built(tmp_path / "run1")
    assert _cache(tmp_path).keep(str(tmp_path / "run1")) == 1
    kept = tmp_path / CACHE_NAME
    assert sorted(os.listdir(kept)) == [f"k1.{ENTRY}"]  # not the lock, the partial, nor another module's
    assert os.stat(kept).st_mode & 0o777 == 0o700
    assert os.stat(kept / f"k1.{ENTRY}").st_mode & 0o777 == 0o600
    assert _cache(tmp_path).keep(str(tmp_path / "run1")) == 0  # kept already: nothing written

    assert _cache(tmp_path).seed(str(tmp_path / "run2" / "ansiballz_cache")) == 1
    assert (tmp_path / "run2" / "ansiballz_cache" / ENTRY).read_bytes() == b"payload"
    assert _cache(tmp_path, "k2").seed(str(tmp_path / "run3")) == 0  # other sources: Ansible builds it


def test_seeding_never_replaces_what_the_run_has(tmp_path: Path) -> None:
    _built(tmp_path / "run1")
    _cache(tmp_path).keep(str(tmp_path / "run1"))
    _built(tmp_path / "run2", b"built by this run")
    assert _cache(tmp_path).seed(str(tmp_path / "run2")) == 0
    assert (tmp_path / "run2" / ENTRY).read_bytes() == b"built by this run"


def test_keeping_drops_the_entry_of_other_sources(tmp_path: Path) -> None:
    _built(tmp_path / "run1", b"old")
    _cache(tmp_path, "k1").keep(str(tmp_path / "run1"))
    (tmp_path / CACHE_NAME / "k1.ansible.legacy.ping-ZIP_DEFLATED-none").write_bytes(b"not ours")
    _built(tmp_path / "run2", b"new")
    assert _cache(tmp_path, "k2").keep(str(tmp_path / "run2")) == 1
    assert sorted(os.listdir(tmp_path / CACHE_NAME)) == ["k1.ansible.legacy.ping-ZIP_DEFLATED-none", f"k2.{ENTRY}"]


@pytest.mark.parametrize("spoil", ["directory open to the group", "directory is a symlink", "file writable by others",
                                   "file is a symlink", "file of another user"])
def test_an_untrusted_cache_is_not_used(tmp_path: Path, spoil: str) -> None:
    if spoil == "file of another user" and os.geteuid() != 0:
        pytest.skip("chown needs root")  # (make test runs as root)
    _built(tmp_path / "run1")
    _cache(tmp_path).keep(str(tmp_path / "run1"))
    kept = tmp_path / CACHE_NAME
    entry = kept / f"k1.{ENTRY}"
    if spoil == "directory open to the group":
        kept.chmod(0o770)
    elif spoil == "directory is a symlink":
        kept.rename(tmp_path / "elsewhere")
        kept.symlink_to(tmp_path / "elsewhere")
    elif spoil == "file writable by others":
        entry.chmod(0o602)
    elif spoil == "file is a symlink":
        (tmp_path / "payload").write_bytes(b"payload")
        entry.unlink()
        entry.symlink_to(tmp_path / "payload")
    else:
        os.chown(entry, 65534, 65534)
    assert _cache(tmp_path).seed(str(tmp_path / "run2")) == 0
    assert not (tmp_path / "run2" / ENTRY).exists()


def test_a_cache_removed_while_it_is_read_is_no_cache(tmp_path: Path, monkeypatch) -> None:
    _built(tmp_path / "run1")
    _cache(tmp_path).keep(str(tmp_path / "run1"))
    listdir = os.listdir

    def removed(path):  # the user removes the directory right after it was checked
        if str(path).endswith(CACHE_NAME):
            raise FileNotFoundError(path)
        return listdir(path)

    monkeypatch.setattr(_payload_cache.os, "listdir", removed)
    assert _cache(tmp_path).seed(str(tmp_path / "run2")) == 0
    assert _cache(tmp_path, "k2").keep(str(tmp_path / "run1")) == 0


def test_the_action_seeds_then_keeps_what_ansible_built(tmp_path: Path, monkeypatch) -> None:
    """The action around Ansible's own ``_configure_module``: what it finds in the run's
    ``ansiballz_cache`` before, and what it leaves for the next run."""
    seen = []

    def configure(self, module_name, module_args, task_vars):
        run_cache = Path(C.DEFAULT_LOCAL_TMP) / "ansiballz_cache"
        seen.append(sorted(os.listdir(run_cache)) if run_cache.is_dir() else [])
        if not (run_cache / ENTRY).exists():
            _built(run_cache, b"built")
        return "built", str(Path(_payload_cache.PLUGINS) / "modules" / "netns.py")

    monkeypatch.setattr(NormalAction, "_configure_module", configure)
    action = NetnsAction.__new__(NetnsAction)
    for run in ("run1", "run2"):
        monkeypatch.setattr(C, "DEFAULT_LOCAL_TMP", str(tmp_path / run))
        assert action._configure_module("linuxnet.bridge.netns", {}, {})[0] == "built"
    assert seen == [[], [ENTRY]]  # the second run's cache had the first run's payload before Ansible looked
    assert len(os.listdir(tmp_path / CACHE_NAME)) == 1


def test_keeping_drops_the_partial_files_of_killed_writers(tmp_path: Path) -> None:
    kept = tmp_path / CACHE_NAME
    kept.mkdir(mode=0o700)
    old, new = kept / f".k0.{ENTRY}.4242", kept / f".k1.{ENTRY}.4343"
    for path in (old, new):
        path.write_bytes(b"half")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    _built(tmp_path / "run1")
    assert _cache(tmp_path).keep(str(tmp_path / "run1")) == 1
    assert sorted(os.listdir(kept)) == sorted([new.name, f"k1.{ENTRY}"])
