"""The security cloud (自治体情報セキュリティクラウド) as Pulumi components.

One program, many stacks: the prefectural model (現行 都道府県セキュリティクラウド) is a stack that
lists one inventory, the multi-prefecture model (超広域) a stack that lists several; the code is the
same. The topology, for each stack:

- ``InspectionVpc``: the inspection and egress VPC. Its address ranges come from the inventories:
  each prefecture's ``security_cloud`` network holds that prefecture's proxy subnets (and, for the
  lead prefecture, the transit gateway and firewall subnets); the lead prefecture's ``internet``
  network holds the public subnets with the NAT gateways. Optional AWS Network Firewall on the
  egress path (``municloud:networkFirewall``). Flow logs to the log archive.
- ``ProxyFleet`` per prefecture: launch template + auto scaling group behind an internal network
  load balancer, tagged ``municloud:role=proxy`` so that Ansible's ``amazon.aws.aws_ec2``
  inventory configures them with the project's ``proxy`` role. Only that prefecture's
  municipalities' internet segments may connect.
- A transit gateway with default association and propagation disabled, a hub route table for the
  inspection VPC's attachment, and per municipality a ``MunicipalityAttachment``: customer gateway
  (the gateway host's ``security_cloud`` address), site-to-site VPN, and its own route table whose
  only route leads to its own prefecture's proxy range in the inspection VPC. The hub route table
  routes each municipality's internet segment back to that municipality's VPN and nowhere else.
  Only the internet segment (インターネット接続系) is ever routed here: the individual-number
  segment never reaches the security cloud.
- ``LogArchive``: S3 with object lock and KMS, CloudTrail, GuardDuty.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from municloud.cloud import squid, tags
from municloud.cloud.config import (
    ConfigError,
    SecurityCloudConfig,
    derived_psk,
    security_cloud_config,
)
from municloud.cloud.log_archive import LogArchive, LogArchiveArgs, flow_log
from municloud.inventory import Municipality, Prefecture
from municloud.segments import Segment, SharedNetwork

KIND = tags.KIND_SECURITY_CLOUD
DEBIAN_OWNER = "136693071363"  # the Debian project's AWS account, publisher of official images

Net = ipaddress.IPv4Network


# --- addressing: derived from the inventories, never typed twice -------------------------------


@dataclass(frozen=True)
class PrefectureRanges:
    """How a prefecture's ``security_cloud`` network is used in the inspection VPC."""

    security_cloud: Net
    proxy: tuple[Net, Net]  # one per availability zone
    transit: tuple[Net, Net]  # transit gateway attachment subnets (used for the lead only)
    firewall: tuple[Net, Net]  # network firewall subnets (used for the lead only)


def prefecture_ranges(prefecture: Prefecture) -> PrefectureRanges:
    """Quarters of the security_cloud network: two for proxies, one for TGW, one for firewall."""
    net = prefecture.shared_networks[SharedNetwork.SECURITY_CLOUD].cidr
    if net.prefixlen > 25:
        raise ConfigError(f"{prefecture.path}: security_cloud network {net} is smaller than "
                          "a /25; the inspection VPC needs a /25 or larger per prefecture")
    q = list(net.subnets(prefixlen_diff=2))
    transit = list(q[2].subnets(prefixlen_diff=1))
    firewall = list(q[3].subnets(prefixlen_diff=1))
    return PrefectureRanges(net, (q[0], q[1]), (transit[0], transit[1]),
                            (firewall[0], firewall[1]))


def public_ranges(prefecture: Prefecture) -> tuple[Net, Net]:
    """The lead prefecture's ``internet`` network, halved: the public subnets of the egress."""
    net = prefecture.shared_networks[SharedNetwork.INTERNET].cidr
    halves = list(net.subnets(prefixlen_diff=1))
    return halves[0], halves[1]


def internet_segment(m: Municipality) -> Net:
    """The only segment of a municipality that the security cloud serves (インターネット接続系)."""
    return m.segments[Segment.INTERNET].cidr


def _opts(parent: pulumi.Resource, **kwargs: Any) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, **kwargs)


# --- the inspection and egress VPC -------------------------------------------------------------


@dataclass
class InspectionVpcArgs:
    config: SecurityCloudConfig
    archive: LogArchive
    transit_gateway_id: pulumi.Input[str]


