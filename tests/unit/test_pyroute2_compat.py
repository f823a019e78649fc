"""pyroute2 feature detection of ``_netlink`` (pure; no root, no kernel).

That the collection works with each pyroute2 Debian ships is proven on a real kernel by
tests/integration/test_pyroute2_versions.py; here: what is refused, and with which message.

Run: ``.venv/bin/python -m pytest tests/unit/test_pyroute2_compat.py -q``
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

_COLLECTIONS = str(Path(__file__).resolve().parents[2] / ".collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

from ansible_collections.linuxnet.bridge.plugins.module_utils import _netlink  # noqa: E402


class Failed(Exception):
    pass


class Module:
    def fail_json(self, **kwargs):
        raise Failed(kwargs)


def test_the_installed_pyroute2_has_everything():
    assert _netlink.missing_pyroute2_features((_netlink.IPRoute, _netlink.RTNL_API), _netlink.pyroute2_netns) == []
    _netlink.require_pyroute2(Module())  # does not fail


def test_methods_count_on_any_of_the_classes():
    """0.9's IPRoute forwards its methods at runtime: finding them on RTNL_API is enough."""
    api = type("API", (), {name: lambda self: None for name in _netlink.IPROUTE_METHODS})
    assert _netlink.missing_pyroute2_features((type("Sync", (), {}), api), _netlink.pyroute2_netns) == []


def test_an_old_pyroute2_is_refused_naming_the_minimum_and_what_it_lacks(monkeypatch):
    old_api = type("OldAPI", (), {name: lambda self: None for name in _netlink.IPROUTE_METHODS if name != "brport"})
    old_netns = types.SimpleNamespace(**{name: print for name in _netlink.NETNS_FUNCTIONS if name != "attach"})
    monkeypatch.setattr(_netlink, "IPRoute", old_api)
    monkeypatch.setattr(_netlink, "RTNL_API", None)
    monkeypatch.setattr(_netlink, "pyroute2_netns", old_netns)
    with pytest.raises(Failed) as failed:
        _netlink.require_pyroute2(Module())
    msg = failed.value.args[0]["msg"]
    assert "needs pyroute2 >= 0.5.14" in msg
    assert msg.endswith("(this one lacks IPRoute.brport, pyroute2.netns.attach)")
    assert "exception" not in failed.value.args[0]  # one message, no traceback
