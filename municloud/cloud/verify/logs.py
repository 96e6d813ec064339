"""Checks of logs and detection: flow logs, the log archive bucket, CloudTrail, GuardDuty."""

from __future__ import annotations

from municloud.cloud import tags
from municloud.cloud.verify.model import (
    KMS_ALGORITHMS,
    PUBLIC_ACCESS_BLOCK_KEYS,
    CloudState,
    Finding,
    Status,
    _nothing,
    _pass,
    has_cloud_tag,
)


def check_flow_logs(state: CloudState) -> list[Finding]:
    name = "vpc-flow-logs"
    if not state.vpcs:
        return [_nothing(name, "VPC", state, "deploy the cloud, or check --cloud and --region")]
    active = {f["ResourceId"] for f in state.flow_logs if f.get("FlowLogStatus") == "ACTIVE"}
    out = [Finding(name, Status.FAIL, v["VpcId"], "no active flow log on the VPC",
                   "create a flow log (traffic type ALL) to the log archive", examined=1)
           for v in state.vpcs if v["VpcId"] not in active]
    return out or [_pass(name, [v["VpcId"] for v in state.vpcs],
                         f"{len(state.vpcs)} VPC(s) examined, each with an active flow log")]


def _buckets_or_fail(name: str, state: CloudState) -> list[Finding]:
    return [] if state.buckets else [_nothing(
        name, "log archive bucket", state,
        f"create the log archive bucket and tag it {tags.CLOUD}={state.cloud}")]


def check_bucket_object_lock(state: CloudState) -> list[Finding]:
    name = "log-archive-object-lock"
    out = _buckets_or_fail(name, state)
    for b in state.buckets:
        lock = b.object_lock or {}
        retention = lock.get("Rule", {}).get("DefaultRetention", {})
        if lock.get("ObjectLockEnabled") != "Enabled":
            out.append(Finding(name, Status.FAIL, b.name, "object lock is not enabled",
                               "object lock can only be turned on for a new bucket: create the "
                               "archive with object lock and move the logs", examined=1))
        elif not (retention.get("Days") or retention.get("Years")):
            out.append(Finding(name, Status.FAIL, b.name,
                               "object lock is enabled but has no default retention",
                               "set a default retention (e.g. COMPLIANCE, the retention period "
                               "of the log policy)", examined=1))
        elif retention.get("Mode") != "COMPLIANCE":
            out.append(Finding(name, Status.FAIL, b.name,
                               f"default retention is {retention.get('Mode')}, not COMPLIANCE: "
                               "anyone allowed s3:BypassGovernanceRetention can delete the logs",
                               "set the default retention mode to COMPLIANCE (new objects; "
                               "objects already locked keep their mode)", examined=1))
    return out or [_pass(name, [b.name for b in state.buckets],
                         "object lock enabled with a COMPLIANCE default retention")]


def check_bucket_versioning(state: CloudState) -> list[Finding]:
    """Versioning is Enabled (get_bucket_versioning): an overwritten or deleted log object
    keeps its earlier versions, which object lock then protects."""
    name = "log-archive-versioning"
    out = _buckets_or_fail(name, state)
    for b in state.buckets:
        status = (b.versioning or {}).get("Status")
        if status != "Enabled":
            out.append(Finding(name, Status.FAIL, b.name,
                               f"versioning is {status or 'not enabled'}: an overwritten or "
                               "deleted log leaves no earlier version to recover",
                               "enable versioning on the bucket (aws s3api put-bucket-versioning "
                               "--versioning-configuration Status=Enabled)", examined=1))
    return out or [_pass(name, [b.name for b in state.buckets], "versioning enabled")]


def check_bucket_encryption(state: CloudState) -> list[Finding]:
    name = "log-archive-encryption"
    out = _buckets_or_fail(name, state)
    for b in state.buckets:
        algorithms = [r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
                      for r in (b.encryption or {}).get("Rules", [])]
        if not any(a in KMS_ALGORITHMS for a in algorithms):
            found = ", ".join(str(a) for a in algorithms) or "none"
            out.append(Finding(name, Status.FAIL, b.name,
                               f"default encryption is {found}, not aws:kms",
                               "set default encryption to aws:kms with the cloud's KMS key",
                               examined=1))
    return out or [_pass(name, [b.name for b in state.buckets], "default encryption aws:kms")]


def check_bucket_public_access(state: CloudState) -> list[Finding]:
    name = "log-archive-public-access"
    out = _buckets_or_fail(name, state)
    for b in state.buckets:
        block = b.public_access_block or {}
        off = [k for k in PUBLIC_ACCESS_BLOCK_KEYS if block.get(k) is not True]
        if off:
            out.append(Finding(name, Status.FAIL, b.name,
                               f"public access block not set: {', '.join(off)}",
                               "turn on all four public access block settings", examined=1))
    return out or [_pass(name, [b.name for b in state.buckets], "all public access blocked")]


def check_cloudtrail(state: CloudState) -> list[Finding]:
    name = "cloudtrail"
    if not state.trails:
        others = f" (the account has untagged trail(s): {', '.join(state.untagged_trails)})" \
            if state.untagged_trails else ""
        finding = _nothing(name, "CloudTrail trail", state,
                           f"create a multi-region trail to the log archive and tag it "
                           f"{tags.CLOUD}={state.cloud}")
        return [Finding(name, finding.status, "-", finding.message + others, finding.fix)]
    out: list[Finding] = []
    for trail in state.trails:
        problems = []
        if not trail.get("IsMultiRegionTrail"):
            problems.append("not multi-region")
        if not trail.get("IsLogging"):
            problems.append("not logging")
        if not trail.get("LogFileValidationEnabled"):
            problems.append("no log file validation")
        if not trail.get("KmsKeyId"):
            problems.append("not encrypted with a KMS key")
        if problems:
            out.append(Finding(name, Status.FAIL, trail["Name"], ", ".join(problems),
                               "make the trail multi-region, with log file validation and the "
                               "log archive's KMS key, and start logging "
                               "(aws cloudtrail update-trail / start-logging)", examined=1))
    return out or [_pass(name, [t["Name"] for t in state.trails],
                         "multi-region, logging, validated and KMS-encrypted")]


def check_guardduty(state: CloudState) -> list[Finding]:
    """GuardDuty has one detector per account and region: prefer one tagged with the cloud."""
    name = "guardduty"
    tagged = [d for d in state.detectors if has_cloud_tag(d, state.cloud)]
    detectors = tagged or state.detectors
    if not detectors:
        return [Finding(name, Status.FAIL, "-", f"no GuardDuty detector in {state.region}",
                        "enable GuardDuty in the region")]
    enabled = [d["DetectorId"] for d in detectors if d.get("Status") == "ENABLED"]
    if not enabled:
        return [Finding(name, Status.FAIL, d["DetectorId"], f"detector is {d.get('Status')}",
                        "enable the detector", examined=1) for d in detectors]
    note = "" if tagged else " (account-wide detector, not tagged with the cloud)"
    return [_pass(name, enabled, f"detector enabled{note}")]
