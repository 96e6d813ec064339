"""`municloud cloud plan`: offline, under mocks, honest about it, on each sample stack."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cloud_stacks import ALL_STACKS

from municloud.cli import main
from municloud.cloud import plan, policies

EXPECTED = {
    "security-cloud/tottori": ["[SecurityCloud]", "[ProxyFleet]", "[MunicipalityAttachment]",
                               "okayama-tottori-312011-vpn", "aws:autoscaling/group:Group",
                               "municipality 312037 倉吉市"],
    "security-cloud/okayama-tottori": ["okayama-tottori-proxy-330001", "[InspectionVpc]",
                                       "aws:networkfirewall/firewall:Firewall",
                                       "prefecture 330001 岡山県", "prefecture 310000 鳥取県"],
    "joint-cloud/tottori-joint": ["[JointCloud]", "[Tenant]", "tottori-joint-312029-tax",
                                  "aws:backup/plan:Plan", "municipality 312011 鳥取市"],
}


@pytest.mark.parametrize("ref", ALL_STACKS)
def test_plan_prints_disclaimer_tree_counts_and_policies(
        ref: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cloud", "plan", ref]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[:3]
    assert "NOT `pulumi preview`" in first[0] and "OFFLINE" in first[0]
    assert "no cloud account" in first[1]
    for expected in EXPECTED[ref]:
        assert expected in out
    assert "Secrets replaced by placeholders: municloud:vpnPreSharedKey" in out
    assert out.count("  PASS  ") == len(policies.RULES) and "FAIL" not in out
    assert "Result: every mandatory policy passes" in out


def test_plan_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cloud", "plan", "joint-cloud/tottori-joint", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["offline"] is True and "NOT `pulumi preview`" in data["disclaimer"]
    assert data["counts"]["per_type"]["aws:rds/instance:Instance"] == 10
    assert data["counts"]["per_municipality"] == {"312011": 23, "312029": 23}
    assert all(p["passed"] for p in data["policies"])


def test_plan_takes_a_stack_file_path(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(plan.__file__).parents[2] / "pulumi/security-cloud/Pulumi.tottori.yaml"
    assert main(["cloud", "plan", str(path), "--no-tree"]) == 0
    out = capsys.readouterr().out
    assert "Resource tree" not in out and "Count per type" in out


def test_plan_fails_when_a_mandatory_policy_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A copy of the joint-cloud program that also opens an internet gateway: the pack, run as
    the engine runs it, refuses it, and the plan says which policy and exits 1."""
    repo = Path(plan.__file__).parents[2]
    program = (repo / "pulumi/joint-cloud/__main__.py").read_text(encoding="utf-8")
    (tmp_path / "__main__.py").write_text(program + (
        "\nimport pulumi_aws as _aws\nfrom municloud.cloud import tags as _tags\n"
        "_aws.ec2.InternetGateway('shortcut', tags=_tags.base("
        "'tottori-joint', _tags.KIND_JOINT_CLOUD, prefecture='310000', municipality='312011'))\n"),
        encoding="utf-8")
    (tmp_path / "Pulumi.yaml").write_bytes((repo / "pulumi/joint-cloud/Pulumi.yaml").read_bytes())
    stack = (repo / "pulumi/joint-cloud/Pulumi.tottori-joint.yaml").read_text(encoding="utf-8")
    (tmp_path / "Pulumi.open.yaml").write_text(
        stack.replace("../../inventories/sample", str(repo / "inventories/sample")),
        encoding="utf-8")
    assert main(["cloud", "plan", str(tmp_path / "Pulumi.open.yaml"), "--no-tree"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  municloud-joint-cloud-closed" in out and "shortcut" in out, out
    assert "Result: 1 mandatory policies fail" in out


def test_plan_unknown_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cloud", "plan", "security-cloud/nowhere"]) == 2
    err = capsys.readouterr().err
    assert "security-cloud/tottori" in err  # it lists the stacks there are


def test_plan_reports_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = Path(plan.__file__).parents[2]
    for name in ("Pulumi.yaml", "__main__.py"):  # a copy of the program, stack file beside it
        (tmp_path / name).write_bytes((repo / "pulumi/joint-cloud" / name).read_bytes())
    stack_file = tmp_path / "Pulumi.nobody.yaml"
    stack_file.write_text(f"config:\n  municloud:inventories: [{repo}/inventories/sample]\n"
                          "  municloud:jointCloud: nobody-joint\n", encoding="utf-8")
    assert main(["cloud", "plan", str(stack_file)]) == 2
    assert "names joint_cloud 'nobody-joint'" in capsys.readouterr().err


def test_a_wide_area_stack_whose_prefectures_overlap_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """超広域: okayama's inventory moved onto tottori's range. Both prefectures share one transit
    gateway, so the plan refuses before any resource, naming both files and both ranges."""
    repo = Path(plan.__file__).parents[2]
    okayama = tmp_path / "okayama"
    shutil.copytree(repo / "inventories/okayama", okayama)
    hosts = okayama / "hosts.yml"
    hosts.write_text(hosts.read_text(encoding="utf-8").replace("198.19.", "198.18."),
                     encoding="utf-8")
    for name in ("Pulumi.yaml", "__main__.py"):
        (tmp_path / name).write_bytes((repo / "pulumi/security-cloud" / name).read_bytes())
    stack = (repo / "pulumi/security-cloud/Pulumi.okayama-tottori.yaml").read_text(
        encoding="utf-8")
    stack = stack.replace("../../inventories/okayama", str(okayama)).replace(
        "../../inventories/sample", str(repo / "inventories/sample"))
    (tmp_path / "Pulumi.overlap.yaml").write_text(stack, encoding="utf-8")
    assert main(["cloud", "plan", str(tmp_path / "Pulumi.overlap.yaml")]) == 2
    err = capsys.readouterr().err
    assert "overlap" in err, err
    assert f"{okayama}/hosts.yml: security_cloud 198.18.1.0/24" in err, err
    assert f"{repo}/inventories/sample/hosts.yml: security_cloud 198.18.1.0/24" in err, err


@pytest.mark.parametrize("project", ["security-cloud", "joint-cloud"])
def test_a_gateway_without_an_outside_address_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], project: str) -> None:
    """The VPN comes from the router's outside address; without one the plan stops and says
    where to write it (a customer gateway inside the cloud's own range never comes up)."""
    repo = Path(plan.__file__).parents[2]
    sample = tmp_path / "sample"
    shutil.copytree(repo / "inventories/sample", sample)
    hosts = sample / "hosts.yml"
    hosts.write_text(hosts.read_text(encoding="utf-8").replace(
        "municloud_outside_address: 203.0.113.11", ""), encoding="utf-8")
    for name in ("Pulumi.yaml", "__main__.py"):
        (tmp_path / name).write_bytes((repo / "pulumi" / project / name).read_bytes())
    stack_name = {"security-cloud": "tottori", "joint-cloud": "tottori-joint"}[project]
    stack = (repo / f"pulumi/{project}/Pulumi.{stack_name}.yaml").read_text(encoding="utf-8")
    (tmp_path / "Pulumi.x.yaml").write_text(
        stack.replace("../../inventories/sample", str(sample)), encoding="utf-8")
    assert main(["cloud", "plan", str(tmp_path / "Pulumi.x.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"{hosts}: tottori-shi-gw has no municloud_outside_address" in err, err


def test_two_stacks_in_one_account_may_not_both_create_a_detector(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """GuardDuty allows one detector per account and region; the security cloud and the joint
    cloud of the sample both create one, so planned for one account they are refused, and with
    the joint cloud's turned off they pass."""
    assert main(["cloud", "plan", "security-cloud/tottori", "--no-tree",
                 "--same-account", "joint-cloud/tottori-joint"]) == 1
    out = capsys.readouterr().out
    assert ("FAIL  GuardDuty: security-cloud/tottori (okayama-tottori-logs-guardduty), "
            "joint-cloud/tottori-joint (tottori-joint-logs-guardduty) each create a detector; AWS "
            "allows one per account and region") in out, out
    assert "set `municloud:guardDuty: false`" in out

    repo = Path(plan.__file__).parents[2]
    for name in ("Pulumi.yaml", "__main__.py"):
        (tmp_path / name).write_bytes((repo / "pulumi/joint-cloud" / name).read_bytes())
    stack = (repo / "pulumi/joint-cloud/Pulumi.tottori-joint.yaml").read_text(encoding="utf-8")
    (tmp_path / "Pulumi.quiet.yaml").write_text(
        stack.replace("../../inventories/sample", str(repo / "inventories/sample"))
        + "  municloud:guardDuty: false\n", encoding="utf-8")
    assert main(["cloud", "plan", "security-cloud/tottori", "--no-tree", "--json",
                 "--same-account", str(tmp_path / "Pulumi.quiet.yaml")]) == 0
    assert json.loads(capsys.readouterr().out)["account_collisions"] == []


def test_an_unknown_neighbour_stack_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cloud", "plan", "security-cloud/tottori", "--same-account",
                 "joint-cloud/nowhere"]) == 2
    assert "joint-cloud/tottori-joint" in capsys.readouterr().err


def test_stacks_of_two_regions_are_not_one_account_and_region(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = Path(plan.__file__).parents[2]
    for name in ("Pulumi.yaml", "__main__.py"):
        (tmp_path / name).write_bytes((repo / "pulumi/joint-cloud" / name).read_bytes())
    stack = (repo / "pulumi/joint-cloud/Pulumi.tottori-joint.yaml").read_text(encoding="utf-8")
    (tmp_path / "Pulumi.osaka.yaml").write_text(
        stack.replace("../../inventories/sample", str(repo / "inventories/sample")).replace(
            "aws:region: ap-northeast-1", "aws:region: ap-northeast-3").replace(
            "municloud:backupRegion: ap-northeast-3", "municloud:backupRegion: ap-northeast-1"),
        encoding="utf-8")
    assert main(["cloud", "plan", "security-cloud/tottori", "--same-account",
                 str(tmp_path / "Pulumi.osaka.yaml")]) == 2
    err = capsys.readouterr().err
    assert "these are in ap-northeast-1 (security-cloud/tottori), ap-northeast-3 (" in err, err
