"""The CrossGuard pack: each policy on small hand-made resources (good and bad), over the mocked
graph of each sample stack, and against a graph with an invariant broken on purpose."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest
from cloud_stacks import ALL_STACKS, graph
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

from municloud.cloud import joint_cloud, policies, security_cloud, stacks, tags
from municloud.cloud.engine import AnalyzerError, PolicyAnalyzer, shared_analyzer
from municloud.cloud.mockrun import Graph, Resource, run_program

GOOD_TAGS = tags.base("okayama-tottori", tags.KIND_SECURITY_CLOUD, prefecture="310000",
                      municipality="312011")


_names = itertools.count()


def res(type_: str, props: dict[str, Any], name: str = "") -> Resource:
    name = name or f"r{next(_names)}"
    return Resource(urn=f"urn:pulumi:s::p::{type_}::{name}", type=type_, name=name, custom=True,
                    parent=None, props=props)


def verdict(policy: str, resources: list[Resource]) -> list[tuple[str, str | None]]:
    (result,) = [r for r in policies.run_policy_pack(resources) if r.name == policy]
    return result.violations


def test_every_policy_is_mandatory_and_named_once() -> None:
    pack = policies.policy_pack_policies()
    assert len(pack) == len(policies.RULES)
    assert len({p.name for p in pack}) == len(pack)
    assert all(p.enforcement_level is EnforcementLevel.MANDATORY for p in pack)
    assert all(isinstance(p, ResourceValidationPolicy | StackValidationPolicy) for p in pack)


def test_the_pack_program_serves_every_rule_as_mandatory() -> None:
    """What the engine learns from pulumi/policy itself (GetAnalyzerInfo over gRPC)."""
    info = shared_analyzer().info()
    assert info.name == "municloud"
    served = {p.name: p.enforcementLevel for p in info.policies}
    assert set(served) == {r.name for r in policies.RULES}
    assert set(served.values()) == {analyzer_pb2.MANDATORY}


def test_a_pack_that_does_not_start_is_named(tmp_path: Path) -> None:
    with pytest.raises(AnalyzerError, match=str(tmp_path)):
        PolicyAnalyzer(tmp_path).start()  # no __main__.py
    (tmp_path / "__main__.py").write_text("raise SystemExit('the pack is broken')\n")
    with pytest.raises(AnalyzerError, match="the pack is broken"):
        PolicyAnalyzer(tmp_path).start()


# --- one good and one bad case per policy ------------------------------------------------------

VPC_ATTACH = policies.TGW_VPC_ATTACHMENT
CASES: list[tuple[str, list[Resource], list[Resource]]] = [
    ("municloud-tags",
     [res("aws:ec2/vpc:Vpc", {"tags": GOOD_TAGS}),
      res("aws:ec2/route:Route", {}),  # untaggable by design
      res("aws:autoscaling/group:Group", {"tags": [
          {"key": k, "value": v, "propagateAtLaunch": True} for k, v in GOOD_TAGS.items()]})],
     [res("aws:ec2/vpc:Vpc", {"tags": {"Name": "x"}}),
      res("aws:ec2/vpc:Vpc", {"tags": {**GOOD_TAGS, tags.MUNICIPALITY: "312012"}}),  # bad check
      res("aws:ec2/vpc:Vpc", {"tags": {**GOOD_TAGS, tags.PREFECTURE: "330001"}})]),
    ("municloud-no-open-ingress",
     [res(policies.SG, {"ingress": [{"cidrBlocks": ["198.18.18.0/24"], "fromPort": 3128}]})],
     [res(policies.SG, {"ingress": [{"cidrBlocks": ["0.0.0.0/0"], "fromPort": 22}]}),
      res(policies.SG, {"ingress": [{"cidrBlocks": ["0.0.0.0/1", "128.0.0.0/1"]}]}),
      res(policies.SG, {"ingress": [{"cidrBlocks": [f"{n}.0.0.0/2"]} for n in (0, 64, 128, 192)]}),
      res(policies.SG_INGRESS, {"cidrIpv6": "::/0"}),
      res(policies.SG_RULE, {"type": "ingress", "cidrBlocks": ["0.0.0.0/0"]})]),
    ("municloud-encryption",
     [res(policies.RDS, {"storageEncrypted": True, "kmsKeyId": "arn:k"}),
      res(policies.BUCKET, {"objectLockEnabled": True})],
     [res(policies.RDS, {"storageEncrypted": False, "kmsKeyId": "arn:k"}),
      res(policies.BUCKET, {}),
      res("aws:kms/key:Key", {"enableKeyRotation": False})]),
    ("municloud-no-public-address",
     [res("aws:ec2/subnet:Subnet", {"mapPublicIpOnLaunch": False})],
     [res("aws:ec2/subnet:Subnet", {"mapPublicIpOnLaunch": True}),
      res(policies.RDS, {"publiclyAccessible": True})]),
    ("municloud-transit-gateway-defaults",
     [res(policies.TGW, {"defaultRouteTableAssociation": "disable",
                         "defaultRouteTablePropagation": "disable"})],
     [res(policies.TGW, {"defaultRouteTableAssociation": "enable",
                         "defaultRouteTablePropagation": "disable"}),
      res(VPC_ATTACH, {"transitGatewayDefaultRouteTableAssociation": True})]),
]


def _tenant_graph(leak: bool, other_prefecture: bool = False) -> list[Resource]:
    a = {**GOOD_TAGS}
    b = {**GOOD_TAGS, tags.MUNICIPALITY: "312029"}
    if other_prefecture:
        b = {**GOOD_TAGS, tags.PREFECTURE: "330001", tags.MUNICIPALITY: "331007"}
    hub = tags.base("okayama-tottori", tags.KIND_SECURITY_CLOUD, prefecture="330001")
    out = [
        res(policies.VPN, {"transitGatewayAttachmentId": "att-a", "tags": a}, "vpn-a"),
        res(policies.VPN, {"transitGatewayAttachmentId": "att-b", "tags": b}, "vpn-b"),
        res(VPC_ATTACH, {"id": "att-hub", "tags": hub}, "hub"),
        res(policies.TGW_ASSOCIATION, {"transitGatewayAttachmentId": "att-a",
                                       "transitGatewayRouteTableId": "rt-a"}, "assoc-a"),
        res(policies.TGW_ASSOCIATION, {"transitGatewayAttachmentId": "att-hub",
                                       "transitGatewayRouteTableId": "rt-hub"}, "assoc-hub"),
        res(policies.TGW_ROUTE, {"transitGatewayAttachmentId": "att-hub",
                                 "transitGatewayRouteTableId": "rt-a",
                                 "destinationCidrBlock": "198.18.1.0/24"}, "a-to-hub"),
        # the hub routes back to every municipality: allowed
        res(policies.TGW_ROUTE, {"transitGatewayAttachmentId": "att-b",
                                 "transitGatewayRouteTableId": "rt-hub",
                                 "destinationCidrBlock": "198.18.22.0/24"}, "hub-to-b"),
    ]
    if leak:
        out.append(res(policies.TGW_ROUTE, {"transitGatewayAttachmentId": "att-b",
                                            "transitGatewayRouteTableId": "rt-a",
                                            "destinationCidrBlock": "198.18.22.0/24"}, "leak"))
    return out


def _bucket(*, lock: bool, mode: str = "COMPLIANCE", versioning: str = "Enabled") -> list[Resource]:
    out = [
        res(policies.BUCKET, {"id": "b", "objectLockEnabled": True}, "bucket"),
        res("aws:s3/bucketVersioning:BucketVersioning",
            {"bucket": "b", "versioningConfiguration": {"status": versioning}}),
        res("aws:s3/bucketServerSideEncryptionConfiguration:"
            "BucketServerSideEncryptionConfiguration",
            {"bucket": "b", "rules": [{"applyServerSideEncryptionByDefault": {
                "sseAlgorithm": "aws:kms"}}]}),
        res("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            {"bucket": "b", "blockPublicAcls": True, "blockPublicPolicy": True,
             "ignorePublicAcls": True, "restrictPublicBuckets": True}),
        res("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", {"bucket": "b"}),
    ]
    if lock:
        out.append(res("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
                       {"bucket": "b", "rule": {"defaultRetention": {"days": 1827,
                                                                      "mode": mode}}}))
    return out


JOINT = tags.base("tottori-joint", tags.KIND_JOINT_CLOUD, municipality="312011")


def _backup(copy_region: str | None) -> list[Resource]:
    rule: dict[str, Any] = {"ruleName": "daily"}
    if copy_region:
        rule["copyActions"] = [{
            "destinationVaultArn": f"arn:aws:backup:{copy_region}:1:backup-vault:v"}]
    return [res(policies.BACKUP_PLAN,
                {"arn": "arn:aws:backup:ap-northeast-1:1:backup-plan:p", "rules": [rule],
                 "tags": JOINT})]


CASES += [
    ("municloud-tenant-isolation", _tenant_graph(False), _tenant_graph(True)),
    ("municloud-tenant-isolation", _tenant_graph(False, True), _tenant_graph(True, True)),
    ("municloud-joint-cloud-closed",
     [res("aws:ec2/vpc:Vpc", {"tags": JOINT})],
     [res("aws:ec2/vpc:Vpc", {"tags": JOINT}),
      res("aws:ec2/internetGateway:InternetGateway", {"tags": JOINT})]),
    ("municloud-log-archive", _bucket(lock=True), _bucket(lock=False)),
    ("municloud-log-archive", _bucket(lock=True), _bucket(lock=True, mode="GOVERNANCE")),
    ("municloud-log-archive", _bucket(lock=True), _bucket(lock=True, versioning="Suspended")),
    ("municloud-joint-cloud-closed",
     [res(policies.SG, {"id": "sg-db", "egress": []}),
      res(policies.RDS, {"vpcSecurityGroupIds": ["sg-db"]})],
     [res(policies.SG, {"id": "sg-db", "egress": [
         {"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]}),
      res(policies.RDS, {"vpcSecurityGroupIds": ["sg-db"]})]),
    ("municloud-transit-gateway-defaults",
     [res(VPC_ATTACH, {"transitGatewayDefaultRouteTableAssociation": False,
                       "transitGatewayDefaultRouteTablePropagation": False,
                       "applianceModeSupport": "enable", "tags": {tags.ROLE: "inspection"}}),
      res(policies.VPN, {"localIpv4NetworkCidr": "198.18.18.0/24",
                         "remoteIpv4NetworkCidr": "198.18.1.0/24"})],
     [res(VPC_ATTACH, {"transitGatewayDefaultRouteTableAssociation": False,
                       "transitGatewayDefaultRouteTablePropagation": False,
                       "applianceModeSupport": "disable", "tags": {tags.ROLE: "inspection"}}),
      res(policies.TGW_PROPAGATION, {"transitGatewayRouteTableId": "rt",
                                     "transitGatewayAttachmentId": "a"}),
      res(policies.VPN, {"localIpv4NetworkCidr": "0.0.0.0/0",
                         "remoteIpv4NetworkCidr": "198.18.1.0/24"}),
      res(policies.VPN, {}),
      res(policies.VPN, {"localIpv4NetworkCidr": "the segment",
                         "remoteIpv4NetworkCidr": "198.18.1.0/24"})]),
    ("municloud-flow-logs",
     [res("aws:ec2/vpc:Vpc", {"id": "v"}), res(policies.FLOW_LOG, {"vpcId": "v"})],
     [res("aws:ec2/vpc:Vpc", {"id": "v"})]),
    ("municloud-backup-copies", _backup("ap-northeast-3"), _backup(None)),
    ("municloud-backup-copies", _backup("ap-northeast-3"), _backup("ap-northeast-1")),
]


@pytest.mark.parametrize(("policy", "good", "bad"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_policy_passes_good_and_reports_bad(policy: str, good: list[Resource],
                                            bad: list[Resource]) -> None:
    assert verdict(policy, good) == []
    found = verdict(policy, bad)
    assert found, f"{policy} missed a violation"
    if policy.endswith(("tags", "ingress", "encryption", "defaults")):
        assert len({urn for _, urn in found}) == len(bad)  # every bad resource is named


def test_tenant_isolation_names_the_scope() -> None:
    (muni,) = verdict("municloud-tenant-isolation", _tenant_graph(True))
    (pref,) = verdict("municloud-tenant-isolation", _tenant_graph(True, True))
    assert muni[0].startswith("municipality-to-municipality")
    assert pref[0].startswith("prefecture-to-prefecture")


# --- AWS's naming rules, judged before pulumi up ---------------------------------------------


@pytest.mark.parametrize(("type_", "name", "props", "problem"), [
    # Pulumi adds 8 characters to an auto-named resource: 25 + 8 > 32.
    ("aws:lb/loadBalancer:LoadBalancer", "okayama-tottori-proxy-nlb", {}, "33 characters"),
    ("aws:lb/targetGroup:TargetGroup", "t", {"name": "internal-x-" + "y" * 22}, "33 characters"),
    ("aws:lb/loadBalancer:LoadBalancer", "lb", {"name": "internal-proxy"}, "'internal-'"),
    (policies.RDS, "db", {"finalSnapshotIdentifier": "312011-tax-final"}, "starting with a letter"),
    (policies.RDS, "Tax_DB", {}, "lower-case letters"),
    (policies.BACKUP_SELECTION, "tottori-joint-312011-backup-selection-for-everything", {},
     "AWS allows 50"),
    ("aws:kms/alias:Alias", "a", {"name": "alias/aws/logs"}, "not 'alias/aws/'"),
])
def test_a_name_aws_refuses_is_caught(type_: str, name: str, props: dict[str, Any],
                                      problem: str) -> None:
    (found,) = verdict("municloud-aws-names", [res(type_, props, name)])
    assert problem in found[0] and found[0].startswith(name), found


def test_names_within_aws_rules_pass() -> None:
    assert verdict("municloud-aws-names", [
        res("aws:lb/loadBalancer:LoadBalancer", {}, "proxy-310000-nlb"),
        res(policies.RDS, {"finalSnapshotIdentifier": "final-tottori-joint-312011-tax"},
            "tottori-joint-312011-tax"),
        res("aws:kms/alias:Alias", {"name": "alias/okayama-tottori-logs"}, "alias"),
        res("aws:ec2/route:Route", {}, "x" * 200),  # a route has no name at AWS
        res(policies.BUCKET, {"bucket": policies.UNKNOWN}, "computed"),  # known at up
    ]) == []


def test_two_resources_with_one_explicit_name_are_caught() -> None:
    (found,) = verdict("municloud-aws-names", [
        res("aws:kms/alias:Alias", {"name": "alias/logs"}, "first"),
        res("aws:kms/alias:Alias", {"name": "alias/logs"}, "second")])
    assert "second" in found[0] and "first's" in found[0]


# --- the pack over the mocked graph of each sample stack ---------------------------------------


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
@pytest.mark.parametrize("ref", ALL_STACKS)
def test_pack_passes_on_each_sample_stack(ref: str, preview: bool) -> None:
    """As the engine runs the pack at a first preview (ids and ARNs unknown) and at up; every
    policy must also have run: a rule that reads an unknown is only an advisory "can't run
    policy during preview", which would let a preview through unjudged."""
    g = graph(ref, preview)
    if preview:
        assert any(policies.UNKNOWN in str(r.props) for r in g.resources)
    results = policies.run_policy_pack(g.resources)
    assert len(results) == len(policies.RULES)
    assert {r.name: r.violations for r in results if not r.passed} == {}
    assert {r.name: r.advisories for r in results if r.advisories} == {}


