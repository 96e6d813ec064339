"""``LogArchive``: the central, tamper-proof log store of a cloud (ログの長期保存).

An S3 bucket with object lock (WORM, retention = the configured days), KMS encryption with key
rotation, versioning, a lifecycle that moves logs to Glacier and expires them at the end of the
retention, no public access, TLS only; CloudTrail (all regions, log file validation) and GuardDuty
write into it or next to it, and every VPC's flow logs (:func:`flow_log`) go into it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

GLACIER_AFTER_DAYS = 90  # logs older than this are rarely read; keep them cheaply


@dataclass
class LogArchiveArgs:
    tags: dict[str, str]  # tags.base(...) of the cloud's lead prefecture
    retention_days: int
    cloudtrail: bool = True
    guardduty: bool = True
    object_lock_mode: str = "COMPLIANCE"  # not even the root user can delete before retention
    extra_tags: dict[str, str] = field(default_factory=dict)


class LogArchive(pulumi.ComponentResource):
    """S3 + KMS log archive with object lock, plus CloudTrail and GuardDuty."""

    bucket: aws.s3.Bucket
    key: aws.kms.Key

    def __init__(self, name: str, args: LogArchiveArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("municloud:log_archive:LogArchive", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**args.tags, **args.extra_tags}
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        account = identity.account_id

        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"{name}: encrypts the log archive, CloudTrail and flow logs",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=account.apply(_key_policy),
            tags=tags,
            opts=child,
        )
        # Aliases are unique per account and region: the project and stack make it so for every
        # stack one account may hold (the sample's two security-cloud stacks share a cloud name).
        aws.kms.Alias(f"{name}-key-alias",
                      name=f"alias/municloud/{pulumi.get_project()}/{pulumi.get_stack()}/logs",
                      target_key_id=self.key.key_id, opts=child)

        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            object_lock_enabled=True,
            force_destroy=False,
            tags=tags,
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning", bucket=self.bucket.id,
            versioning_configuration={"status": "Enabled"}, opts=child)
        aws.s3.BucketObjectLockConfiguration(
            f"{name}-object-lock",
            bucket=self.bucket.id,
            object_lock_enabled="Enabled",
            rule={"default_retention": {"mode": args.object_lock_mode,
                                        "days": args.retention_days}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=self.bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {
                "sse_algorithm": "aws:kms", "kms_master_key_id": self.key.arn},
                "bucket_key_enabled": True}],
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=self.bucket.id,
            rules=[{
                "id": "retention",
                "status": "Enabled",
                "filter": {},
                "transitions": [{"days": min(GLACIER_AFTER_DAYS, args.retention_days),
                                 "storage_class": "GLACIER"}],
                "expiration": {"days": args.retention_days},
                "noncurrent_version_expiration": {"noncurrent_days": args.retention_days},
            }],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        public_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        policy = aws.s3.BucketPolicy(
            f"{name}-bucket-policy",
            bucket=self.bucket.id,
            policy=pulumi.Output.all(self.bucket.arn, account).apply(
                lambda a: _bucket_policy(str(a[0]), str(a[1]))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_block]),
        )

        self.trail: aws.cloudtrail.Trail | None = None
        if args.cloudtrail:
            self.trail = aws.cloudtrail.Trail(
                f"{name}-trail",
                s3_bucket_name=self.bucket.id,
                s3_key_prefix="cloudtrail",
                kms_key_id=self.key.arn,
                is_multi_region_trail=True,
                include_global_service_events=True,
                enable_log_file_validation=True,
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
            )
        self.detector: aws.guardduty.Detector | None = None
        if args.guardduty:
            self.detector = aws.guardduty.Detector(
                f"{name}-guardduty", enable=True, finding_publishing_frequency="FIFTEEN_MINUTES",
                tags=tags, opts=child)

        self.register_outputs({"bucket": self.bucket.id, "key": self.key.arn})


def flow_log(name: str, vpc_id: pulumi.Input[str], archive: LogArchive, tags: dict[str, str],
             parent: pulumi.Resource) -> aws.ec2.FlowLog:
    """All traffic of one VPC, written to the log archive (kept for its retention)."""
    return aws.ec2.FlowLog(
        name,
        vpc_id=vpc_id,
        traffic_type="ALL",
        log_destination_type="s3",
        log_destination=archive.bucket.arn.apply(lambda arn: f"{arn}/flow-logs/"),
        max_aggregation_interval=60,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _key_policy(account: str) -> str:
    root = f"arn:aws:iam::{account}:root"
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": root},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "LogServicesEncrypt", "Effect": "Allow",
             "Principal": {"Service": ["cloudtrail.amazonaws.com", "delivery.logs.amazonaws.com"]},
             "Action": ["kms:GenerateDataKey*", "kms:Decrypt", "kms:DescribeKey"],
             "Resource": "*",
             "Condition": {"StringEquals": {"aws:SourceAccount": account}}},
        ],
    })


def _bucket_policy(bucket_arn: str, account: str) -> str:
    services = ["cloudtrail.amazonaws.com", "delivery.logs.amazonaws.com"]
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "LogServicesReadAcl", "Effect": "Allow", "Principal": {"Service": services},
             "Action": "s3:GetBucketAcl", "Resource": bucket_arn,
             "Condition": {"StringEquals": {"aws:SourceAccount": account}}},
            {"Sid": "LogServicesWrite", "Effect": "Allow", "Principal": {"Service": services},
             "Action": "s3:PutObject", "Resource": f"{bucket_arn}/*",
             "Condition": {"StringEquals": {"aws:SourceAccount": account,
                                            "s3:x-amz-acl": "bucket-owner-full-control"}}},
            {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [bucket_arn, f"{bucket_arn}/*"],
             "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        ],
    })
