"""``municloud cloud verify``: the pure checks, and the whole command against a local moto server.

One moto server per module, bound to loopback only; each case seeds its own cloud under a fresh
``municloud:cloud`` name, so cases do not see one another's resources (except the account-wide
GuardDuty detectors, which verify prefers by tag).

``BROKEN`` names, for each broken cloud, the invariant of municloud/cloud/invariants.py it
breaks; the catalogue tests below hold the two together (every invariant with checks has a
broken cloud, each fails only its invariant's checks, every check belongs to an invariant).
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cloud_seed import REGION, Seeded, seed_joint_cloud, seed_security_cloud, tag_list

from municloud import cli
from municloud.cloud import invariants, tags
from municloud.cloud.verify import (
    JOINT_CLOUD,
    SECURITY_CLOUD,
    Bucket,
    CloudState,
    Expected,
    Finding,
    Inventories,
    KnownRange,
    Status,
    attachment_tags,
    check_backup_cross_region,
    check_bucket_encryption,
    check_bucket_object_lock,
    check_bucket_public_access,
    check_bucket_versioning,
    check_cloudtrail,
    check_db_no_egress,
    check_egress_path,
    check_expected_served,
    check_flow_logs,
    check_guardduty,
    check_no_internet_gateway,
    check_no_public_ip,
    check_no_world_ingress,
    check_rds_encrypted,
    check_serves_tags,
    check_sg_ingress_tenants,
    check_tgw_appliance_mode,
    check_tgw_default_route_table,
    check_tgw_isolation,
    check_vpn_outside_address,
    check_vpn_selectors,
    collect,
    exit_code,
    registered_checks,
    run_checks,
    verdicts,
)
from municloud.inventory import Prefecture, load

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "inventories" / "sample"
PREF = "310000"  # 鳥取県
TOTTORI, YONAGO, KURAYOSHI = "312011", "312029", "312037"


# --- pure checks -------------------------------------------------------------------------------


def tl(**values: str) -> list[dict[str, str]]:
    """A tag list from keyword arguments: cloud=..., municipality=..., prefecture=..., role=..."""
    keys = {"cloud": tags.CLOUD, "municipality": tags.MUNICIPALITY,
            "prefecture": tags.PREFECTURE, "role": tags.ROLE}
    return tag_list({keys[k]: v for k, v in values.items()})


def hub_state(**overrides: Any) -> CloudState:
    """A small security cloud: two municipalities' VPC attachments, one inspection attachment."""
    state = CloudState(cloud="c", kind=SECURITY_CLOUD, region=REGION)
    state.transit_gateways = [{"TransitGatewayId": "tgw-1", "Tags": tl(cloud="c", prefecture=PREF),
                               "Options": {"DefaultRouteTableAssociation": "disable",
                                           "DefaultRouteTablePropagation": "disable"}}]
    state.vpcs = [{"VpcId": "vpc-a", "CidrBlock": "10.1.0.0/24"},
                  {"VpcId": "vpc-b", "CidrBlock": "10.2.0.0/24"},
                  {"VpcId": "vpc-i", "CidrBlock": "10.9.0.0/24"}]
    state.tgw_attachments = [
        {"TransitGatewayAttachmentId": "att-a", "ResourceType": "vpc", "ResourceId": "vpc-a",
         "Tags": tl(cloud="c", municipality=TOTTORI)},
        {"TransitGatewayAttachmentId": "att-b", "ResourceType": "vpc", "ResourceId": "vpc-b",
         "Tags": tl(cloud="c", municipality=YONAGO)},
        {"TransitGatewayAttachmentId": "att-i", "ResourceType": "vpc", "ResourceId": "vpc-i",
         "Tags": tl(cloud="c", prefecture=PREF, role="inspection")},
    ]
    state.tgw_route_tables = [
        {"TransitGatewayRouteTableId": "rtb-a", "Tags": tl(cloud="c", municipality=TOTTORI)},
        {"TransitGatewayRouteTableId": "rtb-i",
         "Tags": tl(cloud="c", prefecture=PREF, role="inspection")},
    ]
    state.tgw_routes = {
        "rtb-a": [route("0.0.0.0/0", "att-i")],
        "rtb-i": [route("10.1.0.0/24", "att-a"), route("10.2.0.0/24", "att-b")],
    }
    for key, value in overrides.items():
        setattr(state, key, value)
    return state


def route(dest: str, attachment: str | None = None, state: str = "active") -> dict[str, Any]:
    targets = [{"TransitGatewayAttachmentId": attachment}] if attachment else []
    return {"DestinationCidrBlock": dest, "State": state, "TransitGatewayAttachments": targets}


def statuses(findings: list[Finding]) -> set[Status]:
    return {f.status for f in findings}


def test_isolation_passes_and_counts_tables() -> None:
    findings = check_tgw_isolation(hub_state())
    assert statuses(findings) == {Status.PASS}
    assert findings[0].examined == 2


def test_isolation_fails_on_route_to_other_municipalitys_attachment() -> None:
    # The route's destination is not in any known range, only its target gives it away: this is
    # the path moto cannot exercise (it returns routes without their attachments).
    state = hub_state()
    state.tgw_routes["rtb-a"].append(route("172.16.0.0/24", "att-b"))
    findings = check_tgw_isolation(state)
    assert [f.status for f in findings] == [Status.FAIL]
    assert "routes 172.16.0.0/24 to att-b of municipality 312029" in findings[0].message


def test_isolation_fails_on_route_to_an_attachment_nobody_owns() -> None:
    """A tenant's default route to an untagged attachment (or one of another cloud) passed."""
    state = hub_state()
    state.tgw_attachments.append({"TransitGatewayAttachmentId": "att-x", "ResourceType": "vpc",
                                  "ResourceId": "vpc-x", "Tags": []})
    state.tgw_routes["rtb-a"] = [route("0.0.0.0/0", "att-x")]
    (finding,) = check_tgw_isolation(state)
    assert finding.status is Status.FAIL
    assert "routes 0.0.0.0/0 to att-x, which no tag of this cloud says whom it serves" in (
        finding.message)
    state.tgw_routes["rtb-a"] = [route("0.0.0.0/0", "att-elsewhere")]  # not in this cloud
    (finding,) = check_tgw_isolation(state)
    assert finding.status is Status.FAIL and "att-elsewhere" in finding.message


def test_isolation_fails_on_route_into_other_municipalitys_range() -> None:
    state = hub_state()
    state.tgw_routes["rtb-a"].append(route("10.2.0.128/25"))
    (finding,) = check_tgw_isolation(state)
    assert finding.status is Status.FAIL
    assert "inside 10.2.0.0/24 of municipality 312029 (VPC vpc-b)" in finding.message


def test_isolation_uses_inventory_ranges() -> None:
    state = hub_state()
    state.tgw_routes["rtb-a"].append(route("198.18.20.0/24"))
    assert statuses(check_tgw_isolation(state)) == {Status.PASS}
    known = [KnownRange("198.18.20.0/24", YONAGO, PREF, "sample")]
    (finding,) = check_tgw_isolation(state, known)
    assert "of municipality 312029 (inventory sample)" in finding.message


def test_isolation_other_prefectures_proxy_range_is_foreign() -> None:
    # 超広域: a Tottori municipality's table must lead to Tottori's proxies, not Okayama's.
    state = hub_state()
    state.tgw_routes["rtb-a"].append(route("198.19.1.0/25", "att-i"))
    known = [KnownRange("198.19.1.0/24", None, "330001", "okayama")]
    (finding,) = check_tgw_isolation(state, known)
    assert "inside 198.19.1.0/24 of prefecture 33 (inventory okayama)" in finding.message


def association_hub(state: CloudState) -> CloudState:
    """The hub as the Pulumi program builds it: hub table and inspection attachment carry only
    the lead prefecture's tag; verify finds the hub by their association."""
    for item in (state.tgw_attachments[2], state.tgw_route_tables[1]):
        item["Tags"] = tl(cloud="c", prefecture=PREF)
    state.tgw_associations = {"rtb-i": [{"TransitGatewayAttachmentId": "att-i"}]}
    state.tgw_attachments.append({"TransitGatewayAttachmentId": "att-o", "ResourceType": "vpn",
                                  "ResourceId": "vpn-o", "Tags": tl(municipality="332020")})
    return state


def test_hub_found_by_association_without_role_tag() -> None:
    # 超広域: the hub routes the other prefecture's municipalities back, each of which has its
    # own table in the cloud (the cloud serves that prefecture).
    state = association_hub(hub_state())
    state.tgw_route_tables.append({"TransitGatewayRouteTableId": "rtb-o",
                                   "Tags": tl(cloud="c", municipality="332020")})
    state.tgw_routes["rtb-o"] = [route("0.0.0.0/0", "att-i")]
    state.tgw_routes["rtb-i"].append(route("10.50.0.0/24", "att-o"))
    assert statuses(check_tgw_isolation(state)) == {Status.PASS}
    # Or the inventories say the cloud serves Okayama.
    del state.tgw_route_tables[-1]
    okayama = [KnownRange("198.19.19.0/25", "332020", "330001", "okayama")]
    assert statuses(check_tgw_isolation(state, okayama)) == {Status.PASS}
    # Without the association, the table is just Tottori's and may not reach Okayama.
    state.tgw_associations = {}
    assert statuses(check_tgw_isolation(state, okayama)) == {Status.FAIL}


