"""``municloud cloud verify``: check a deployed cloud against the project's invariants with boto3.

Two kinds of cloud are checked, each selected by the ``municloud:cloud`` tag (``tags.CLOUD``):

* ``security-cloud`` (自治体情報セキュリティクラウド): transit gateways without default route table
  association or propagation, no transit gateway route table that lets one tenant reach another,
  the inspection VPC's attachment in appliance mode, a way out to the internet only through the
  NAT gateways behind the internet gateway (and through the network firewall where there is
  one), flow logs on every VPC, a log archive bucket with object lock, versioning, KMS
  encryption and all public access blocked, a multi-region CloudTrail trail that is logging,
  GuardDuty on, and no security group open to 0.0.0.0/0.
* ``joint-cloud`` (自治体クラウド): the same transit gateway and flow log checks (one tenant per
  member, as ``joint_cloud.py`` builds it), no internet gateway, no public IP on instances,
  network interfaces, databases or subnets, no security group open to 0.0.0.0/0, RDS storage
  encrypted, no egress rule on a database's security groups, an AWS Backup plan that copies to a
  vault in another region (backups survive the loss of one site).

In both, each VPN carries only its segment and the cloud's range (not 0.0.0.0/0), each customer
gateway lies outside the cloud's VPCs, and every resource found must say whom it serves
(``municloud:prefecture`` or ``municloud:municipality``). With ``--inventory`` every
municipality the inventory says the cloud serves must have its transit gateway attachment or
VPN, and every security group admits only the segments of those it serves. A check that finds
nothing to examine fails; a check whose API cannot be read here is reported UNCHECKED, which is
not a pass.

How transit gateway route tables are read (tenant isolation, テナント分離):

* the shared attachment (the inspection VPC's) may be reached from every table. The hub table is
  a table tagged ``municloud:role=inspection``, or, as ``security_cloud.py`` builds it, a table
  with a prefecture tag and no municipality tag that is associated with an attachment of a
  prefecture and of no municipality;
* the hub may reach every tenant of the prefectures the cloud serves (those of its route tables
  and, with ``--inventory``, of the inventories), each tenant's range to that tenant only: a
  route or propagation to a tenant of another prefecture, a route into another prefecture's
  range, and a route whose destination takes in another tenant's range (0.0.0.0/0 to one
  municipality, say) fail even in the hub table;
* a table tagged ``municloud:municipality=CODE`` belongs to that municipality: no active route
  and no propagation may lead to an attachment of another municipality, and no route may lead
  to a destination inside another municipality's address range (blackhole routes are fine; a
  range the table's own tenant shares, as the joint cloud's tenant VPCs do, is judged by the
  route's target alone);
* a table tagged only ``municloud:prefecture=CODE`` belongs to that prefecture: nothing in it
  may lead to another prefecture's attachments or ranges;
* an untagged table that carries routes or propagations is a failure (nobody can tell whom it
  serves); an empty untagged table is ignored.

Address ranges are known from the VPCs behind tenant attachments and, with ``--inventory``, from
the inventory: municipalities' segments and prefectures' shared networks (so a municipality
routed to another prefecture's proxies in a 超広域 cloud is caught).

The package is split along three seams: the checks are pure functions over a
:class:`CloudState` (the ``describe_*`` results, unit-tested without AWS), :func:`collect` fills a
state with boto3, and :func:`main` prints. boto3 is imported only inside :func:`collect` and
:func:`main`, so the CLI stays fast for the other commands. Its modules:

* :mod:`~municloud.cloud.verify.model`: the state, the findings, who owns which attachment and
  range (the hub, the tenants);
* :mod:`~municloud.cloud.verify.network`: transit gateways and isolation, security groups
  (world ingress, ingress from tenants only, databases' egress), internet gateways, public
  addresses;
* :mod:`~municloud.cloud.verify.egress`: the inspection attachment's appliance mode, the VPC
  routes to NAT gateways, internet gateways and the network firewall;
* :mod:`~municloud.cloud.verify.vpn`: the VPNs' traffic selectors, the customer gateways;
* :mod:`~municloud.cloud.verify.logs`: flow logs, the log archive bucket, CloudTrail, GuardDuty;
* :mod:`~municloud.cloud.verify.data`: the databases and their backups;
* :mod:`~municloud.cloud.verify.served`: whom each resource serves, whom the inventory expects;
* :mod:`~municloud.cloud.verify.registry`: the checks of each kind, running them, the verdicts;
* :mod:`~municloud.cloud.verify.collect`: boto3;
* :mod:`~municloud.cloud.verify.cli`: the arguments, the inventories, the report.

Everything a caller needs is re-exported here: ``from municloud.cloud import verify`` then
``verify.run_checks``, ``verify.main`` and so on.
"""

