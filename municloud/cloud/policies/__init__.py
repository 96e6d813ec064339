"""The rules every cloud stack keeps: one home for the policy pack, the graph tests and the plan.

Each rule is a pure function. Resource rules look at one resource,
``check_xxx(resource_type, props) -> list[str]``; stack rules look at all resources,
``check_xxx(resources) -> list[(message, urn)]``. ``props`` are camelCase, as the engine hands
them to CrossGuard and as the mocks record them. The CrossGuard pack (``pulumi/policy``) wraps
these functions in ``ResourceValidationPolicy`` / ``StackValidationPolicy`` with
``EnforcementLevel.MANDATORY`` (:func:`policy_pack_policies`); the unit tests and
``municloud cloud plan`` run that same pack, started as its own program and spoken to over gRPC
as the engine does (:mod:`municloud.cloud.engine`), over a mocked graph.

Under the engine, lists and maps are pulumi_policy's proxies (``Sequence``/``Mapping``, not
``list``/``dict``: :func:`is_list`), and in a preview every id and ARN of a resource still to be
created is unknown; the proxy raises on reading one, which turns the whole policy into an
advisory "can't run during preview". So resource rules read references with :func:`is_set`, and
stack rules get plain :class:`Item` s (unknowns as :data:`UNKNOWN`) whose references are followed
by :class:`Identities`: by the known id, or else by the engine's property dependencies.

The package, by what the rules look at: :mod:`.model` (items, identities, resource types,
address arithmetic), :mod:`.resources` (one resource at a time), :mod:`.paths` (who may reach
whom: routes, security groups, VPN selectors, the way out), :mod:`.services` (logs, backups,
keys, a closed joint cloud), :mod:`.names` (AWS's naming rules and per-account singletons) and
:mod:`.pack` (the catalogue :data:`RULES` and the CrossGuard pack). Each rule serves the cloud
invariants of :mod:`municloud.cloud.invariants` that name it. Everything is importable from
here, as before the split.
"""

from __future__ import annotations

from municloud.cloud.policies.model import (
    ASG,
    AUTOSCALING_ROLE,
    BACKUP_PLAN,
    BACKUP_SELECTION,
    BACKUP_VAULT,
    BUCKET,
    CUSTOMER_GATEWAY,
    DETECTOR,
    FIREWALL,
    FIREWALL_POLICY,
    FIREWALL_RULES,
    FLOW_LOG,
    INTERNET_GATEWAY,
    INTERNET_TYPES,
    KMS_KEY,
    LAUNCH_TEMPLATE,
    LISTENER,
    LOAD_BALANCER,
    NAT_GATEWAY,
    OPEN,
    RDS,
    ROUTE,
    ROUTE_TABLE,
    ROUTE_TABLE_ASSOCIATION,
    SG,
    SG_INGRESS,
    SG_RULE,
    SUBNET,
    TARGET_GROUP,
    TGW,
    TGW_ASSOCIATION,
    TGW_PROPAGATION,
    TGW_ROUTE,
    TGW_VPC_ATTACHMENT,
    UNKNOWN,
    UNKNOWN_VALUES,
    VPC,
    VPC_CIDR,
    VPN,
    Identities,
    Item,
    Ranges,
    ResourceCheck,
    StackCheck,
    cidr_within,
    is_list,
    is_set,
    is_unknown,
    items_of,
    plain,
    tag_map,
)
from municloud.cloud.policies.names import (
    AUTONAME_SUFFIX,
    EXTRA_NAME_RULES,
    NAME_RULES,
    NameRule,
    account_collisions,
    aws_name_problems,
    check_aws_names,
)
from municloud.cloud.policies.pack import (
    RULES,
    Rule,
    policy_pack_policies,
    run_policy_pack,
)
from municloud.cloud.policies.paths import (
    check_balancer_reaches_targets,
    check_egress_path,
    check_ingress_from_tenants,
    check_tenant_isolation,
    check_vpn_outside_address,
    tenant_ranges,
    transit_tables,
)
from municloud.cloud.policies.resources import (
    check_encryption,
    check_firewall_default_deny,
    check_no_open_ingress,
    check_no_public_address,
    check_tags,
    check_transit_gateway_defaults,
)
from municloud.cloud.policies.services import (
    check_backup_copies,
    check_flow_logs,
    check_joint_cloud_closed,
    check_kms_key_users,
    check_log_archive,
)

__all__ = [
    "ASG",
    "AUTONAME_SUFFIX",
    "AUTOSCALING_ROLE",
    "BACKUP_PLAN",
    "BACKUP_SELECTION",
    "BACKUP_VAULT",
    "BUCKET",
    "CUSTOMER_GATEWAY",
    "DETECTOR",
    "EXTRA_NAME_RULES",
    "FIREWALL",
    "FIREWALL_POLICY",
    "FIREWALL_RULES",
    "FLOW_LOG",
    "INTERNET_GATEWAY",
    "INTERNET_TYPES",
    "KMS_KEY",
    "LAUNCH_TEMPLATE",
    "LISTENER",
    "LOAD_BALANCER",
    "NAME_RULES",
    "NAT_GATEWAY",
    "OPEN",
    "RDS",
    "ROUTE",
    "ROUTE_TABLE",
    "ROUTE_TABLE_ASSOCIATION",
    "RULES",
    "SG",
    "SG_INGRESS",
    "SG_RULE",
    "SUBNET",
    "TARGET_GROUP",
    "TGW",
    "TGW_ASSOCIATION",
    "TGW_PROPAGATION",
    "TGW_ROUTE",
    "TGW_VPC_ATTACHMENT",
    "UNKNOWN",
    "UNKNOWN_VALUES",
    "VPC",
    "VPC_CIDR",
    "VPN",
    "Identities",
    "Item",
    "NameRule",
    "Ranges",
    "ResourceCheck",
    "Rule",
    "StackCheck",
    "account_collisions",
    "aws_name_problems",
    "check_aws_names",
    "check_backup_copies",
    "check_balancer_reaches_targets",
    "check_egress_path",
    "check_encryption",
    "check_firewall_default_deny",
    "check_flow_logs",
    "check_ingress_from_tenants",
    "check_joint_cloud_closed",
    "check_kms_key_users",
    "check_log_archive",
    "check_no_open_ingress",
    "check_no_public_address",
    "check_tags",
    "check_tenant_isolation",
    "check_transit_gateway_defaults",
    "check_vpn_outside_address",
    "cidr_within",
    "is_list",
    "is_set",
    "is_unknown",
    "items_of",
    "plain",
    "policy_pack_policies",
    "run_policy_pack",
    "tag_map",
    "tenant_ranges",
    "transit_tables",
]
