#!/usr/bin/env bash
# `make test-matrix`: ansible-test sanity and the unit tests on every supported controller
# ansible-core, one venv each under .cache/matrix (made once, remade when this file changes).
# LINUXNET_MATRIX="2.18 2.20" runs only those. Prints one line per version and a closing total.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
versions=${LINUXNET_MATRIX:-2.16 2.17 2.18 2.19 2.20}
# Test tools at the pins of the developer requirements.
pin() { grep -E "^$1==" "$root/requirements.txt" "$root/requirements-dev.txt" | head -1 | cut -d: -f2; }
tools=("$(pin pytest)" "$(pin pyroute2)")

# The controller Python of each ansible-core: 2.16/2.17 run on 3.10-3.12, 2.18/2.19 on 3.11-3.13,
# 2.20 on 3.12-3.14.
python_for() {
    local want
    case $1 in 2.16|2.17|2.18|2.19) want=3.11 ;; *) want=3.12 ;; esac
    for p in "python$want" ~/.pyenv/versions/"$want".*/bin/python"$want" /usr/bin/python"$want"; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import venv, ensurepip' 2>/dev/null; then command -v "$p"; return; fi
    done
    echo "ansible-core $1 needs Python $want (with venv): install python$want (apt: python$want-venv, or pyenv)" >&2
    return 1
}

# A venv is remade when this script or the tools' pins change (not for other developer tools).
stamp_want=$(printf '%s\n' "${tools[@]}" | cat "$0" - | sha256sum | cut -d' ' -f1)
passed=0 failed=0 summary=()
for v in $versions; do
    venv=$root/.cache/matrix/ansible-core-$v
    start=$SECONDS
    if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp_want" ]; then
        rm -rf "$venv"
        py=$(python_for "$v") || { failed=$((failed + 1)); summary+=("ansible-core $v: FAILED (no Python)"); continue; }
        echo "== ansible-core $v: venv with $("$py" --version)"
        "$py" -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "ansible-core==$v.*" "${tools[@]}"
        echo "$stamp_want" > "$venv/.stamp"
    fi
    core=$("$venv/bin/python" -c 'from ansible.release import __version__ as v; print(v)')
    echo "== ansible-core $core ($("$venv/bin/python" --version)): unit tests"
    rc=0
    "$venv/bin/python" -m pytest -p no:cacheprovider -q tests/unit </dev/null || rc=1
    echo "== ansible-core $core: ansible-test sanity"
    PATH="$venv/bin:$PATH" SANITY_DIR="$root/.cache/matrix/sanity-$v" tests/tools/sanity.sh </dev/null || rc=1
    took=$((SECONDS - start))
    if [ $rc = 0 ]; then passed=$((passed + 1)); summary+=("ansible-core $core: ok (${took} s)")
    else failed=$((failed + 1)); summary+=("ansible-core $core: FAILED (${took} s)"); fi
done
printf '%s\n' "${summary[@]}"
echo "matrix: $passed passed, $failed failed"
[ "$failed" = 0 ]