# --- an invariant broken on purpose: both the graph check and the pack must see it -------------


def _run(program: Any, ref: str, preview: bool = False) -> Graph:
    stack = stacks.resolve(ref)
    return run_program(program, config=stack.config, project=stack.project, stack="broken",
                       secret_keys=list(stack.secret_keys), preview=preview)


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
def test_a_municipality_to_municipality_route_is_caught(preview: bool) -> None:
    stack = stacks.resolve("security-cloud/tottori")

    def leaky() -> None:
        cloud = security_cloud.program(stack.program_dir)
        a, b = cloud.municipalities["312011"], cloud.municipalities["312029"]
        aws.ec2transitgateway.Route(
            "leak", destination_cidr_block="198.18.22.0/24",
            transit_gateway_route_table_id=a.route_table.id,
            transit_gateway_attachment_id=b.vpn.transit_gateway_attachment_id,
            opts=pulumi.ResourceOptions(parent=a))

    g = _run(leaky, "security-cloud/tottori", preview)
    assert g.of_type(policies.TGW_ROUTE)
    by_target, by_destination = policies.check_tenant_isolation(policies.items_of(g))
    # judged twice: by the attachment it leads to, and by the range it leads into
    assert "municipality-to-municipality" in by_target[0] and by_target[1].endswith("::leak")
    assert by_destination == ("the table of municipality 312011 routes 198.18.22.0/24, which "
                              "overlaps 198.18.22.0/24 of municipality 312029: route only to "
                              "your own ranges and the cloud's", by_target[1])
    results = {r.name: r for r in policies.run_policy_pack(g.resources)}
    assert not results["municloud-tenant-isolation"].passed
    assert [r.name for r in results.values() if not r.passed] == ["municloud-tenant-isolation"]


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
def test_an_internet_gateway_in_the_joint_cloud_is_caught(preview: bool) -> None:
    stack = stacks.resolve("joint-cloud/tottori-joint")

    def open_to_internet() -> None:
        cloud = joint_cloud.program(stack.program_dir)
        tenant = cloud.tenants["312011"]
        aws.ec2.InternetGateway("shortcut", vpc_id=tenant.vpc.id,
                                tags=tags.base("tottori-joint", tags.KIND_JOINT_CLOUD,
                                               prefecture="310000", municipality="312011"),
                                opts=pulumi.ResourceOptions(parent=tenant))

    g = _run(open_to_internet, "joint-cloud/tottori-joint", preview)
    assert [r.name for r in g if r.type in policies.INTERNET_TYPES] == ["shortcut"]
    assert len(policies.check_joint_cloud_closed(policies.items_of(g))) == 1
    failed = [r.name for r in policies.run_policy_pack(g.resources) if not r.passed]
    assert failed == ["municloud-joint-cloud-closed"]


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
def test_proxy_volumes_under_the_log_archive_key_are_caught(preview: bool) -> None:
    """The fleet as it was: its volumes under the log archive's customer key, whose policy does
    not name Auto Scaling's service-linked role. AWS would launch no instance."""
    stack = stacks.resolve("security-cloud/tottori")

    def keyed_volumes() -> None:
        cloud = security_cloud.program(stack.program_dir)
        fleet = cloud.fleets["310000"]
        fleet_tags = tags.base("okayama-tottori", tags.KIND_SECURITY_CLOUD, prefecture="310000")
        template = aws.ec2.LaunchTemplate(
            "keyed-lt", image_id="ami-0mockdebian12", tags=fleet_tags,
            block_device_mappings=[{"device_name": "/dev/xvda", "ebs": {
                "encrypted": "true", "kms_key_id": cloud.archive.key.arn}}],
            opts=pulumi.ResourceOptions(parent=fleet))
        aws.autoscaling.Group(
            "keyed-asg", min_size=1, max_size=1,
            launch_template={"id": template.id, "version": "$Latest"},
            tags=[{"key": k, "value": v, "propagate_at_launch": True}
                  for k, v in fleet_tags.items()],
            opts=pulumi.ResourceOptions(parent=fleet))

    g = _run(keyed_volumes, "security-cloud/tottori", preview)
    results = {r.name: r for r in policies.run_policy_pack(g.resources)}
    assert [name for name, r in results.items() if not r.passed] == ["municloud-kms-key-users"]
    (found,) = results["municloud-kms-key-users"].violations
    assert "keyed-asg" in found[0] and "AWSServiceRoleForAutoScaling" in found[0], found


