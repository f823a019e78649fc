"""Benchmarks of issue 7: linuxnet against netavark, a naive playbook and the kernel floor.

Run as root from the repository root: ``.venv/bin/python -m tests.bench --sizes 10,100[,1000]``
(``make bench-quick`` / ``make bench``). Results go to ``bench/results/``. See ``README.md``.
"""
