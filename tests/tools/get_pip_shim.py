"""Stand-in for the get-pip bootstrap script ansible-test downloads from ci-files.testing.ansible.com,
which our CI machines cannot reach (only package registries are). It bootstraps pip with the
standard library's ensurepip, then lets pip install what ansible-test asked for, from PyPI.

ansible-test runs pip with PIP_CONFIG_FILE=/dev/null, so the machine's pip.conf (which names the
CA bundle of the registry proxy) is ignored; environment variables still count, so this
ansible-test venv gets a sitecustomize that points PIP_CERT at the system bundle.
"""

from __future__ import annotations

import ensurepip
import os
import subprocess
import sys
import sysconfig

BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

ensurepip.bootstrap(upgrade=True)
if os.path.exists(BUNDLE) and sys.prefix != sys.base_prefix:
    with open(os.path.join(sysconfig.get_paths()["purelib"], "sitecustomize.py"), "w", encoding="utf-8") as handle:
        handle.write(f"import os\nos.environ.setdefault('PIP_CERT', {BUNDLE!r})\n")
    os.environ.setdefault("PIP_CERT", BUNDLE)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args))
