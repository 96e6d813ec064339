"""The inventory model and `municloud validate`: every bad input gets a clear error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sample_edit import REPO, SAMPLE, hosts, municipality, write

from municloud import inventory
from municloud.cli import main as cli
from municloud.segments import GuidelineModel, HostRole, Segment


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


def _outside_address(value: str, host: str = "tottori-shi-gw") -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        hosts(d)[host]["municloud_outside_address"] = value
    return edit


BAD = {
    "outside address inside a network": (
        _outside_address("198.18.1.101"),
        "tottori-shi-gw.municloud_outside_address",
        "inside the security_cloud range 198.18.1.0/24",
    ),
    "outside address not an address": (
        _outside_address("router.example"),
        "tottori-shi-gw.municloud_outside_address",
        "not an IPv4 address",
    ),
    "outside address loopback": (
        _outside_address("127.0.0.1"),
        "tottori-shi-gw.municloud_outside_address",
        "cannot be a router's outside address",
    ),
    "outside address on a terminal": (
        _outside_address("203.0.113.50", "tottori-shi-lgwan-term"),
        "tottori-shi-lgwan-term.municloud_outside_address",
        "has no outside address",
    ),
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
    proc = subprocess.run(
        [str(tool), "-i", str(inv), "--graph"],
        capture_output=True,
        text=True,
        check=True,
        env={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": str(tool.parent)},
    )
    prefecture = inventory.load(inv)
    for m in prefecture.municipalities:
        assert f"@{m.group}:" in proc.stdout
    for host in prefecture.hosts:
        assert f"--{host.name}\n" in proc.stdout


# --- what a new user runs into, beyond the schema ----------------------------------------------


def test_a_file_that_is_not_utf8_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    text = (SAMPLE / "hosts.yml").read_text(encoding="utf-8")
    (tmp_path / "hosts.yml").write_bytes(
        text.encode("utf-8").replace("鳥取県".encode(), "鳥取県".encode("shift_jis"), 1)
    )
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(tmp_path)
    (problem,) = caught.value.problems
    assert problem.key.startswith("line ") and "not UTF-8" in problem.message
    assert "UTF-8" in problem.fix


def test_a_key_given_twice_is_a_problem_not_a_lost_municipality(tmp_path: Path) -> None:
    """YAML keeps the last of two equal keys: a second group named like the first would silently
    replace it ("ok: 2 municipalities")."""
    text = (SAMPLE / "hosts.yml").read_text(encoding="utf-8")
    (tmp_path / "hosts.yml").write_text(
        text.replace("        yonago_shi:", "        tottori_shi:"), encoding="utf-8"
    )
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(tmp_path)
    first = caught.value.problems[0]
    assert "'tottori_shi' is given twice" in first.message
    assert first.key.startswith("line ")


def test_a_range_given_twice_is_reported_first_and_its_addresses_point_back_to_it(
    tmp_path: Path,
) -> None:
    def edit(d: dict[str, Any]) -> None:
        municipality(d, "yonago_shi")["segments"]["lgwan"] = "198.18.17.0/24"

    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(write(tmp_path, edit))
    problems = caught.value.problems
    assert "overlaps 198.18.17.0/24" in problems[0].message
    derived = [p for p in problems if "is outside the yonago_shi.lgwan range" in p.message]
    assert derived and all("first check the range" in p.fix for p in derived)
    assert not any("gateways" in p.message for p in problems)  # the gateway is still one


def test_a_gateway_with_a_bad_address_is_not_a_missing_gateway(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        hosts(d)["tottori-shi-gw"]["municloud_addresses"]["lgwan"] = "198.18.99.1"

    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(write(tmp_path, edit))
    assert not any("gateways" in p.message for p in caught.value.problems)
    assert any("198.18.99.1 is outside" in p.message for p in caught.value.problems)


def test_model_variables_in_host_vars_are_refused(tmp_path: Path) -> None:
    """Ansible would take them from host_vars and the model from hosts.yml: they would differ."""
    inv = write(tmp_path, lambda d: None)
    (inv / "host_vars").mkdir()
    (inv / "host_vars" / "tottori-shi-lgwan-term.yml").write_text("municloud_role: gateway\n")
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(inv)
    (problem,) = caught.value.problems
    assert (
        problem.key == "municloud_role"
        and "host_vars/tottori-shi-lgwan-term.yml" in problem.message
    )
    assert "hosts.yml" in problem.fix


def test_management_addresses_come_from_group_vars_all(tmp_path: Path) -> None:
    inv = write(tmp_path, lambda d: None)
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "group_vars" / "all" / "connection.yml").write_text(
        "municloud_management: [192.0.2.10, 198.51.100.0/28]\n"
        "secret: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  3132\n"
    )
    prefecture = inventory.load(inv)
    assert [str(n) for n in prefecture.management] == ["192.0.2.10/32", "198.51.100.0/28"]


@pytest.mark.parametrize(
    ("value", "message"),
    [("192.0.2.10", "expected a list"), (["192.0.2.300"], "not an address")],
)
def test_bad_management_addresses(tmp_path: Path, value: object, message: str) -> None:
    inv = write(tmp_path, lambda d: d["all"]["vars"].update(municloud_management=value))
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(inv)
    assert any(
        message in p.message and "municloud_management" in p.key for p in caught.value.problems
    )


def test_a_group_name_ansible_would_rewrite_is_refused(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        groups = d["all"]["children"]["municipalities"]["children"]
        groups["tottori-shi"] = groups.pop("tottori_shi")

    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(write(tmp_path, edit))
    assert any(
        "'tottori-shi' is not a name Ansible accepts" in p.message for p in caught.value.problems
    )


@pytest.mark.parametrize(
    ("host", "address", "message"),
    [
        ("tottori-shi-update-relay", {"internet": "198.18.18.20"}, "does not sit in the internet"),
        ("tottori-shi-screen", {"lgwan": "198.18.17.40"}, "no flow of model alpha reaches"),
    ],
)
def test_a_host_where_its_role_may_not_sit_is_refused(
    tmp_path: Path, host: str, address: dict[str, str], message: str
) -> None:
    inv = write(tmp_path, lambda d: hosts(d)[host].update(municloud_addresses=address))
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(inv)
    assert any(message in p.message and host in p.key for p in caught.value.problems), [
        str(p) for p in caught.value.problems
    ]
