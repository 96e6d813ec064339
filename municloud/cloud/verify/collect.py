"""Reading a cloud's state with boto3 (imported only inside :func:`collect`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from municloud.cloud import tags
from municloud.cloud.verify.model import (
    Bucket,
    CloudState,
    Inventories,
    Resource,
    has_cloud_tag,
    tag_map,
)
from municloud.cloud.verify.registry import registered_checks


def _pages(client: Any, operation: str, key: str, **kwargs: Any) -> list[Resource]:
    if client.can_paginate(operation):
        items: list[Resource] = []
        for page in client.get_paginator(operation).paginate(**kwargs):
            items.extend(page.get(key, []))
        return items
    return list(getattr(client, operation)(**kwargs).get(key, []))


def _cloud_filter(cloud: str) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{tags.CLOUD}", "Values": [cloud]}]


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", ""))


# Error codes that mean the caller's credentials are not accepted at all: verify cannot run.
_AUTH_ERRORS = {"AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException",
                "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch",
                "InvalidAccessKeyId", "InvalidToken"}


def collect(cloud: str, kind: str, region: str, endpoint_url: str | None = None,
            session: Any = None) -> CloudState:
    """Read the cloud's state with boto3. Raises botocore errors for connection problems."""
    import boto3  # type: ignore[import-untyped,unused-ignore]
    from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]
    from botocore.exceptions import ClientError  # type: ignore[import-untyped,unused-ignore]
    from botocore.parsers import ResponseParserError  # type: ignore[import-untyped,unused-ignore]

    session = session or boto3.session.Session(region_name=region)
    config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5,
                    read_timeout=30)

    clients: dict[tuple[str, str], Any] = {}

    def client(service: str, client_region: str = region) -> Any:
        # One client per service and region: creating one costs more than most calls.
        key = (service, client_region)
        if key not in clients:
            clients[key] = session.client(service, region_name=client_region,
                                          endpoint_url=endpoint_url, config=config)
        return clients[key]

    state = CloudState(cloud=cloud, kind=kind, region=region)
    parts: list[tuple[str, Callable[[CloudState, Callable[..., Any]], None]]] = [
        ("ec2", _collect_ec2), ("network-firewall", _collect_network_firewall),
        ("s3", _collect_s3), ("cloudtrail", _collect_cloudtrail),
        ("guardduty", _collect_guardduty), ("rds", _collect_rds), ("backup", _collect_backup),
    ]
    needed = {svc for _, _, svcs in registered_checks(kind, Inventories((), ())) for svc in svcs}
    for service, part in parts:
        if service not in needed:
            continue
        try:
            part(state, client)
        except ClientError as exc:
            code = _error_code(exc)
            if code in _AUTH_ERRORS:
                raise
            operation = getattr(exc, "operation_name", "?")
            state.unavailable[service] = f"{operation} failed with {code or 'an error'}"
        except ResponseParserError:
            # Not an AWS answer: an S3-only endpoint asked about EC2, or an API it lacks.
            state.unavailable[service] = "the endpoint's answer is not an AWS response"
    return state


