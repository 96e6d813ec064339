"""Stack rules over the services that keep logs and data: a closed joint cloud, the log
archive, flow logs, backups copied to a second region, and customer keys their users may use."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from municloud.cloud import tags
from municloud.cloud.policies.model import (
    ASG,
    AUTOSCALING_ROLE,
    BACKUP_PLAN,
    BACKUP_SELECTION,
    BUCKET,
    FLOW_LOG,
    INTERNET_TYPES,
    KMS_KEY,
    LAUNCH_TEMPLATE,
    RDS,
    SG,
    VPC,
    Identities,
    Item,
    is_list,
    is_true,
    is_unknown,
)
from municloud.cloud.policies.resources import (
    check_encryption,
)


def _is_joint_cloud(resources: Sequence[Item]) -> bool:
    return any(r.tags.get(tags.CLOUD_KIND) == tags.KIND_JOINT_CLOUD for r in resources)


def check_joint_cloud_closed(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """A joint cloud has no internet gateway, NAT or public address: closed lines only. Its
    databases start no connection: their security groups let nothing out."""
    ids = Identities(resources)
    out: list[tuple[str, str | None]] = []
    for db in (r for r in resources if r.type == RDS):
        for ref in db.props.get("vpcSecurityGroupIds") or []:
            for sg in (ids.by_urn[u] for u in ids.of(db, "vpcSecurityGroupIds", ref)
                       if u in ids.by_urn):
                if sg.type == SG and sg.props.get("egress"):
                    out.append((f"database {db.name}'s security group {sg.name} lets "
                                "connections out: a database only answers", sg.urn))
    if not _is_joint_cloud(resources):
        return out
    return out + [(f"{r.type.rsplit(':', 1)[-1]} {r.name} in a joint cloud (自治体クラウド), "
                   "which must reach members over closed lines only", r.urn)
                  for r in resources if r.type in INTERNET_TYPES]


def check_log_archive(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """Every bucket is versioned, object-locked with a retention, KMS-encrypted and private."""
    ids = Identities(resources, outputs=("id", "bucket", "arn"))
    by_bucket: dict[str, set[str]] = defaultdict(set)
    for r in resources:
        for bucket in ids.of(r, "bucket") if r.type != BUCKET else ():
            _bucket_settings(r, by_bucket[bucket])
    needed = {"versioning", "object lock retention in COMPLIANCE mode", "KMS encryption",
              "public access block", "lifecycle"}
    out: list[tuple[str, str | None]] = []
    for r in resources:
        if r.type == BUCKET:
            missing = needed - by_bucket[r.urn]
            if missing:
                out.append((f"bucket {r.name} lacks {', '.join(sorted(missing))}", r.urn))
    return out


def _bucket_settings(r: Item, found: set[str]) -> None:
    """What one of a bucket's configuration resources gives it."""
    if r.type.endswith("bucketVersioning:BucketVersioning") and (
            r.props.get("versioningConfiguration") or {}).get("status") == "Enabled":
        found.add("versioning")
    elif r.type.endswith("bucketObjectLockConfiguration:BucketObjectLockConfiguration"):
        retention = (r.props.get("rule") or {}).get("defaultRetention") or {}
        # GOVERNANCE lets anyone with s3:BypassGovernanceRetention delete the logs
        if (retention.get("days") or retention.get("years")) and retention.get(
                "mode") == "COMPLIANCE":
            found.add("object lock retention in COMPLIANCE mode")
    elif r.type.endswith("BucketServerSideEncryptionConfiguration") and not check_encryption(
            r.type, r.props):
        found.add("KMS encryption")
    elif r.type.endswith("bucketPublicAccessBlock:BucketPublicAccessBlock") and all(
            is_true(r.props.get(k)) for k in ("blockPublicAcls", "blockPublicPolicy",
                                            "ignorePublicAcls", "restrictPublicBuckets")):
        found.add("public access block")
    elif r.type.endswith("bucketLifecycleConfiguration:BucketLifecycleConfiguration"):
        found.add("lifecycle")


