#!/usr/bin/env bash
# `make docs`: the collection docsite (modules, role, filters, docs/docsite guides) as HTML with
# antsibull-docs and Sphinx, in .cache/docs/build/html (index.html). Offline: no intersphinx.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# LINUXNET_COLLECTIONS_PATH: document another copy of the collection (default: this checkout).
export PATH="$root/.venv/bin:$PATH" ANSIBLE_COLLECTIONS_PATH="${LINUXNET_COLLECTIONS_PATH:-$root/.collections}"
out=$root/.cache/docs
rm -rf "$out" && mkdir -p "$out" && chmod 755 "$out"   # antsibull-docs wants a directory only its owner writes
antsibull-docs sphinx-init --use-current --squash-hierarchy --fail-on-error --lenient --dest-dir "$out" \
    --project linuxnet.bridge --title "linuxnet.bridge" --copyright "linuxnet.bridge contributors" \
    linuxnet.bridge >/dev/null
# intersphinx would fetch inventories from the network; links to Ansible's own docs stay plain text.
echo 'intersphinx_mapping = {}' >> "$out/conf.py"
"$out/build.sh" >"$out/build.log" 2>&1 || { cat "$out/build.log" >&2; exit 1; }
# Sphinx warnings other than links into Ansible's own docs (not built here) are shown.
grep -E "WARNING|ERROR" "$out/build.log" | grep -v "undefined label: '\(common_return_values\|ansible_configuration_settings\|ansible_collections\.ansible\.\)" >&2 || true
echo "docsite: $out/build/html/index.html"
