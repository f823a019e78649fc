"""Creation notes and the host lock of ``_ownership`` (files under a temporary RUN_DIR)."""

from __future__ import annotations

import fcntl
import os

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _ownership as o


@pytest.fixture(autouse=True)
def run_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(o, "RUN_DIR", str(tmp_path))
    monkeypatch.setattr(o, "CREATING_DIR", str(tmp_path / "creating"))
    monkeypatch.setattr(o, "LOCK_PATH", str(tmp_path))
    return tmp_path


def test_a_note_holds_the_alias_until_the_link_is_marked():
    assert o.pending_alias(None, "v1") is None
    o.intend_link(None, "v1", o.owner_alias("eth0", "ns1"))
    o.intend_link("ns1", "br0", o.OWNER_MARK)
    assert o.pending_alias(None, "v1") == "linuxnet.bridge veth peer=eth0 netns=ns1"
    assert o.pending_alias("ns1", "br0") == o.OWNER_MARK and o.pending_alias(None, "br0") is None
    assert sorted(o.creation_notes(), key=str) == sorted([(None, "v1"), ("ns1", "br0")], key=str)
    o.link_marked(None, "v1")
    o.link_marked(None, "v1")  # twice: no error
    assert o.pending_alias(None, "v1") is None


def test_stale_notes_are_dropped_by_the_callers_judgement():
    for name in ("gone", "kept"):
        o.intend_link(None, name, o.OWNER_MARK)
    o.drop_stale_notes(lambda netns, name: name == "kept")
    assert o.creation_notes() == [(None, "kept")]


def test_the_host_lock_is_exclusive_and_goes_with_its_fd(run_dir):
    fd = o.host_lock()
    other = os.open(o.LOCK_PATH, os.O_RDONLY)
    with pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with pytest.raises(OSError, match="held by another run"):
        o.host_lock(timeout=0.1)
    os.close(fd)
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(other)
