"""The inventory model and `municloud validate`: every bad input gets a clear error."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from municloud import inventory
from municloud.cli import main as cli
from municloud.segments import GuidelineModel, HostRole, Segment

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "inventories" / "sample"
SAMPLE_DATA = yaml.safe_load((SAMPLE / "hosts.yml").read_text(encoding="utf-8"))
MUN = ("all", "children", "municipalities", "children")


def dig(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        data = data[key]
    return data


def write(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    data = copy.deepcopy(SAMPLE_DATA)
    edit(data)
    inv = tmp_path / "broken"
    inv.mkdir()
    (inv / "hosts.yml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return inv


def municipality(data: dict[str, Any], group: str = "tottori_shi") -> dict[str, Any]:
    return dig(data, *MUN, group, "vars", "municloud_municipality")


def hosts(data: dict[str, Any], group: str = "tottori_shi") -> dict[str, Any]:
    return dig(data, *MUN, group, "hosts")


@pytest.mark.parametrize("name", ["sample", "okayama"])
def test_shipped_inventories_are_valid(name: str) -> None:
    prefecture = inventory.load(REPO / "inventories" / name)
    assert prefecture.municipalities
    assert all(m.gateway.role is HostRole.GATEWAY for m in prefecture.municipalities)


def test_sample_has_three_models_and_a_terminal_per_segment() -> None:
    prefecture = inventory.load(SAMPLE)
    assert len({m.model for m in prefecture.municipalities}) == 3
    for m in prefecture.municipalities:
        segments = {h.segment for h in m.hosts if h.role is HostRole.TERMINAL}
        assert segments == set(Segment), m.group
        assert any(h.role is HostRole.UPDATE_RELAY and h.segment is Segment.LGWAN for h in m.hosts)


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        ("312011", True),
        ("130001", True),
        ("011002", True),
        ("332020", True),
        ("312012", False),
        ("31201", False),
        ("3120111", False),
        ("48xxxx", False),
        ("482001", False),
        (312011, False),
    ],
)
def test_local_government_code(code: object, valid: bool) -> None:
    assert (inventory.code_problem(code) is None) is valid


def _overlap(d: dict[str, Any]) -> None:
    municipality(d, "yonago_shi")["segments"]["lgwan"] = "198.18.17.0/25"


def _outside(d: dict[str, Any]) -> None:
    hosts(d)["tottori-shi-lgwan-term"]["municloud_addresses"]["lgwan"] = "198.18.21.10"


def _no_segment(d: dict[str, Any]) -> None:
    hosts(d)["tottori-shi-lgwan-term"]["municloud_addresses"] = {}


def _duplicate_code(d: dict[str, Any]) -> None:
    municipality(d, "yonago_shi")["code"] = "312011"


def _unknown_model(d: dict[str, Any]) -> None:
    municipality(d)["model"] = "gamma"


def _malformed_code(d: dict[str, Any]) -> None:
    municipality(d)["code"] = "31201"


def _bad_check_digit(d: dict[str, Any]) -> None:
    municipality(d)["code"] = "312012"


def _two_segments(d: dict[str, Any]) -> None:
    hosts(d)["tottori-shi-lgwan-term"]["municloud_addresses"]["internet"] = "198.18.18.11"


def _unknown_role(d: dict[str, Any]) -> None:
    hosts(d)["tottori-shi-lgwan-term"]["municloud_role"] = "printer"


def _missing_segment(d: dict[str, Any]) -> None:
    del municipality(d)["segments"]["individual_number"]


def _duplicate_address(d: dict[str, Any]) -> None:
    hosts(d)["tottori-shi-update-relay"]["municloud_addresses"]["lgwan"] = "198.18.17.10"


def _bad_cidr(d: dict[str, Any]) -> None:
    municipality(d)["segments"]["lgwan"] = "198.18.17.1/24"


def _wrong_prefecture(d: dict[str, Any]) -> None:
    municipality(d)["code"] = "331007"


def _gateway_missing_leg(d: dict[str, Any]) -> None:
    del hosts(d)["tottori-shi-gw"]["municloud_addresses"]["individual_number"]


def _unknown_network(d: dict[str, Any]) -> None:
    hosts(d)["tottori-shi-lgwan-term"]["municloud_addresses"] = {"internett": "198.18.18.12"}


BAD = {
    "overlapping ranges": (
        _overlap,
        "yonago_shi.vars.municloud_municipality.segments.lgwan",
        "overlaps 198.18.17.0/24",
    ),
    "address outside its segment": (
        _outside,
        "tottori-shi-lgwan-term.municloud_addresses.lgwan",
        "outside the tottori_shi.lgwan range",
    ),
    "host in no segment": (
        _no_segment,
        "tottori-shi-lgwan-term.municloud_addresses",
        "in no segment",
    ),
    "duplicate code": (
        _duplicate_code,
        "yonago_shi.vars.municloud_municipality.code",
        "also the code of tottori_shi",
    ),
    "unknown guideline model": (
        _unknown_model,
        "municloud_municipality.model",
        "unknown guideline model 'gamma'",
    ),
    "malformed code": (_malformed_code, "municloud_municipality.code", "not 6 digits"),
    "wrong check digit": (_bad_check_digit, "municloud_municipality.code", "need 1"),
    "terminal in two segments": (
        _two_segments,
        "tottori-shi-lgwan-term.municloud_addresses",
        "exactly one segment",
    ),
    "unknown role": (_unknown_role, "municloud_role", "'printer' is not a role"),
    "missing segment": (
        _missing_segment,
        "municloud_municipality.segments",
        "individual_number segment has no address range",
    ),
    "duplicate address": (
        _duplicate_address,
        "tottori-shi-update-relay.municloud_addresses",
        "also the address of tottori-shi-lgwan-term",
    ),
    "host bits in a range": (_bad_cidr, "segments.lgwan", "not an IPv4 network"),
    "code of another prefecture": (
        _wrong_prefecture,
        "municloud_municipality.code",
        "belongs to prefecture 33",
    ),
    "gateway without a leg": (
        _gateway_missing_leg,
        "tottori-shi-gw.municloud_addresses",
        "no leg in the individual_number segment",
    ),
    "unknown network": (_unknown_network, "municloud_addresses.internett", "no such network"),
}


@pytest.mark.parametrize("case", BAD.keys())
def test_bad_inventory_is_rejected_with_file_key_and_fix(tmp_path: Path, case: str) -> None:
    edit, key, message = BAD[case]
    inv = write(tmp_path, edit)
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(inv)
    matching = [p for p in caught.value.problems if key in p.key and message in p.message]
    assert matching, [str(p) for p in caught.value.problems]
    problem = matching[0]
    assert problem.file == str(inv / "hosts.yml")
    assert problem.fix  # every problem says what to do


def test_all_problems_are_reported_not_only_the_first(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        _unknown_model(d)
        _outside(d)
        _duplicate_code(d)

    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(write(tmp_path, edit))
    assert len(caught.value.problems) >= 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("all: [1, 2", "not valid YAML"),
        ("- a list\n", "expected a mapping"),
        ("all:\n  vars: {}\n", "municloud_prefecture"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "hosts.yml").write_text(text)
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(tmp_path)
    assert any(message in str(p) for p in caught.value.problems)


def test_missing_inventory(tmp_path: Path) -> None:
    with pytest.raises(inventory.InventoryError, match=r"create .*hosts\.yml"):
        inventory.load(tmp_path)


def test_validate_command_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["validate", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: 鳥取県 (Tottori, 310000): 3 municipalities")


def test_validate_command_lists_problems_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inv = write(tmp_path, _unknown_model)
    assert cli(["validate", str(inv)]) == 1
    err = capsys.readouterr().err
    assert "hosts.yml: all.children.municipalities.children.tottori_shi.vars." in err
    assert "use one of alpha, alpha_prime, beta, beta_prime" in err
    assert "1 problem(s) found" in err


def test_model_values_are_the_guideline_names() -> None:
    assert [m.value for m in GuidelineModel] == ["alpha", "alpha_prime", "beta", "beta_prime"]


@pytest.mark.parametrize("name", ["sample", "okayama"])
def test_inventory_is_an_ordinary_ansible_inventory(name: str) -> None:
    """`ansible-inventory --graph` reads it, with every host of the model in its group."""
    import subprocess
    import sys

    tool = Path(sys.executable).with_name("ansible-inventory")
    inv = REPO / "inventories" / name
    proc = subprocess.run([str(tool), "-i", str(inv), "--graph"], capture_output=True, text=True,
                          check=True, env={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                                           "PATH": str(tool.parent)})
    prefecture = inventory.load(inv)
    for m in prefecture.municipalities:
        assert f"@{m.group}:" in proc.stdout
    for host in prefecture.hosts:
        assert f"--{host.name}\n" in proc.stdout
