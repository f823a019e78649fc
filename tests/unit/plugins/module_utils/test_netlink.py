"""``_netlink``: the socket cache, and that no module needs pyroute2 (pure; no root, no kernel).

That the role and modules work on a managed host without pyroute2 is proven on a real kernel by
tests/integration/test_without_pyroute2.py.

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_netlink.py -q``
"""

from __future__ import annotations

from ansible_collections.linuxnet.bridge.plugins.module_utils import _netlink


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


def test_no_module_imports_pyroute2():
    """pyroute2 is no requirement (and costs a quarter of a second to import): no module or module_util loads it."""
    import subprocess
    import sys
    from pathlib import Path

    plugins = Path(_netlink.__file__).resolve().parents[1]
    names = [f"plugins.{p.parent.name}.{p.stem}" for d in ("module_utils", "modules") for p in sorted((plugins / d).glob("*.py"))
             if p.stem != "__init__"]
    code = ("import importlib, sys; [importlib.import_module('ansible_collections.linuxnet.bridge.' + n) for n in sys.argv[1:]];"
            " print(sorted(m for m in sys.modules if m.startswith('pyroute2')))")
    out = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": ":".join(sys.path)}).stdout
    assert out.strip() == "[]"
