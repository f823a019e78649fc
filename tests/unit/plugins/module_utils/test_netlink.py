"""``_netlink``: pyroute2 feature detection (imported only when asked) and the socket cache (pure; no root, no kernel).

That the collection works with each pyroute2 Debian ships is proven on a real kernel by
tests/integration/test_pyroute2_versions.py; here: what is refused, and with which message.

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_netlink.py -q``
"""

from __future__ import annotations

import types

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _netlink


class Failed(Exception):
    pass


class Module:
    def fail_json(self, **kwargs):
        raise Failed(kwargs)


def test_the_installed_pyroute2_has_everything():
    iproute, rtnl_api, netns = _netlink._pyroute2()
    assert _netlink.missing_pyroute2_features((iproute, rtnl_api), netns) == []
    _netlink.require_pyroute2(Module())  # does not fail


def test_methods_count_on_any_of_the_classes():
    """0.9's IPRoute forwards its methods at runtime: finding them on RTNL_API is enough."""
    api = type("API", (), {name: lambda self: None for name in _netlink.IPROUTE_METHODS})
    assert _netlink.missing_pyroute2_features((type("Sync", (), {}), api), _netlink._pyroute2()[2]) == []


def test_an_old_pyroute2_is_refused_naming_the_minimum_and_what_it_lacks(monkeypatch):
    old_api = type("OldAPI", (), {name: lambda self: None for name in _netlink.IPROUTE_METHODS if name != "brport"})
    old_netns = types.SimpleNamespace(**{name: print for name in _netlink.NETNS_FUNCTIONS if name != "attach"})
    monkeypatch.setattr(_netlink, "_pyroute2", lambda: (old_api, None, old_netns))
    with pytest.raises(Failed) as failed:
        _netlink.require_pyroute2(Module())
    msg = failed.value.args[0]["msg"]
    assert "needs pyroute2 >= 0.5.14" in msg
    assert msg.endswith("(this one lacks IPRoute.brport, pyroute2.netns.attach)")
    assert "exception" not in failed.value.args[0]  # one message, no traceback


def test_netlink_forget_closes_the_namespace_socket(monkeypatch):
    from ansible_collections.linuxnet.bridge.plugins.module_utils import _netlink

    class Socket:
        closed = False

        def close(self):
            self.closed = True

    opened = []
    monkeypatch.setattr(_netlink._rtnl, "Reader", lambda: opened.append(Socket()) or opened[-1])
    nl = _netlink.Netlink()
    first = nl.sock(None)
    nl.forget(None)
    assert first.closed
    assert nl.sock(None) is not first and len(opened) == 2
    nl.forget("never-opened")  # nothing to close: no error


def test_importing_the_adapter_imports_no_pyroute2():
    """pyroute2 costs a quarter of a second to import: the adapters load it only when asked."""
    import subprocess
    import sys

    code = ("import sys; from ansible_collections.linuxnet.bridge.plugins.module_utils import _deployment, _links;"
            " print(sorted(m for m in sys.modules if m.startswith('pyroute2')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(sys.path)}).stdout
    assert out.strip() == "[]"