class InspectionVpc(pulumi.ComponentResource):
    """The inspection and egress VPC: proxies, optional Network Firewall, NAT, flow logs."""

    def __init__(self, name: str, args: InspectionVpcArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("municloud:security_cloud:InspectionVpc", name, None, opts)
        self._label = name
        cfg = args.config
        lead = cfg.lead
        lead_tags = tags.base(cfg.name, KIND, prefecture=lead.code)
        zones = cfg.availability_zones
        lead_ranges = prefecture_ranges(lead)

        primary, *extra = inspection_vpc_ranges(cfg.prefectures)
        self.vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=str(primary),
                               enable_dns_hostnames=True, enable_dns_support=True,
                               tags={**lead_tags, "Name": f"{cfg.name}-inspection"},
                               opts=_opts(self))
        cidr_deps: list[pulumi.Resource] = [
            aws.ec2.VpcIpv4CidrBlockAssociation(f"{name}-cidr-{i}", vpc_id=self.vpc.id,
                                                cidr_block=str(net), opts=_opts(self))
            for i, net in enumerate(extra)
        ]
        flow_log(f"{name}-flow-log", self.vpc.id, args.archive, lead_tags, self)

        def subnet(label: str, net: Net, zone: str, prefecture: Prefecture) -> aws.ec2.Subnet:
            return aws.ec2.Subnet(
                f"{name}-{label}", vpc_id=self.vpc.id, cidr_block=str(net),
                availability_zone=zone, map_public_ip_on_launch=False,
                tags={**tags.base(cfg.name, KIND, prefecture=prefecture.code),
                      "Name": f"{cfg.name}-{label}"},
                opts=_opts(self, depends_on=cidr_deps))

        public = [subnet(f"public-{z}", net, z, lead)
                  for z, net in zip(zones, public_ranges(lead), strict=True)]
        self.transit_subnets = [subnet(f"tgw-{z}", net, z, lead)
                                for z, net in zip(zones, lead_ranges.transit, strict=True)]
        self.proxy_subnets: dict[str, list[aws.ec2.Subnet]] = {
            p.code: [subnet(f"proxy-{p.code}-{z}", net, z, p)
                     for z, net in zip(zones, prefecture_ranges(p).proxy, strict=True)]
            for p in cfg.prefectures
        }

        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags=lead_tags,
                                      opts=_opts(self))
        nats = []
        for z, sub in zip(zones, public, strict=True):
            eip = aws.ec2.Eip(f"{name}-nat-eip-{z}", domain="vpc", tags=lead_tags,
                              opts=_opts(self, depends_on=[igw]))
            nats.append(aws.ec2.NatGateway(f"{name}-nat-{z}", subnet_id=sub.id,
                                           allocation_id=eip.id, tags=lead_tags,
                                           opts=_opts(self)))

        # Network Firewall on the egress path: proxies -> firewall -> NAT -> internet.
        endpoints: list[pulumi.Output[str]] | None = None
        if cfg.network_firewall:
            fw_subnets = [subnet(f"firewall-{z}", net, z, lead)
                          for z, net in zip(zones, lead_ranges.firewall, strict=True)]
            self.firewall = _network_firewall(f"{name}-firewall", cfg, lead_tags, self.vpc,
                                              fw_subnets, args.archive, self)
            endpoints = [_endpoint(self.firewall, s) for s in fw_subnets]
            for i, (z, sub) in enumerate(zip(zones, fw_subnets, strict=True)):
                rt = self._route_table(f"firewall-{z}", lead_tags, [sub])
                self._route(f"firewall-{z}-default", rt, "0.0.0.0/0", nat_gateway_id=nats[i].id)

        # Public subnets: out through the internet gateway; replies to proxies via the firewall.
        for i, (z, sub) in enumerate(zip(zones, public, strict=True)):
            rt = self._route_table(f"public-{z}", lead_tags, [sub])
            self._route(f"public-{z}-default", rt, "0.0.0.0/0", gateway_id=igw.id)
            if endpoints is not None:
                for p in cfg.prefectures:
                    self._route(f"public-{z}-to-proxy-{p.code}", rt,
                                str(prefecture_ranges(p).proxy[i]),
                                vpc_endpoint_id=endpoints[i])

        # Transit gateway attachment subnets: local routes only.
        self._route_table("tgw", lead_tags, self.transit_subnets)
        self.attachment = aws.ec2transitgateway.VpcAttachment(
            f"{name}-attachment",
            transit_gateway_id=args.transit_gateway_id,
            vpc_id=self.vpc.id,
            subnet_ids=[s.id for s in self.transit_subnets],
            appliance_mode_support="enable",
            dns_support="enable",
            transit_gateway_default_route_table_association=False,
            transit_gateway_default_route_table_propagation=False,
            tags={**lead_tags, tags.ROLE: "inspection"},
            opts=_opts(self),
        )

        # Proxy subnets of each prefecture: the internet via firewall or NAT; back to that
        # prefecture's municipalities (their internet segment) via the transit gateway. No
        # route leads to another prefecture's municipalities (prefectures kept apart).
        for p in cfg.prefectures:
            p_tags = tags.base(cfg.name, KIND, prefecture=p.code)
            for i, (z, sub) in enumerate(zip(zones, self.proxy_subnets[p.code], strict=True)):
                rt = self._route_table(f"proxy-{p.code}-{z}", p_tags, [sub])
                if endpoints is not None:
                    self._route(f"proxy-{p.code}-{z}-default", rt, "0.0.0.0/0",
                                vpc_endpoint_id=endpoints[i])
                else:
                    self._route(f"proxy-{p.code}-{z}-default", rt, "0.0.0.0/0",
                                nat_gateway_id=nats[i].id)
                for m in p.municipalities:
                    self._route(f"proxy-{p.code}-{z}-to-{m.code}", rt, str(internet_segment(m)),
                                transit_gateway_id=args.transit_gateway_id,
                                depends_on=[self.attachment])

        self.register_outputs({"vpcId": self.vpc.id, "attachmentId": self.attachment.id})

    def _route_table(self, label: str, tags_: dict[str, str],
                     subnets: list[aws.ec2.Subnet]) -> aws.ec2.RouteTable:
        name = self._label
        rt = aws.ec2.RouteTable(f"{name}-rt-{label}", vpc_id=self.vpc.id, tags=tags_,
                                opts=_opts(self))
        for i, sub in enumerate(subnets):
            aws.ec2.RouteTableAssociation(f"{name}-rt-{label}-assoc-{i}", route_table_id=rt.id,
                                          subnet_id=sub.id, opts=_opts(self))
        return rt

    def _route(self, label: str, rt: aws.ec2.RouteTable, destination: str,
               depends_on: list[pulumi.Resource] | None = None, **target: Any) -> aws.ec2.Route:
        return aws.ec2.Route(f"{self._label}-route-{label}", route_table_id=rt.id,
                             destination_cidr_block=destination, **target,
                             opts=_opts(self, depends_on=depends_on or []))


