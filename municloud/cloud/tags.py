"""The tags every cloud resource carries, so that each one names whom it serves.

One home for the keys: the Pulumi components set them, the graph tests and the policy pack demand
them, ``municloud cloud verify`` reads them back from AWS, and Ansible's ``amazon.aws.aws_ec2``
inventory groups the proxy fleet by them.
"""

from __future__ import annotations

PREFECTURE = "municloud:prefecture"  # 6-digit code of the prefecture served, e.g. "310000"
MUNICIPALITY = "municloud:municipality"  # 6-digit code of the municipality served, if only one
CLOUD = "municloud:cloud"  # name of the security cloud or joint cloud, e.g. "okayama-tottori"
CLOUD_KIND = "municloud:cloud-kind"  # "security-cloud" or "joint-cloud"
ROLE = "municloud:role"  # instances: the Ansible role that configures them, e.g. "proxy";
# the shared hub (inspection VPC attachment and its route table): "inspection"
MANAGED_BY = "managed-by"  # always "municloud"

SERVES = (PREFECTURE, MUNICIPALITY)  # a resource must carry at least one of these


def base(cloud: str, kind: str, *, prefecture: str | None = None,
         municipality: str | None = None) -> dict[str, str]:
    """The tags of a resource of ``cloud`` that serves ``prefecture`` or ``municipality``."""
    tags = {CLOUD: cloud, CLOUD_KIND: kind, MANAGED_BY: "municloud"}
    if prefecture:
        tags[PREFECTURE] = prefecture
    if municipality:
        tags[MUNICIPALITY] = municipality
    return tags

SYSTEM = "municloud:system"  # joint cloud: the core system a resource belongs to, e.g. "tax"

KIND_SECURITY_CLOUD = "security-cloud"  # 自治体情報セキュリティクラウド
KIND_JOINT_CLOUD = "joint-cloud"  # 自治体クラウド

# The one list of AWS resource types that take no tags: they are attributes of a tagged resource
# (a route of a tagged route table, the versioning of a tagged bucket) and cannot carry tags of
# their own in AWS. Every other ``aws:`` type must carry ``base(...)``; providers and components
# are not cloud resources and are not checked.
UNTAGGABLE_TYPES = frozenset({
    "aws:ec2/route:Route",
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ec2/vpcIpv4CidrBlockAssociation:VpcIpv4CidrBlockAssociation",
    "aws:ec2transitgateway/route:Route",
    "aws:ec2transitgateway/routeTableAssociation:RouteTableAssociation",
    "aws:ec2transitgateway/routeTablePropagation:RouteTablePropagation",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:kms/alias:Alias",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:backup/selection:Selection",
    "aws:networkfirewall/loggingConfiguration:LoggingConfiguration",
})
