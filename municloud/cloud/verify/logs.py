"""Checks of logs and detection: flow logs, the log archive bucket, CloudTrail, GuardDuty."""

from __future__ import annotations

from collections.abc import Callable

from municloud.cloud import tags
from municloud.cloud.verify.model import (
    KMS_ALGORITHMS,
    PUBLIC_ACCESS_BLOCK_KEYS,
    Bucket,
    CloudState,
    Finding,
    Status,
    has_cloud_tag,
    nothing_found,
    pass_finding,
)


def check_flow_logs(state: CloudState) -> list[Finding]:
    name = "vpc-flow-logs"
    if not state.vpcs:
        return [nothing_found(name, "VPC", state,
                              "deploy the cloud, or check --cloud and --region")]
    active = {f["ResourceId"] for f in state.flow_logs if f.get("FlowLogStatus") == "ACTIVE"}
    out = [Finding(name, Status.FAIL, v["VpcId"], "no active flow log on the VPC",
                   "create a flow log (traffic type ALL) to the log archive", examined=1)
           for v in state.vpcs if v["VpcId"] not in active]
    return out or [pass_finding(name, [v["VpcId"] for v in state.vpcs],
                                f"{len(state.vpcs)} VPC(s) examined, each with an active flow log")]


# What each configuration is, and the permission that reads it, for an UNCHECKED line.
_READS = {
    "object_lock": ("object lock", "s3:GetBucketObjectLockConfiguration"),
    "versioning": ("versioning", "s3:GetBucketVersioning"),
    "encryption": ("default encryption", "s3:GetEncryptionConfiguration"),
    "public_access_block": ("public access block", "s3:GetBucketPublicAccessBlock"),
}

# A bucket's problem: (what is wrong, what to do), or None when the bucket passes.
Problem = tuple[str, str] | None


def _judge_buckets(name: str, state: CloudState, what: str, judge: Callable[[Bucket], Problem],
                   passed: str) -> list[Finding]:
    """One bucket check: each bucket of the cloud judged on its own. A bucket whose
    configuration ``what`` could not be read is UNCHECKED, named; so is a bucket whose tags
    could not be read (it may be the cloud's). The others are judged: FAIL lines, else one PASS
    line for those judged. No bucket at all, and none unreadable: FAIL."""
    label, permission = _READS[what]
    fails: list[Finding] = []
    unchecked: list[Finding] = []
    judged: list[str] = []
    for b in state.buckets:
        if what in b.unreadable:
            unchecked.append(Finding(
                name, Status.UNCHECKED, b.name,
                f"{b.unreadable[what]}: the bucket's {label} is not judged",
                f"grant the verifying role {permission} on the bucket (its bucket policy may "
                "deny it)", examined=1))
            continue
        problem = judge(b)
        if problem:
            fails.append(Finding(name, Status.FAIL, b.name, problem[0], problem[1], examined=1))
        else:
            judged.append(b.name)
    for bucket, reason in sorted(state.unreadable_buckets.items()):
        unchecked.append(Finding(
            name, Status.UNCHECKED, bucket,
            f"cannot tell whether the bucket belongs to the cloud: {reason}",
            "grant the verifying role s3:GetBucketTagging on the bucket (its bucket policy may "
            "deny it)", examined=1))
    if not (state.buckets or unchecked):
        return [nothing_found(name, "log archive bucket", state,
                              "create the log archive bucket and tag it "
                              f"{tags.CLOUD}={state.cloud}")]
    if fails:
        return fails + unchecked
    return ([pass_finding(name, judged, passed)] if judged else []) + unchecked


def _object_lock(b: Bucket) -> Problem:
    lock = b.object_lock or {}
    retention = lock.get("Rule", {}).get("DefaultRetention", {})
    if lock.get("ObjectLockEnabled") != "Enabled":
        return ("object lock is not enabled",
                "object lock can only be turned on for a new bucket: create the archive with "
                "object lock and move the logs")
    if not (retention.get("Days") or retention.get("Years")):
        return ("object lock is enabled but has no default retention",
                "set a default retention (e.g. COMPLIANCE, the retention period of the log "
                "policy)")
    if retention.get("Mode") != "COMPLIANCE":
        return (f"default retention is {retention.get('Mode')}, not COMPLIANCE: anyone allowed "
                "s3:BypassGovernanceRetention can delete the logs",
                "set the default retention mode to COMPLIANCE (new objects; objects already "
                "locked keep their mode)")
    return None


def check_bucket_object_lock(state: CloudState) -> list[Finding]:
    return _judge_buckets("log-archive-object-lock", state, "object_lock", _object_lock,
                          "object lock enabled with a COMPLIANCE default retention")


def _versioning(b: Bucket) -> Problem:
    status = (b.versioning or {}).get("Status")
    if status == "Enabled":
        return None
    return (f"versioning is {status or 'not enabled'}: an overwritten or deleted log leaves no "
            "earlier version to recover",
            "enable versioning on the bucket (aws s3api put-bucket-versioning "
            "--versioning-configuration Status=Enabled)")


def check_bucket_versioning(state: CloudState) -> list[Finding]:
    """Versioning is Enabled (get_bucket_versioning): an overwritten or deleted log object
    keeps its earlier versions, which object lock then protects."""
    return _judge_buckets("log-archive-versioning", state, "versioning", _versioning,
                          "versioning enabled")


def _encryption(b: Bucket) -> Problem:
    algorithms = [r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")
                  for r in (b.encryption or {}).get("Rules", [])]
    if any(a in KMS_ALGORITHMS for a in algorithms):
        return None
    found = ", ".join(str(a) for a in algorithms) or "none"
    return (f"default encryption is {found}, not aws:kms",
            "set default encryption to aws:kms with the cloud's KMS key")


def check_bucket_encryption(state: CloudState) -> list[Finding]:
    return _judge_buckets("log-archive-encryption", state, "encryption", _encryption,
                          "default encryption aws:kms")


def _public_access(b: Bucket) -> Problem:
    block = b.public_access_block or {}
    off = [k for k in PUBLIC_ACCESS_BLOCK_KEYS if block.get(k) is not True]
    if not off:
        return None
    return (f"public access block not set: {', '.join(off)}",
            "turn on all four public access block settings")


def check_bucket_public_access(state: CloudState) -> list[Finding]:
    return _judge_buckets("log-archive-public-access", state, "public_access_block",
                          _public_access, "all public access blocked")


def check_cloudtrail(state: CloudState) -> list[Finding]:
    name = "cloudtrail"
    if not state.trails:
        others = f" (the account has untagged trail(s): {', '.join(state.untagged_trails)})" \
            if state.untagged_trails else ""
        finding = nothing_found(name, "CloudTrail trail", state,
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
    return out or [pass_finding(name, [t["Name"] for t in state.trails],
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
    return [pass_finding(name, enabled, f"detector enabled{note}")]
