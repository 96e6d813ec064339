"""The rules as one catalogue (:data:`RULES`) and as the CrossGuard pack
(:func:`policy_pack_policies`, which ``pulumi/policy`` serves); :func:`run_policy_pack` asks that
pack over the engine's gRPC protocol."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from municloud.cloud.engine import PolicyResult
from municloud.cloud.policies.model import (
    ResourceCheck,
    StackCheck,
    items_of,
)
from municloud.cloud.policies.names import (
    check_aws_names,
)
from municloud.cloud.policies.paths import (
    check_balancer_reaches_targets,
    check_egress_path,
    check_ingress_from_tenants,
    check_tenant_isolation,
    check_vpn_outside_address,
)
from municloud.cloud.policies.resources import (
    check_encryption,
    check_firewall_default_deny,
    check_no_open_ingress,
    check_no_public_address,
    check_tags,
    check_threat_detection,
    check_transit_gateway_defaults,
)
from municloud.cloud.policies.services import (
    check_backup_copies,
    check_flow_logs,
    check_joint_cloud_closed,
    check_kms_key_users,
    check_log_archive,
)

# --- the catalogue -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None


RULES: tuple[Rule, ...] = (
    Rule("municloud-tags", "every taggable resource names its cloud and the prefecture or "
         "municipality it serves", resource_check=check_tags),
    Rule("municloud-no-open-ingress", "no security group admits 0.0.0.0/0 or ::/0",
         resource_check=check_no_open_ingress),
    Rule("municloud-encryption", "databases, keys, trails, vaults, volumes and buckets are "
         "encrypted or locked", resource_check=check_encryption),
    Rule("municloud-threat-detection", "a GuardDuty detector the stack creates is enabled",
         resource_check=check_threat_detection),
    Rule("municloud-no-public-address", "no instance, subnet or database has a public address",
         resource_check=check_no_public_address),
    Rule("municloud-transit-gateway-defaults", "transit gateways have no default route table "
         "or propagation, the inspection attachment has appliance mode, VPNs carry only their "
         "segment", resource_check=check_transit_gateway_defaults),
    Rule("municloud-firewall-default-deny", "a network firewall drops what its rules do not "
         "let through", resource_check=check_firewall_default_deny),
    Rule("municloud-tenant-isolation", "no route between two municipalities' or prefectures' "
         "attachments", stack_check=check_tenant_isolation),
    Rule("municloud-joint-cloud-closed", "a joint cloud has no internet gateway, NAT or "
         "elastic IP, and databases let no connection out", stack_check=check_joint_cloud_closed),
    Rule("municloud-log-archive", "log buckets are versioned, object-locked, KMS-encrypted, "
         "private and expire at the retention", stack_check=check_log_archive),
    Rule("municloud-flow-logs", "every VPC has a flow log", stack_check=check_flow_logs),
    Rule("municloud-backup-copies", "backups are copied to a second region and cover every "
         "database", stack_check=check_backup_copies),
    Rule("municloud-vpn-outside-address", "customer gateways are routers' outside addresses, "
         "never inside a VPC of the cloud", stack_check=check_vpn_outside_address),
    Rule("municloud-egress-path", "NAT gateways sit behind the internet gateway, and where a "
         "network firewall is, nothing reaches the internet around it",
         stack_check=check_egress_path),
    Rule("municloud-balancer-reaches-targets", "a load balancer's security groups let it reach "
         "its targets' port and health-check port", stack_check=check_balancer_reaches_targets),
    Rule("municloud-ingress-from-tenants", "a security group admits only the segments of the "
         "municipalities (or the prefecture) it serves", stack_check=check_ingress_from_tenants),
    Rule("municloud-kms-key-users", "a customer key that encrypts an auto scaling group's "
         "volumes lets the group's service-linked role use it", stack_check=check_kms_key_users),
    Rule("municloud-aws-names", "every name is one AWS accepts (length, characters) and "
         "unique where AWS wants it unique", stack_check=check_aws_names),
)


# --- the CrossGuard pack -----------------------------------------------------------------------


def policy_pack_policies() -> list[Any]:
    """The rules as pulumi_policy policies, all MANDATORY."""
    from pulumi_policy import (
        EnforcementLevel,
        ResourceValidationPolicy,
        StackValidationPolicy,
    )

    def resource_validator(check: ResourceCheck) -> Callable[[Any, Any], None]:
        def validate(args: Any, report_violation: Any) -> None:
            for message in check(args.resource_type, args.props):
                report_violation(message, None)
        return validate

    def stack_validator(check: StackCheck) -> Callable[[Any, Any], None]:
        def validate(args: Any, report_violation: Any) -> None:
            for message, urn in check(items_of(args.resources)):
                report_violation(message, urn)
        return validate

    policies: list[Any] = []
    for rule in RULES:
        if rule.resource_check:
            policies.append(ResourceValidationPolicy(
                name=rule.name, description=rule.description,
                validate=resource_validator(rule.resource_check),
                enforcement_level=EnforcementLevel.MANDATORY))
        if rule.stack_check:
            policies.append(StackValidationPolicy(
                name=rule.name, description=rule.description,
                validate=stack_validator(rule.stack_check),
                enforcement_level=EnforcementLevel.MANDATORY))
    return policies


def run_policy_pack(resources: Iterable[Any]) -> list[PolicyResult]:
    """Every policy's verdict over recorded resources, from the pack's own program
    (``pulumi/policy``) spoken to over gRPC as the engine does (:mod:`municloud.cloud.engine`):
    the rules see the analyzer's proxies and unknowns, not the recorder's plain lists."""
    from municloud.cloud.engine import shared_analyzer

    return shared_analyzer().analyze(resources)