from __future__ import annotations

from municloud.cloud.verify.cli import (
    add_arguments,
    load_inventories,
    main,
)
from municloud.cloud.verify.collect import collect
from municloud.cloud.verify.data import (
    check_backup_cross_region,
    check_rds_encrypted,
)
from municloud.cloud.verify.egress import (
    check_egress_path,
    check_tgw_appliance_mode,
)
from municloud.cloud.verify.logs import (
    check_bucket_encryption,
    check_bucket_object_lock,
    check_bucket_public_access,
    check_bucket_versioning,
    check_cloudtrail,
    check_flow_logs,
    check_guardduty,
)
from municloud.cloud.verify.model import (
    INSPECTION,
    JOINT_CLOUD,
    KINDS,
    KMS_ALGORITHMS,
    PUBLIC_ACCESS_BLOCK_KEYS,
    SECURITY_CLOUD,
    WORLD,
    Bucket,
    Check,
    CloudState,
    Expected,
    Finding,
    Inventories,
    KnownRange,
    Owner,
    Resource,
    Status,
    VerifyError,
    attachment_tags,
    has_cloud_tag,
    owner_of,
    range_owners,
    shared_hub,
    tag_map,
)
from municloud.cloud.verify.network import (
    check_db_no_egress,
    check_no_internet_gateway,
    check_no_public_ip,
    check_no_world_ingress,
    check_sg_ingress_tenants,
    check_subnets_no_public_ip_on_launch,
    check_tgw_default_route_table,
    check_tgw_isolation,
)
from municloud.cloud.verify.registry import (
    JOINT_CLOUD_CHECKS,
    SECURITY_CLOUD_CHECKS,
    SERVICES,
    Registered,
    exit_code,
    registered_checks,
    run_checks,
    summary,
    verdicts,
)
from municloud.cloud.verify.served import (
    check_expected_served,
    check_serves_tags,
    tagged_resources,
)
from municloud.cloud.verify.vpn import (
    check_vpn_outside_address,
    check_vpn_selectors,
)

__all__ = [
    "INSPECTION",
    "JOINT_CLOUD",
    "JOINT_CLOUD_CHECKS",
    "KINDS",
    "KMS_ALGORITHMS",
    "PUBLIC_ACCESS_BLOCK_KEYS",
    "SECURITY_CLOUD",
    "SECURITY_CLOUD_CHECKS",
    "SERVICES",
    "WORLD",
    "Bucket",
    "Check",
    "CloudState",
    "Expected",
    "Finding",
    "Inventories",
    "KnownRange",
    "Owner",
    "Registered",
    "Resource",
    "Status",
    "VerifyError",
    "add_arguments",
    "attachment_tags",
    "check_backup_cross_region",
    "check_bucket_encryption",
    "check_bucket_object_lock",
    "check_bucket_public_access",
    "check_bucket_versioning",
    "check_cloudtrail",
    "check_db_no_egress",
    "check_egress_path",
    "check_expected_served",
    "check_flow_logs",
    "check_guardduty",
    "check_no_internet_gateway",
    "check_no_public_ip",
    "check_no_world_ingress",
    "check_rds_encrypted",
    "check_serves_tags",
    "check_sg_ingress_tenants",
    "check_subnets_no_public_ip_on_launch",
    "check_tgw_appliance_mode",
    "check_tgw_default_route_table",
    "check_tgw_isolation",
    "check_vpn_outside_address",
    "check_vpn_selectors",
    "collect",
    "exit_code",
    "has_cloud_tag",
    "load_inventories",
    "main",
    "owner_of",
    "range_owners",
    "registered_checks",
    "run_checks",
    "shared_hub",
    "summary",
    "tag_map",
    "tagged_resources",
    "verdicts",
]
