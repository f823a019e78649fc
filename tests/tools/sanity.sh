#!/usr/bin/env bash
# ansible-test sanity needs the collection under ansible_collections/<namespace>/<name>: copy the
# tracked files there and run it with the venv's Python (no containers on our CI machines).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# Managed hosts may run Python 3.9 (Debian 11): nothing newer in plugins/ (vermin and an AST check).
"${PYTHON:-$root/.venv/bin/python}" tests/tools/python_floor.py
# ansible-test bootstraps pip in its venvs with a script from ci-files.testing.ansible.com, which
# is out of reach here: put a stand-in where it looks first (its cache).
# (The ansible-test on PATH first: make test-matrix runs this with each ansible-core's venv; before
# 2.18 the version is in _internal/python_requirements.py.)
pip_version=$(python3 -c 'from ansible_test._util.target.setup.requirements import PIP_VERSION as v; print(v)' 2>/dev/null \
    || python3 -c 'import ansible_test, pathlib, re; print(re.search(r"pip=.([0-9.]+).", (pathlib.Path(ansible_test.__file__).parent / "_internal/python_requirements.py").read_text())[1])' 2>/dev/null \
    || python3 -c 'import sys; sys.path.insert(0, "'"$PWD"'/.venv/lib/python3.11/site-packages"); from ansible_test._util.target.setup.requirements import PIP_VERSION as v; print(v)' 2>/dev/null || echo 24.2)
mkdir -p ~/.ansible/test/cache
cp "$root/tests/tools/get_pip_shim.py" ~/.ansible/test/cache/get_pip_${pip_version//./_}.py
# SANITY_DIR: a copy of its own per run (make test-matrix gives each ansible-core one).
sanity_dir=${SANITY_DIR:-.cache/sanity}
dest=$sanity_dir/ansible_collections/linuxnet/bridge
rm -rf "$sanity_dir" && mkdir -p "$dest"
# Tracked and untracked files as they are in the work tree (a file deleted or moved but not yet
# staged is still in the index: skip what is gone).
git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done \
    | xargs -0 cp --parents -t "$dest"
cd "$dest"
# ansible-test lists the collection's files with git.
git init -q . && git add -A && git -c user.email=ci@localhost -c user.name=ci commit -qm sanity
# Tests needing tools that are not installed (pylint, shellcheck, ...) are skipped by ansible-test
# with a message; everything it can run must pass.
exec ansible-test sanity --python "$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')" \
    --requirements --color no "$@"