def test_hub_may_not_reach_a_prefecture_the_cloud_does_not_serve() -> None:
    """The hub table was skipped: a prefecture's table associated with a prefecture's attachment
    passed whatever it routed, to another prefecture's town and 0.0.0.0/0 included."""
    state = association_hub(hub_state())
    state.tgw_routes["rtb-i"] += [route("10.50.0.0/24", "att-o"), route("0.0.0.0/0", "att-a")]
    findings = check_tgw_isolation(state)
    assert [(f.status, f.resource) for f in findings] == [(Status.FAIL, "rtb-i")] * 2
    assert ("the hub table routes 10.50.0.0/24 to att-o of municipality 332020, of prefecture "
            "33, which this cloud does not serve (it serves 31)") in findings[0].message
    assert ("the hub table routes 0.0.0.0/0 to att-a of municipality 312011, but 0.0.0.0/0 "
            "takes in 10.2.0.0/24 of municipality 312029 (VPC vpc-b)") in findings[1].message
    # By range alone too (moto returns routes without their attachments):
    state = association_hub(hub_state())
    okayama = [KnownRange("198.19.19.0/25", "332020", "330001", "okayama")]
    state.tgw_routes["rtb-i"].append(route("198.19.19.0/25"))
    assert statuses(check_tgw_isolation(state, okayama)) == {Status.PASS}  # Okayama is served
    state.vpcs.append({"VpcId": "vpc-o", "CidrBlock": "198.19.19.0/25"})
    state.tgw_attachments.append({"TransitGatewayAttachmentId": "att-ov", "ResourceType": "vpc",
                                  "ResourceId": "vpc-o", "Tags": tl(municipality="332020")})
    (finding,) = check_tgw_isolation(state)
    assert ("the hub table routes 198.19.19.0/25, inside 198.19.19.0/25 of municipality 332020 "
            "(VPC vpc-o), of prefecture 33, which this cloud does not serve") in finding.message


def test_hub_routes_each_tenants_range_to_that_tenant_only() -> None:
    state = hub_state()
    state.tgw_routes["rtb-i"].append(route("0.0.0.0/0"))  # target unknown, as moto returns it
    (finding,) = check_tgw_isolation(state)
    assert (finding.status, finding.resource) == (Status.FAIL, "rtb-i")
    assert ("the hub table routes 0.0.0.0/0 over ranges of more than one tenant: 10.1.0.0/24 "
            "of municipality 312011 (VPC vpc-a), 10.2.0.0/24 of municipality 312029 (VPC vpc-b)"
            ) in finding.message
    state = hub_state()
    state.tgw_routes["rtb-i"][1] = route("10.2.0.0/24", "att-a")  # Yonago's range to Tottori
    (finding,) = check_tgw_isolation(state)
    assert ("the hub table routes 10.2.0.0/24 to att-a of municipality 312011, but 10.2.0.0/24 "
            "takes in 10.2.0.0/24 of municipality 312029 (VPC vpc-b)") in finding.message
    # blackholes and the way to the inspection attachment itself are fine
    state = hub_state()
    state.tgw_routes["rtb-i"] += [route("0.0.0.0/0", "att-a", state="blackhole"),
                                  route("10.9.0.0/24", "att-i")]
    assert statuses(check_tgw_isolation(state)) == {Status.PASS}


def test_tenants_sharing_one_range_are_judged_by_target() -> None:
    # The joint cloud gives every tenant VPC the same range.
    state = hub_state(vpcs=[{"VpcId": "vpc-a", "CidrBlock": "10.3.0.0/24"},
                            {"VpcId": "vpc-b", "CidrBlock": "10.3.0.0/24"}])
    state.tgw_routes["rtb-a"] = [route("10.3.0.0/24", "att-a")]
    assert statuses(check_tgw_isolation(state)) == {Status.PASS}
    state.tgw_routes["rtb-a"] = [route("10.3.0.0/24", "att-b")]
    (finding,) = check_tgw_isolation(state)
    assert "routes 10.3.0.0/24 to att-b of municipality 312029" in finding.message


def test_isolation_fails_on_propagation_from_other_municipality() -> None:
    state = hub_state(tgw_propagations={"rtb-a": [
        {"TransitGatewayAttachmentId": "att-b", "State": "enabled"}]})
    (finding,) = check_tgw_isolation(state)
    assert "by propagation from att-b" in finding.message


@pytest.mark.parametrize("extra", [
    route("10.2.0.0/24", "att-b", state="blackhole"),  # an explicit drop is fine
    route("0.0.0.0/0", "att-i"),  # a default route to inspection is the design
    route("10.1.0.0/24", "att-a"),  # its own range
])
def test_isolation_allows(extra: dict[str, Any]) -> None:
    state = hub_state()
    state.tgw_routes["rtb-a"].append(extra)
    assert statuses(check_tgw_isolation(state)) == {Status.PASS}


def test_isolation_prefecture_table_may_not_reach_other_prefecture() -> None:
    state = hub_state()
    state.tgw_attachments.append({"TransitGatewayAttachmentId": "att-o", "ResourceType": "vpn",
                                  "ResourceId": "vpn-o", "Tags": tl(municipality="332020")})
    state.tgw_route_tables.append({"TransitGatewayRouteTableId": "rtb-p",
                                   "Tags": tl(cloud="c", prefecture=PREF)})
    state.tgw_routes["rtb-p"] = [route("10.1.0.0/24", "att-a"), route("10.50.0.0/24", "att-o")]
    (finding,) = check_tgw_isolation(state)
    assert finding.resource == "rtb-p"
    assert "att-o of municipality 332020" in finding.message


def test_isolation_untagged_table_with_routes_fails_empty_one_is_ignored() -> None:
    state = hub_state()
    state.tgw_route_tables.append({"TransitGatewayRouteTableId": "rtb-x", "Tags": []})
    assert statuses(check_tgw_isolation(state)) == {Status.PASS}
    state.tgw_routes["rtb-x"] = [route("10.2.0.0/24", "att-b")]
    (finding,) = check_tgw_isolation(state)
    assert finding.resource == "rtb-x" and "no tag says whom it serves" in finding.message


def test_isolation_with_no_tables_fails() -> None:
    (finding,) = check_tgw_isolation(hub_state(tgw_route_tables=[], tgw_routes={}))
    assert finding.status is Status.FAIL and "no transit gateway route table" in finding.message


def test_no_transit_gateway_fails() -> None:
    (finding,) = check_tgw_default_route_table(hub_state(transit_gateways=[]))
    assert finding.status is Status.FAIL
    assert "no transit gateway tagged municloud:cloud=c" in finding.message


def test_default_route_table_enabled_fails() -> None:
    state = hub_state()
    state.transit_gateways[0]["Options"]["DefaultRouteTablePropagation"] = "enable"
    (finding,) = check_tgw_default_route_table(state)
    assert finding.status is Status.FAIL and "DefaultRouteTablePropagation" in finding.message


def test_vpn_attachment_inherits_the_vpn_connections_tags() -> None:
    state = hub_state(vpn_connections=[{"VpnConnectionId": "vpn-k",
                                        "Tags": tl(cloud="c", municipality=KURAYOSHI)}])
    state.tgw_attachments.append({"TransitGatewayAttachmentId": "att-k", "ResourceType": "vpn",
                                  "ResourceId": "vpn-k"})
    assert attachment_tags(state)["att-k"][tags.MUNICIPALITY] == KURAYOSHI
    state.tgw_routes["rtb-a"].append(route("10.77.0.0/24", "att-k"))
    (finding,) = check_tgw_isolation(state)
    assert "att-k of municipality 312037" in finding.message


def test_flow_logs() -> None:
    state = hub_state(flow_logs=[{"ResourceId": "vpc-a", "FlowLogStatus": "ACTIVE"},
                                 {"ResourceId": "vpc-b", "FlowLogStatus": "ACTIVE"}])
    (finding,) = check_flow_logs(state)
    assert (finding.status, finding.resource) == (Status.FAIL, "vpc-i")
    assert check_flow_logs(hub_state(vpcs=[]))[0].status is Status.FAIL