def _endpoint(firewall: aws.networkfirewall.Firewall,
              subnet: aws.ec2.Subnet) -> pulumi.Output[str]:
    """The firewall's VPC endpoint in ``subnet`` (its availability zone)."""

    def pick(values: list[Any]) -> str:
        statuses, subnet_id = values
        for status in statuses or []:
            for state in status.get("sync_states") or status.get("syncStates") or []:
                for att in state.get("attachments") or []:
                    if att.get("subnet_id", att.get("subnetId")) == subnet_id:
                        return str(att.get("endpoint_id", att.get("endpointId")))
        raise ValueError(f"the firewall has no endpoint in subnet {subnet_id}")

    return pulumi.Output.all(firewall.firewall_statuses, subnet.id).apply(pick)


def _network_firewall(name: str, cfg: SecurityCloudConfig, tags_: dict[str, str],
                      vpc: aws.ec2.Vpc, subnets: list[aws.ec2.Subnet], archive: LogArchive,
                      parent: pulumi.Resource) -> aws.networkfirewall.Firewall:
    """AWS Network Firewall that lets only web traffic (80, 443) of the proxies leave.

    HOME_NET is set to the proxies' subnets: by default it is only the VPC's primary range, and
    the proxies of other prefectures sit in its secondary ranges, where a ``$HOME_NET`` rule would
    not match. Under STRICT_ORDER, traffic no rule matches is dropped by the policy's default
    actions; without them it would pass."""
    proxies = [str(n) for p in cfg.prefectures for n in prefecture_ranges(p).proxy]
    rules = aws.networkfirewall.RuleGroup(
        f"{name}-web-only",
        capacity=100,
        type="STATEFUL",
        rule_group={
            "rule_variables": {"ip_sets": [
                {"key": "HOME_NET", "ip_set": {"definitions": proxies}}]},
            "rules_source": {"rules_string": "\n".join([
                'pass tcp $HOME_NET any -> $EXTERNAL_NET [80,443] '
                '(flow:to_server; msg:"proxy egress"; sid:1000001; rev:1;)',
                'drop ip $HOME_NET any -> $EXTERNAL_NET any '
                '(msg:"not web egress"; sid:1000002; rev:1;)',
            ])},
            "stateful_rule_options": {"rule_order": "STRICT_ORDER"},
        },
        tags=tags_,
        opts=_opts(parent),
    )
    policy = aws.networkfirewall.FirewallPolicy(
        f"{name}-policy",
        firewall_policy={
            "stateless_default_actions": ["aws:forward_to_sfe"],
            "stateless_fragment_default_actions": ["aws:forward_to_sfe"],
            "stateful_engine_options": {"rule_order": "STRICT_ORDER"},
            "stateful_default_actions": ["aws:drop_established", "aws:alert_established"],
            "stateful_rule_group_references": [{"resource_arn": rules.arn, "priority": 1}],
        },
        tags=tags_,
        opts=_opts(parent),
    )
    firewall = aws.networkfirewall.Firewall(
        name,
        firewall_policy_arn=policy.arn,
        vpc_id=vpc.id,
        subnet_mappings=[{"subnet_id": s.id} for s in subnets],
        delete_protection=True,
        tags=tags_,
        opts=_opts(parent),
    )
    aws.networkfirewall.LoggingConfiguration(
        f"{name}-logging",
        firewall_arn=firewall.arn,
        logging_configuration={"log_destination_configs": [
            {"log_type": kind, "log_destination_type": "S3",
             "log_destination": {"bucketName": archive.bucket.id,
                                 "prefix": f"network-firewall/{kind.lower()}"}}
            for kind in ("ALERT", "FLOW")
        ]},
        opts=_opts(parent),
    )
    return firewall


