# Copyright (c) linuxnet.bridge contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# Documentation: one file per filter, reachability.yml, listener.yml, matrix.yml, mismatches.yml.

from __future__ import annotations

from ansible_collections.linuxnet.bridge.plugins.module_utils._reachability import listener, matrix, mismatches, reachability


class FilterModule:
    def filters(self):
        return {"reachability": reachability, "listener": listener, "matrix": matrix, "mismatches": mismatches}