GOOD_BUCKET = Bucket(
    "archive", {tags.CLOUD: "c", tags.PREFECTURE: PREF},
    object_lock={"ObjectLockEnabled": "Enabled",
                 "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 0, "Years": 5}}},
    encryption={"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]},
    public_access_block=dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"),
        True),
    versioning={"Status": "Enabled"},
)


@pytest.mark.parametrize(("check", "bucket", "message"), [
    (check_bucket_object_lock, Bucket("archive", {}), "object lock is not enabled"),
    (check_bucket_object_lock,
     Bucket("archive", {}, object_lock={"ObjectLockEnabled": "Enabled"}), "no default retention"),
    (check_bucket_object_lock,
     Bucket("archive", {}, object_lock={"ObjectLockEnabled": "Enabled", "Rule": {
         "DefaultRetention": {"Mode": "GOVERNANCE", "Years": 5}}}), "GOVERNANCE, not COMPLIANCE"),
    (check_bucket_versioning, Bucket("archive", {}), "versioning is not enabled"),
    (check_bucket_versioning, Bucket("archive", {}, versioning={"Status": "Suspended"}),
     "versioning is Suspended"),
    (check_bucket_encryption, Bucket("archive", {}), "default encryption is none"),
    (check_bucket_encryption, Bucket("archive", {}, encryption={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}),
     "default encryption is AES256"),
    (check_bucket_public_access, Bucket("archive", {}, public_access_block={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True}),
     "not set: RestrictPublicBuckets"),
])
def test_bucket_checks_fail(check: Callable[[CloudState], list[Finding]], bucket: Bucket,
                            message: str) -> None:
    (finding,) = check(hub_state(buckets=[bucket]))
    assert finding.status is Status.FAIL and message in finding.message
    assert statuses(check(hub_state(buckets=[GOOD_BUCKET]))) == {Status.PASS}
    (none,) = check(hub_state(buckets=[]))
    assert none.status is Status.FAIL and "no log archive bucket" in none.message


def test_unreadable_bucket_is_unchecked_not_missing() -> None:
    denied = Bucket("archive", {}, unreadable={"encryption": "GetBucketEncryption failed with "
                                                             "AccessDenied"})
    (finding,) = check_bucket_encryption(hub_state(buckets=[denied]))
    assert (finding.status, finding.resource) == (Status.UNCHECKED, "archive")
    # a bucket whose tags cannot be read may be the cloud's: not "no bucket found"
    (finding,) = check_bucket_object_lock(hub_state(unreadable_buckets={
        "archive": "GetBucketTagging failed with AccessDenied"}))
    assert (finding.status, finding.resource) == (Status.UNCHECKED, "archive")


def test_cloudtrail() -> None:
    good = {"Name": "t", "IsMultiRegionTrail": True, "IsLogging": True,
            "LogFileValidationEnabled": True, "KmsKeyId": "arn:aws:kms:ap-northeast-1:1:key/k"}
    assert statuses(check_cloudtrail(hub_state(trails=[good]))) == {Status.PASS}
    (finding,) = check_cloudtrail(hub_state(trails=[{**good, "IsMultiRegionTrail": False,
                                                      "IsLogging": False}]))
    assert finding.message == "not multi-region, not logging"
    (finding,) = check_cloudtrail(hub_state(trails=[{
        k: v for k, v in good.items() if k not in ("LogFileValidationEnabled", "KmsKeyId")}]))
    assert finding.message == "no log file validation, not encrypted with a KMS key"
    (none,) = check_cloudtrail(hub_state(untagged_trails=["org-trail"]))
    assert none.status is Status.FAIL and "untagged trail(s): org-trail" in none.message


def test_guardduty_prefers_the_clouds_detector() -> None:
    other = {"DetectorId": "d-other", "Status": "ENABLED", "Tags": {tags.CLOUD: "x"}}
    ours = {"DetectorId": "d-ours", "Status": "DISABLED", "Tags": {tags.CLOUD: "c"}}
    (finding,) = check_guardduty(hub_state(detectors=[other, ours]))
    assert (finding.status, finding.resource) == (Status.FAIL, "d-ours")
    (fallback,) = check_guardduty(hub_state(detectors=[other]))
    assert fallback.status is Status.PASS and "not tagged with the cloud" in fallback.message
    assert check_guardduty(hub_state())[0].status is Status.FAIL


def test_world_ingress_ipv4_and_ipv6() -> None:
    sgs = [{"GroupId": "sg-1", "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "-1", "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
         "IpRanges": [{"CidrIp": "198.18.16.0/24"}]}]}]
    findings = check_no_world_ingress(hub_state(security_groups=sgs))
    assert [f.message for f in findings] == ["ingress from 0.0.0.0/0 on tcp/22 ()",
                                             "ingress from ::/0 on all traffic ()"]


def test_joint_cloud_checks() -> None:
    state = hub_state(kind=JOINT_CLOUD, internet_gateways=[
        {"InternetGatewayId": "igw-1", "Attachments": [{"VpcId": "vpc-a"}]},
        {"InternetGatewayId": "igw-elsewhere", "Attachments": [{"VpcId": "vpc-zz"}]}])
    assert [f.resource for f in check_no_internet_gateway(state)] == ["igw-1"]
    state.network_interfaces = [{"NetworkInterfaceId": "eni-1",
                                 "Association": {"PublicIp": "203.0.113.9"}}]
    state.db_instances = [{"DBInstanceIdentifier": "db", "PubliclyAccessible": True,
                           "StorageEncrypted": False}]
    assert [f.resource for f in check_no_public_ip(state)] == ["eni-1", "db"]
    assert check_rds_encrypted(state)[0].message == "storage is not encrypted"
    (none,) = check_rds_encrypted(hub_state(kind=JOINT_CLOUD))
    assert none.status is Status.FAIL and "no RDS instance" in none.message


@pytest.mark.parametrize(("destination", "status"), [
    ("arn:aws:backup:ap-northeast-3:123456789012:backup-vault:copy", Status.PASS),
    ("arn:aws:backup:ap-northeast-1:123456789012:backup-vault:copy", Status.FAIL),
])
def test_backup_copy_must_leave_the_region(destination: str, status: Status) -> None:
    plan = {"BackupPlanName": "daily", "Rules": [{"CopyActions": [
        {"DestinationBackupVaultArn": destination}]}]}
    (finding,) = check_backup_cross_region(hub_state(kind=JOINT_CLOUD, backup_plans=[plan]))
    assert finding.status is status
    assert check_backup_cross_region(hub_state(kind=JOINT_CLOUD))[0].status is Status.FAIL


def test_one_plan_copying_out_does_not_cover_another() -> None:
    away = {"BackupPlanName": "tax", "Rules": [{"RuleName": "daily", "CopyActions": [
        {"DestinationBackupVaultArn": "arn:aws:backup:ap-northeast-3:1:backup-vault:copy"}]}]}
    local = {"BackupPlanName": "welfare", "Rules": [{"RuleName": "daily"}]}
    (finding,) = check_backup_cross_region(hub_state(kind=JOINT_CLOUD,
                                                     backup_plans=[away, local]))
    assert finding.status is Status.FAIL and finding.resource == "welfare rule daily"
    assert "no copy action" in finding.message


def test_serves_tags() -> None:
    state = hub_state()
    state.vpcs[0]["Tags"] = tl(cloud="c", prefecture=PREF)
    state.vpcs[1]["Tags"] = tl(cloud="c")
    state.vpcs[2]["Tags"] = tl(cloud="c", municipality="312010")  # wrong check digit
    findings = check_serves_tags(state)
    assert {f.resource for f in findings} == {"vpc-b", "vpc-i"}
    assert "carries neither" in next(f.message for f in findings if f.resource == "vpc-b")
    assert "check digit" in next(f.message for f in findings if f.resource == "vpc-i")


def test_expected_served() -> None:
    state = hub_state()
    expected = [Expected(TOTTORI, "鳥取市", "sample"), Expected(KURAYOSHI, "倉吉市", "sample")]
    (finding,) = check_expected_served(state, expected)
    assert finding.resource == KURAYOSHI and "倉吉市" in finding.message


def test_unreadable_service_is_unchecked_and_not_a_pass() -> None:
    state = hub_state(unavailable={"guardduty": "ListDetectors failed with AccessDenied"})
    findings = run_checks(state)
    unchecked = [f for f in findings if f.status is Status.UNCHECKED
                 and f.message.startswith("not checkable here")]
    assert {f.check for f in unchecked} == {"guardduty", "serves-tags"}
    assert "not checkable here (guardduty: ListDetectors failed with AccessDenied)" in \
        unchecked[0].message
    assert verdicts(findings)["guardduty"] is Status.UNCHECKED
    assert exit_code([Finding("x", Status.PASS, "-", ""),
                      Finding("y", Status.UNCHECKED, "-", "")]) == 1


# --- the way out: appliance mode and the egress path -------------------------------------------


