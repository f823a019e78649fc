"""What outlives one plan in a module process (pure; no root, no kernel).

A module process normally runs one plan, but the module utils are also a library: ``deployment_info``
plans every resource through ``_engine.predict``, the boot-time restore and the tests plan several
times in one process. What is read from the host (dumps, rulesets, files) therefore lives in objects
of one run (``Netlink``, the resources, the deployment's shared tables) and never in module state.
The module-level caches that exist hold pure functions of their key; this test lists each with the
reason it cannot go stale, and fails on a new one until it is made per-run or listed here.

Run: ``.venv/bin/python -m pytest tests/unit/plugins/module_utils/test_process_state.py -q``
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _iptables, _port_mapping
from ansible_collections.linuxnet.bridge.plugins.module_utils._fwmodel import Rule
from ansible_collections.linuxnet.bridge.plugins.module_utils._netns import NetnsResource
from ansible_collections.linuxnet.bridge.plugins.module_utils._validate import ValidationError

from .fixtures.netlink import FakeModule

PLUGINS = Path(_iptables.__file__).resolve().parents[1]

# (file, name) -> why it cannot go stale when one process runs several plans
SAFE = {
    ("module_utils/_iptables.py", "_RENDERED"): "the text of a (rule, family): rules are immutable values, KINDS constant;"
                                                " bounded (emptied when it holds RENDERED_MAX)",
    ("module_utils/_fwmodel.py", "regex"): "cached_property: a template's compiled pattern, from its constant text",
    ("module_utils/_iptables.py", "_BY_TARGET"): "an index of KINDS by rule shape (first token, target), built again"
                                                 " when KINDS is another object; bounded (SHAPES_MAX shapes)",
    ("module_utils/_port_mapping.py", "_RANGES"): "the (first, last) of a valid port text; invalid ones are not stored;"
                                                  " bounded (emptied when it holds RANGES_MAX)",
    ("module_utils/_topology.py", "_network"): "lru_cache: the ipaddress object of a subnet text",
    ("module_utils/_validate.py", "_address"): "lru_cache (bounded, ADDRESS_CACHE): the ipaddress object of an address text;"
                                               " a text that fails raises and is not stored",
    ("module_utils/_validate.py", "_interface"): "lru_cache (bounded, ADDRESS_CACHE): the ipaddress object of an"
                                                 " address/prefix text; a text that fails raises and is not stored",
    ("module_utils/_netlink.py", "_libc"): "global: the C library handle",
    ("module_utils/_links.py", "ENCODERS"): "a registry of encoders, filled at import",
    ("module_utils/_links.py", "LINK_OPERATIONS"): "a registry of operations, filled at import",
    ("module_utils/_netns.py", "NETNS_OPERATIONS"): "a registry of operations, filled at import",
    ("module_utils/_zipimport.py", "compiled"): "code the imports compiled, held until keep_compiled() writes it to the"
                                                " bytecode cache (emptied then); the code of a source, keyed by its digest",
}

_CACHES = ("cache", "lru_cache", "cached_property")


def _empty_container(node: ast.AST | None) -> bool:
    """A value that starts empty to be filled later: {}, [], set(), dict(), list(), a Vocabulary."""
    if isinstance(node, ast.Dict):
        return not node.keys
    if isinstance(node, (ast.List, ast.Set)):
        return not node.elts
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id == "Vocabulary" or (node.func.id in ("dict", "list", "set", "defaultdict") and not node.args)
    return False


def process_state() -> set[tuple[str, str]]:
    """(file, name) of every module-level or class-level container that starts empty, every name
    bound by a ``global`` statement and every cached function in plugins/module_utils and plugins/modules."""
    found: set[tuple[str, str]] = set()
    for path in sorted([*PLUGINS.glob("module_utils/*.py"), *PLUGINS.glob("modules/*.py")]):
        where = str(path.relative_to(PLUGINS))
        tree = ast.parse(path.read_text())
        bodies = [tree.body] + [node.body for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
        for node in (node for body in bodies for node in body):
            if isinstance(node, ast.Assign) and _empty_container(node.value):
                found |= {(where, ast.unparse(target)) for target in node.targets}
            elif isinstance(node, ast.AnnAssign) and _empty_container(node.value):
                found.add((where, ast.unparse(node.target)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                found |= {(where, name) for name in node.names}
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for decorator in node.decorator_list:
                    target = decorator.func if isinstance(decorator, ast.Call) else decorator
                    if ast.unparse(target).rsplit(".", 1)[-1] in _CACHES:
                        found.add((where, node.name))
    return found


def test_every_process_lifetime_cache_is_listed_with_why_it_cannot_go_stale():
    found = process_state()
    unlisted = sorted(found - set(SAFE))
    assert not unlisted, (f"module or class state that outlives one plan: {unlisted}; keep it in an object of the run"
                          " (Netlink, the resource) or add it to SAFE with the reason it cannot go stale")
    assert sorted(set(SAFE) - found) == [], "SAFE lists state that is gone: drop it from the list"


def test_the_listed_caches_answer_as_the_function_they_spare():
    rule = Rule.of("return")
    assert _iptables.render_rule(rule) == _iptables.render_rule(rule) == _iptables.KINDS["return"].render({})
    assert _port_mapping.port_range("8000-8010", "f") == (8000, 8010)
    for _attempt in range(2):  # a refused value is refused again (nothing of it is kept)
        with pytest.raises(ValidationError, match="reversed"):
            _port_mapping.port_range("9-8", "f")


def test_a_netns_resource_planning_twice_shows_the_second_config():
    """The hosts of a namespace shown folded (own entries plus group names) are those of the config
    planned last: a second normalize on the same object keeps nothing of the first."""
    group = {"name": "net", "hosts": [{"ip": "172.18.0.2", "names": ["a"]}, {"ip": "172.18.0.3", "names": ["b"]}]}
    res = NetnsResource(FakeModule(host_groups=[group]))
    first = res.normalize([{"name": "a", "host_groups": ["net"]}], "merged")[0]
    assert res.public(first) == {"name": "a", "hosts": [], "host_groups": ["net"]}
    res.params["host_groups"] = []
    second = res.normalize([{"name": "a", "hosts": group["hosts"]}], "merged")[0]
    assert res.public(second) == {"name": "a", "hosts": group["hosts"]}
