"""Which checks each kind of cloud runs, running them, and the verdicts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from municloud.cloud.verify.data import check_backup_cross_region, check_rds_encrypted
from municloud.cloud.verify.egress import check_egress_path, check_tgw_appliance_mode
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
    SECURITY_CLOUD,
    Check,
    CloudState,
    Finding,
    Inventories,
    Status,
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
from municloud.cloud.verify.served import check_expected_served, check_serves_tags
from municloud.cloud.verify.vpn import check_vpn_outside_address, check_vpn_selectors

# (name, check, services it needs), in report order
Registered = tuple[str, Check, tuple[str, ...]]

SECURITY_CLOUD_CHECKS: tuple[Registered, ...] = (
    ("tgw-default-route-table", check_tgw_default_route_table, ("ec2",)),
    ("tgw-isolation", check_tgw_isolation, ("ec2",)),
    ("tgw-appliance-mode", check_tgw_appliance_mode, ("ec2",)),
    ("egress-path", check_egress_path, ("ec2", "network-firewall")),
    ("vpn-selectors", check_vpn_selectors, ("ec2",)),
    ("vpn-outside-address", check_vpn_outside_address, ("ec2",)),
    ("vpc-flow-logs", check_flow_logs, ("ec2",)),
    ("log-archive-object-lock", check_bucket_object_lock, ("s3",)),
    ("log-archive-versioning", check_bucket_versioning, ("s3",)),
    ("log-archive-encryption", check_bucket_encryption, ("s3",)),
    ("log-archive-public-access", check_bucket_public_access, ("s3",)),
    ("cloudtrail", check_cloudtrail, ("cloudtrail",)),
    ("guardduty", check_guardduty, ("guardduty",)),
    ("sg-no-world-ingress", check_no_world_ingress, ("ec2",)),
)

JOINT_CLOUD_CHECKS: tuple[Registered, ...] = (
    # Tenants (one per member) are isolated by transit gateway route tables, as in the security
    # cloud; their VPCs log their flows like every VPC of the project.
    ("tgw-default-route-table", check_tgw_default_route_table, ("ec2",)),
    ("tgw-isolation", check_tgw_isolation, ("ec2",)),
    ("vpn-selectors", check_vpn_selectors, ("ec2",)),
    ("vpn-outside-address", check_vpn_outside_address, ("ec2",)),
    ("vpc-flow-logs", check_flow_logs, ("ec2",)),
    ("no-internet-gateway", check_no_internet_gateway, ("ec2",)),
    ("no-public-ip", check_no_public_ip, ("ec2", "rds")),
    ("sg-no-world-ingress", check_no_world_ingress, ("ec2",)),
    ("subnet-no-public-ip", check_subnets_no_public_ip_on_launch, ("ec2",)),
    ("rds-encrypted", check_rds_encrypted, ("rds",)),
    ("db-no-egress", check_db_no_egress, ("ec2", "rds")),
    ("backup-cross-region", check_backup_cross_region, ("backup",)),
)

SERVICES = ("ec2", "network-firewall", "s3", "cloudtrail", "guardduty", "rds", "backup")
# The services whose resources serves-tags reads (tagged_resources); not Network Firewall's.
_TAGGED_SERVICES = ("ec2", "s3", "cloudtrail", "guardduty", "rds", "backup")


def registered_checks(kind: str, inventories: Inventories | None = None
                      ) -> list[Registered]:
    """The checks of ``kind``; ``inventories`` (from ``--inventory``) adds the attachment and
    ingress checks, and the inventory's ranges to the isolation and VPN selector checks; None
    leaves them out."""
    checks = list(SECURITY_CLOUD_CHECKS if kind == SECURITY_CLOUD else JOINT_CLOUD_CHECKS)
    if inventories is not None:
        inv = inventories
        with_ranges: dict[Check, Check] = {
            check_tgw_isolation: lambda s: check_tgw_isolation(s, inv.ranges),
            check_vpn_selectors: lambda s: check_vpn_selectors(s, inv.ranges),
        }
        checks = [(name, with_ranges.get(fn, fn), needs) for name, fn, needs in checks]
        checks.append(("municipalities-attached",
                       lambda s: check_expected_served(s, inv.expected), ("ec2",)))
        checks.append(("sg-ingress-tenants",
                       lambda s: check_sg_ingress_tenants(s, inv.ranges), ("ec2",)))
    # Resources come from every service read, so the tag check needs them all.
    needs_all = tuple(sorted({svc for _, _, needs in checks for svc in needs
                              if svc in _TAGGED_SERVICES}))
    checks.append(("serves-tags", check_serves_tags, needs_all))
    return checks


def run_checks(state: CloudState, inventories: Inventories | None = None) -> list[Finding]:
    """Every check of the state's kind, in order; UNCHECKED where a needed service is unreadable."""
    findings: list[Finding] = []
    for name, fn, needs in registered_checks(state.kind, inventories):
        missing = [f"{svc}: {state.unavailable[svc]}" for svc in needs if svc in state.unavailable]
        if missing:
            findings.append(Finding(name, Status.UNCHECKED, "-",
                                    f"not checkable here ({'; '.join(missing)})",
                                    "run against an endpoint that supports the API, with read "
                                    "permission for it"))
            continue
        findings.extend(fn(state))
    return findings


# --- output ------------------------------------------------------------------------------------


def verdicts(findings: Iterable[Finding]) -> dict[str, Status]:
    """Each check's verdict: FAIL if any finding fails, else UNCHECKED if any, else PASS."""
    result: dict[str, Status] = {}
    rank = {Status.PASS: 0, Status.UNCHECKED: 1, Status.FAIL: 2}
    for f in findings:
        if f.check not in result or rank[f.status] > rank[result[f.check]]:
            result[f.check] = f.status
    return result


def summary(state: CloudState, findings: Sequence[Finding]) -> str:
    counts = {s: 0 for s in Status}
    for status in verdicts(findings).values():
        counts[status] += 1
    total = sum(counts.values())
    return (f"{state.kind} {state.cloud} in {state.region}: {total} checks, "
            f"{counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, "
            f"{counts[Status.UNCHECKED]} not checkable here")


def exit_code(findings: Sequence[Finding]) -> int:
    """0 only when every check passed; a check that could not run is not a pass."""
    return 0 if all(s is Status.PASS for s in verdicts(findings).values()) else 1