# --- the proxy fleet ---------------------------------------------------------------------------


def proxy_clients(prefecture: Prefecture) -> list[tuple[Municipality, Net]]:
    """Who may use a prefecture's proxies: its municipalities' internet segments. The proxies'
    and their load balancer's security groups and squid's client ACL are made from this list."""
    return [(m, internet_segment(m)) for m in prefecture.municipalities]


def inspection_vpc_ranges(prefectures: Sequence[Prefecture]) -> list[Net]:
    """The inspection VPC's ranges: the lead prefecture's ``security_cloud`` network (primary),
    its ``internet`` network, the other prefectures' ``security_cloud`` networks. ``InspectionVpc``
    builds the VPC from them and squid denies them as destinations."""
    lead = prefectures[0]
    return [prefecture_ranges(lead).security_cloud,
            lead.shared_networks[SharedNetwork.INTERNET].cidr,
            *(prefecture_ranges(p).security_cloud for p in prefectures[1:])]


@dataclass
class ProxyFleetArgs:
    config: SecurityCloudConfig
    prefecture: Prefecture
    vpc_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Input[str]]
    subnet_cidrs: list[pulumi.Input[str]]
    image_id: pulumi.Input[str]


class ProxyFleet(pulumi.ComponentResource):
    """A prefecture's web proxies: launch template + auto scaling group + internal NLB.

    The instances carry ``municloud:role=proxy`` and the prefecture's code, so Ansible's
    ``amazon.aws.aws_ec2`` inventory groups them (``keyed_groups`` on the tag) and applies the
    project's ``proxy`` role over SSM; no SSH port is opened and no public address is given.
    Before that, their first boot installs Debian's squid with the configuration
    :mod:`municloud.cloud.squid` renders from the inventories (the launch template's user data).
    """

    def __init__(self, name: str, args: ProxyFleetArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("municloud:security_cloud:ProxyFleet", name, None, opts)
        cfg, p = args.config, args.prefecture
        port = cfg.proxy.port
        p_tags = tags.base(cfg.name, KIND, prefecture=p.code)
        instance_tags = {**p_tags, tags.ROLE: "proxy", "Name": f"{cfg.name}-proxy-{p.code}"}
        self.squid_config = squid.render(squid.fleet_policy(p, cfg.prefectures, port))

        from_municipalities = [aws.ec2.SecurityGroupIngressArgs(
            protocol="tcp", from_port=port, to_port=port, cidr_blocks=[str(net)],
            description=f"{m.name_romaji} ({m.code}) internet segment")
            for m, net in proxy_clients(p)]
        # The load balancer has a group of its own: the proxies' group lets out only web ports,
        # so a shared group would stop the balancer's forwarding and health checks to the
        # proxy port. Its egress names the proxy subnets (not the proxies' group, which names
        # this one: no cycle, and no rule resources mixed with inline rules).
        self.balancer_security_group = aws.ec2.SecurityGroup(
            f"{name}-nlb-sg",
            description=f"web proxy load balancer of {p.name_romaji}: its municipalities in, "
                        "its proxies out",
            vpc_id=args.vpc_id,
            ingress=from_municipalities,
            egress=[aws.ec2.SecurityGroupEgressArgs(
                protocol="tcp", from_port=port, to_port=port, cidr_blocks=args.subnet_cidrs,
                description="forwarding and health checks to the proxies")],
            tags=p_tags,
            opts=_opts(self),
        )
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            description=f"web proxy of {p.name_romaji}: only its municipalities' internet segments",
            vpc_id=args.vpc_id,
            ingress=[
                # the clients' own addresses: the balancer keeps them (client IP preservation)
                *from_municipalities,
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp", from_port=port, to_port=port,
                    security_groups=[self.balancer_security_group.id],
                    description="the load balancer's health checks"),
            ],
            egress=[aws.ec2.SecurityGroupEgressArgs(
                protocol="tcp", from_port=n, to_port=n, cidr_blocks=["0.0.0.0/0"],
                description="web egress") for n in (80, 443)],
            tags=p_tags,
            opts=_opts(self),
        )
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=('{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
                                '"Principal":{"Service":"ec2.amazonaws.com"},'
                                '"Action":"sts:AssumeRole"}]}'),
            tags=p_tags,
            opts=_opts(self),
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-ssm", role=role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore", opts=_opts(self))
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, tags=p_tags,
                                          opts=_opts(self))
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            image_id=args.image_id,
            instance_type=cfg.proxy.instance_type,
            iam_instance_profile={"arn": profile.arn},
            metadata_options={"http_tokens": "required", "http_endpoint": "enabled"},
            network_interfaces=[{"associate_public_ip_address": "false",
                                 "security_groups": [self.security_group.id],
                                 "delete_on_termination": "true"}],
            # Encrypted with the account's AWS-managed EBS key: Auto Scaling launches with it
            # without a grant. The log archive's customer key would need its key policy to name
            # the service-linked role AWSServiceRoleForAutoScaling, which does not exist in a new
            # account until the first group is made (rule municloud-kms-key-users checks this).
            # The proxies keep no data at rest: their logs go to the archive.
            block_device_mappings=[{"device_name": "/dev/xvda", "ebs": {
                "encrypted": "true", "volume_size": 20, "volume_type": "gp3"}}],
            tag_specifications=[{"resource_type": kind, "tags": instance_tags}
                                for kind in ("instance", "volume", "network-interface")],
            # The first boot installs squid with the configuration rendered from the inventories
            # (municloud/cloud/squid.py); a plain string, known at preview.
            user_data=squid.user_data_base64(self.squid_config),
            tags=p_tags,
            opts=_opts(self),
        )
        # Load balancers and target groups take 32 characters, Pulumi's suffix 8 of them: the
        # logical names stay short (the prefecture code; the tags say the rest).
        self.balancer = aws.lb.LoadBalancer(
            f"proxy-{p.code}-nlb", internal=True, load_balancer_type="network",
            subnets=args.subnet_ids, enable_cross_zone_load_balancing=True,
            security_groups=[self.balancer_security_group.id], tags=p_tags, opts=_opts(self))
        target_group = aws.lb.TargetGroup(
            f"proxy-{p.code}-tg", port=port, protocol="TCP", vpc_id=args.vpc_id,
            target_type="instance",
            health_check={"protocol": "TCP", "port": str(port)}, tags=p_tags, opts=_opts(self))
        aws.lb.Listener(
            f"{name}-listener", load_balancer_arn=self.balancer.arn, port=port, protocol="TCP",
            default_actions=[{"type": "forward", "target_group_arn": target_group.arn}],
            tags=p_tags, opts=_opts(self))
        self.group = aws.autoscaling.Group(
            f"{name}-asg",
            min_size=cfg.proxy.min_size,
            max_size=cfg.proxy.max_size,
            desired_capacity=cfg.proxy.min_size,
            vpc_zone_identifiers=args.subnet_ids,
            launch_template={"id": self.launch_template.id, "version": "$Latest"},
            target_group_arns=[target_group.arn],
            health_check_type="ELB",
            tags=[{"key": k, "value": v, "propagate_at_launch": True}
                  for k, v in instance_tags.items()],
            opts=_opts(self),
        )
        self.register_outputs({"proxyAddress": self.balancer.dns_name})


