"""Seed a moto server with a conforming security cloud or joint cloud, built from an inventory.

Used by test_cloud_verify.py: each test case seeds its own cloud under a fresh ``municloud:cloud``
name, then breaks one invariant through the returned :class:`Seeded` ids.

The security cloud (自治体情報セキュリティクラウド) seeded here follows
municloud/cloud/security_cloud.py: one transit gateway without default route tables; an
inspection VPC (the prefecture's ``security_cloud`` network) whose attachment sits in a hub
table tagged, like everything shared, with the prefecture only; for the first municipalities a
tenant VPC (their internet segment's range) with an attachment, for the last one a VPN (its
closed line, as in the program); one route table per municipality with a single route to its
prefecture's proxy range, and a return route per municipality in the hub table; flow logs on
every VPC into the log archive bucket (object lock, KMS, public access blocked); a multi-region
trail; a GuardDuty detector.

The joint cloud (自治体クラウド) seeded here follows municloud/cloud/joint_cloud.py: per member a
tenant VPC (all on the prefecture's ``joint_cloud`` range), its VPN and VPC attachment in its own
transit gateway route table, a security group open only to its individual-number segment
(個人番号利用事務系), an encrypted RDS instance and a backup plan copying to Osaka.
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
                        trail_validated: bool = True) -> Seeded:
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
    if object_lock:
        s3.put_object_lock_configuration(Bucket=seeded.bucket, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": lock_mode, "Years": 5}}})
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
    seeded.attachments["inspection"] = vpc_with_attachment("shared", inspection_cidr, shared)
    inspection_table = route_table("inspection", shared)
    ec2.associate_transit_gateway_route_table(
        TransitGatewayRouteTableId=inspection_table,
        TransitGatewayAttachmentId=seeded.attachments["inspection"])

    customer_gateway = ec2.create_customer_gateway(BgpAsn=65000, PublicIp="203.0.113.1",
                                                   Type="ipsec.1")["CustomerGateway"]
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