def test_appliance_mode_on_the_inspection_attachment() -> None:
    def state_with(options: dict[str, str] | None) -> CloudState:
        record = {"TransitGatewayAttachmentId": "att-i", "VpcId": "vpc-i"}
        return hub_state(tgw_vpc_attachments=[record if options is None
                                               else {**record, "Options": options}])

    assert statuses(check_tgw_appliance_mode(state_with({"ApplianceModeSupport": "enable"}))) \
        == {Status.PASS}
    (finding,) = check_tgw_appliance_mode(state_with({"ApplianceModeSupport": "disable"}))
    assert (finding.status, finding.resource) == (Status.FAIL, "att-i")
    assert "appliance mode is disable on the attachment of inspection VPC vpc-i" in \
        finding.message and "the way out of prefecture 310000's" in finding.message
    assert "ApplianceModeSupport=enable" in finding.fix
    (unread,) = check_tgw_appliance_mode(state_with(None))
    assert unread.status is Status.UNCHECKED
    # a tenant's attachment without appliance mode is not judged: only the inspection VPC's
    state = state_with({"ApplianceModeSupport": "enable"})
    state.tgw_vpc_attachments.append({"TransitGatewayAttachmentId": "att-a",
                                      "Options": {"ApplianceModeSupport": "disable"}})
    assert statuses(check_tgw_appliance_mode(state)) == {Status.PASS}
    state.tgw_attachments = state.tgw_attachments[:2]  # no inspection attachment at all
    (none,) = check_tgw_appliance_mode(state)
    assert none.status is Status.FAIL and "no inspection VPC attachment" in none.message


def rtb(table_id: str, vpc: str, subnets: list[str], *routes: dict[str, str],
        main: bool = False) -> dict[str, Any]:
    """A VPC route table as describe_route_tables returns it."""
    associations: list[dict[str, Any]] = [{"SubnetId": s, "AssociationState": {
        "State": "associated"}} for s in subnets]
    if main:
        associations.append({"Main": True})
    return {"RouteTableId": table_id, "VpcId": vpc, "Associations": associations,
            "Routes": [{"DestinationCidrBlock": "10.9.0.0/24", "GatewayId": "local",
                        "State": "active"}, *({"State": "active", **r} for r in routes)]}


def egress_state(firewall: bool = False) -> CloudState:
    """The inspection VPC as security_cloud.py builds it: public subnet with the NAT gateway and
    a default route to the internet gateway; proxies to the NAT (or the firewall endpoint, whose
    subnet goes to the NAT)."""
    proxy_exit = {"GatewayId": "vpce-fw"} if firewall else {"NatGatewayId": "nat-1"}
    state = hub_state(
        subnets=[{"SubnetId": s, "VpcId": "vpc-i", "Tags": tl(cloud="c", prefecture=PREF)}
                 for s in ("sub-pub", "sub-prx", "sub-tgw", "sub-fw")],
        nat_gateways=[{"NatGatewayId": "nat-1", "SubnetId": "sub-pub", "VpcId": "vpc-i",
                       "State": "available"}],
        internet_gateways=[{"InternetGatewayId": "igw-1", "Attachments": [{"VpcId": "vpc-i"}]}],
        route_tables=[
            rtb("rtb-main", "vpc-i", [], main=True),
            rtb("rtb-pub", "vpc-i", ["sub-pub"],
                {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1"}),
            rtb("rtb-prx", "vpc-i", ["sub-prx"],
                {"DestinationCidrBlock": "0.0.0.0/0", **proxy_exit}),
            rtb("rtb-fw", "vpc-i", ["sub-fw"],
                {"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-1"}),
        ])
    if firewall:
        state.firewalls = [{"FirewallName": "fw", "VpcId": "vpc-i",
                            "SubnetMappings": [{"SubnetId": "sub-fw"}]}]
    return state


def test_egress_path_as_the_program_builds_it_passes() -> None:
    for firewall in (False, True):
        (finding,) = check_egress_path(egress_state(firewall))
        assert finding.status is Status.PASS, finding
        assert "1 NAT gateway(s) behind the internet gateway; 4 subnet(s)" in finding.message


def test_egress_path_nat_without_a_route_to_the_internet_gateway() -> None:
    state = egress_state()
    state.route_tables[1]["Routes"].pop()
    (finding,) = check_egress_path(state)
    assert (finding.status, finding.resource) == (Status.FAIL, "nat-1")
    assert ("NAT gateway in subnet sub-pub (of prefecture 31), whose route table rtb-pub sends "
            "0.0.0.0/0 to nowhere, not to an internet gateway") in finding.message


def test_egress_path_subnet_straight_to_the_internet_gateway() -> None:
    state = egress_state()
    state.route_tables[2]["Routes"][-1] = {"DestinationCidrBlock": "0.0.0.0/0",
                                           "GatewayId": "igw-1", "State": "active"}
    (finding,) = check_egress_path(state)
    assert (finding.status, finding.resource) == (Status.FAIL, "sub-prx")
    assert "routes 0.0.0.0/0 straight to internet gateway igw-1 (route table rtb-prx)" in \
        finding.message
    # A subnet with no table of its own follows the main table: one with an IGW route fails.
    state = egress_state()
    state.route_tables[0]["Routes"].append({"DestinationIpv6CidrBlock": "::/0",
                                            "GatewayId": "igw-1", "State": "active"})
    (finding,) = check_egress_path(state)
    assert finding.resource == "sub-tgw" and "routes ::/0 straight to" in finding.message
    # A blackhole route carries nothing.
    state.route_tables[0]["Routes"][-1]["State"] = "blackhole"
    assert statuses(check_egress_path(state)) == {Status.PASS}


def test_egress_path_around_the_firewall() -> None:
    state = egress_state(firewall=True)
    state.route_tables[2]["Routes"][-1] = {"DestinationCidrBlock": "0.0.0.0/0",
                                           "NatGatewayId": "nat-1", "State": "active"}
    (finding,) = check_egress_path(state)
    assert (finding.status, finding.resource) == (Status.FAIL, "sub-prx")
    assert ("routes 0.0.0.0/0 to NAT gateway nat-1 (route table rtb-prx) around the network "
            "firewall (fw; its subnets: sub-fw)") in finding.message
    # Without a firewall record, a route to a vpce- endpoint still says there is one, but not
    # which subnets are its own: not judged.
    state.firewalls = []
    state.route_tables[3]["Routes"].append({"DestinationCidrBlock": "10.9.0.64/26",
                                            "GatewayId": "vpce-fw", "State": "active"})
    findings = check_egress_path(state)
    assert {(f.status, f.resource) for f in findings} == {(Status.UNCHECKED, "sub-prx"),
                                                          (Status.UNCHECKED, "sub-fw")}


def test_egress_path_finds_nothing_and_fails() -> None:
    (finding,) = check_egress_path(egress_state().__class__(cloud="c", kind=SECURITY_CLOUD,
                                                            region=REGION))
    assert finding.status is Status.FAIL and "no VPC tagged" in finding.message
    (finding,) = check_egress_path(hub_state())
    assert finding.status is Status.FAIL and "no NAT gateway" in finding.message


# --- databases let nothing out ------------------------------------------------------------------


def db_state(egress: list[dict[str, Any]]) -> CloudState:
    return hub_state(kind=JOINT_CLOUD, security_groups=[
        {"GroupId": "sg-db", "GroupName": "juki-db", "IpPermissionsEgress": egress}],
        db_instances=[{"DBInstanceIdentifier": "juki", "StorageEncrypted": True,
                       "Tags": tl(cloud="c", municipality=TOTTORI),
                       "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-db",
                                              "Status": "active"}]}])


def test_db_no_egress() -> None:
    assert statuses(check_db_no_egress(db_state([]))) == {Status.PASS}
    (finding,) = check_db_no_egress(db_state([
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]))
    assert (finding.status, finding.resource) == (Status.FAIL, "sg-db")
    assert ("security group juki-db of database juki (municipality 312011) lets connections "
            "out (all traffic to 0.0.0.0/0)") in finding.message
    assert "revoke every egress rule" in finding.fix
    state = db_state([])
    state.db_instances[0]["VpcSecurityGroups"][0]["VpcSecurityGroupId"] = "sg-elsewhere"
    (finding,) = check_db_no_egress(state)
    assert (finding.status, finding.resource) == (Status.UNCHECKED, "sg-elsewhere")
    (none,) = check_db_no_egress(hub_state(kind=JOINT_CLOUD))
    assert none.status is Status.FAIL and "no RDS instance" in none.message


# --- VPNs: what each tunnel carries, where it comes from ----------------------------------------


def vpn_state(local: str | None = "198.18.18.0/24", remote: str | None = "10.9.0.0/24",
              **options: str) -> CloudState:
    selectors = {k: v for k, v in (("LocalIpv4NetworkCidr", local),
                                   ("RemoteIpv4NetworkCidr", remote)) if v is not None}
    return hub_state(
        vpn_connections=[{"VpnConnectionId": "vpn-t", "CustomerGatewayId": "cgw-t",
                          "State": "available", "Tags": tl(cloud="c", municipality=TOTTORI),
                          "Options": {**selectors, **options}}],
        customer_gateways=[{"CustomerGatewayId": "cgw-t", "IpAddress": "203.0.113.11",
                            "State": "available"}])


