"""Checks of whom the cloud serves: every resource's tags, every municipality of the inventory."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from municloud.cloud import tags
from municloud.cloud.verify.data import _plan_name
from municloud.cloud.verify.model import (
    CloudState,
    Expected,
    Finding,
    Status,
    attachment_tags,
    has_cloud_tag,
    id_list,
    nothing_found,
    pass_finding,
    tag_map,
)


def tagged_resources(state: CloudState) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(kind, id, tags) of every resource verify found that must say whom it serves.

    Excluded: what AWS creates by itself (the default security group, network interfaces of
    managed services, a transit gateway's untagged default route table), and untagged tables
    that carry nothing.
    """
    eff = attachment_tags(state)
    for t in state.transit_gateways:
        yield "transit gateway", t["TransitGatewayId"], tag_map(t)
    for t in state.tgw_route_tables:
        if has_cloud_tag(t, state.cloud):
            yield "TGW route table", t["TransitGatewayRouteTableId"], tag_map(t)
    for a in state.tgw_attachments:
        att_id = a["TransitGatewayAttachmentId"]
        yield "TGW attachment", att_id, eff[att_id]
    for v in state.vpn_connections:
        yield "VPN connection", v["VpnConnectionId"], tag_map(v)
    for v in state.vpcs:
        yield "VPC", v["VpcId"], tag_map(v)
    for s in state.subnets:
        yield "subnet", s["SubnetId"], tag_map(s)
    for g in state.security_groups:
        if g.get("GroupName") != "default":
            yield "security group", g["GroupId"], tag_map(g)
    for i in state.instances:
        yield "instance", i["InstanceId"], tag_map(i)
    for b in state.buckets:
        yield "S3 bucket", b.name, dict(b.tags)
    for t in state.trails:
        yield "trail", t["Name"], tag_map(t)
    for d in state.detectors:
        if has_cloud_tag(d, state.cloud):
            yield "GuardDuty detector", d["DetectorId"], tag_map(d)
    for d in state.db_instances:
        yield "RDS instance", d["DBInstanceIdentifier"], tag_map(d)
    for p in state.backup_plans:
        yield "backup plan", _plan_name(p), tag_map(p)


def check_serves_tags(state: CloudState) -> list[Finding]:
    """Every resource says whom it serves, with a valid 全国地方公共団体コード."""
    from municloud.inventory import code_problem

    name = "serves-tags"
    found = list(tagged_resources(state))
    if not found:
        return [nothing_found(name, "resource", state,
                              "check --cloud (the value of the municloud:cloud tag) and --region")]
    out: list[Finding] = []
    for kind, rid, rtags in found:
        serves = {k: rtags[k] for k in tags.SERVES if rtags.get(k)}
        if not serves:
            out.append(Finding(name, Status.FAIL, rid,
                               f"{kind} carries neither {tags.PREFECTURE} nor {tags.MUNICIPALITY}",
                               "tag it with the code of the prefecture or municipality it serves "
                               "(tags.base in municloud/cloud/tags.py)", examined=1))
            continue
        for key, value in serves.items():
            problem = code_problem(value)
            if problem:
                out.append(Finding(name, Status.FAIL, rid, f"{kind} tag {key}: {problem}",
                                   "write the 6-digit 全国地方公共団体コード", examined=1))
    return out or [pass_finding(name, [rid for _, rid, _ in found],
                                f"{len(found)} resource(s), each tagged with whom it serves")]


def check_expected_served(state: CloudState, expected: Sequence[Expected]) -> list[Finding]:
    """Each municipality the inventory says the cloud serves has its attachment or VPN."""
    name = "municipalities-attached"
    connected: dict[str, list[str]] = {}
    eff = attachment_tags(state)
    for att in state.tgw_attachments:
        if att.get("State") in ("deleted", "deleting", "failed", "rejected"):
            continue
        code = eff[att["TransitGatewayAttachmentId"]].get(tags.MUNICIPALITY)
        if code:
            connected.setdefault(code, []).append(att["TransitGatewayAttachmentId"])
    for vpn in state.vpn_connections:
        code = tag_map(vpn).get(tags.MUNICIPALITY)
        if code and vpn.get("State") not in ("deleted", "deleting"):
            connected.setdefault(code, []).append(vpn["VpnConnectionId"])
    out: list[Finding] = []
    ids: list[str] = []
    for exp in expected:
        if exp.code in connected:
            ids.extend(connected[exp.code])
            continue
        out.append(Finding(name, Status.FAIL, exp.code,
                           f"{exp.name_ja} ({exp.code}, inventory {exp.inventory}) has no transit "
                           f"gateway attachment or VPN tagged {tags.MUNICIPALITY}={exp.code}",
                           "attach the municipality (pulumi up) or tag its attachment", examined=1))
    if out:
        return out
    return [Finding(name, Status.PASS, id_list(ids), f"all {len(expected)} municipalities of the "
                    "inventory have their attachment or VPN", examined=len(expected))]