def check_flow_logs(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """Every VPC's traffic is logged."""
    ids = Identities(resources)
    logged = {vpc for r in resources if r.type == FLOW_LOG for vpc in ids.of(r, "vpcId")}
    return [(f"VPC {r.name} has no flow log", r.urn) for r in resources
            if r.type == VPC and r.urn not in logged]


def _region(arn: Any) -> str | None:
    parts = str(arn).split(":") if arn else []
    return parts[3] if len(parts) > 5 and parts[3] else None


def check_backup_copies(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """Every backup rule copies to a vault in another region; every database is backed up.
    (In a preview the ARNs, and so the regions, are unknown: the region is judged at up.)"""
    out: list[tuple[str, str | None]] = []
    for plan in (r for r in resources if r.type == BACKUP_PLAN):
        plan_region = _region(plan.known("arn"))
        for rule in plan.props.get("rules") or []:
            copies = rule.get("copyActions") or []
            if not copies:
                out.append((f"backup plan {plan.name} rule {rule.get('ruleName')} makes no copy "
                            "in a second region", plan.urn))
            for copy in copies:
                arn = copy.get("destinationVaultArn")
                region = None if is_unknown(arn) else _region(arn)
                if plan_region and region and region == plan_region:
                    out.append((f"backup plan {plan.name} copies within {region}: copy to a "
                                "vault in another region", plan.urn))
    if _is_joint_cloud(resources):
        ids = Identities(resources)
        selected: set[str] = set()
        for r in resources:
            if r.type != BACKUP_SELECTION:
                continue
            arns = r.props.get("resources") or []
            known = [a for a in arns if not is_unknown(a)]
            for arn in known:
                selected |= ids.of(r, "resources", arn)
            if len(known) < len(arns):  # a preview: the databases it depends on
                selected |= {ids.owner.get(u, u) for u in r.deps.get("resources", ())}
        out += [(f"database {r.name} is in no backup selection", r.urn) for r in resources
                if r.type == RDS and r.urn not in selected]
    return out


# --- keys the services that use them may use -------------------------------------------------



def _grants(policy: Any, principal_part: str) -> bool:
    """Whether a key policy (JSON) lets a principal whose ARN contains ``principal_part`` use the
    key for volumes: decrypt, generate data keys and create grants (or kms:*)."""
    import json

    try:
        document = json.loads(policy) if isinstance(policy, str) else policy
    except ValueError:
        return False
    statements = (document or {}).get("Statement") or []
    actions: set[str] = set()
    for st in statements if is_list(statements) else [statements]:
        if not isinstance(st, Mapping) or st.get("Effect") != "Allow":
            continue
        principal = st.get("Principal") or {}
        arns = principal.get("AWS") if isinstance(principal, Mapping) else principal
        arns = [arns] if isinstance(arns, str) else list(arns or [])
        if any(principal_part in str(a) for a in arns):
            found = st.get("Action") or []
            actions |= {found} if isinstance(found, str) else set(found)
    needed = {"kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext", "kms:CreateGrant"}
    return "kms:*" in actions or all(
        a in actions or (a.startswith("kms:GenerateDataKey") and "kms:GenerateDataKey*" in actions)
        for a in needed)


def check_kms_key_users(resources: Sequence[Item]) -> list[tuple[str, str | None]]:
    """A customer key that encrypts an auto scaling group's volumes lets the group's
    service-linked role use it; otherwise AWS launches no instance (the group stays empty)."""
    ids = Identities(resources)
    by_urn = ids.by_urn
    out: list[tuple[str, str | None]] = []
    for group in (r for r in resources if r.type == ASG):
        spec = group.props.get("launchTemplate") or {}
        template_refs = ids.of(group, "launchTemplate", spec.get("id") if spec else None)
        for template in (by_urn[u] for u in template_refs if u in by_urn):
            if template.type != LAUNCH_TEMPLATE:
                continue
            for bdm in template.props.get("blockDeviceMappings") or []:
                key_id = (bdm.get("ebs") or {}).get("kmsKeyId")
                if not key_id:
                    continue  # the AWS-managed EBS key: no grant needed
                for key in (by_urn[u] for u in ids.of(template, "blockDeviceMappings", key_id)
                            if u in by_urn):
                    policy = key.props.get("policy")
                    if key.type != KMS_KEY or is_unknown(policy):
                        continue  # known at up
                    if not _grants(policy, AUTOSCALING_ROLE):
                        out.append((f"key {key.name} encrypts the volumes of auto scaling group "
                                    f"{group.name} but its policy does not let "
                                    f"{AUTOSCALING_ROLE} use it: no instance would launch",
                                    key.urn))
    return out