def _collect_ec2(state: CloudState, client: Callable[..., Any]) -> None:
    ec2 = client("ec2")
    cloud = state.cloud
    tgws = [t for t in _pages(ec2, "describe_transit_gateways", "TransitGateways",
                              Filters=_cloud_filter(cloud))
            if has_cloud_tag(t, cloud) and t.get("State") not in ("deleted", "deleting")]
    state.transit_gateways = tgws
    tgw_ids = [t["TransitGatewayId"] for t in tgws]
    if tgw_ids:
        flt = [{"Name": "transit-gateway-id", "Values": tgw_ids}]
        state.tgw_route_tables = [
            t for t in _pages(ec2, "describe_transit_gateway_route_tables",
                              "TransitGatewayRouteTables", Filters=flt)
            if t.get("TransitGatewayId") in tgw_ids and t.get("State") != "deleted"]
        state.tgw_attachments = [
            a for a in _pages(ec2, "describe_transit_gateway_attachments",
                              "TransitGatewayAttachments", Filters=flt)
            if a.get("TransitGatewayId") in tgw_ids and a.get("State") != "deleted"]
        # Only this call returns a VPC attachment's Options (ApplianceModeSupport).
        state.tgw_vpc_attachments = [
            a for a in _pages(ec2, "describe_transit_gateway_vpc_attachments",
                              "TransitGatewayVpcAttachments", Filters=flt)
            if a.get("TransitGatewayId") in tgw_ids and a.get("State") != "deleted"]
        for table in state.tgw_route_tables:
            table_id = table["TransitGatewayRouteTableId"]
            # No MaxResults: AWS returns up to 1000 by default, and moto fails on it.
            response = ec2.search_transit_gateway_routes(
                TransitGatewayRouteTableId=table_id,
                Filters=[{"Name": "state", "Values": ["active", "blackhole"]}])
            state.tgw_routes[table_id] = list(response.get("Routes", []))
            if response.get("AdditionalRoutesAvailable"):
                state.tgw_routes_truncated.add(table_id)
            state.tgw_associations[table_id] = _pages(
                ec2, "get_transit_gateway_route_table_associations", "Associations",
                TransitGatewayRouteTableId=table_id)
            state.tgw_propagations[table_id] = _pages(
                ec2, "get_transit_gateway_route_table_propagations",
                "TransitGatewayRouteTablePropagations", TransitGatewayRouteTableId=table_id)
    vpns = _pages(ec2, "describe_vpn_connections", "VpnConnections")
    # CustomerGatewayConfiguration holds the tunnels' pre-shared keys: drop it at once.
    state.vpn_connections = [
        {k: v for k, v in vpn.items() if k != "CustomerGatewayConfiguration"} for vpn in vpns
        if vpn.get("State") != "deleted"
        and (has_cloud_tag(vpn, cloud) or vpn.get("TransitGatewayId") in tgw_ids)]
    # The customer gateways of those VPNs, and any tagged with the cloud.
    used = {vpn.get("CustomerGatewayId") for vpn in state.vpn_connections}
    state.customer_gateways = [
        g for g in ec2.describe_customer_gateways().get("CustomerGateways", [])
        if g.get("State") != "deleted"
        and (g.get("CustomerGatewayId") in used or has_cloud_tag(g, cloud))]
    state.vpcs = [v for v in _pages(ec2, "describe_vpcs", "Vpcs", Filters=_cloud_filter(cloud))
                  if has_cloud_tag(v, cloud)]
    vpc_ids = [v["VpcId"] for v in state.vpcs]
    if not vpc_ids:
        return
    in_vpcs = [{"Name": "vpc-id", "Values": vpc_ids}]
    state.subnets = _pages(ec2, "describe_subnets", "Subnets", Filters=in_vpcs)
    state.security_groups = _pages(ec2, "describe_security_groups", "SecurityGroups",
                                   Filters=in_vpcs)
    state.instances = [
        i for r in _pages(ec2, "describe_instances", "Reservations", Filters=in_vpcs)
        for i in r.get("Instances", [])
        if i.get("State", {}).get("Name") not in ("terminated", "shutting-down")]
    state.network_interfaces = _pages(ec2, "describe_network_interfaces", "NetworkInterfaces",
                                      Filters=in_vpcs)
    state.internet_gateways = _pages(ec2, "describe_internet_gateways", "InternetGateways",
                                     Filters=[{"Name": "attachment.vpc-id", "Values": vpc_ids}])
    state.route_tables = _pages(ec2, "describe_route_tables", "RouteTables", Filters=in_vpcs)
    # describe_nat_gateways names its filter parameter Filter, not Filters.
    state.nat_gateways = [n for n in _pages(ec2, "describe_nat_gateways", "NatGateways",
                                            Filter=in_vpcs)
                          if n.get("VpcId") in vpc_ids and n.get("State") != "deleted"]
    state.flow_logs = [f for f in _pages(ec2, "describe_flow_logs", "FlowLogs",
                                         Filters=[{"Name": "resource-id", "Values": vpc_ids}])
                       if f.get("ResourceId") in vpc_ids]


def _collect_network_firewall(state: CloudState, client: Callable[..., Any]) -> None:
    vpc_ids = [v["VpcId"] for v in state.vpcs]
    if not vpc_ids:
        return
    nfw = client("network-firewall")
    for entry in _pages(nfw, "list_firewalls", "Firewalls", VpcIds=vpc_ids):
        described = nfw.describe_firewall(FirewallArn=entry["FirewallArn"])
        firewall = dict(described.get("Firewall", {}))
        if firewall.get("VpcId") in vpc_ids:
            state.firewalls.append({**firewall,
                                    "FirewallStatus": described.get("FirewallStatus", {})})


# S3 error codes that mean "not allowed to read this bucket", not "no such configuration".
_DENIED = ("AccessDenied", "AllAccessDisabled")


