"""The joint core-business cloud (自治体クラウド) as Pulumi components.

Several municipalities run their core systems (住民基本台帳, 税務, 国民健康保険, 国民年金,
福祉) jointly.
Per member a ``Tenant``: its own VPC, KMS keys, databases, backup vaults and transit gateway route
table. The cloud has no internet gateway, no NAT, no public address anywhere; its only way in and
out is each member's site-to-site VPN from the member's individual-number segment
(個人番号利用事務系), whose range comes from the inventory. Each tenant's route table holds that
member's VPN and that member's VPC and nothing else, so one tenant can never reach another, even
though every tenant VPC uses the same range (the prefecture's ``joint_cloud`` network, as the
municipality's gateway sees it in the inventory). Databases are encrypted with the tenant's key;
AWS Backup copies every backup to a vault in a second region (``municloud:backupRegion``), so the
backups survive the loss of one site.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from municloud.cloud import tags
from municloud.cloud.config import (
    ConfigError,
    JointCloudConfig,
    derived_psk,
    joint_cloud_config,
)
from municloud.cloud.log_archive import LogArchive, LogArchiveArgs, flow_log
from municloud.inventory import Municipality, Prefecture
from municloud.segments import Segment, SharedNetwork

KIND = tags.KIND_JOINT_CLOUD
Net = ipaddress.IPv4Network


def tenant_ranges(prefecture: Prefecture) -> tuple[tuple[Net, Net], tuple[Net, Net]]:
    """A tenant VPC's subnets: quarters of the prefecture's joint_cloud network (db, tgw)."""
    net = prefecture.shared_networks[SharedNetwork.JOINT_CLOUD].cidr
    if net.prefixlen > 26:
        raise ConfigError(f"{prefecture.path}: joint_cloud network {net} is smaller than a /26; "
                          "a tenant VPC needs four subnets of at least /28")
    q = list(net.subnets(prefixlen_diff=2))
    return (q[0], q[1]), (q[2], q[3])


def individual_number_segment(m: Municipality) -> Net:
    """The only segment that reaches the joint cloud (個人番号利用事務系)."""
    return m.segments[Segment.INDIVIDUAL_NUMBER].cidr


def _opts(parent: pulumi.Resource, **kwargs: Any) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, **kwargs)


@dataclass
class TenantArgs:
    config: JointCloudConfig
    prefecture: Prefecture
    municipality: Municipality
    transit_gateway_id: pulumi.Input[str]
    archive: LogArchive
    backup_provider: aws.Provider  # the second region
    backup_role_arn: pulumi.Input[str]


class Tenant(pulumi.ComponentResource):
    """One member municipality's isolated share of the joint cloud."""

    def __init__(self, name: str, args: TenantArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("municloud:joint_cloud:Tenant", name, None, opts)
        cfg, p, m = args.config, args.prefecture, args.municipality
        m_tags = tags.base(cfg.name, KIND, prefecture=p.code, municipality=m.code)
        cidr = p.shared_networks[SharedNetwork.JOINT_CLOUD].cidr
        member = individual_number_segment(m)
        (db_a, db_b), (tgw_a, tgw_b) = tenant_ranges(p)
        zones = cfg.availability_zones

        self.key = aws.kms.Key(f"{name}-key", description=f"{m.name_romaji} ({m.code}) data",
                               enable_key_rotation=True, deletion_window_in_days=30,
                               tags=m_tags, opts=_opts(self))
        self.vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=str(cidr), enable_dns_hostnames=True,
                               enable_dns_support=True,
                               tags={**m_tags, "Name": f"{cfg.name}-{m.name_romaji}"},
                               opts=_opts(self))
        flow_log(f"{name}-flow-log", self.vpc.id, args.archive, m_tags, self)

        def subnet(label: str, net: Net, zone: str) -> aws.ec2.Subnet:
            return aws.ec2.Subnet(f"{name}-{label}", vpc_id=self.vpc.id, cidr_block=str(net),
                                  availability_zone=zone, map_public_ip_on_launch=False,
                                  tags={**m_tags, "Name": f"{cfg.name}-{m.code}-{label}"},
                                  opts=_opts(self))

        db_subnets = [subnet(f"db-{z}", n, z) for z, n in zip(zones, (db_a, db_b), strict=True)]
        tgw_subnets = [subnet(f"tgw-{z}", n, z) for z, n in zip(zones, (tgw_a, tgw_b),
                                                                  strict=True)]

        # Closed line (特定通信) to the member's individual-number segment, and nothing else.
        self.attachment = aws.ec2transitgateway.VpcAttachment(
            f"{name}-attachment", transit_gateway_id=args.transit_gateway_id, vpc_id=self.vpc.id,
            subnet_ids=[s.id for s in tgw_subnets],
            transit_gateway_default_route_table_association=False,
            transit_gateway_default_route_table_propagation=False,
            tags=m_tags, opts=_opts(self))
        route_table = aws.ec2.RouteTable(f"{name}-rt", vpc_id=self.vpc.id, tags=m_tags,
                                         opts=_opts(self))
        aws.ec2.Route(f"{name}-route-member", route_table_id=route_table.id,
                      destination_cidr_block=str(member),
                      transit_gateway_id=args.transit_gateway_id,
                      opts=_opts(self, depends_on=[self.attachment]))
        for i, s in enumerate([*db_subnets, *tgw_subnets]):
            aws.ec2.RouteTableAssociation(f"{name}-rt-assoc-{i}", route_table_id=route_table.id,
                                          subnet_id=s.id, opts=_opts(self))

        self.customer_gateway = aws.ec2.CustomerGateway(
            f"{name}-cgw", ip_address=str(m.gateway.outside_address),  # checked in config.py
            bgp_asn=str(cfg.customer_gateway_asn), type="ipsec.1", tags=m_tags, opts=_opts(self))
        psk = derived_psk(cfg.vpn_pre_shared_key, f"joint-cloud:{cfg.name}:{m.code}")
        self.vpn = aws.ec2.VpnConnection(
            f"{name}-vpn", customer_gateway_id=self.customer_gateway.id,
            transit_gateway_id=args.transit_gateway_id, type="ipsec.1", static_routes_only=True,
            local_ipv4_network_cidr=str(member), remote_ipv4_network_cidr=str(cidr),
            tunnel1_preshared_key=psk, tunnel2_preshared_key=psk, tags=m_tags, opts=_opts(self))
        self.route_table = aws.ec2transitgateway.RouteTable(
            f"{name}-tgw-rt", transit_gateway_id=args.transit_gateway_id, tags=m_tags,
            opts=_opts(self))
        for label, attachment_id in (("vpn", self.vpn.transit_gateway_attachment_id),
                                     ("vpc", self.attachment.id)):
            aws.ec2transitgateway.RouteTableAssociation(
                f"{name}-tgw-rt-assoc-{label}", transit_gateway_attachment_id=attachment_id,
                transit_gateway_route_table_id=self.route_table.id, opts=_opts(self))
        aws.ec2transitgateway.Route(
            f"{name}-tgw-route-member", destination_cidr_block=str(member),
            transit_gateway_attachment_id=self.vpn.transit_gateway_attachment_id,
            transit_gateway_route_table_id=self.route_table.id, opts=_opts(self))
        aws.ec2transitgateway.Route(
            f"{name}-tgw-route-vpc", destination_cidr_block=str(cidr),
            transit_gateway_attachment_id=self.attachment.id,
            transit_gateway_route_table_id=self.route_table.id, opts=_opts(self))

        # Databases of the core systems: reachable from the member's segment only, encrypted.
        db = cfg.database
        security_group = aws.ec2.SecurityGroup(
            f"{name}-db-sg", vpc_id=self.vpc.id,
            description=f"core systems of {m.name_romaji}: its individual-number segment only",
            ingress=[aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=db.port, to_port=db.port, cidr_blocks=[str(member)],
                description=f"{m.name_romaji} individual-number segment")],
            egress=[], tags=m_tags, opts=_opts(self))
        subnet_group = aws.rds.SubnetGroup(f"{name}-db-subnets",
                                           subnet_ids=[s.id for s in db_subnets],
                                           tags=m_tags, opts=_opts(self))
        self.databases: dict[str, aws.rds.Instance] = {}
        for system in cfg.systems:
            self.databases[system] = aws.rds.Instance(
                f"{name}-{system.replace('_', '-')}",
                engine=db.engine, engine_version=db.engine_version,
                instance_class=db.instance_class, allocated_storage=db.allocated_storage,
                storage_type="gp3", storage_encrypted=True, kms_key_id=self.key.arn,
                db_name=system, username="municloud_admin", manage_master_user_password=True,
                master_user_secret_kms_key_id=self.key.arn,
                db_subnet_group_name=subnet_group.name, vpc_security_group_ids=[security_group.id],
                publicly_accessible=False, multi_az=True, deletion_protection=True,
                backup_retention_period=db.backup_retention_days, copy_tags_to_snapshot=True,
                # AWS: a letter first, unique in the account and region.
                skip_final_snapshot=False,
                final_snapshot_identifier=f"final-{cfg.name}-{m.code}-{system}".replace("_", "-"),
                iam_database_authentication_enabled=True,
                tags={**m_tags, tags.SYSTEM: system}, opts=_opts(self))

        # Backups, copied to a vault in the second region with a key of that region.
        backup_opts = _opts(self, provider=args.backup_provider)
        dr_key = aws.kms.Key(f"{name}-backup-key-dr", description=f"{m.code} backup copies",
                             enable_key_rotation=True, deletion_window_in_days=30, tags=m_tags,
                             opts=backup_opts)
        vault = aws.backup.Vault(f"{name}-vault", kms_key_arn=self.key.arn, tags=m_tags,
                                 opts=_opts(self))
        self.copy_vault = aws.backup.Vault(f"{name}-vault-dr", kms_key_arn=dr_key.arn,
                                           tags=m_tags, opts=backup_opts)
        plan = aws.backup.Plan(
            f"{name}-backup-plan",
            rules=[aws.backup.PlanRuleArgs(
                rule_name="daily", target_vault_name=vault.name,
                schedule="cron(0 17 * * ? *)",  # 02:00 JST, outside office hours
                start_window=60, completion_window=360,
                lifecycle=aws.backup.PlanRuleLifecycleArgs(
                    delete_after=cfg.backup_retention_days),
                copy_actions=[aws.backup.PlanRuleCopyActionArgs(
                    destination_vault_arn=self.copy_vault.arn,
                    lifecycle=aws.backup.PlanRuleCopyActionLifecycleArgs(
                        delete_after=cfg.backup_retention_days))])],
            tags=m_tags, opts=_opts(self))
        aws.backup.Selection(
            f"{name}-backup-selection", plan_id=plan.id, iam_role_arn=args.backup_role_arn,
            resources=[d.arn for d in self.databases.values()], opts=_opts(self))
        self.register_outputs({"vpcId": self.vpc.id, "vpnId": self.vpn.id})