def test_a_key_policy_that_names_the_auto_scaling_role_passes() -> None:
    policy = json.dumps({"Statement": [{
        "Effect": "Allow", "Resource": "*",
        "Principal": {"AWS": "arn:aws:iam::123456789012:role/aws-service-role/"
                             "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:CreateGrant"]}]})
    key = res(policies.KMS_KEY, {"id": "k1", "arn": "arn:k1", "policy": policy}, "key")
    template = res(policies.LAUNCH_TEMPLATE, {"id": "lt1", "blockDeviceMappings": [
        {"ebs": {"encrypted": "true", "kmsKeyId": "arn:k1"}}]}, "lt")
    group = res(policies.ASG, {"launchTemplate": {"id": "lt1"}}, "asg")
    assert verdict("municloud-kms-key-users", [key, template, group]) == []
    bare = res(policies.KMS_KEY, {"id": "k1", "arn": "arn:k1", "policy": "{}"}, "key")
    assert len(verdict("municloud-kms-key-users", [bare, template, group])) == 1


def _balancer(egress: list[dict[str, Any]]) -> list[Resource]:
    sg = res(policies.SG, {"id": "sg-lb", "egress": egress}, "lb-sg")
    lb = res(policies.LOAD_BALANCER, {"arn": "arn:lb", "securityGroups": ["sg-lb"]}, "nlb")
    tg = res(policies.TARGET_GROUP, {"arn": "arn:tg", "port": 3128,
                                     "healthCheck": {"protocol": "TCP", "port": "3128"}}, "tg")
    listener = res(policies.LISTENER, {"loadBalancerArn": "arn:lb", "defaultActions": [
        {"type": "forward", "targetGroupArn": "arn:tg"}]}, "listener")
    return [sg, lb, tg, listener]


