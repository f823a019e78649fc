"""``_engine.run`` (the states, rendered, validation before gather) with a veth resource whose kernel
parts must not be reached (pure; no root, no kernel).

``current`` is handmade in the shape ``gather()`` returns, so these tests pin the semantics of
the states (merged / replaced / overridden / deleted), ownership, idempotence and the exact
command lines, without a kernel. Behaviour against a kernel is in tests/integration.

Run: ``.venv/bin/python -m pytest tests/unit -q``
"""

from __future__ import annotations

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _engine
from ansible_collections.linuxnet.bridge.plugins.module_utils._veth import (
    VethResource,
)

from .fixtures.netlink import FakeModule


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


class RunModule(FakeModule):
    def exit_json(self, **kwargs):
        raise ExitJson(kwargs)

    def fail_json(self, **kwargs):
        raise FailJson(kwargs)

    def warn(self, message):
        pass


class KernelForbidden(VethResource):
    """A resource whose kernel parts must not be reached."""

    def check_references(self, desired, state):
        raise AssertionError("rendered must not look at the host")

    def gather(self, desired, state):
        raise AssertionError("rendered must not look at the host")

    def apply(self, operations):
        raise AssertionError("rendered must not touch the host")


def test_engine_rendered_does_not_touch_the_host():
    config = [{"name": "v1", "peer_netns": "ns1", "addresses": ["10.0.0.2/24"]}]
    module = RunModule(state="rendered", config=config)
    with pytest.raises(ExitJson) as info:
        _engine.run(module, KernelForbidden(module))
    result = info.value.args[0]
    assert result["changed"] is False
    assert result["rendered"][0] == "ip link add v1 type veth peer name eth0 netns ns1"


def test_engine_validation_error_fails_before_gather():
    module = RunModule(state="merged", config=[{"name": "v1", "peer_netns": "ns1", "mtu": 67}])
    with pytest.raises(FailJson) as info:
        _engine.run(module, KernelForbidden(module))
    assert info.value.args[0]["msg"] == "config[0] (name=v1).mtu: MTU 67 is outside 68..65535"


@pytest.mark.parametrize("state", ["merged", "replaced", "overridden", "rendered"])
def test_engine_states_that_need_config(state):
    module = RunModule(state=state, config=None)
    with pytest.raises(FailJson) as info:
        _engine.run(module, KernelForbidden(module))
    assert info.value.args[0]["msg"].startswith("config:")