# --- one municipality's attachment -------------------------------------------------------------


@dataclass
class MunicipalityAttachmentArgs:
    config: SecurityCloudConfig
    prefecture: Prefecture
    municipality: Municipality
    transit_gateway_id: pulumi.Input[str]
    hub_attachment_id: pulumi.Input[str]  # the inspection VPC's attachment
    hub_route_table_id: pulumi.Input[str]


class MunicipalityAttachment(pulumi.ComponentResource):
    """A municipality's site-to-site VPN into the security cloud, in its own route table.

    Its route table knows one destination: its own prefecture's proxy range in the inspection VPC.
    The hub route table learns one route back: this municipality's internet segment. Nothing
    here can route one municipality (or prefecture) to another.
    """

    def __init__(self, name: str, args: MunicipalityAttachmentArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("municloud:security_cloud:MunicipalityAttachment", name, None, opts)
        cfg, p, m = args.config, args.prefecture, args.municipality
        m_tags = {**tags.base(cfg.name, KIND, prefecture=p.code, municipality=m.code),
                  "Name": f"{cfg.name}-{m.name_romaji}"}
        # The router's outside address (config.py refuses a gateway without one).
        self.customer_gateway = aws.ec2.CustomerGateway(
            f"{name}-cgw", ip_address=str(m.gateway.outside_address),
            bgp_asn=str(cfg.customer_gateway_asn), type="ipsec.1", tags=m_tags, opts=_opts(self))
        psk = derived_psk(cfg.vpn_pre_shared_key, f"security-cloud:{cfg.name}:{m.code}")
        self.vpn = aws.ec2.VpnConnection(
            f"{name}-vpn",
            customer_gateway_id=self.customer_gateway.id,
            transit_gateway_id=args.transit_gateway_id,
            type="ipsec.1",
            static_routes_only=True,
            local_ipv4_network_cidr=str(internet_segment(m)),
            remote_ipv4_network_cidr=str(prefecture_ranges(p).security_cloud),
            tunnel1_preshared_key=psk,
            tunnel2_preshared_key=psk,
            tags=m_tags,
            opts=_opts(self),
        )
        self.route_table = aws.ec2transitgateway.RouteTable(
            f"{name}-rt", transit_gateway_id=args.transit_gateway_id, tags=m_tags,
            opts=_opts(self))
        aws.ec2transitgateway.RouteTableAssociation(
            f"{name}-rt-assoc",
            transit_gateway_attachment_id=self.vpn.transit_gateway_attachment_id,
            transit_gateway_route_table_id=self.route_table.id, opts=_opts(self))
        aws.ec2transitgateway.Route(
            f"{name}-to-proxies", destination_cidr_block=str(prefecture_ranges(p).security_cloud),
            transit_gateway_attachment_id=args.hub_attachment_id,
            transit_gateway_route_table_id=self.route_table.id, opts=_opts(self))
        aws.ec2transitgateway.Route(
            f"{name}-return", destination_cidr_block=str(internet_segment(m)),
            transit_gateway_attachment_id=self.vpn.transit_gateway_attachment_id,
            transit_gateway_route_table_id=args.hub_route_table_id, opts=_opts(self))
        self.register_outputs({"vpnId": self.vpn.id,
                               "attachmentId": self.vpn.transit_gateway_attachment_id})


# --- the whole cloud ---------------------------------------------------------------------------


@dataclass
class SecurityCloudArgs:
    config: SecurityCloudConfig


class SecurityCloud(pulumi.ComponentResource):
    """A prefectural or multi-prefecture security cloud, as the stack's inventories describe."""

    def __init__(self, name: str, args: SecurityCloudArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("municloud:security_cloud:SecurityCloud", name, None, opts)
        cfg = args.config
        lead_tags = tags.base(cfg.name, KIND, prefecture=cfg.lead.code)

        self.archive = LogArchive(f"{name}-logs", LogArchiveArgs(
            tags=lead_tags, retention_days=cfg.log_retention_days,
            cloudtrail=cfg.cloudtrail, guardduty=cfg.guardduty), opts=_opts(self))
        self.transit_gateway = aws.ec2transitgateway.TransitGateway(
            f"{name}-tgw",
            description=f"{cfg.name}: municipalities to the inspection VPC, never to each other",
            amazon_side_asn=cfg.transit_gateway_asn,
            default_route_table_association="disable",
            default_route_table_propagation="disable",
            auto_accept_shared_attachments="disable",
            vpn_ecmp_support="enable",
            dns_support="enable",
            tags=lead_tags,
            opts=_opts(self),
        )
        self.inspection = InspectionVpc(f"{name}-inspection", InspectionVpcArgs(
            config=cfg, archive=self.archive, transit_gateway_id=self.transit_gateway.id),
            opts=_opts(self))
        self.hub_route_table = aws.ec2transitgateway.RouteTable(
            f"{name}-hub-rt", transit_gateway_id=self.transit_gateway.id,
            tags={**lead_tags, tags.ROLE: "inspection"},
            opts=_opts(self))
        aws.ec2transitgateway.RouteTableAssociation(
            f"{name}-hub-rt-assoc", transit_gateway_attachment_id=self.inspection.attachment.id,
            transit_gateway_route_table_id=self.hub_route_table.id, opts=_opts(self))

        image_id: pulumi.Input[str]
        if cfg.proxy.image_id:
            image_id = cfg.proxy.image_id
        else:
            image_id = aws.ec2.get_ami_output(
                owners=[DEBIAN_OWNER], most_recent=True,
                filters=[{"name": "name", "values": ["debian-12-arm64-*"]}],
                opts=pulumi.InvokeOutputOptions(parent=self)).id
        self.fleets = {
            p.code: ProxyFleet(f"{name}-proxy-{p.code}", ProxyFleetArgs(
                config=cfg, prefecture=p, vpc_id=self.inspection.vpc.id,
                subnet_ids=[s.id for s in self.inspection.proxy_subnets[p.code]],
                subnet_cidrs=[s.cidr_block for s in self.inspection.proxy_subnets[p.code]],
                image_id=image_id), opts=_opts(self))
            for p in cfg.prefectures
        }
        self.municipalities = {
            m.code: MunicipalityAttachment(f"{name}-{m.code}", MunicipalityAttachmentArgs(
                config=cfg, prefecture=p, municipality=m,
                transit_gateway_id=self.transit_gateway.id,
                hub_attachment_id=self.inspection.attachment.id,
                hub_route_table_id=self.hub_route_table.id), opts=_opts(self))
            for p in cfg.prefectures for m in p.municipalities
        }
        self.register_outputs({
            "transitGatewayId": self.transit_gateway.id,
            "logBucket": self.archive.bucket.id,
        })


def program(base_dir: Path | str) -> SecurityCloud:
    """The whole Pulumi program of ``pulumi/security-cloud``: read config once, build the cloud."""
    cfg = security_cloud_config(Path(base_dir))
    cloud = SecurityCloud(cfg.name, SecurityCloudArgs(config=cfg))
    pulumi.export("model", cfg.model)
    pulumi.export("prefectures", [p.code for p in cfg.prefectures])
    pulumi.export("transitGatewayId", cloud.transit_gateway.id)
    pulumi.export("proxyAddresses", {code: f.balancer.dns_name for code, f in cloud.fleets.items()})
    pulumi.export("vpnConnections", {code: a.vpn.id for code, a in cloud.municipalities.items()})
    pulumi.export("logBucket", cloud.archive.bucket.id)
    return cloud
