"""Benchmark (not a test): how long the security-cloud program takes under mocks, and how big it is.

Runs the program under ``pulumi.runtime.set_mocks`` (as ``municloud cloud plan`` does) for:
the one-prefecture stack (security-cloud/tottori), the multi-prefecture stack
(security-cloud/okayama-tottori), and a synthetic 超広域 cloud of 7 prefectures (Tohoku + Niigata:
02, 03, 04, 05, 06, 07, 15) with 265 municipalities, whose inventories are generated into a
temporary directory with municloud's own model (valid codes with check digits, addresses inside
198.18.0.0/15 without overlaps) and validated by ``municloud.inventory.load``. Writes the figures
to benchmarks/cloud_plan.figures.md.

    .venv/bin/python benchmarks/cloud_plan.py [--repeat N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from municloud.cloud import policies, security_cloud, stacks
from municloud.cloud.mockrun import Graph, run_program
from municloud.inventory import check_digit, load

HERE = Path(__file__).resolve().parent
FIGURES = HERE / "cloud_plan.figures.md"

# Tohoku + Niigata: prefecture number -> (romaji, Japanese, municipalities); 265 in all.
SYNTHETIC = {
    "02": ("Aomori", "青森県", 40),
    "03": ("Iwate", "岩手県", 33),
    "04": ("Miyagi", "宮城県", 35),
    "05": ("Akita", "秋田県", 25),
    "06": ("Yamagata", "山形県", 35),
    "07": ("Fukushima", "福島県", 59),
    "15": ("Niigata", "新潟県", 38),
}


def code(first_five: str) -> str:
    return first_five + check_digit(first_five)


def synthetic_inventory(index: int, number: str, romaji: str, name_ja: str,
                        count: int) -> dict[str, Any]:
    """One prefecture: a /18 of 198.18.0.0/15; shared /24s first, then one /24 per municipality
    split into /26 segments."""
    block = list(ipaddress.IPv4Network("198.18.0.0/15").subnets(new_prefix=18))[index]
    s24 = list(block.subnets(new_prefix=24))
    shared = {"security_cloud": s24[0], "internet": s24[1], "lgwan_backbone": s24[2],
              "joint_cloud": s24[3]}
    assert count <= len(s24) - 4
    municipalities: dict[str, Any] = {}
    for i in range(count):
        segs = list(s24[4 + i].subnets(new_prefix=26))
        group = f"{romaji.lower()}_{i:02d}"
        m_code = code(f"{number}{201 + i:03d}")
        municipalities[group] = {
            "vars": {"municloud_municipality": {
                "code": m_code, "name_ja": f"{name_ja[:-1]}第{i + 1}市",
                "name_romaji": f"{romaji}-{i + 1:02d}",
                "model": ("alpha", "alpha_prime", "beta", "beta_prime")[i % 4],
                "segments": {"individual_number": str(segs[0]), "lgwan": str(segs[1]),
                             "internet": str(segs[2])},
            }},
            "hosts": {
                f"{group}-gw": {"municloud_role": "gateway",
                                "municloud_outside_address": f"100.64.{index}.{i + 1}",
                                "municloud_addresses": {
                    "individual_number": str(segs[0][1]), "lgwan": str(segs[1][1]),
                    "internet": str(segs[2][1]),
                    "security_cloud": str(shared["security_cloud"][20 + i]),
                    "lgwan_backbone": str(shared["lgwan_backbone"][20 + i])}},
                f"{group}-lgwan-term": {"municloud_role": "terminal", "municloud_addresses": {
                    "lgwan": str(segs[1][10])}},
            },
        }
    return {"all": {
        "vars": {"municloud_prefecture": {
            "code": code(f"{number}000"), "name_ja": name_ja, "name_romaji": romaji,
            "security_cloud": "tohoku-niigata",
            "shared_networks": {k: str(v) for k, v in shared.items()}}},
        "children": {
            "shared": {"hosts": {f"{romaji.lower()}-proxy": {
                "municloud_role": "proxy",
                "municloud_addresses": {"security_cloud": str(shared["security_cloud"][10]),
                                        "internet": str(shared["internet"][10])}}}},
            "municipalities": {"children": municipalities},
        },
    }}


def write_synthetic(root: Path) -> list[Path]:
    paths = []
    for index, (number, (romaji, name_ja, count)) in enumerate(SYNTHETIC.items()):
        path = root / romaji.lower()
        path.mkdir()
        (path / "hosts.yml").write_text(yaml.safe_dump(
            synthetic_inventory(index, number, romaji, name_ja, count), allow_unicode=True,
            sort_keys=False), encoding="utf-8")
        load(path)  # must be a valid inventory, by the project's own rules
        paths.append(path)
    return paths


def timed(label: str, run: Callable[[], Graph], repeat: int) -> dict[str, Any]:
    seconds, policy_seconds = [], []
    graph = None
    for _ in range(repeat):
        started = time.perf_counter()
        graph = run()
        seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        results = policies.run_policy_pack(graph.resources)
        policy_seconds.append(time.perf_counter() - started)
        assert all(r.passed for r in results), f"{label}: {[r.name for r in results]}"
    assert graph is not None and graph.cloud_resources
    row = {
        "stack": label,
        "prefectures": len({r.tags.get("municloud:prefecture") for r in graph.cloud_resources}
                           - {None}),
        "municipalities": len(graph.of_type("aws:ec2/vpnConnection:VpnConnection")),
        "resources": len(graph),
        "cloud": len(graph.cloud_resources),
        "components": sum(1 for r in graph if not r.custom),
        "mock_s": statistics.median(seconds),
        "mock_min_s": min(seconds),
        "policy_s": statistics.median(policy_seconds),
    }
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from municloud.cloud.engine import shared_analyzer

    shared_analyzer()  # started once, before any timing (as `pulumi preview` starts it once)
    rows = []
    for ref in ("security-cloud/tottori", "security-cloud/okayama-tottori"):
        stack = stacks.resolve(ref)
        rows.append(timed(ref, lambda stack=stack: stacks.run(stack), args.repeat))
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_synthetic(Path(tmp))
        config = {"aws:region": "ap-northeast-1", "municloud:networkFirewall": True,
                  "municloud:inventories": [str(p) for p in paths],
                  "municloud:vpnPreSharedKey": stacks.PLACEHOLDER}

        def synthetic() -> Graph:
            return run_program(lambda: security_cloud.program(tmp), config=config,
                               project="security-cloud", stack="tohoku-niigata",
                               secret_keys=["municloud:vpnPreSharedKey"])

        rows.append(timed("synthetic tohoku-niigata (7 prefectures)", synthetic, args.repeat))
    write_figures(rows, args.repeat)


def write_figures(rows: list[dict[str, Any]], repeat: int) -> None:
    from importlib.metadata import version

    lines = [
        "# Offline plan under mocks: resource counts and run time",
        "",
        "Written by `benchmarks/cloud_plan.py`. The security-cloud program run in-process under",
        "`pulumi.runtime.set_mocks` (no engine, no provider, no cloud), as `municloud cloud plan`",
        "and the unit tests run it; then the CrossGuard pack over the recorded graph, run by its",
        "own program over gRPC as the engine runs it (municloud/cloud/engine.py; the analyzer's",
        "start is not counted). Most of the pack's time is pulumi_policy deserialising every",
        "resource once per stack policy, as under the engine. This is not `pulumi preview` or",
        "`pulumi up` time: a real deployment is bounded by AWS APIs instead.",
        "",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: nproc {os.cpu_count()}, {platform.machine()}, "
        f"Python {platform.python_version()}, pulumi {version('pulumi')}, "
        f"pulumi-aws {version('pulumi-aws')}, pulumi-policy {version('pulumi-policy')}",
        f"- runs per stack: {repeat} (median and best shown); first run includes imports",
        "",
        "| stack | prefectures | municipalities (VPNs) | resources | cloud resources | "
        "components | mock run s (median) | mock run s (best) | policy pack s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {r['stack']} | {r['prefectures']} | {r['municipalities']} | {r['resources']} | "
              f"{r['cloud']} | {r['components']} | {r['mock_s']:.2f} | {r['mock_min_s']:.2f} | "
              f"{r['policy_s']:.2f} |" for r in rows]
    FIGURES.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {FIGURES}")


if __name__ == "__main__":
    main()