def test_vpn_selectors() -> None:
    assert statuses(check_vpn_selectors(vpn_state())) == {Status.PASS}
    (finding,) = check_vpn_selectors(vpn_state(local="0.0.0.0/0"))
    assert (finding.status, finding.resource) == (Status.FAIL, "vpn-t")
    assert ("LocalIpv4NetworkCidr (customer side) of the VPN of municipality 312011 is "
            "0.0.0.0/0: the tunnel carries any address") in finding.message
    (finding,) = check_vpn_selectors(vpn_state(remote=None))
    assert "RemoteIpv4NetworkCidr (AWS side) of the VPN of municipality 312011 is not set " \
        "(AWS takes 0.0.0.0/0)" in finding.message
    (finding,) = check_vpn_selectors(vpn_state(remote="10.2.0.0/24"))  # vpc-b is a VPC
    assert finding.status is Status.PASS
    (finding,) = check_vpn_selectors(vpn_state(remote="172.16.0.0/24"))
    assert "is 172.16.0.0/24, inside no VPC of the cloud" in finding.message
    (finding,) = check_vpn_selectors(vpn_state(local="not-a-range"))
    assert "'not-a-range', not an address range" in finding.message


def test_vpn_selectors_with_the_inventory_name_the_municipalitys_segments() -> None:
    known = [KnownRange("198.18.16.0/24", TOTTORI, "310000", "sample"),
             KnownRange("198.18.18.0/24", TOTTORI, "310000", "sample"),
             KnownRange("198.18.22.0/24", YONAGO, "310000", "sample")]
    assert statuses(check_vpn_selectors(vpn_state(), known)) == {Status.PASS}
    (finding,) = check_vpn_selectors(vpn_state(local="198.18.22.0/24"), known)
    assert ("is 198.18.22.0/24, inside none of its segments (198.18.16.0/24, 198.18.18.0/24, "
            "inventory sample)") in finding.message
    (finding,) = check_vpn_selectors(vpn_state(local="198.18.0.0/15"), known)
    assert finding.status is Status.FAIL


def test_vpn_selectors_not_returned_are_unchecked_and_no_vpn_fails() -> None:
    """moto 5.2.5 drops a VPN's Options: what verify then sees."""
    (finding,) = check_vpn_selectors(vpn_state(local=None, remote=None))
    assert finding.status is Status.UNCHECKED and "no traffic selectors" in finding.message
    (none,) = check_vpn_selectors(hub_state())
    assert none.status is Status.FAIL and "no VPN connection" in none.message


def test_vpn_outside_address() -> None:
    assert statuses(check_vpn_outside_address(vpn_state())) == {Status.PASS}
    state = vpn_state()
    state.customer_gateways[0]["IpAddress"] = "10.2.0.9"
    (finding,) = check_vpn_outside_address(state)
    assert (finding.status, finding.resource) == (Status.FAIL, "cgw-t")
    assert ("customer gateway of municipality 312011 is 10.2.0.9, inside 10.2.0.0/24 of VPC "
            "vpc-b") in finding.message
    state.customer_gateways[0]["IpAddress"] = "nowhere"
    assert "'nowhere' is not an address" in check_vpn_outside_address(state)[0].message
    (none,) = check_vpn_outside_address(hub_state())
    assert none.status is Status.FAIL and "no customer gateway" in none.message


# --- ingress only from the tenants a group serves ----------------------------------------------


SAMPLE_RANGES = [KnownRange("198.18.1.0/24", None, "310000", "sample"),
                 KnownRange("198.18.16.0/24", TOTTORI, "310000", "sample"),
                 KnownRange("198.18.18.0/24", TOTTORI, "310000", "sample"),
                 KnownRange("198.18.22.0/24", YONAGO, "310000", "sample")]


def ingress_state(group_tags: list[dict[str, str]], *cidrs: str) -> CloudState:
    return hub_state(security_groups=[{
        "GroupId": "sg-1", "GroupName": "proxy", "Tags": group_tags,
        "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
                           "IpRanges": [{"CidrIp": c} for c in cidrs if ":" not in c],
                           "Ipv6Ranges": [{"CidrIpv6": c} for c in cidrs if ":" in c]}]}])


def test_sg_ingress_tenants_prefecture_group() -> None:
    proxy = tl(cloud="c", prefecture="310000")
    ok = ingress_state(proxy, "198.18.18.0/24", "198.18.22.0/24", "198.18.1.0/25")
    assert statuses(check_sg_ingress_tenants(ok, SAMPLE_RANGES)) == {Status.PASS}
    (finding,) = check_sg_ingress_tenants(ingress_state(proxy, "198.18.0.0/15"), SAMPLE_RANGES)
    assert (finding.status, finding.resource) == (Status.FAIL, "sg-1")
    assert ("group sg-1 (proxy) serves prefecture 310000 but admits 198.18.0.0/15 on tcp/8080: "
            "not inside its municipalities' segments and its shared networks (inventory "
            "sample)") in finding.message
    (v6,) = check_sg_ingress_tenants(ingress_state(proxy, "2001:db8::/32"), SAMPLE_RANGES)
    assert v6.status is Status.FAIL and "admits 2001:db8::/32" in v6.message


def test_sg_ingress_tenants_municipality_group() -> None:
    db = tl(cloud="c", prefecture="310000", municipality=TOTTORI)
    assert statuses(check_sg_ingress_tenants(ingress_state(db, "198.18.16.0/24"),
                                             SAMPLE_RANGES)) == {Status.PASS}
    (finding,) = check_sg_ingress_tenants(ingress_state(db, "198.18.22.0/24"), SAMPLE_RANGES)
    assert "serves municipality 312011 but admits 198.18.22.0/24" in finding.message
    # a prefecture's shared network is not the municipality's own
    (finding,) = check_sg_ingress_tenants(ingress_state(db, "198.18.1.0/24"), SAMPLE_RANGES)
    assert finding.status is Status.FAIL


def test_sg_ingress_tenants_unknown_tenant_is_unchecked_untagged_is_skipped() -> None:
    okayama = tl(cloud="c", prefecture="330001")
    (finding,) = check_sg_ingress_tenants(ingress_state(okayama, "198.19.19.0/25"),
                                          SAMPLE_RANGES)
    assert finding.status is Status.UNCHECKED and "no inventory given" in finding.message
    (none,) = check_sg_ingress_tenants(ingress_state([], "0.0.0.0/0"), SAMPLE_RANGES)
    assert none.status is Status.FAIL and "no security group" in none.message