@dataclass
class JointCloudArgs:
    config: JointCloudConfig


class JointCloud(pulumi.ComponentResource):
    """A joint core-business cloud with one ``Tenant`` per member municipality."""

    def __init__(self, name: str, args: JointCloudArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("municloud:joint_cloud:JointCloud", name, None, opts)
        cfg = args.config
        lead_tags = tags.base(cfg.name, KIND, prefecture=cfg.members[0][0].code)
        self.archive = LogArchive(f"{name}-logs", LogArchiveArgs(
            tags=lead_tags, retention_days=cfg.log_retention_days,
            cloudtrail=cfg.cloudtrail, guardduty=cfg.guardduty), opts=_opts(self))
        self.transit_gateway = aws.ec2transitgateway.TransitGateway(
            f"{name}-tgw", description=f"{cfg.name}: each member to its own tenant only",
            amazon_side_asn=cfg.transit_gateway_asn,
            default_route_table_association="disable",
            default_route_table_propagation="disable",
            auto_accept_shared_attachments="disable",
            vpn_ecmp_support="enable", dns_support="enable",
            tags=lead_tags, opts=_opts(self))
        self.backup_provider = aws.Provider(f"{name}-backup-region", region=cfg.backup_region,
                                            opts=_opts(self))
        role = aws.iam.Role(
            f"{name}-backup-role",
            assume_role_policy=('{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
                                '"Principal":{"Service":"backup.amazonaws.com"},'
                                '"Action":"sts:AssumeRole"}]}'),
            tags=lead_tags, opts=_opts(self))
        for label, policy in (("backup", "AWSBackupServiceRolePolicyForBackup"),
                              ("restore", "AWSBackupServiceRolePolicyForRestores")):
            aws.iam.RolePolicyAttachment(
                f"{name}-backup-role-{label}", role=role.name,
                policy_arn=f"arn:aws:iam::aws:policy/service-role/{policy}", opts=_opts(self))
        self.tenants = {
            m.code: Tenant(f"{name}-{m.code}", TenantArgs(
                config=cfg, prefecture=p, municipality=m,
                transit_gateway_id=self.transit_gateway.id, archive=self.archive,
                backup_provider=self.backup_provider, backup_role_arn=role.arn),
                opts=_opts(self))
            for p, m in cfg.members
        }
        self.register_outputs({"transitGatewayId": self.transit_gateway.id})


def program(base_dir: Path | str) -> JointCloud:
    """The whole Pulumi program of ``pulumi/joint-cloud``: read config once, build the cloud."""
    cfg = joint_cloud_config(Path(base_dir))
    cloud = JointCloud(cfg.name, JointCloudArgs(config=cfg))
    pulumi.export("members", [m.code for _, m in cfg.members])
    pulumi.export("systems", list(cfg.systems))
    pulumi.export("backupRegion", cfg.backup_region)
    pulumi.export("vpnConnections", {code: t.vpn.id for code, t in cloud.tenants.items()})
    return cloud
