"""Broken variants of the sample stacks: one invariant of municloud/cloud/invariants.py broken
per case, as one careless edit of a program would break it.

Each case copies the recorded graph of a sample stack (tests/unit/cloud_stacks.py) and changes
or adds resources in it; test_cloud_invariants.py then runs the graph tests and the policy pack
(through pulumi_policy's analyzer, as the engine would) over the copy, and both must reject it.
The first twelve are the breaks the cloud issue names; the rest give every other invariant one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from cloud_stacks import graph

from municloud.cloud import policies
from municloud.cloud.mockrun import Graph, Resource

SECURITY = "security-cloud/tottori"
SUPER_WIDE = "security-cloud/okayama-tottori"  # the one with a network firewall
JOINT = "joint-cloud/tottori-joint"


@dataclass(frozen=True)
class Break:
    id: str
    invariant: str
    ref: str
    mutate: Callable[[Graph], None]

    def graph(self) -> Graph:
        g = copy.deepcopy(graph(self.ref))
        self.mutate(g)
        return g


def one(g: Graph, type_: str, contains: str = "") -> Resource:
    """The first resource of ``type_`` whose name contains ``contains``."""
    found = [r for r in g.of_type(type_) if contains in r.name]
    assert found, f"no {type_} named *{contains}* in {g.stack}"
    return found[0]


def add(g: Graph, type_: str, name: str, props: dict[str, object],
        parent: Resource | None = None) -> None:
    g.resources.append(Resource(
        urn=f"urn:pulumi:{g.stack}::{g.project}::{type_}::{name}", type=type_, name=name,
        custom=True, parent=parent.urn if parent else None,
        props={**props, "id": f"{name}-id"}))


def _firewall_passes(g: Graph) -> None:
    fp = one(g, policies.FIREWALL_POLICY).props["firewallPolicy"]
    fp["statelessDefaultActions"] = ["aws:pass"]
    fp["statelessFragmentDefaultActions"] = ["aws:pass"]
    fp["statefulDefaultActions"] = []


def _appliance_mode_off(g: Graph) -> None:
    one(g, policies.TGW_VPC_ATTACHMENT, "-inspection-").props["applianceModeSupport"] = "disable"


def _proxies_to_nat(g: Graph) -> None:
    nat = one(g, policies.NAT_GATEWAY, "-1a")
    for r in g.of_type(policies.ROUTE):
        if "-route-proxy-" in r.name and r.props["destinationCidrBlock"] == "0.0.0.0/0":
            r.props.pop("vpcEndpointId", None)
            r.props["natGatewayId"] = nat.props["id"]


def _nat_in_transit_subnets(g: Graph) -> None:
    for nat in g.of_type(policies.NAT_GATEWAY):
        zone = nat.name.rsplit("-nat-", 1)[1]
        nat.props["subnetId"] = one(g, policies.SUBNET, f"-tgw-{zone}").props["id"]


def _proxy_ingress_widened(g: Graph) -> None:
    sg = one(g, policies.SG, "-proxy-310000-sg")
    for rule in sg.props["ingress"]:
        if rule.get("cidrBlocks"):
            rule["cidrBlocks"] = ["198.18.0.0/15"]


def _lock_governance(g: Graph) -> None:
    lock = one(g, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    lock.props["rule"]["defaultRetention"]["mode"] = "GOVERNANCE"


def _database_egress(g: Graph) -> None:
    one(g, policies.SG, "-db-sg").props["egress"] = [
        {"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]


def _database_ingress_from_every_segment(g: Graph) -> None:
    sg = one(g, policies.SG, "-312011-db-sg")
    sg.props["ingress"][0]["cidrBlocks"] = ["198.18.0.0/16"]


def _vpn_selector_world(g: Graph) -> None:
    one(g, policies.VPN, "-312011-").props["localIpv4NetworkCidr"] = "0.0.0.0/0"


def _tenant_route_to_supernet(g: Graph) -> None:
    route = one(g, policies.TGW_ROUTE, "-312011-to-proxies")
    route.props["destinationCidrBlock"] = "198.18.0.0/16"


def _propagation_left_on(g: Graph) -> None:
    table = one(g, "aws:ec2transitgateway/routeTable:RouteTable", "-312011-")
    other = one(g, policies.TGW_ASSOCIATION, "-312029-")
    add(g, policies.TGW_PROPAGATION, "left-on", {
        "transitGatewayRouteTableId": table.props["id"],
        "transitGatewayAttachmentId": other.props["transitGatewayAttachmentId"]})


def _proxies_route_to_other_prefecture(g: Graph) -> None:
    route = one(g, policies.ROUTE, "-route-proxy-310000-ap-northeast-1a-to-312011")
    route.props["destinationCidrBlock"] = "198.19.17.0/25"  # 岡山市's internet segment


def _versioning_suspended(g: Graph) -> None:
    one(g, "aws:s3/bucketVersioning:BucketVersioning").props[
        "versioningConfiguration"]["status"] = "Suspended"


def _tgw_default_propagation(g: Graph) -> None:
    one(g, policies.TGW).props["defaultRouteTablePropagation"] = "enable"


def _open_halves(g: Graph) -> None:
    sg = one(g, policies.SG, "-proxy-310000-sg")
    sg.props["ingress"] += [{"protocol": "tcp", "fromPort": 3128, "toPort": 3128,
                             "cidrBlocks": [half]} for half in ("0.0.0.0/1", "128.0.0.0/1")]


def _public_subnet(g: Graph) -> None:
    one(g, policies.SUBNET, "-proxy-").props["mapPublicIpOnLaunch"] = True


def _database_public(g: Graph) -> None:
    one(g, policies.RDS).props["publiclyAccessible"] = True


def _internet_gateway_in_joint_cloud(g: Graph) -> None:
    vpc = one(g, policies.VPC)
    add(g, policies.INTERNET_GATEWAY, "igw", {"vpcId": vpc.props["id"], "tags": dict(vpc.tags)})


def _trail_unvalidated(g: Graph) -> None:
    one(g, "aws:cloudtrail/trail:Trail").props["enableLogFileValidation"] = False


def _flow_log_removed(g: Graph) -> None:
    g.resources.remove(one(g, policies.FLOW_LOG))


def _detector_off(g: Graph) -> None:
    one(g, "aws:guardduty/detector:Detector").props["enable"] = False


def _database_unencrypted(g: Graph) -> None:
    one(g, policies.RDS).props["storageEncrypted"] = False


def _backup_same_region(g: Graph) -> None:
    for rule in one(g, policies.BACKUP_PLAN).props["rules"]:
        for action in rule["copyActions"]:
            action["destinationVaultArn"] = action["destinationVaultArn"].replace(
                ":ap-northeast-3:", ":ap-northeast-1:")


def _untagged_group(g: Graph) -> None:
    tags = one(g, policies.SG, "-proxy-310000-sg").props["tags"]
    tags.pop("municloud:prefecture")


def _municipality_dropped(g: Graph) -> None:
    gone = [r for r in g.cloud_resources if r.tags.get("municloud:municipality") == "312037"
            or "-312037-" in r.name]
    for r in gone:
        g.resources.remove(r)


def _gateway_inside_the_vpc(g: Graph) -> None:
    one(g, policies.CUSTOMER_GATEWAY, "-312011-").props["ipAddress"] = "198.18.1.10"


def _long_target_group_name(g: Graph) -> None:
    one(g, policies.TARGET_GROUP).name = "okayama-tottori-proxy-310000-tg"


def _volumes_under_log_key(g: Graph) -> None:
    key = one(g, policies.KMS_KEY, "-logs-key")
    for lt in g.of_type(policies.LAUNCH_TEMPLATE):
        lt.props["blockDeviceMappings"][0]["ebs"]["kmsKeyId"] = key.props["arn"]


def _balancer_web_ports_only(g: Graph) -> None:
    sg = one(g, policies.SG, "-nlb-sg")
    for rule in sg.props["egress"]:
        rule["fromPort"] = rule["toPort"] = 443


BREAKS: tuple[Break, ...] = (
    # the twelve of the issue, in its order
    Break("firewall-drop-to-pass", "cloud.egress.firewall-default-deny", SUPER_WIDE,
          _firewall_passes),
    Break("appliance-mode-off", "cloud.egress.appliance-mode", SECURITY, _appliance_mode_off),
    Break("proxies-to-nat-around-the-firewall", "cloud.egress.through-firewall", SUPER_WIDE,
          _proxies_to_nat),
    Break("nat-in-transit-subnets", "cloud.egress.through-firewall", SECURITY,
          _nat_in_transit_subnets),
    Break("proxy-ingress-whole-lab-range", "cloud.ingress.tenants-only", SECURITY,
          _proxy_ingress_widened),
    Break("object-lock-governance", "cloud.logs.archive", SECURITY, _lock_governance),
    Break("database-egress-world", "cloud.joint.closed", JOINT, _database_egress),
    Break("database-ingress-every-segment", "cloud.ingress.tenants-only", JOINT,
          _database_ingress_from_every_segment),
    Break("vpn-selector-world", "cloud.isolation.vpn-selectors", SECURITY, _vpn_selector_world),
    Break("tenant-route-to-supernet", "cloud.isolation.tenants", SECURITY,
          _tenant_route_to_supernet),
    Break("propagation-left-on", "cloud.isolation.tenants", SECURITY, _propagation_left_on),
    Break("versioning-suspended", "cloud.logs.archive", SECURITY, _versioning_suspended),
    # one for each other invariant, and a second way to break isolation
    Break("proxies-route-to-other-prefecture", "cloud.isolation.tenants", SUPER_WIDE,
          _proxies_route_to_other_prefecture),
    Break("tgw-default-propagation", "cloud.tgw.no-defaults", SECURITY,
          _tgw_default_propagation),
    Break("ingress-two-halves-of-the-internet", "cloud.ingress.no-world", SECURITY,
          _open_halves),
    Break("subnet-maps-public-ip", "cloud.public-address.none", SECURITY, _public_subnet),
    Break("database-publicly-accessible", "cloud.public-address.none", JOINT, _database_public),
    Break("internet-gateway-in-joint-cloud", "cloud.joint.closed", JOINT,
          _internet_gateway_in_joint_cloud),
    Break("trail-without-validation", "cloud.logs.trail", SECURITY, _trail_unvalidated),
    Break("vpc-without-flow-log", "cloud.logs.flow-logs", JOINT, _flow_log_removed),
    Break("guardduty-off", "cloud.detection.guardduty", SECURITY, _detector_off),
    Break("database-unencrypted", "cloud.data.encrypted", JOINT, _database_unencrypted),
    Break("backup-copied-in-region", "cloud.data.backup-copies", JOINT, _backup_same_region),
    Break("group-serves-nobody", "cloud.tags.serves", SECURITY, _untagged_group),
    Break("municipality-left-out", "cloud.inventory.served", SECURITY, _municipality_dropped),
    Break("customer-gateway-inside-the-vpc", "cloud.vpn.outside-address", SECURITY,
          _gateway_inside_the_vpc),
    Break("target-group-name-too-long", "cloud.aws.names", SECURITY, _long_target_group_name),
    Break("proxy-volumes-under-the-log-key", "cloud.aws.kms-key-users", SECURITY,
          _volumes_under_log_key),
    Break("balancer-egress-web-ports-only", "cloud.balancer.reaches-targets", SECURITY,
          _balancer_web_ports_only),
)
