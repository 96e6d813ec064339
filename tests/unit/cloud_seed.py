"""Seed a moto server with a conforming security cloud or joint cloud, built from an inventory.

Used by test_cloud_verify.py: each test case seeds its own cloud under a fresh ``municloud:cloud``
name, then breaks one invariant through the returned :class:`Seeded` ids.

The security cloud (自治体情報セキュリティクラウド) seeded here follows
municloud/cloud/security_cloud.py: one transit gateway without default route tables; an
inspection VPC (the prefecture's ``security_cloud`` network, plus its ``internet`` network for
the public subnet) whose attachment, in appliance mode, sits in a hub table tagged, like
everything shared, with the prefecture only; its egress: a NAT gateway in the public subnet,
which routes 0.0.0.0/0 to the internet gateway, the proxies' subnet routing 0.0.0.0/0 to the NAT
gateway (or, with ``network_firewall``, to a firewall endpoint whose subnet routes to the NAT
gateway); for the first municipalities a
tenant VPC (their internet segment's range) with an attachment, for the last one a VPN (its
closed line, as in the program); one route table per municipality with a single route to its
prefecture's proxy range, and a return route per municipality in the hub table; flow logs on
every VPC into the log archive bucket (object lock, KMS, public access blocked); a multi-region
trail; a GuardDuty detector.

The joint cloud (自治体クラウド) seeded here follows municloud/cloud/joint_cloud.py: per member a
tenant VPC (all on the prefecture's ``joint_cloud`` range), its VPN and VPC attachment in its own
transit gateway route table, a security group open only to its individual-number segment
(個人番号利用事務系) and without egress rules, an encrypted RDS instance and a backup plan
copying to Osaka.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3

from municloud.cloud import tags
from municloud.inventory import Municipality, Prefecture
from municloud.segments import Segment, SharedNetwork

REGION = "ap-northeast-1"
COPY_REGION = "ap-northeast-3"  # the backup copy's region (大阪)


@dataclass
class Seeded:
    """The ids of what was seeded, so that a test can break one thing."""

    cloud: str
    endpoint: str
    vpcs: dict[str, str] = field(default_factory=dict)  # municipality code or "shared" -> VPC id
    subnets: dict[str, str] = field(default_factory=dict)  # same keys -> subnet id
    attachments: dict[str, str] = field(default_factory=dict)  # code or "inspection" -> id
    route_tables: dict[str, str] = field(default_factory=dict)  # code or "inspection" -> id
    vpns: dict[str, str] = field(default_factory=dict)  # municipality code -> VPN id
    cidrs: dict[str, str] = field(default_factory=dict)  # municipality code -> tenant VPC CIDR
    # the inspection VPC's own route tables: "public", "proxy", "tgw", and "firewall" with one
    vpc_route_tables: dict[str, str] = field(default_factory=dict)
    security_groups: dict[str, str] = field(default_factory=dict)  # code or "proxy" -> group id
    customer_gateways: dict[str, str] = field(default_factory=dict)  # code -> customer gateway
    igw: str = ""
    nat: str = ""
    firewall_endpoint: str = ""
    tgw: str = ""
    bucket: str = ""
    trail: str = ""
    db: str = ""
    backup_plan: str = ""
    vault: str = ""

    @property
    def first_vpc(self) -> str:
        return next(iter(self.vpcs.values()))

    @property
    def first_subnet(self) -> str:
        return next(iter(self.subnets.values()))

    def client(self, service: str, region: str = REGION) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=self.endpoint)


def tag_list(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in values.items()]


def tag_spec(resource_type: str, values: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": resource_type, "Tags": tag_list(values)}]


def seed_security_cloud(endpoint: str, cloud: str, pref: Prefecture, *,
                        tgw_defaults_disabled: bool = True, object_lock: bool = True,
                        lock_mode: str = "COMPLIANCE", encryption: str = "aws:kms",
                        trail_validated: bool = True, versioning: str = "Enabled",
                        appliance_mode: bool = True, network_firewall: bool = False) -> Seeded:
    seeded = Seeded(cloud, endpoint)
    ec2 = seeded.client("ec2")
    kind = "security-cloud"
    shared = tags.base(cloud, kind, prefecture=pref.code)

    def of(m: Municipality) -> dict[str, str]:
        return tags.base(cloud, kind, prefecture=pref.code, municipality=m.code)

    # The log archive first: flow logs need their bucket to exist.
    s3 = seeded.client("s3")
    seeded.bucket = f"{cloud}-log-archive"
    s3.create_bucket(Bucket=seeded.bucket, ObjectLockEnabledForBucket=object_lock,
                     CreateBucketConfiguration={"LocationConstraint": REGION})
    # As log_archive.py does: versioning first, then the lock configuration (which needs it).
    s3.put_bucket_versioning(Bucket=seeded.bucket,
                             VersioningConfiguration={"Status": "Enabled"})
    if object_lock:
        s3.put_object_lock_configuration(Bucket=seeded.bucket, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": lock_mode, "Years": 5}}})
    if versioning != "Enabled":
        # moto accepts Suspended on an object-locked bucket (AWS refuses it), which lets a case
        # break versioning alone.
        s3.put_bucket_versioning(Bucket=seeded.bucket,
                                 VersioningConfiguration={"Status": versioning})
    rule: dict[str, Any] = {"SSEAlgorithm": encryption}
    if encryption == "aws:kms":
        rule["KMSMasterKeyID"] = "alias/municloud-logs"
    s3.put_bucket_encryption(Bucket=seeded.bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": rule}]})
    s3.put_public_access_block(Bucket=seeded.bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True})
    s3.put_bucket_tagging(Bucket=seeded.bucket, Tagging={"TagSet": tag_list(shared)})

    options = {"DefaultRouteTableAssociation": "disable", "DefaultRouteTablePropagation": "disable"}
    seeded.tgw = ec2.create_transit_gateway(
        Description=f"{cloud} hub", Options=options if tgw_defaults_disabled else {},
        TagSpecifications=tag_spec("transit-gateway", shared),
    )["TransitGateway"]["TransitGatewayId"]

    def vpc_with_attachment(key: str, cidr: str, values: dict[str, str]) -> str:
        vpc = ec2.create_vpc(CidrBlock=cidr, TagSpecifications=tag_spec("vpc", values))
        vpc_id = vpc["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr,
                                   TagSpecifications=tag_spec("subnet", values))
        seeded.vpcs[key] = vpc_id
        seeded.subnets[key] = subnet["Subnet"]["SubnetId"]
        ec2.create_flow_logs(ResourceIds=[vpc_id], ResourceType="VPC", TrafficType="ALL",
                             LogDestinationType="s3",
                             LogDestination=f"arn:aws:s3:::{seeded.bucket}")
        att = ec2.create_transit_gateway_vpc_attachment(
            TransitGatewayId=seeded.tgw, VpcId=vpc_id, SubnetIds=[seeded.subnets[key]],
        )["TransitGatewayVpcAttachment"]["TransitGatewayAttachmentId"]
        # moto ignores TagSpecifications on attachments; create_tags works on both.
        ec2.create_tags(Resources=[att], Tags=tag_list(values))
        return str(att)

    def route_table(key: str, values: dict[str, str]) -> str:
        table = ec2.create_transit_gateway_route_table(
            TransitGatewayId=seeded.tgw,
            TagSpecifications=tag_spec("transit-gateway-route-table", values),
        )["TransitGatewayRouteTable"]["TransitGatewayRouteTableId"]
        seeded.route_tables[key] = table
        return str(table)

    # Like the Pulumi program: the hub table and the inspection attachment carry only the lead
    # prefecture's tags; verify finds the hub by its association.
    inspection_cidr = str(pref.shared_networks[SharedNetwork.SECURITY_CLOUD].cidr)
    seeded.attachments["inspection"] = inspection_vpc(seeded, pref, shared, appliance_mode,
                                                      network_firewall)
    inspection_table = route_table("inspection", shared)
    ec2.associate_transit_gateway_route_table(
        TransitGatewayRouteTableId=inspection_table,
        TransitGatewayAttachmentId=seeded.attachments["inspection"])

    customer_gateway = ec2.create_customer_gateway(BgpAsn=65000, PublicIp="203.0.113.1",
                                                   Type="ipsec.1")["CustomerGateway"]
    seeded.customer_gateways[pref.municipalities[-1].code] = customer_gateway["CustomerGatewayId"]
    *tenants, last = pref.municipalities
    for m in pref.municipalities:
        if m is last:  # the last municipality comes in over a VPN
            vpn = ec2.create_vpn_connection(
                CustomerGatewayId=customer_gateway["CustomerGatewayId"], Type="ipsec.1",
                TransitGatewayId=seeded.tgw, TagSpecifications=tag_spec("vpn-connection", of(m)),
            )["VpnConnection"]
            seeded.vpns[m.code] = vpn["VpnConnectionId"]
            attachments = ec2.describe_transit_gateway_attachments(
                Filters=[{"Name": "resource-id", "Values": [vpn["VpnConnectionId"]]}],
            )["TransitGatewayAttachments"]
            att = next(a["TransitGatewayAttachmentId"] for a in attachments
                       if a["ResourceId"] == vpn["VpnConnectionId"])
        else:
            cidr = str(m.segments[Segment.INTERNET].cidr)
            seeded.cidrs[m.code] = cidr
            att = vpc_with_attachment(m.code, cidr, of(m))
        seeded.attachments[m.code] = att
        table = route_table(m.code, of(m))
        ec2.associate_transit_gateway_route_table(TransitGatewayRouteTableId=table,
                                                  TransitGatewayAttachmentId=att)
        # A tenant reaches its prefecture's proxies only; the hub routes its range back to it.
        ec2.create_transit_gateway_route(
            DestinationCidrBlock=inspection_cidr, TransitGatewayRouteTableId=table,
            TransitGatewayAttachmentId=seeded.attachments["inspection"])
        ec2.create_transit_gateway_route(
            DestinationCidrBlock=str(m.segments[Segment.INTERNET].cidr),
            TransitGatewayRouteTableId=inspection_table, TransitGatewayAttachmentId=att)
    assert tenants, "the inventory needs two or more municipalities"

    # The web proxy's security group: open to the municipalities only.
    sg = ec2.create_security_group(
        GroupName=f"{cloud}-proxy", Description="web proxy", VpcId=seeded.vpcs["shared"],
        TagSpecifications=tag_spec("security-group", shared))
    seeded.security_groups["proxy"] = sg["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg["GroupId"], IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
        "IpRanges": [{"CidrIp": str(m.segments[Segment.INTERNET].cidr)}
                     for m in pref.municipalities]}])

    trail = seeded.client("cloudtrail")
    seeded.trail = f"{cloud}-trail"
    key = seeded.client("kms").create_key(Description="log archive")["KeyMetadata"]["Arn"]
    trail.create_trail(Name=seeded.trail, S3BucketName=seeded.bucket, IsMultiRegionTrail=True,
                       EnableLogFileValidation=trail_validated, KmsKeyId=key,
                       TagsList=tag_list(shared))
    trail.start_logging(Name=seeded.trail)
    seeded.client("guardduty").create_detector(Enable=True, Tags=shared)
    return seeded


def inspection_vpc(seeded: Seeded, pref: Prefecture, shared: dict[str, str],
                   appliance_mode: bool, network_firewall: bool) -> str:
    """The inspection and egress VPC as security_cloud.py builds it; its attachment's id.

    Its range is the prefecture's security_cloud network (quarters: proxies, transit gateway
    attachment, -, firewall), plus the prefecture's internet network for the public subnet with
    the NAT gateway. The public subnet routes 0.0.0.0/0 to the internet gateway; the proxies'
    subnet to the NAT gateway, or, with ``network_firewall``, to the firewall's endpoint (a
    Gateway Load Balancer endpoint here: moto has no Network Firewall endpoints), whose subnet
    routes to the NAT gateway.
    """
    ec2 = seeded.client("ec2")
    cidr = pref.shared_networks[SharedNetwork.SECURITY_CLOUD].cidr
    internet = pref.shared_networks[SharedNetwork.INTERNET].cidr
    proxy_net, tgw_net, _, firewall_net = (str(n) for n in cidr.subnets(prefixlen_diff=2))
    public_net = str(next(internet.subnets(prefixlen_diff=1)))
    vpc_id = ec2.create_vpc(CidrBlock=str(cidr), TagSpecifications=tag_spec("vpc", shared)
                            )["Vpc"]["VpcId"]
    ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock=str(internet))
    seeded.vpcs["shared"] = vpc_id
    ec2.create_flow_logs(ResourceIds=[vpc_id], ResourceType="VPC", TrafficType="ALL",
                         LogDestinationType="s3", LogDestination=f"arn:aws:s3:::{seeded.bucket}")

    def subnet(key: str, net: str) -> str:
        subnet_id = str(ec2.create_subnet(VpcId=vpc_id, CidrBlock=net,
                                          TagSpecifications=tag_spec("subnet", shared)
                                          )["Subnet"]["SubnetId"])
        seeded.subnets[key] = subnet_id
        return subnet_id

    def table(key: str, subnet_id: str) -> str:
        rtb = str(ec2.create_route_table(VpcId=vpc_id,
                                         TagSpecifications=tag_spec("route-table", shared)
                                         )["RouteTable"]["RouteTableId"])
        ec2.associate_route_table(RouteTableId=rtb, SubnetId=subnet_id)
        seeded.vpc_route_tables[key] = rtb
        return rtb

    tgw_subnet = subnet("shared", tgw_net)  # first: Seeded.first_subnet
    table("tgw", tgw_subnet)  # local routes only
    att = ec2.create_transit_gateway_vpc_attachment(
        TransitGatewayId=seeded.tgw, VpcId=vpc_id, SubnetIds=[tgw_subnet],
        Options={"ApplianceModeSupport": "enable" if appliance_mode else "disable"},
    )["TransitGatewayVpcAttachment"]["TransitGatewayAttachmentId"]
    ec2.create_tags(Resources=[att], Tags=tag_list(shared))

    public = subnet("public", public_net)
    proxy = subnet("proxy", proxy_net)
    seeded.igw = ec2.create_internet_gateway(
        TagSpecifications=tag_spec("internet-gateway", shared)
    )["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=seeded.igw, VpcId=vpc_id)
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    seeded.nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=allocation,
                                        TagSpecifications=tag_spec("natgateway", shared)
                                        )["NatGateway"]["NatGatewayId"]
    public_rtb = table("public", public)
    ec2.create_route(RouteTableId=public_rtb, DestinationCidrBlock="0.0.0.0/0",
                     GatewayId=seeded.igw)
    proxy_rtb = table("proxy", proxy)
    if not network_firewall:
        ec2.create_route(RouteTableId=proxy_rtb, DestinationCidrBlock="0.0.0.0/0",
                         NatGatewayId=seeded.nat)
        return str(att)
    fw_subnet = subnet("firewall", firewall_net)
    seeded.firewall_endpoint = ec2.create_vpc_endpoint(
        VpcId=vpc_id, VpcEndpointType="GatewayLoadBalancer", SubnetIds=[fw_subnet],
        ServiceName=f"com.amazonaws.vpce.{REGION}.vpce-svc-0123456789abcdef0",
    )["VpcEndpoint"]["VpcEndpointId"]
    seeded.client("network-firewall").create_firewall(
        FirewallName=f"{seeded.cloud}-firewall", VpcId=vpc_id,
        FirewallPolicyArn=f"arn:aws:network-firewall:{REGION}:123456789012:firewall-policy/"
                          f"{seeded.cloud}",
        SubnetMappings=[{"SubnetId": fw_subnet}], Tags=tag_list(shared))
    ec2.create_route(RouteTableId=proxy_rtb, DestinationCidrBlock="0.0.0.0/0",
                     VpcEndpointId=seeded.firewall_endpoint)
    ec2.create_route(RouteTableId=public_rtb, DestinationCidrBlock=proxy_net,
                     VpcEndpointId=seeded.firewall_endpoint)
    ec2.create_route(RouteTableId=table("firewall", fw_subnet), DestinationCidrBlock="0.0.0.0/0",
                     NatGatewayId=seeded.nat)
    return str(att)


def seed_joint_cloud(endpoint: str, cloud: str, pref: Prefecture, *,
                     storage_encrypted: bool = True, copy_to_other_region: bool = True
                     ) -> Seeded:
    """Like municloud/cloud/joint_cloud.py: one tenant (VPC, VPN, TGW route table, database,
    backup plan) per member, every tenant VPC on the same range."""
    seeded = Seeded(cloud, endpoint)
    ec2 = seeded.client("ec2")
    kind = "joint-cloud"
    shared = tags.base(cloud, kind, prefecture=pref.code)
    members = [m for m in pref.municipalities if m.joint_cloud]
    assert members, "the inventory has no joint-cloud member"

    s3 = seeded.client("s3")
    seeded.bucket = f"{cloud}-log-archive"
    s3.create_bucket(Bucket=seeded.bucket, ObjectLockEnabledForBucket=True,
                     CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_tagging(Bucket=seeded.bucket, Tagging={"TagSet": tag_list(shared)})
    seeded.tgw = ec2.create_transit_gateway(
        Description=f"{cloud}: each member to its own tenant only",
        Options={"DefaultRouteTableAssociation": "disable",
                 "DefaultRouteTablePropagation": "disable"},
        TagSpecifications=tag_spec("transit-gateway", shared),
    )["TransitGateway"]["TransitGatewayId"]

    cidr = pref.shared_networks[SharedNetwork.JOINT_CLOUD].cidr
    db_a, db_b, tgw_a, _ = (str(n) for n in cidr.subnets(prefixlen_diff=2))
    backup = seeded.client("backup")
    copy_backup = seeded.client("backup", COPY_REGION if copy_to_other_region else REGION)
    for m in members:
        m_tags = tags.base(cloud, kind, prefecture=pref.code, municipality=m.code)
        member = str(m.segments[Segment.INDIVIDUAL_NUMBER].cidr)
        vpc_id = ec2.create_vpc(CidrBlock=str(cidr), TagSpecifications=tag_spec("vpc", m_tags)
                                )["Vpc"]["VpcId"]
        seeded.vpcs[m.code] = vpc_id
        ec2.create_flow_logs(ResourceIds=[vpc_id], ResourceType="VPC", TrafficType="ALL",
                             LogDestinationType="s3",
                             LogDestination=f"arn:aws:s3:::{seeded.bucket}")
        subnets = [ec2.create_subnet(VpcId=vpc_id, CidrBlock=net, AvailabilityZone=f"{REGION}{z}",
                                     TagSpecifications=tag_spec("subnet", m_tags)
                                     )["Subnet"]["SubnetId"]
                   for net, z in ((db_a, "a"), (db_b, "c"), (tgw_a, "a"))]
        seeded.subnets[m.code] = subnets[0]
        att = ec2.create_transit_gateway_vpc_attachment(
            TransitGatewayId=seeded.tgw, VpcId=vpc_id, SubnetIds=[subnets[2]],
        )["TransitGatewayVpcAttachment"]["TransitGatewayAttachmentId"]
        ec2.create_tags(Resources=[att], Tags=tag_list(m_tags))
        seeded.attachments[m.code] = att
        cgw = ec2.create_customer_gateway(BgpAsn=65000, PublicIp="203.0.113.2",
                                          Type="ipsec.1")["CustomerGateway"]
        seeded.customer_gateways[m.code] = cgw["CustomerGatewayId"]
        vpn = ec2.create_vpn_connection(
            CustomerGatewayId=cgw["CustomerGatewayId"], Type="ipsec.1",
            TransitGatewayId=seeded.tgw, TagSpecifications=tag_spec("vpn-connection", m_tags),
        )["VpnConnection"]["VpnConnectionId"]
        seeded.vpns[m.code] = vpn
        vpn_att = next(a["TransitGatewayAttachmentId"] for a in
                       ec2.describe_transit_gateway_attachments()["TransitGatewayAttachments"]
                       if a["ResourceId"] == vpn)
        table = ec2.create_transit_gateway_route_table(
            TransitGatewayId=seeded.tgw,
            TagSpecifications=tag_spec("transit-gateway-route-table", m_tags),
        )["TransitGatewayRouteTable"]["TransitGatewayRouteTableId"]
        seeded.route_tables[m.code] = table
        for attachment, destination in ((vpn_att, member), (att, str(cidr))):
            ec2.associate_transit_gateway_route_table(TransitGatewayRouteTableId=table,
                                                      TransitGatewayAttachmentId=attachment)
            ec2.create_transit_gateway_route(DestinationCidrBlock=destination,
                                             TransitGatewayRouteTableId=table,
                                             TransitGatewayAttachmentId=attachment)

        sg = ec2.create_security_group(
            GroupName=f"{cloud}-{m.code}-db", Description="core systems", VpcId=vpc_id,
            TagSpecifications=tag_spec("security-group", m_tags))
        ec2.authorize_security_group_ingress(GroupId=sg["GroupId"], IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432,
            "IpRanges": [{"CidrIp": member}]}])
        # egress=[] in the program: AWS's default allow-all egress rule goes.
        ec2.revoke_security_group_egress(GroupId=sg["GroupId"], IpPermissions=[{
            "IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        seeded.security_groups[m.code] = sg["GroupId"]
        rds = seeded.client("rds")
        rds.create_db_subnet_group(DBSubnetGroupName=f"{cloud}-{m.code}-db",
                                   SubnetIds=subnets[:2], DBSubnetGroupDescription="core systems")
        seeded.db = f"{cloud}-{m.code}-juki"
        rds.create_db_instance(
            DBInstanceIdentifier=seeded.db, DBInstanceClass="db.t3.micro", Engine="postgres",
            MasterUsername="municloud", MasterUserPassword="not-a-secret-moto-only",
            AllocatedStorage=20, StorageEncrypted=storage_encrypted, PubliclyAccessible=False,
            DBSubnetGroupName=f"{cloud}-{m.code}-db", VpcSecurityGroupIds=[sg["GroupId"]],
            Tags=tag_list({**m_tags, "municloud:system": "juki"}))

        seeded.vault = f"{cloud}-{m.code}-vault"
        backup.create_backup_vault(BackupVaultName=seeded.vault, BackupVaultTags=m_tags)
        copy_vault = copy_backup.create_backup_vault(
            BackupVaultName=f"{cloud}-{m.code}-vault-dr", BackupVaultTags=m_tags,
        )["BackupVaultArn"]
        seeded.backup_plan = backup.create_backup_plan(
            BackupPlan={"BackupPlanName": f"{cloud}-{m.code}-daily", "Rules": [{
                "RuleName": "daily", "TargetBackupVaultName": seeded.vault,
                "ScheduleExpression": "cron(0 17 * * ? *)",
                "CopyActions": [{"DestinationBackupVaultArn": copy_vault,
                                 "Lifecycle": {"DeleteAfterDays": 35}}]}]},
            BackupPlanTags=m_tags)["BackupPlanId"]
    return seeded
