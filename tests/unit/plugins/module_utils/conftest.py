"""Fixtures every module_utils unit test gets."""

from __future__ import annotations

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _port_mapping as pm


@pytest.fixture(scope="session")
def quiet_proc_net(tmp_path_factory) -> str:
    """A /proc/net of a host on which no socket serves a port: the socket tables with their header
    only, no sctp directory (the module not loaded)."""
    path = tmp_path_factory.mktemp("proc_net")
    for name in ("tcp", "tcp6", "udp", "udp6"):
        (path / name).write_text("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
    return str(path)


@pytest.fixture(autouse=True)
def _port_mapping_reads_no_real_sockets(monkeypatch, quiet_proc_net) -> None:
    """A port mapping's in-use check reads this fixture, not the machine's /proc/net: what happens to
    listen there cannot change a test's warnings (a test gives its own tables by setting proc_net)."""
    monkeypatch.setattr(pm.PortMappingResource, "proc_net", quiet_proc_net)
