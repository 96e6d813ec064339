"""What the lab builds for an inventory, decided without Docker."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from municloud import inventory
from municloud.cli import main as cli
from municloud.lab import image, topology
from municloud.segments import HostRole

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sample() -> inventory.Prefecture:
    return inventory.load(REPO / "inventories" / "sample")


def test_one_container_per_host_and_one_network_per_range(sample: inventory.Prefecture) -> None:
    topo = topology.build(sample)
    assert len(topo.containers) == len(sample.hosts)
    assert len(topo.networks) == len(sample.networks) == 13
    assert all(n.subnet.subnet_of(topology.LAB_RANGE) for n in topo.networks)
    assert {c.docker_name for c in topo.containers} >= {"mc-sample-tottori-shi-gw"}


def test_host_bridge_takes_the_last_usable_address(sample: inventory.Prefecture) -> None:
    net = next(n for n in topology.build(sample).networks if n.network_id == "tottori_shi.lgwan")
    assert net.host_address == ipaddress.IPv4Address("198.18.17.254")
    assert net.docker_name == "mc-sample-tottori-shi-lgwan"


def test_segment_hosts_route_through_their_gateway(sample: inventory.Prefecture) -> None:
    topo = topology.build(sample)
    term = next(c for c in topo.containers if c.host.name == "yonago-shi-lgwan-term")
    assert [(r.destination, str(r.via)) for r in term.routes] == [("default", "198.18.21.1")]


def test_gateways_forward_and_every_host_manages_its_firewall(
    sample: inventory.Prefecture,
) -> None:
    for c in topology.build(sample).containers:
        gateway = c.host.role is HostRole.GATEWAY
        assert "NET_ADMIN" in c.capabilities  # every host loads its own nftables ruleset
        assert "SYS_ADMIN" in c.capabilities and "NET_RAW" not in c.capabilities
        assert (("net.ipv4.ip_forward", "1") in c.sysctls) is gateway
        assert gateway == (len(c.networks) > 2 and c.host.municipality is not None)


def test_management_addresses_are_the_lab_machines_own(sample: inventory.Prefecture) -> None:
    topo = topology.build(sample)
    assert topology.management_addresses(topo) == [str(n.host_address) for n in topo.networks]
    assert "198.18.17.254" in topology.management_addresses(topo)


def test_shared_hosts_reach_segments_through_each_gateway_leg(sample: inventory.Prefecture) -> None:
    topo = topology.build(sample)
    core = next(c for c in topo.containers if c.host.name == "joint-core")
    routes = {(r.destination, str(r.via)) for r in core.routes}
    # 倉吉市 has no joint-cloud uplink, so the joint cloud has no route to it.
    assert ("198.18.16.0/24", "198.18.3.101") in routes
    assert ("198.18.20.0/24", "198.18.3.102") in routes
    assert not any(dest.startswith("198.18.24.") for dest, _ in routes)


def _renumbered(tmp_path: Path, old: str, new: str) -> Path:
    text = (REPO / "inventories" / "sample" / "hosts.yml").read_text(encoding="utf-8")
    (tmp_path / "hosts.yml").write_text(text.replace(old, new), encoding="utf-8")
    return tmp_path


def test_lab_refuses_addresses_outside_its_range(tmp_path: Path) -> None:
    prefecture = inventory.load(_renumbered(tmp_path, "198.18.0.", "10.20.0."))
    problems = topology.problems(prefecture)
    assert [p.key for p in problems] == ["internet"]
    assert "outside the lab range 198.18.0.0/15" in problems[0].message


def test_lab_refuses_a_host_on_the_bridge_address(tmp_path: Path) -> None:
    prefecture = inventory.load(_renumbered(tmp_path, "198.18.17.20", "198.18.17.254"))
    problems = topology.problems(prefecture)
    assert len(problems) == 1 and "bridge address" in problems[0].message


def test_lab_up_refuses_a_non_lab_inventory_before_touching_docker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_docker(*args: object, **kwargs: object) -> None:
        raise AssertionError("lab up touched the engine for an inventory it must refuse")

    from municloud.lab import commands, engine

    monkeypatch.setattr(engine, "ensure_engine", no_docker)
    monkeypatch.setattr(commands.engine, "docker", no_docker)
    inv = _renumbered(tmp_path, "198.18.0.", "10.20.0.")
    assert cli(["lab", "up", "--inventory", str(inv)]) == 1
    err = capsys.readouterr().err
    assert "outside the lab range" in err and "the lab was not changed" in err


def test_image_tag_follows_the_roles_package_list(tmp_path: Path) -> None:
    (tmp_path / "web" / "vars").mkdir(parents=True)
    (tmp_path / "web" / "vars" / "main.yml").write_text(
        yaml.safe_dump({"__web_packages": ["nginx"]})
    )
    with_nginx = image.packages(tmp_path)
    assert "nginx" in with_nginx and "openssh-server" in with_nginx
    assert image.image_tag(with_nginx) != image.image_tag(sorted(image.LAB_PACKAGES))
    assert image.image_tag(with_nginx) == image.image_tag(image.packages(tmp_path))


def test_a_role_package_list_of_the_wrong_shape_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "web" / "vars").mkdir(parents=True)
    (tmp_path / "web" / "vars" / "main.yml").write_text("__web_packages: nginx\n")
    with pytest.raises(image.LabError, match="__web_packages must be a list"):
        image.packages(tmp_path)


def test_long_build_steps_show_progress_and_keep_the_output() -> None:
    said: list[str] = []
    script = "for i in 1 2 3; do echo I: Retrieving pkg$i; sleep 0.3; done; echo E: broken; exit 3"
    code, output = image._run_with_progress(["sh", "-c", script], said.append, every=0.2)
    assert code == 3 and output.endswith("E: broken\n")
    assert said and all("Retrieving pkg" in line for line in said)