# --- the command against a moto server ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fake credentials and no shared config, so nothing here can reach a real account."""
    empty = tmp_path_factory.mktemp("aws") / "none"
    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                    "AWS_ENDPOINT_URL", "AWS_REGION"):
            mp.delenv(key, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        mp.setenv("AWS_CONFIG_FILE", str(empty))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


@pytest.fixture(scope="module")
def endpoint(aws_env: None) -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="module")
def sample() -> Prefecture:
    return load(SAMPLE)


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def verify(capsys: pytest.CaptureFixture[str], endpoint: str, kind: str, cloud: str,
           *extra: str) -> tuple[int, str, str]:
    code = cli.main(["cloud", "verify", "--kind", kind, "--cloud", cloud, "--region", REGION,
                     "--endpoint-url", endpoint, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def report(capsys: pytest.CaptureFixture[str], endpoint: str, kind: str, cloud: str,
           *extra: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = verify(capsys, endpoint, kind, cloud, "--json", *extra)
    return code, json.loads(out)


# moto 5.2.5 drops a VPN connection's Options, so vpn-selectors cannot judge a VPN against it:
# a conforming cloud on moto passes every check but that one, which is UNCHECKED (exit 1).
NOT_ON_MOTO = {"vpn-selectors": "UNCHECKED"}


def test_conforming_security_cloud_passes(capsys: pytest.CaptureFixture[str], endpoint: str,
                                          sample: Prefecture) -> None:
    seeded = seed_security_cloud(endpoint, sample.security_cloud, sample)
    code, data = report(capsys, endpoint, SECURITY_CLOUD, seeded.cloud,
                        "--inventory", str(SAMPLE))
    assert data["checks"] == {**dict.fromkeys(data["checks"], "PASS"), **NOT_ON_MOTO}, \
        data["findings"]
    assert code == 1
    assert set(data["checks"]) == {
        "tgw-default-route-table", "tgw-isolation", "tgw-appliance-mode", "egress-path",
        "vpn-selectors", "vpn-outside-address", "vpc-flow-logs", "log-archive-object-lock",
        "log-archive-versioning", "log-archive-encryption", "log-archive-public-access",
        "cloudtrail", "guardduty", "sg-no-world-ingress", "municipalities-attached",
        "sg-ingress-tenants", "serves-tags"}
    examined = {f["check"]: f["examined"] for f in data["findings"]}
    assert examined["tgw-isolation"] == 4  # inspection + one per municipality
    assert examined["vpc-flow-logs"] == 3
    assert examined["municipalities-attached"] == 3
    assert examined["serves-tags"] > 10
    unchecked = [f for f in data["findings"] if f["status"] == "UNCHECKED"]
    assert [(f["check"], f["resource"]) for f in unchecked] == [
        ("vpn-selectors", seeded.vpns[KURAYOSHI])]
    assert "no traffic selectors" in unchecked[0]["message"]
    # The VPN's configuration holds pre-shared keys; none may reach the report.
    assert "pre_shared_key" not in json.dumps(data)


def test_conforming_security_cloud_with_network_firewall_passes(
        capsys: pytest.CaptureFixture[str], endpoint: str, sample: Prefecture) -> None:
    """Proxies -> firewall endpoint -> NAT gateway -> internet gateway, as with
    networkFirewall: true; the firewall's subnet is read from Network Firewall."""
    seeded = seed_security_cloud(endpoint, fresh("firewall"), sample, network_firewall=True)
    code, data = report(capsys, endpoint, SECURITY_CLOUD, seeded.cloud)
    assert data["checks"] == {**dict.fromkeys(data["checks"], "PASS"), **NOT_ON_MOTO}, \
        data["findings"]
    assert code == 1
    (egress,) = [f for f in data["findings"] if f["check"] == "egress-path"]
    assert "6 subnet(s) examined" in egress["message"]  # 4 of the inspection VPC, 2 tenants


def test_conforming_joint_cloud_passes(capsys: pytest.CaptureFixture[str], endpoint: str,
                                       sample: Prefecture) -> None:
    cloud = next(m.joint_cloud for m in sample.municipalities if m.joint_cloud)
    assert cloud is not None
    seed_joint_cloud(endpoint, cloud, sample)
    code, out, err = verify(capsys, endpoint, JOINT_CLOUD, cloud, "--inventory", str(SAMPLE))
    lines = out.splitlines()
    assert code == 1, out
    assert all(line.startswith("PASS") or line.startswith("UNCHECKED vpn-selectors")
               for line in lines[:-1]), out
    assert lines[-1] == (f"joint-cloud {cloud} in {REGION}: 15 checks, 14 passed, 0 failed, "
                         "1 not checkable here")
    assert any(line.startswith("PASS      tgw-isolation") and "2 route table(s)" in line
               for line in lines)
    assert any("municipalities-attached" in line and "all 2 municipalities" in line
               for line in lines)
    assert any(line.startswith("PASS      db-no-egress") for line in lines)
    assert err == ""


def _route_to_other(s: Seeded) -> None:
    s.client("ec2").create_transit_gateway_route(
        DestinationCidrBlock=s.cidrs[YONAGO], TransitGatewayRouteTableId=s.route_tables[TOTTORI],
        TransitGatewayAttachmentId=s.attachments[YONAGO])


def _propagate_other(s: Seeded) -> None:
    s.client("ec2").enable_transit_gateway_route_table_propagation(
        TransitGatewayRouteTableId=s.route_tables[TOTTORI],
        TransitGatewayAttachmentId=s.attachments[KURAYOSHI])


def _world_ingress(s: Seeded) -> None:
    ec2 = s.client("ec2")
    group = ec2.create_security_group(
        GroupName=f"{s.cloud}-open", Description="open", VpcId=s.first_vpc,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list(
            tags.base(s.cloud, "x", prefecture=PREF))}])["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])


def _vpc_without_flow_logs(s: Seeded) -> None:
    s.client("ec2").create_vpc(CidrBlock="198.18.99.0/24", TagSpecifications=[{
        "ResourceType": "vpc", "Tags": tag_list(tags.base(s.cloud, "x", prefecture=PREF))}])


def _untagged_group(s: Seeded) -> None:
    s.client("ec2").create_security_group(
        GroupName=f"{s.cloud}-who", Description="serves nobody", VpcId=s.first_vpc,
        TagSpecifications=[{"ResourceType": "security-group",
                            "Tags": tag_list({tags.CLOUD: s.cloud})}])


def _tenant_propagation(s: Seeded) -> None:
    s.client("ec2").enable_transit_gateway_route_table_propagation(
        TransitGatewayRouteTableId=s.route_tables[TOTTORI],
        TransitGatewayAttachmentId=s.attachments[YONAGO])


def _stop_trail(s: Seeded) -> None:
    s.client("cloudtrail").stop_logging(Name=s.trail)


def _internet_gateway(s: Seeded) -> None:
    ec2 = s.client("ec2")
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=s.first_vpc)


def _public_instance(s: Seeded) -> None:
    ec2 = s.client("ec2")
    ec2.modify_subnet_attribute(SubnetId=s.first_subnet, MapPublicIpOnLaunch={"Value": True})
    ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                      SubnetId=s.first_subnet, TagSpecifications=[{
                          "ResourceType": "instance",
                          "Tags": tag_list(tags.base(s.cloud, "x", prefecture=PREF))}])


def _nothing(s: Seeded) -> None:
    pass


def _hub_default_route_to_a_tenant(s: Seeded) -> None:
    s.client("ec2").create_transit_gateway_route(
        DestinationCidrBlock="0.0.0.0/0", TransitGatewayRouteTableId=s.route_tables["inspection"],
        TransitGatewayAttachmentId=s.attachments[TOTTORI])


def _hub_route_to_another_prefecture(s: Seeded) -> None:
    """An Okayama town's VPC on the cloud's transit gateway (the cloud serves Tottori only),
    and the hub routing its range to it."""
    ec2 = s.client("ec2")
    values = tags.base(s.cloud, SECURITY_CLOUD, prefecture="330001", municipality="332020")
    vpc = ec2.create_vpc(CidrBlock="198.19.19.0/25", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": tag_list(values)}])["Vpc"]["VpcId"]
    ec2.create_flow_logs(ResourceIds=[vpc], ResourceType="VPC", TrafficType="ALL",
                         LogDestinationType="s3", LogDestination=f"arn:aws:s3:::{s.bucket}")
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="198.19.19.0/25", TagSpecifications=[
        {"ResourceType": "subnet", "Tags": tag_list(values)}])["Subnet"]["SubnetId"]
    att = ec2.create_transit_gateway_vpc_attachment(
        TransitGatewayId=s.tgw, VpcId=vpc, SubnetIds=[subnet],
    )["TransitGatewayVpcAttachment"]["TransitGatewayAttachmentId"]
    ec2.create_tags(Resources=[att], Tags=tag_list(values))
    ec2.create_transit_gateway_route(
        DestinationCidrBlock="198.19.19.0/25",
        TransitGatewayRouteTableId=s.route_tables["inspection"], TransitGatewayAttachmentId=att)


def _disable_detector(s: Seeded) -> None:
    guardduty = s.client("guardduty")
    for detector in guardduty.list_detectors()["DetectorIds"]:
        if guardduty.get_detector(DetectorId=detector).get("Tags", {}).get(tags.CLOUD) == s.cloud:
            guardduty.update_detector(DetectorId=detector, Enable=False)


def _detach_yonago(s: Seeded) -> None:
    s.client("ec2").delete_transit_gateway_vpc_attachment(
        TransitGatewayAttachmentId=s.attachments[YONAGO])


def _nat_without_internet_route(s: Seeded) -> None:
    s.client("ec2").delete_route(RouteTableId=s.vpc_route_tables["public"],
                                 DestinationCidrBlock="0.0.0.0/0")


def _proxies_default_route(s: Seeded, **target: str) -> None:
    # Delete and create: moto's replace_route keeps the old target beside the new one.
    ec2 = s.client("ec2")
    ec2.delete_route(RouteTableId=s.vpc_route_tables["proxy"], DestinationCidrBlock="0.0.0.0/0")
    ec2.create_route(RouteTableId=s.vpc_route_tables["proxy"], DestinationCidrBlock="0.0.0.0/0",
                     **target)


def _proxies_straight_out(s: Seeded) -> None:
    _proxies_default_route(s, GatewayId=s.igw)


def _proxies_around_firewall(s: Seeded) -> None:
    _proxies_default_route(s, NatGatewayId=s.nat)