def test_a_balancer_whose_groups_let_out_only_web_ports_is_caught() -> None:
    """The fleet as it was: the balancer in the proxies' group, whose egress is 80 and 443."""
    web = [{"protocol": "tcp", "fromPort": n, "toPort": n, "cidrBlocks": ["0.0.0.0/0"]}
           for n in (80, 443)]
    (found,) = verdict("municloud-balancer-reaches-targets", _balancer(web))
    assert "nlb cannot reach target group tg on port 3128" in found[0]
    to_proxies = [{"protocol": "tcp", "fromPort": 3128, "toPort": 3128,
                   "cidrBlocks": ["198.18.1.0/26"]}]
    assert verdict("municloud-balancer-reaches-targets", _balancer(to_proxies)) == []


# --- the firewall drops what it does not let through --------------------------------------------

WEB_ONLY = ('pass tcp $HOME_NET any -> $EXTERNAL_NET [80,443] (sid:1;)\n'
            'drop ip $HOME_NET any -> $EXTERNAL_NET any (sid:2;)')
HOME_NET = {"ipSets": [{"key": "HOME_NET", "ipSet": {"definitions": ["198.18.1.0/26"]}}]}


@pytest.mark.parametrize(("type_", "props", "problem"), [
    (policies.FIREWALL_POLICY, {"firewallPolicy": {
        "statefulEngineOptions": {"ruleOrder": "STRICT_ORDER"}}}, "no stateful default action"),
    (policies.FIREWALL_POLICY, {"firewallPolicy": {
        "statefulDefaultActions": ["aws:drop_established"]}}, "not STRICT_ORDER"),
    (policies.FIREWALL_RULES, {"type": "STATEFUL", "ruleGroup": {
        "ruleVariables": HOME_NET,
        "rulesSource": {"rulesString": WEB_ONLY.replace("drop ip", "pass ip")}}},
     "the last rule is not a drop"),
    (policies.FIREWALL_RULES, {"type": "STATEFUL", "ruleGroup": {
        "rulesSource": {"rulesString": WEB_ONLY}}}, "does not define it"),
])
def test_a_firewall_that_lets_unmatched_traffic_pass_is_caught(
        type_: str, props: dict[str, Any], problem: str) -> None:
    (found,) = verdict("municloud-firewall-default-deny", [res(type_, props, "fw")])
    assert problem in found[0], found


