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
    ITEM_OPTIONS,
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


def test_engine_rendered_warnings_go_through_module_warn():
    """Not exit_json(warnings=...), deprecated in ansible-core 2.19."""
    seen = []

    class Module(RunModule):
        def warn(self, message):
            seen.append(message)

    class Warns(KernelForbidden):
        def render(self, desired):
            self.warnings.append("something ignored")
            return super().render(desired)

    module = Module(state="rendered", config=[{"name": "v1", "peer_netns": "ns1"}])
    with pytest.raises(ExitJson) as info:
        _engine.run(module, Warns(module))
    assert seen == ["something ignored"]
    assert "warnings" not in info.value.args[0]


def test_engine_validation_error_fails_before_gather():
    module = RunModule(state="merged", config=[{"name": "v1", "peer_netns": "ns1", "mtu": 67}])
    with pytest.raises(FailJson) as info:
        _engine.run(module, KernelForbidden(module))
    assert info.value.args[0]["msg"] == "config[0] (name=v1).mtu: MTU 67 is outside 68..65535"


def fake_ansible_module(monkeypatch, seen: dict, **params) -> None:
    """AnsibleModule as _engine builds it: records its arguments, then acts as a RunModule."""
    from ansible.module_utils import basic

    class Module(RunModule):
        def __init__(self, argument_spec, supports_check_mode):
            seen.update(spec=argument_spec, check_mode=supports_check_mode)
            super().__init__(**params)

    monkeypatch.setattr(basic, "AnsibleModule", Module)


def test_main_is_a_resource_modules_whole_main(monkeypatch):
    seen: dict = {}
    fake_ansible_module(monkeypatch, seen, state="rendered", config=[{"name": "v1", "peer_netns": "ns1"}])
    with pytest.raises(ExitJson) as info:
        _engine.main(KernelForbidden, ITEM_OPTIONS)
    assert info.value.args[0]["rendered"][0] == "ip link add v1 type veth peer name eth0 netns ns1"
    assert seen == {"spec": _engine.config_argument_spec(ITEM_OPTIONS), "check_mode": True}
    assert "running_config" not in seen["spec"]  # parsed only where the module asks for it


def test_privileged_module_fails_at_once_without_root(monkeypatch):
    seen: dict = {}
    fake_ansible_module(monkeypatch, seen)
    spec = {"state": {"type": "str"}}
    monkeypatch.setattr(_engine, "missing_privilege", lambda: None)
    assert _engine.privileged_module(spec).params["state"] == "merged" and seen["spec"] is spec
    monkeypatch.setattr(_engine, "missing_privilege", lambda: "runs as nobody (uid 65534) without CAP_NET_ADMIN")
    with pytest.raises(FailJson) as info:
        _engine.privileged_module(spec)
    assert "needs root on the managed host: it runs as nobody" in info.value.args[0]["msg"]


@pytest.mark.parametrize("state", ["merged", "replaced", "overridden", "rendered"])
def test_engine_states_that_need_config(state):
    module = RunModule(state=state, config=None)
    with pytest.raises(FailJson) as info:
        _engine.run(module, KernelForbidden(module))
    assert info.value.args[0]["msg"].startswith("config:")
