"""The report's issue-17 SSH rows: linuxnet-ssh against netavark-ssh when measured, else the lab's netavark."""

from __future__ import annotations

from tests.bench import report


def _run(peer: str, n: int, converge: float, teardown: float = 1.0) -> dict:
    return {"peer": peer, "n": n, "variant": "full", "rep": 1, "state": {},
            "phases": {"converge": {"wall": converge}, "teardown": {"wall": teardown}}}


def _ssh_row(results: dict, n: int) -> str:
    rows = [ln for ln in report._targets17(results) if ln.startswith(f"| over SSH (booted machine), N={n} ")]
    assert len(rows) == 1, rows
    return rows[0]


def test_ssh_target_uses_netavark_on_the_machine_when_measured() -> None:
    results = {"runs": [_run("linuxnet-ssh", 10, 4.0), _run("netavark", 10, 1.0), _run("netavark-ssh", 10, 2.0)]}
    assert report.ssh_netavark(results, 10)[0] == 2.0
    row = _ssh_row(results, 10)
    assert "4.00 s vs 2.00 s: 2.00×" in row and "same booted machine" in row and "**missed**" in row


def test_ssh_target_falls_back_to_the_namespace_lab_netavark() -> None:
    results = {"runs": [_run("linuxnet-ssh", 100, 2.0), _run("netavark", 100, 10.0), _run("netavark-ssh", 10, 2.0)]}
    assert report.ssh_netavark(results, 100) == (10.0, "netavark in the namespace lab")
    row = _ssh_row(results, 100)
    assert "2.00 s vs 10.0 s: 0.20×" in row and "namespace lab" in row and row.endswith("| met |")


def test_render_shows_netavark_ssh_columns() -> None:
    results = {"runs": [_run("linuxnet-ssh", 10, 4.0, 3.0), _run("netavark-ssh", 10, 2.0, 2.0)]}
    results["runs"][1]["managed_host"] = {"netavark": "1.4.0-3", "ssh_true_s": "0.40"}
    md = report.render_md(results)
    assert "netavark 1.4.0-3" in md and "sudo -n true` to the machine took 0.40 s" in md
    assert "linuxnet-ssh / netavark-ssh, both on the booted machine (converge / teardown)" in md
    assert "| – / – | 2.00× / 1.50× |" in md  # the last column of the ratios table
    assert "| 10 | converge | – | **4.00** | – | – | – | – | 2.00 | 2.00× |" in md
    assert "netavark-ssh" in report.render_svg(results)


def test_rerun_target_names_what_loading_the_variables_costs() -> None:
    """The judged difference stays re-run - bare; the cost of loading the variables is shown next to it."""
    def run(rerun: float, bare: float, bare_vars: float | None) -> dict:
        r = _run("linuxnet", 100, 2.0)
        r["phases"].update({"rerun": {"wall": rerun}, "bare": {"wall": bare}})
        if bare_vars is not None:
            r["phases"]["bare_vars"] = {"wall": bare_vars}
        return r

    rows = [ln for ln in report._targets17({"runs": [run(2.0, 1.0, 1.25)]}) if "N=100 no-change re-run" in ln]
    assert len(rows) == 1 and "+1.00 s (+1.00)" in rows[0] and "`-e @vars`): +0.25 s" in rows[0], rows
    assert rows[0].endswith("| met |")
    older = [ln for ln in report._targets17({"runs": [run(2.5, 1.0, None)]}) if "N=100 no-change re-run" in ln]
    assert "-e @vars" not in older[0] and older[0].endswith("| **missed** |"), older