def _collect_s3(state: CloudState, client: Callable[..., Any]) -> None:
    """The buckets tagged with the cloud and their configurations, one bucket at a time: a
    bucket whose policy denies a read is reported in that bucket's checks, not for all."""
    from botocore.exceptions import ClientError  # type: ignore[import-untyped,unused-ignore]

    s3 = client("s3")

    for entry in s3.list_buckets().get("Buckets", []):
        name = entry["Name"]
        try:
            tag_set = s3.get_bucket_tagging(Bucket=name).get("TagSet", [])
        except ClientError as exc:
            code = _error_code(exc)
            if code in ("NoSuchTagSet", "NoSuchBucket"):
                continue
            if code in _DENIED:
                state.unreadable_buckets[name] = \
                    f"{getattr(exc, 'operation_name', 'GetBucketTagging')} failed with {code}"
                continue
            raise
        bucket_tags = tag_map({"TagSet": tag_set})
        if bucket_tags.get(tags.CLOUD) != state.cloud:
            continue
        unreadable: dict[str, str] = {}

        def optional(what: str, call: Callable[..., Any], key: str | None,
                     _name: str = name, _unreadable: dict[str, str] = unreadable
                     ) -> Mapping[str, Any] | None:
            try:
                response = call(Bucket=_name)
            except ClientError as exc:
                code = _error_code(exc)
                if "NotFound" in code or code.startswith("NoSuch"):
                    return None  # the bucket has no such configuration
                # denied, or any other refusal: this configuration of this bucket is not read
                _unreadable[what] = f"{getattr(exc, 'operation_name', '?')} failed with " \
                    f"{code or 'an error'}"
                return None
            value = response.get(key) if key else {
                k: v for k, v in response.items() if k != "ResponseMetadata"}
            return value if isinstance(value, Mapping) else None

        state.buckets.append(Bucket(
            name=name,
            tags=bucket_tags,
            object_lock=optional("object_lock", s3.get_object_lock_configuration,
                                 "ObjectLockConfiguration"),
            encryption=optional("encryption", s3.get_bucket_encryption,
                                "ServerSideEncryptionConfiguration"),
            public_access_block=optional("public_access_block", s3.get_public_access_block,
                                         "PublicAccessBlockConfiguration"),
            versioning=optional("versioning", s3.get_bucket_versioning, None),
            unreadable=unreadable,
        ))


def _collect_cloudtrail(state: CloudState, client: Callable[..., Any]) -> None:
    trails = client("cloudtrail").describe_trails(includeShadowTrails=True).get("trailList", [])
    for trail in trails:
        home = client("cloudtrail", trail.get("HomeRegion") or state.region)
        listed = home.list_tags(ResourceIdList=[trail["TrailARN"]]).get("ResourceTagList", [])
        trail_tags = listed[0].get("TagsList", []) if listed else []
        if tag_map({"TagsList": trail_tags}).get(tags.CLOUD) != state.cloud:
            state.untagged_trails.append(trail["Name"])
            continue
        status = home.get_trail_status(Name=trail["TrailARN"])
        state.trails.append({**trail, "Tags": trail_tags, "IsLogging": status.get("IsLogging")})


def _collect_guardduty(state: CloudState, client: Callable[..., Any]) -> None:
    gd = client("guardduty")
    for detector_id in _pages(gd, "list_detectors", "DetectorIds"):
        detector = gd.get_detector(DetectorId=detector_id)
        state.detectors.append({"DetectorId": detector_id, "Status": detector.get("Status"),
                                "Tags": detector.get("Tags", {})})


def _collect_rds(state: CloudState, client: Callable[..., Any]) -> None:
    vpc_ids = {v["VpcId"] for v in state.vpcs}
    state.db_instances = [
        db for db in _pages(client("rds"), "describe_db_instances", "DBInstances")
        if has_cloud_tag(db, state.cloud) or db.get("DBSubnetGroup", {}).get("VpcId") in vpc_ids]


def _collect_backup(state: CloudState, client: Callable[..., Any]) -> None:
    backup = client("backup")
    for entry in _pages(backup, "list_backup_plans", "BackupPlansList"):
        plan_tags = backup.list_tags(ResourceArn=entry["BackupPlanArn"]).get("Tags", {})
        if plan_tags.get(tags.CLOUD) != state.cloud:
            continue
        plan = backup.get_backup_plan(BackupPlanId=entry["BackupPlanId"]).get("BackupPlan", {})
        state.backup_plans.append({**plan, "BackupPlanArn": entry["BackupPlanArn"],
                                   "Tags": plan_tags})