def _db_egress(s: Seeded) -> None:
    s.client("ec2").authorize_security_group_egress(
        GroupId=s.security_groups[TOTTORI], IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
            "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])


def _customer_gateway_inside(s: Seeded) -> None:
    """A customer gateway written with an address of the proxies' range (198.18.1.0/24)."""
    s.client("ec2").create_customer_gateway(
        BgpAsn=65000, PublicIp="198.18.1.10", Type="ipsec.1", TagSpecifications=[{
            "ResourceType": "customer-gateway", "Tags": tag_list(tags.base(
                s.cloud, SECURITY_CLOUD, prefecture=PREF, municipality=KURAYOSHI))}])


def _proxies_admit_everybody(s: Seeded) -> None:
    s.client("ec2").authorize_security_group_ingress(
        GroupId=s.security_groups["proxy"], IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
            "IpRanges": [{"CidrIp": "198.18.0.0/15"}]}])


# (invariant it breaks (municloud/cloud/invariants.py), case id, kind, seed options, break it,
#  {failing check: message in its FAIL line}); grouped by invariant, in the catalogue's order
BROKEN: list[tuple[str, str, str, dict[str, Any], Callable[[Seeded], None],
                   dict[str, str]]] = [
    ("cloud.tgw.no-defaults", "tgw-default-route-table",
     SECURITY_CLOUD, {"tgw_defaults_disabled": False}, _nothing,
     {"tgw-default-route-table": "DefaultRouteTableAssociation and DefaultRouteTablePropagation "
                                 "enabled"}),
    ("cloud.isolation.tenants", "route-to-other-municipality",
     SECURITY_CLOUD, {}, _route_to_other,
     {"tgw-isolation": "municipality 312011's table routes 198.18.22.0/24, inside 198.18.22.0/24 "
                       "of municipality 312029"}),
    ("cloud.isolation.tenants", "propagation-from-other-municipality",
     SECURITY_CLOUD, {}, _propagate_other,
     {"tgw-isolation": "learns routes by propagation from"}),
    ("cloud.isolation.tenants", "hub-default-route-to-a-tenant",
     SECURITY_CLOUD, {}, _hub_default_route_to_a_tenant,
     {"tgw-isolation": "the hub table routes 0.0.0.0/0 over ranges of more than one tenant: "
                       "198.18.18.0/24 of municipality 312011"}),
    ("cloud.isolation.tenants", "hub-route-to-another-prefecture",
     SECURITY_CLOUD, {}, _hub_route_to_another_prefecture,
     {"tgw-isolation": "the hub table routes 198.19.19.0/25, inside 198.19.19.0/25 of "
                       "municipality 332020 (VPC vpc-"}),
    ("cloud.isolation.tenants", "joint-cloud-tenant-propagation",
     JOINT_CLOUD, {}, _tenant_propagation,
     {"tgw-isolation": "municipality 312011's table learns routes by propagation from"}),
    ("cloud.ingress.no-world", "security-cloud-world-ingress",
     SECURITY_CLOUD, {}, _world_ingress,
     {"sg-no-world-ingress": "ingress from 0.0.0.0/0 on tcp/22"}),
    ("cloud.ingress.no-world", "joint-cloud-world-ingress",
     JOINT_CLOUD, {}, _world_ingress,
     {"sg-no-world-ingress": "ingress from 0.0.0.0/0"}),
    ("cloud.ingress.tenants-only", "proxies-admit-everybody",
     SECURITY_CLOUD, {}, _proxies_admit_everybody,
     {"sg-ingress-tenants": "serves prefecture 310000 but admits 198.18.0.0/15 on tcp/8080"}),
    ("cloud.public-address.none", "joint-cloud-public-ip",
     JOINT_CLOUD, {}, _public_instance,
     {"no-public-ip": "instance has public IP", "subnet-no-public-ip": "maps a public IP"}),
    ("cloud.egress.through-firewall", "nat-without-internet-route",
     SECURITY_CLOUD, {}, _nat_without_internet_route,
     {"egress-path": "sends 0.0.0.0/0 to nowhere, not to an internet gateway"}),
    ("cloud.egress.through-firewall", "proxies-straight-to-internet-gateway",
     SECURITY_CLOUD, {}, _proxies_straight_out,
     {"egress-path": "subnet of prefecture 31 routes 0.0.0.0/0 straight to internet gateway"}),
    ("cloud.egress.through-firewall", "proxies-around-firewall",
     SECURITY_CLOUD, {"network_firewall": True}, _proxies_around_firewall,
     {"egress-path": "around the network firewall"}),
    ("cloud.egress.appliance-mode", "inspection-appliance-mode-off",
     SECURITY_CLOUD, {"appliance_mode": False}, _nothing,
     {"tgw-appliance-mode": "appliance mode is disable on the attachment of inspection VPC"}),
    ("cloud.joint.closed", "joint-cloud-internet-gateway",
     JOINT_CLOUD, {}, _internet_gateway,
     {"no-internet-gateway": "internet gateway attached to vpc-"}),
    ("cloud.joint.closed", "database-lets-connections-out",
     JOINT_CLOUD, {}, _db_egress,
     {"db-no-egress": "of database broken-"}),
    ("cloud.logs.archive", "bucket-without-object-lock",
     SECURITY_CLOUD, {"object_lock": False}, _nothing,
     {"log-archive-object-lock": "object lock is not enabled"}),
    ("cloud.logs.archive", "bucket-lock-governance",
     SECURITY_CLOUD, {"lock_mode": "GOVERNANCE"}, _nothing,
     {"log-archive-object-lock": "default retention is GOVERNANCE, not COMPLIANCE"}),
    ("cloud.logs.archive", "log-archive-versioning-suspended",
     SECURITY_CLOUD, {"versioning": "Suspended"}, _nothing,
     {"log-archive-versioning": "versioning is Suspended"}),
    ("cloud.logs.archive", "bucket-not-kms",
     SECURITY_CLOUD, {"encryption": "AES256"}, _nothing,
     {"log-archive-encryption": "default encryption is AES256, not aws:kms"}),
    ("cloud.logs.trail", "trail-not-logging",
     SECURITY_CLOUD, {}, _stop_trail,
     {"cloudtrail": "not logging"}),
    ("cloud.logs.trail", "trail-not-validated",
     SECURITY_CLOUD, {"trail_validated": False}, _nothing,
     {"cloudtrail": "no log file validation"}),
    ("cloud.logs.flow-logs", "vpc-without-flow-logs",
     SECURITY_CLOUD, {}, _vpc_without_flow_logs,
     {"vpc-flow-logs": "no active flow log on the VPC"}),
    ("cloud.detection.guardduty", "detector-disabled",
     SECURITY_CLOUD, {}, _disable_detector,
     {"guardduty": "detector is DISABLED"}),
    ("cloud.data.encrypted", "unencrypted-rds",
     JOINT_CLOUD, {"storage_encrypted": False}, _nothing,
     {"rds-encrypted": "storage is not encrypted"}),
    ("cloud.data.backup-copies", "backup-same-region",
     JOINT_CLOUD, {"copy_to_other_region": False}, _nothing,
     {"backup-cross-region": f"copy actions stay in {REGION}"}),
    ("cloud.tags.serves", "untagged-resource",
     SECURITY_CLOUD, {}, _untagged_group,
     {"serves-tags": "security group carries neither municloud:prefecture nor "
                     "municloud:municipality"}),
    ("cloud.inventory.served", "municipality-without-attachment",
     SECURITY_CLOUD, {}, _detach_yonago,
     {"municipalities-attached": "米子市 (312029, inventory sample) has no transit gateway "
                                 "attachment or VPN"}),
    ("cloud.vpn.outside-address", "customer-gateway-inside-the-cloud",
     SECURITY_CLOUD, {}, _customer_gateway_inside,
     {"vpn-outside-address": "customer gateway of municipality 312037 is 198.18.1.10, inside "
                             "198.18.1.0/24 of VPC"}),
]
# Cases run with an inventory of their fresh cloud (checks that exist only with --inventory).
WITH_INVENTORY = {"proxies-admit-everybody", "municipality-without-attachment"}
# Invariants whose checks no seeded moto cloud can break, and why; their failing paths are
# tested on hand-built states.
MOTO_CANNOT_BREAK = {
    "cloud.isolation.vpn-selectors": "moto 5.2.5 drops a VPN connection's Options (its traffic "
                                     "selectors): test_vpn_selectors* judge hand-built states",
}


def inventory_of(tmp_path: Path, sample: Prefecture, kind: str, cloud: str) -> Path:
    """The sample inventory, rewritten so that its prefecture (security cloud) or its members
    (joint cloud) belong to ``cloud``."""
    inventory = tmp_path / "sample"
    inventory.mkdir()
    text = (SAMPLE / "hosts.yml").read_text(encoding="utf-8")
    if kind == SECURITY_CLOUD:
        text = text.replace(f"security_cloud: {sample.security_cloud}", f"security_cloud: {cloud}")
    else:
        joint = next(m.joint_cloud for m in sample.municipalities if m.joint_cloud)
        text = text.replace(f"joint_cloud: {joint}", f"joint_cloud: {cloud}")
    (inventory / "hosts.yml").write_text(text, encoding="utf-8")
    return inventory


