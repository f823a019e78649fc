"""The hook the action puts into a module's wrapper so that Ansible's own module_utils go through the
host's bytecode cache too (issue 17).

That a real module run stores and runs Ansible's ``basic`` from the cache: the integration test
``tests/integration/test_persist.py`` (``test_ansible_module_utils_run_from_the_hosts_bytecode_cache``).
"""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from ansible_collections.linuxnet.bridge.plugins.module_utils import _zipimport
from ansible_collections.linuxnet.bridge.plugins.plugin_utils import _action
from ansible_collections.linuxnet.bridge.plugins.plugin_utils._prelude import PRELUDE, with_compile_once

from tests.unit.plugins.module_utils.test_zipimport import interpreters, version

# The shape of ansible-core's wrappers (2.16 to 2.20): the future import first, the function that
# unpacks the archive and runs the module, then the call.
WRAPPER = b'''#!/usr/bin/python3

from __future__ import annotations

import sys


def _ansiballz_main() -> None:
    sys.path.insert(0, sys.argv[1])
    import payload_module
    print(type(sys.path_importer_cache[sys.argv[1]]).__name__, payload_module.__loader__.__class__.__name__,
          "ansible_collections.linuxnet.bridge.plugins.module_utils._zipimport" in sys.modules,
          any(getattr(hook, "__qualname__", "").startswith("_linuxnet_bridge") for hook in sys.path_hooks))


if __name__ == "__main__":
    _ansiballz_main()
'''
UTILS = "ansible_collections/linuxnet/bridge/plugins/module_utils"


def _archive(tmp_path: Path, with_zipimport: bool = True) -> Path:
    """A payload-like archive: a module, and the collection's real _zipimport."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("payload_module.py", "VALUE = 1\n" * 200)  # (cached only from 1 KB on)
        if with_zipimport:
            archive.writestr(f"{UTILS}/_zipimport.py", Path(_zipimport.__file__).read_bytes())
    path = tmp_path / "payload.zip"
    path.write_bytes(out.getvalue())
    return path


def _run(tmp_path: Path, wrapper: bytes, archive: Path, python: str = sys.executable) -> str:
    script = tmp_path / "AnsiballZ_x.py"
    script.write_bytes(wrapper)
    done = subprocess.run([python, "-I", str(script), str(archive)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_prelude_goes_before_the_wrappers_main_function() -> None:
    wrapped = with_compile_once(WRAPPER)
    assert wrapped.count(PRELUDE) == 1
    assert wrapped.index(b"from __future__") < wrapped.index(PRELUDE) < wrapped.index(b"def _ansiballz_main(")
    compile(wrapped, "AnsiballZ_x.py", "exec")  # still one valid script (the future import first)


def test_the_wrapper_of_this_ansible_core_has_the_place_for_the_prelude() -> None:
    """(``make test-matrix`` runs this on ansible-core 2.16 to 2.20: the wrapper's code is
    ``_ANSIBALLZ_CODE`` from 2.19 on, the template ``ACTIVE_ANSIBALLZ_TEMPLATE`` before)"""
    from ansible.executor import module_common  # pylint: disable=import-outside-toplevel

    code = getattr(module_common, "_ANSIBALLZ_CODE", None) or module_common.ACTIVE_ANSIBALLZ_TEMPLATE
    assert with_compile_once(code.encode()).count(PRELUDE) == 1


def test_a_wrapper_of_another_shape_is_left_as_it_is() -> None:
    assert with_compile_once(WRAPPER.replace(b"def _ansiballz_main(", b"def main(")) == WRAPPER.replace(
        b"def _ansiballz_main(", b"def main(")
    twice = WRAPPER + b"\ndef _ansiballz_main():\n    pass\n"
    assert with_compile_once(twice) == twice


@pytest.mark.parametrize("python", interpreters())
def test_the_archive_is_imported_through_the_collections_zipimport(python: str, tmp_path: Path) -> None:
    """The wrapper's own imports from the archive go through CompileOnce (the bytecode cache), the hook
    is gone once it found the archive; without the prelude it is zipimport's own importer. Python 3.9
    (no zipimporter.find_spec) keeps zipimport's: the module's own compile_once() still runs later."""
    archive = _archive(tmp_path)
    expected = "CompileOnce CompileOnce True False" if version(python) >= (3, 10) else "zipimporter zipimporter False False"
    assert _run(tmp_path, with_compile_once(WRAPPER), archive, python) == expected
    assert _run(tmp_path, WRAPPER, archive, python) == "zipimporter zipimporter False False"


def test_an_archive_without_the_collections_zipimport_is_imported_as_before(tmp_path: Path) -> None:
    """(another collection's payload, or a broken one: the hook steps aside and stays, inert)"""
    assert _run(tmp_path, with_compile_once(WRAPPER), _archive(tmp_path, with_zipimport=False)) == \
        "zipimporter zipimporter False True"


def test_a_zipimport_that_fails_to_load_leaves_the_import_to_zipimport(tmp_path: Path) -> None:
    archive = tmp_path / "payload.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("payload_module.py", "VALUE = 1\n")
        out.writestr(f"{UTILS}/_zipimport.py", "raise RuntimeError('broken')\n")
    assert _run(tmp_path, with_compile_once(WRAPPER), archive) == "zipimporter zipimporter False True"


@dataclasses.dataclass(frozen=True)
class _Built:  # the fields of ansible-core 2.19's _BuiltModule the action reads
    b_module_data: bytes
    module_style: str


def test_the_action_gives_new_style_wrappers_the_prelude_in_both_shapes() -> None:
    built = _action._compiled_once((_Built(WRAPPER, "new"), "/m.py"))  # ansible-core 2.19 on
    assert PRELUDE in built[0].b_module_data and built[1] == "/m.py"
    assert _action._compiled_once((_Built(WRAPPER, "binary"), "/m.py"))[0].b_module_data == WRAPPER
    old = _action._compiled_once(("new", "#!/usr/bin/python3", WRAPPER, "/m.py"))  # 2.16 to 2.18
    assert old[:2] == ("new", "#!/usr/bin/python3") and PRELUDE in old[2] and old[3] == "/m.py"
    assert _action._compiled_once(("old", "#!/bin/sh", WRAPPER, "/m.py"))[2] == WRAPPER
