"""The benchmarks' own generators make what they claim (the benchmarks are not run here: they
time things, and timings belong in their figures files, not in tests)."""

from __future__ import annotations

import importlib.util
import ipaddress
import sys
from pathlib import Path
from types import ModuleType

from municloud.inventory import load

REPO = Path(__file__).resolve().parents[2]


def benchmark(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_the_synthetic_wide_area_cloud_is_seven_valid_disjoint_prefectures(tmp_path: Path) -> None:
    cloud_plan = benchmark("cloud_plan")
    paths = cloud_plan.write_synthetic(tmp_path)
    prefectures = [load(p) for p in paths]
    assert len(prefectures) == len(cloud_plan.SYNTHETIC) == 7
    assert sum(len(p.municipalities) for p in prefectures) == sum(
        count for _, _, count in cloud_plan.SYNTHETIC.values()) == 265
    assert {p.security_cloud for p in prefectures} == {"tohoku-niigata"}
    ranges = [seg.cidr for p in prefectures for m in p.municipalities
              for seg in m.segments.values()]
    collapsed = list(ipaddress.collapse_addresses(ranges))
    assert sum(n.num_addresses for n in collapsed) == sum(r.num_addresses for r in ranges)
    outside = [m.gateway.outside_address for p in prefectures for m in p.municipalities]
    assert len(set(outside)) == len(outside)


def test_the_scale_benchmark_counts_the_hosts_the_model_has() -> None:
    scale = benchmark("scale")
    for name in ("sample", "okayama"):
        inventory = REPO / "inventories" / name
        prefecture = load(inventory)
        expected = len(prefecture.shared_hosts) + sum(
            len(m.hosts) for m in prefecture.municipalities)
        assert scale.host_count(inventory) == expected
