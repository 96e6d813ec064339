"""Checks of the core systems' data (基幹系): database encryption, backups copied away."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from municloud.cloud import tags
from municloud.cloud.verify.model import CloudState, Finding, Status, nothing_found, pass_finding


def check_rds_encrypted(state: CloudState) -> list[Finding]:
    name = "rds-encrypted"
    if not state.db_instances:
        return [Finding(name, Status.FAIL, "-",
                        f"no RDS instance tagged {tags.CLOUD}={state.cloud} or in its VPCs in "
                        f"{state.region}: the core systems' data was not found",
                        "check --cloud and --region, and tag the databases")]
    out = [Finding(name, Status.FAIL, db["DBInstanceIdentifier"], "storage is not encrypted",
                   "storage encryption can only be set at creation: restore an encrypted copy "
                   "of a snapshot and switch over", examined=1)
           for db in state.db_instances if not db.get("StorageEncrypted")]
    return out or [pass_finding(name, [d["DBInstanceIdentifier"] for d in state.db_instances],
                                "storage encrypted")]


def _arn_region(arn: str) -> str:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 else ""


def _plan_name(plan: Mapping[str, Any]) -> str:
    return str(plan.get("BackupPlanName") or plan.get("BackupPlanArn") or "?")


def check_backup_cross_region(state: CloudState) -> list[Finding]:
    """Backups survive the loss of one site: a plan copies to a vault in another region."""
    name = "backup-cross-region"
    if not state.backup_plans:
        return [nothing_found(name, "AWS Backup plan", state,
                              "create a backup plan with a copy action to a vault in another "
                              "region")]
    # Every rule of every plan copies out: one plan that does says nothing of the others.
    copies: list[str] = []
    out: list[Finding] = []
    for plan in state.backup_plans:
        for rule in plan.get("Rules", []) or [{}]:
            arns = [a.get("DestinationBackupVaultArn", "") for a in rule.get("CopyActions", [])]
            away = [a for a in arns if _arn_region(a) not in ("", state.region)]
            copies += away
            if not away:
                detail = f"copy actions stay in {state.region}" if arns else "no copy action"
                where = _plan_name(plan) + (f" rule {rule['RuleName']}"
                                            if rule.get("RuleName") else "")
                out.append(Finding(name, Status.FAIL, where, f"{detail}: a regional disaster "
                                   "loses its backups", "add a copy action to a vault in another "
                                   "region (e.g. ap-northeast-3)", examined=1))
    ids = [_plan_name(p) for p in state.backup_plans]
    return out or [pass_finding(name, ids, f"copies to {', '.join(sorted(set(copies)))}")]
