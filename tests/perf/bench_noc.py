"""Benchmark of the NOC alerting (issue 14).

Default mode (no lab needed): the yenbai topology's generated rules (105 sites) evaluated by a
real Prometheus on 127.0.0.1, fed with synthetic probe and OSPF series (a tenth of the sites
down, so the behind-counts and the inhibitors have work), at the production evaluation interval;
the group's evaluation time is read from Prometheus's own
``prometheus_rule_group_last_duration_seconds`` (median and worst of the samples), printed
beside the evaluation interval.

``--drill N`` (the lead runs it, against a converged lab): N cuts of a single-path commune's
circuit (mau-a), each measured from the cut to the webhook receiver's arrival time on the
monitoring host, with the production intervals; median and worst beside the budget's arithmetic.

    python tests/perf/bench_noc.py [--samples 6] [--inventory inventory/yenbai]
    python tests/perf/bench_noc.py --drill 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script: tests.* from the repository

from tests.exporters.fleet import free_port  # noqa: E402
from tests.exporters.procs import kill_pid  # noqa: E402

from dcops.inventory.loader import load_inventory  # noqa: E402
from dcops.noc import PRODUCTION, rules  # noqa: E402


def _get(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=15) as r:
        return json.loads(r.read())


def rule_eval(inv_dir: Path, samples: int) -> None:
    inv = load_inventory(inv_dir)
    fs = rules.facts(inv)
    down = {f.name for i, f in enumerate(fs) if i % 10 == 5}
    body = "".join(
        f'probe_success{{site="{f.name}",instance="{f.target}"}} {0 if f.name in down else 1}\n'
        f'dcops_frr_ospf_neighbours_full{{site="{f.name}"}} {f.circuits}\n'
        for f in fs
    ).encode()

    class Series(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Series)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    iv = PRODUCTION.evaluation_interval
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        rendered = rules.render(inv)
        (d / "topology.rules.yml").write_text(rules.dump(rendered))
        n_rules = len(rendered["groups"][0]["rules"])
        port = free_port("127.0.0.1")
        import yaml

        (d / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": f"{PRODUCTION.scrape_interval}s", "evaluation_interval": f"{iv}s"},
            "rule_files": [str(d / "topology.rules.yml")],
            "scrape_configs": [
                {"job_name": "dcops-icmp", "honor_labels": True,
                 "static_configs": [{"targets": [f"127.0.0.1:{srv.server_address[1]}"]}]},
                {"job_name": "prometheus", "scrape_interval": f"{iv}s",
                 "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
            ],
        }))
        log = (d / "prometheus.log").open("w")
        p = subprocess.Popen([str(shutil.which("prometheus")), f"--config.file={d / 'prometheus.yml'}",
                              f"--storage.tsdb.path={d / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                              "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=log)
        try:
            base = f"http://127.0.0.1:{port}"
            q = urllib.parse.quote('prometheus_rule_group_last_duration_seconds{rule_group=~".*;dcops-topology"}')
            seen: dict[float, float] = {}
            deadline = time.monotonic() + (samples + 4) * iv + 30
            while len(seen) < samples and time.monotonic() < deadline:
                try:
                    for r in _get(f"{base}/api/v1/query?query={q}")["data"]["result"]:
                        ts, v = r["value"]
                        if float(v) > 0:
                            seen[float(ts)] = float(v)
                except OSError:
                    pass
                time.sleep(iv / 2)
            # the series only changes once per scrape of Prometheus itself: keep distinct values' samples
            sel = 'prometheus_rule_group_last_duration_seconds{rule_group=~".*;dcops-topology"}'
            q2 = urllib.parse.quote(f"{sel}[{samples * iv * 2}s]")
            vals = [float(v) for r in _get(f"{base}/api/v1/query?query={q2}")["data"]["result"] for _, v in r["values"]
                    if float(v) > 0]
            check = _get(f"{base}/api/v1/query?query={urllib.parse.quote('count(dcops:site_info)')}")["data"]["result"]
        finally:
            kill_pid(p)
            log.close()
            srv.shutdown()
    if not vals:
        sys.exit("no prometheus_rule_group_last_duration_seconds samples (see Prometheus's log)")
    print(f"topology rules of {inv_dir.name}: {len(fs)} sites on the data network, {n_rules} rules in one group, "
          f"{len(down)} sites down; dcops:site_info series: {check[0]['value'][1] if check else '?'}")
    print(f"rule group evaluation time (prometheus_rule_group_last_duration_seconds, {len(vals)} samples): "
          f"median {statistics.median(vals) * 1000:.2f} ms, worst {max(vals) * 1000:.2f} ms "
          f"— evaluation interval {iv} s ({statistics.median(vals) / iv * 100:.3f} % of it)")


def drill(n: int) -> None:
    from dcops import DEFAULT_INVENTORY, lab_dir
    from dcops.inventory import load

    inv = load(DEFAULT_INVENTORY).inventory
    mon = next(h for _, h in inv.hosts() if "monitoring" in h.roles)
    dc = [sys.executable, "-c", "from dcops.cli import main; main()"]
    ssh = ["ssh", "-F", str(lab_dir(inv.province.code) / "ssh_config"), mon.name]
    am = f"http://{mon.management}:9093"

    def notes(since: float) -> list[dict[str, Any]]:
        code = ("import urllib.request,sys;"
                f"sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:9099/notifications?since={since}').read().decode())")
        out = subprocess.run([*ssh, f'python3 -c "{code}"'], capture_output=True, text=True, timeout=30, check=True).stdout
        return [x for x in json.loads(out) if x["path"] == "/alerts" and x["payload"]["status"] == "firing"
                and any(a["labels"].get("site") == "mau-a" for a in x["payload"]["alerts"])]

    def critical_active() -> bool:
        return any(a["labels"].get("site") == "mau-a" and a["labels"].get("severity") == "critical"
                   for a in _get(f"{am}/api/v2/alerts"))

    lat: list[float] = []
    for i in range(n):
        while critical_active():  # the previous drill's alert resolved first
            time.sleep(2)
        t0 = time.time()
        subprocess.run([*dc, "lab", "drill", "link-down", "van-yen", "mau-a"], check=True, capture_output=True, timeout=60)
        try:
            deadline = time.monotonic() + 180
            got: list[dict[str, Any]] = []
            while not got and time.monotonic() < deadline:
                got = notes(t0)
                time.sleep(0.5)
            if not got:
                sys.exit(f"drill {i + 1}: no notification within 180 s")
            lat.append(got[0]["received_at"] - t0)
            print(f"drill {i + 1}: circuit van-yen--mau-a cut -> webhook {lat[-1]:.1f} s", flush=True)
        finally:
            subprocess.run([*dc, "lab", "drill", "link-up", "van-yen", "mau-a"], check=True, capture_output=True, timeout=60)
    p = PRODUCTION
    print(f"link cut -> notification over {n} drills: median {statistics.median(lat):.1f} s, worst {max(lat):.1f} s")
    print(f"budget: scrape {p.scrape_interval} + probe timeout {p.probe_timeout} + evaluation {p.evaluation_interval} "
          f"+ for {p.site_for} + group_wait {p.group_wait} = {p.budget()} s (target 60 s); "
          f"floor for + group_wait = {p.floor()} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inventory", type=Path, default=ROOT / "inventory" / "yenbai")
    ap.add_argument("--samples", type=int, default=6)
    ap.add_argument("--drill", type=int, default=0, help="run N link-cut drills against the lab instead")
    a = ap.parse_args()
    if a.drill:
        drill(a.drill)
    else:
        rule_eval(a.inventory, a.samples)


if __name__ == "__main__":
    main()
