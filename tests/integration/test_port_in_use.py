"""linuxnet.bridge.port_mapping on a host port a host service already listens on, and on host addresses
the host does not have, inside a lab host (backend iptables-nft), with real traffic.

Lab hosts ``linuxnet1`` (172.16.211.128) and ``outside`` (172.16.211.1); on ``linuxnet1``: bridge
``lnx-web`` 10.41.0.0/24 with the ``web`` namespace (10.41.0.2, ``http.server`` on 80 serving
"endpoint"), linuxnet.bridge.firewall for it, and a host service: ``http.server`` on 0.0.0.0:9000
(serving "host-service"), started by the test and stopped by itself after a bounded time.

* Publishing 9000 takes the host service's traffic from outside (the reviewer's finding, shown with
  packets); the converging run says so in a warning naming the field, port and socket; the re-run
  (changed=false) warns no more, while the host socket still listens (so the silence is not an
  absent listener).
* A host_ip that is not the host's (1.2.3.4) is a warning, not an error; a multicast or broadcast one
  is refused naming the field before anything changes.

Run (root): ``.venv/bin/python -m pytest tests/integration/test_port_in_use.py -q``
"""

from __future__ import annotations

import os
import sys
import time

import pytest

from tests.integration import helpers
from tests.lab.core import Lab
from tests.lab.playbook import run_playbook

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="lab hosts need root (namespaces, mounts)")

HOST, OUTSIDE, ADDR = helpers.HOST, helpers.OUTSIDE, helpers.ADDR
WEB = "10.41.0.2"
NETWORKS = [{"name": "web", "bridge": "lnx-web", "subnet": "10.41.0.0/24"}]
OPTIONS = helpers.BACKENDS["iptables-nft"]
LISTENER_SECONDS = 120  # the host service stops by itself after this, whatever happens to the test


def run(lab: Lab, *tasks: dict, ok: bool = True):
    return helpers.run(run_playbook, lab, *tasks, ok=ok)


def pm_task(config: list[dict], state: str = "merged") -> dict:
    return {"name": "pm", "linuxnet.bridge.port_mapping": {"state": state, "config": config, **OPTIONS}}


def http(traffic: helpers.Traffic, source: str, address: str) -> str:
    """What the server on ``address``:9000 answered a request from lab host ``source`` with ("" if none)."""
    result = traffic.probe(source, [(None, "http", address, 9000)], [True])[0]
    return result["reply"] if result["ok"] else ""


def listening(lab: Lab) -> bool:
    """Whether the host service's socket still listens on 0.0.0.0:9000 in the lab host."""
    return "0.0.0.0:9000" in helpers.sh(lab, "ss -Hltn 'sport = :9000'").stdout


def serve(traffic: helpers.Traffic, workdir, netns: str | None, port: int, text: str) -> None:
    site = workdir / f"site-{netns or 'host'}"
    site.mkdir()
    (site / "index.html").write_text(text + "\n")
    server = [sys.executable, "-u", "-m", "http.server", str(port), "--bind", "0.0.0.0", "--directory", str(site)]
    traffic.spawn(HOST, netns, server, f"http-{netns or 'host'}", seconds=LISTENER_SECONDS)


def test_a_published_port_a_host_service_listens_on_is_a_warning_once(tmp_path, real_netns_guard):
    lab = Lab.create(tmp_path / "lab", helpers.HOSTS)
    traffic = helpers.Traffic(lab, tmp_path)
    try:
        helpers.make_endpoints(lab, {"lnx-web": "10.41.0.1/24"}, {"web": ("lnx-web", WEB)})
        helpers.sh(lab, "echo 1 > /proc/sys/net/ipv4/ip_forward")
        helpers.sh(lab, f"ip route add 10.41.0.0/24 via {ADDR}", host=OUTSIDE)
        run(lab, helpers.fw_task("firewall", NETWORKS, backend="iptables-nft"))
        serve(traffic, tmp_path, "web", 80, "endpoint")
        serve(traffic, tmp_path, None, 9000, "host-service")
        deadline = time.monotonic() + 10
        while "host-service" not in http(traffic, OUTSIDE, ADDR):
            assert time.monotonic() < deadline, "the host service did not start"
            time.sleep(0.1)

        # bad host addresses: refused naming the field, nothing written
        for bad in ("224.0.0.1", "255.255.255.255"):
            failed = helpers.res(run(lab, pm_task([{"bridge": "lnx-web", "container_ip": WEB, "publish": f"{bad}:9100:80"}]),
                                     ok=False), "pm")
            assert failed.get("failed") and "config[0] (bridge=lnx-web).publish:" in failed["msg"], failed
            assert "multicast, broadcast or 0.0.0.0/8 address" in failed["msg"], failed
        assert helpers.sh(lab, "cat /run/linuxnet/port_mapping/LINUXNET.json 2>/dev/null || true").stdout == ""

        config = [{"bridge": "lnx-web", "container_ip": WEB, "publish": "9000:80"},
                  {"bridge": "lnx-web", "container_ip": WEB, "host_ip": "1.2.3.4", "host_port": "9100", "container_port": "80"}]
        first = helpers.res(run(lab, pm_task(config)), "pm")
        assert first["changed"]
        not_here = ("config[1] (bridge=lnx-web).host_ip: 1.2.3.4 is not an address of this host now: the published "
                    "port takes no traffic until it is (fine for a virtual address that keepalived/VRRP adds later)")
        assert first.get("warnings") == [  # (check_references' warning comes before plan's)
            not_here,
            "config[0] (bridge=lnx-web).host_port: port 9000/tcp is in use on this host (a listening socket on "
            "0.0.0.0): the published port 0.0.0.0:9000/tcp -> 10.41.0.2 takes its traffic (that service no longer "
            "answers from outside); publish another host port or move the service",
        ], first.get("warnings")
        # what the warning says, in packets: outside gets the endpoint (and so does the host itself, through
        # the OUTPUT jump), while the host socket still listens
        assert "endpoint" in http(traffic, OUTSIDE, ADDR)
        assert listening(lab)

        again = helpers.res(run(lab, pm_task(config)), "pm")
        assert not again["changed"] and again["commands"] == []
        assert again.get("warnings") == [not_here], again.get("warnings")  # no in-use warning for our own mapping
        assert listening(lab), "the listener stopped: the re-run proved nothing"
    finally:
        traffic.stop()
        lab.destroy()
