"""The filter plugins ``deployment``, ``reachability`` and ``diagram`` (``mermaid``, ``tree``, ``dot``): the filters they declare, and
validation errors turned into filter errors (pure; no root, no kernel).

Run: ``.venv/bin/python -m pytest tests/unit/plugins/filter -q``
"""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.linuxnet.bridge.plugins.filter import deployment as deployment_filter
from ansible_collections.linuxnet.bridge.plugins.filter import diagram as diagram_filter
from ansible_collections.linuxnet.bridge.plugins.filter import reachability as reachability_filter

from ..module_utils.fixtures.topology import (
    BRIDGE,
    SEED_ENDPOINTS,
    SEED_NETWORKS,
    plan,
)


def test_filter_turns_validation_errors_into_filter_errors():
    filters = {}
    for module in (deployment_filter, reachability_filter, diagram_filter):
        assert not set(filters) & set(module.FilterModule().filters())
        filters.update(module.FilterModule().filters())
    assert set(filters) == {"deployment", "reachability", "listener", "matrix", "mismatches", "mermaid", "tree", "dot"}
    with pytest.raises(AnsibleFilterError, match=r"linuxnet_endpoints\[0\]\.networks\[0\]\.address: 10\.0\.0\.1 is outside"):
        filters["deployment"]([BRIDGE], [{"name": "a", "networks": [{"name": "bridge", "address": "10.0.0.1"}]}], [])
    assert filters["deployment"](SEED_NETWORKS, SEED_ENDPOINTS) == plan(SEED_NETWORKS, SEED_ENDPOINTS)
    with pytest.raises(AnsibleFilterError, match=r"^hosts\[0\]\.plan: must be a plan"):
        filters["dot"]([{"host": "h", "plan": None}])
    # the playbook passes '' for "no probe": nothing is drawn for it
    assert "probe/" not in filters["dot"]([{"host": "h", "plan": plan(SEED_NETWORKS, SEED_ENDPOINTS)}], "", "")