def test_the_security_clouds_firewall_drops_by_default() -> None:
    g = graph("security-cloud/okayama-tottori")  # the stack with the firewall on
    kinds = {r.type for r in g}
    assert {policies.FIREWALL_POLICY, policies.FIREWALL_RULES} <= kinds
    result = [r for r in policies.run_policy_pack(g.resources)
              if r.name == "municloud-firewall-default-deny"]
    assert result and result[0].passed


# --- the way out of a VPC -------------------------------------------------------------------------


def _vpc_with_firewall(proxy_exit: dict[str, str], nat_subnet: str = "public") -> list[Resource]:
    """A VPC like the inspection VPC: public (IGW), firewall (NAT) and proxy subnets."""
    out = [res(policies.INTERNET_GATEWAY, {"id": "igw"}, "igw"),
           res(policies.NAT_GATEWAY, {"id": "nat", "subnetId": nat_subnet}, "nat"),
           res(policies.FIREWALL, {"vpcId": "vpc", "subnetMappings": [{"subnetId": "fw"}]},
               "firewall")]
    exits = {"public": {"gatewayId": "igw"}, "fw": {"natGatewayId": "nat"}, "proxy": proxy_exit}
    for name, target in exits.items():
        out += [res(policies.SUBNET, {"id": name, "vpcId": "vpc"}, f"{name}-subnet"),
                res(policies.ROUTE_TABLE, {"id": f"rt-{name}"}, f"{name}-rt"),
                res(policies.ROUTE_TABLE_ASSOCIATION, {"subnetId": name,
                                                       "routeTableId": f"rt-{name}"}),
                res(policies.ROUTE, {"routeTableId": f"rt-{name}",
                                     "destinationCidrBlock": "0.0.0.0/0", **target},
                    f"{name}-default")]
    return out


def test_the_way_out_through_the_firewall_passes() -> None:
    assert verdict("municloud-egress-path", _vpc_with_firewall({"vpcEndpointId": "vpce"})) == []


@pytest.mark.parametrize(("proxy_exit", "nat_subnet", "problem"), [
    ({"natGatewayId": "nat"}, "public", "proxy-subnet reaches the internet by route "
                                        "proxy-default (natGatewayId) around firewall"),
    ({"gatewayId": "igw"}, "public", "proxy-subnet reaches the internet by route proxy-default "
                                     "(gatewayId) around firewall"),
    ({"vpcEndpointId": "vpce"}, "proxy", "NAT gateway nat is in subnet proxy-subnet, whose "
                                         "default route is not the internet gateway"),
])
def test_a_way_out_around_the_firewall_is_caught(proxy_exit: dict[str, str], nat_subnet: str,
                                                 problem: str) -> None:
    found = verdict("municloud-egress-path", _vpc_with_firewall(proxy_exit, nat_subnet))
    assert any(problem in message for message, _ in found), found