@pytest.mark.parametrize(("invariant", "case", "kind", "options", "breaker", "failures"),
                         BROKEN, ids=[case[1] for case in BROKEN])
def test_broken_cloud_fails(capsys: pytest.CaptureFixture[str], endpoint: str,
                            sample: Prefecture, tmp_path: Path, invariant: str, case: str,
                            kind: str, options: dict[str, Any],
                            breaker: Callable[[Seeded], None], failures: dict[str, str]) -> None:
    cloud = fresh("broken")
    seed = seed_security_cloud if kind == SECURITY_CLOUD else seed_joint_cloud
    breaker(seed(endpoint, cloud, sample, **options))
    extra = ("--inventory", str(inventory_of(tmp_path, sample, kind, cloud))) \
        if case in WITH_INVENTORY else ()
    code, out, _ = verify(capsys, endpoint, kind, cloud, *extra)
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert code == 1
    assert {line.split()[1] for line in failed} == set(failures), out
    for check, message in failures.items():
        assert any(line.split()[1] == check and message in line for line in failed), out


class DenyingSession:
    """A boto3 session whose S3 client answers AccessDenied to chosen calls on chosen buckets,
    as a bucket policy denying the verifying role would."""

    def __init__(self, denied: dict[str, set[str]]) -> None:  # bucket -> method names
        import boto3

        self.session = boto3.session.Session(region_name=REGION)
        self.denied = denied

    def client(self, service: str, **kwargs: Any) -> Any:
        real = self.session.client(service, **kwargs)
        return _Denying(real, self.denied) if service == "s3" else real


class _Denying:
    def __init__(self, client: Any, denied: dict[str, set[str]]) -> None:
        self._client, self._denied = client, denied

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            from botocore.exceptions import ClientError

            if name in self._denied.get(kwargs.get("Bucket", ""), set()):
                operation = "".join(word.title() for word in name.split("_"))
                raise ClientError({"Error": {"Code": "AccessDenied",
                                             "Message": "Access Denied"}}, operation)
            return attr(*args, **kwargs)

        return call if callable(attr) else attr


def test_one_unreadable_bucket_leaves_the_others_judged(endpoint: str,
                                                        sample: Prefecture) -> None:
    """AccessDenied on one bucket's configuration made every S3 check UNCHECKED; now only that
    bucket's check is, named, and the other buckets are judged."""
    seeded = seed_security_cloud(endpoint, fresh("denied"), sample)
    s3 = seeded.client("s3")
    second = f"{seeded.cloud}-second-archive"  # a second archive, encrypted with AES256 only
    s3.create_bucket(Bucket=second, ObjectLockEnabledForBucket=True,
                     CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object_lock_configuration(Bucket=second, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Years": 5}}})
    s3.put_bucket_encryption(Bucket=second, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.put_bucket_tagging(Bucket=second, Tagging={"TagSet": tag_list(
        tags.base(seeded.cloud, SECURITY_CLOUD, prefecture=PREF))})
    stranger = f"{seeded.cloud}-stranger"  # whose tags the role may not read
    s3.create_bucket(Bucket=stranger, CreateBucketConfiguration={"LocationConstraint": REGION})
    session = DenyingSession({seeded.bucket: {"get_object_lock_configuration"},
                              stranger: {"get_bucket_tagging"}})
    state = collect(seeded.cloud, SECURITY_CLOUD, REGION, endpoint, session)
    assert "s3" not in state.unavailable
    findings = [f for f in run_checks(state) if f.check.startswith("log-archive-")]
    by_check: dict[str, set[tuple[Status, str]]] = {}
    for f in findings:
        by_check.setdefault(f.check, set()).add((f.status, f.resource))
    assert by_check["log-archive-object-lock"] == {
        (Status.UNCHECKED, seeded.bucket), (Status.PASS, second), (Status.UNCHECKED, stranger)}
    assert by_check["log-archive-encryption"] == {
        (Status.FAIL, second), (Status.UNCHECKED, stranger)}
    assert by_check["log-archive-versioning"] == {
        (Status.PASS, f"{seeded.bucket},{second}"), (Status.UNCHECKED, stranger)}
    (locked,) = [f for f in findings if f.resource == seeded.bucket]
    assert locked.message == ("GetObjectLockConfiguration failed with AccessDenied: the "
                              "bucket's object lock is not judged")
    assert "s3:GetBucketObjectLockConfiguration" in locked.fix
    assert any(f.message == "cannot tell whether the bucket belongs to the cloud: "
               "GetBucketTagging failed with AccessDenied" for f in findings
               if f.resource == stranger)
    assert verdicts(findings)["log-archive-object-lock"] is Status.UNCHECKED
    assert verdicts(findings)["log-archive-encryption"] is Status.FAIL


def test_every_checked_invariant_has_a_broken_cloud() -> None:
    for inv in invariants.CATALOGUE:
        cases = [case[1] for case in BROKEN if case[0] == inv.id]
        if inv.id in MOTO_CANNOT_BREAK:
            # the exemption hides nothing, and moto indeed leaves these checks UNCHECKED
            assert not cases and inv.checks and set(inv.checks) <= set(NOT_ON_MOTO), inv.id
        elif inv.checks:
            assert cases, f"{inv.id} (checks {', '.join(inv.checks)}) has no BROKEN case"


def test_each_broken_cloud_fails_only_checks_of_its_invariant() -> None:
    for invariant, case, _, _, _, failures in BROKEN:
        named = invariants.get(invariant).checks
        assert set(failures) <= set(named), (
            f"{case} fails {sorted(set(failures) - set(named))}, which {invariant} does not "
            f"name (its checks: {', '.join(named) or 'none'})")


def test_every_registered_check_belongs_to_an_invariant() -> None:
    named = {check for inv in invariants.CATALOGUE for check in inv.checks}
    registered: set[str] = set()
    for kind in (SECURITY_CLOUD, JOINT_CLOUD):
        for inventories in (None, Inventories((), ())):
            names = {name for name, _, _ in registered_checks(kind, inventories)}
            assert names <= named, f"{kind}: no invariant names {sorted(names - named)}"
            registered |= names
    # and the catalogue names no check verify does not have
    assert named <= registered, f"the catalogue names unknown checks {sorted(named - registered)}"


def test_missing_municipality_attachment(capsys: pytest.CaptureFixture[str], endpoint: str,
                                         sample: Prefecture, tmp_path: Path) -> None:
    cloud = fresh("partial")
    seeded = seed_security_cloud(endpoint, cloud, sample)
    seeded.client("ec2").delete_vpn_connection(VpnConnectionId=seeded.vpns[KURAYOSHI])
    inventory = inventory_of(tmp_path, sample, SECURITY_CLOUD, cloud)
    code, out, _ = verify(capsys, endpoint, SECURITY_CLOUD, cloud, "--inventory", str(inventory))
    assert code == 1
    assert ("FAIL      municipalities-attached    312037: 倉吉市 (312037, inventory sample) has "
            "no transit gateway attachment or VPN tagged municloud:municipality=312037") in out


def test_unknown_cloud_finds_nothing_and_fails(capsys: pytest.CaptureFixture[str],
                                               endpoint: str) -> None:
    code, out, _ = verify(capsys, endpoint, SECURITY_CLOUD, "no-such-cloud")
    assert code == 1
    assert ("FAIL      tgw-default-route-table    -: no transit gateway tagged "
            f"municloud:cloud=no-such-cloud in {REGION}") in out
    assert "no log archive bucket tagged" in out
    assert "no resource tagged municloud:cloud=no-such-cloud" in out
    code, out, _ = verify(capsys, endpoint, JOINT_CLOUD, "no-such-cloud")
    assert code == 1 and "PASS" not in out.replace("0 passed", "")


def test_unreachable_endpoint_exits_2(capsys: pytest.CaptureFixture[str], aws_env: None) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    code, out, err = verify(capsys, closed, SECURITY_CLOUD, "any")
    assert code == 2
    assert out == ""
    assert err.startswith(f"municloud cloud verify: cannot reach {closed}")
    assert "Traceback" not in err


def test_no_credentials_exits_2(capsys: pytest.CaptureFixture[str], endpoint: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    code, _, err = verify(capsys, endpoint, SECURITY_CLOUD, "any")
    assert code == 2
    assert "no usable AWS credentials" in err and "Traceback" not in err


def test_inventory_of_another_cloud_exits_2(capsys: pytest.CaptureFixture[str],
                                            endpoint: str) -> None:
    code, _, err = verify(capsys, endpoint, SECURITY_CLOUD, "elsewhere", "--inventory",
                          str(SAMPLE))
    assert code == 2
    assert "belongs to security cloud 'okayama-tottori', not 'elsewhere'" in err
    code, _, err = verify(capsys, endpoint, JOINT_CLOUD, "elsewhere", "--inventory", str(SAMPLE))
    assert code == 2 and "its joint clouds: tottori-joint" in err
