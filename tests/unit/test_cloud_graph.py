"""Invariants over the whole mocked resource graph of each sample stack (no cloud, no network)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cloud_stacks import ALL_STACKS, JOINT_STACKS, SECURITY_STACKS, graph

from municloud.cloud import policies, stacks, tags
from municloud.cloud.mockrun import Graph, Resource
from municloud.inventory import Prefecture, load
from municloud.segments import Segment, SharedNetwork


def inventories(ref: str) -> list[Prefecture]:
    stack = stacks.resolve(ref)
    return [load(stack.program_dir / p) for p in stack.config["municloud:inventories"]]


def items(g: Graph) -> list[policies.Item]:
    return [policies.Item(r.type, r.urn, r.name, r.props) for r in g]


def owner_component(g: Graph, r: Resource, type_suffix: str) -> Resource | None:
    return next((a for a in g.ancestors(r) if a.type.endswith(type_suffix)), None)


@pytest.mark.parametrize("ref", ALL_STACKS)
def test_graph_is_recorded_with_components_and_parents(ref: str) -> None:
    g = graph(ref)
    components = [r for r in g if not r.custom]
    assert components and all(c.type.startswith("municloud:") for c in components)
    # every cloud resource hangs below one of our components (parent=self everywhere)
    orphans = [r.name for r in g.cloud_resources if not g.ancestors(r)]
    assert orphans == []


@pytest.mark.invariant("cloud.isolation.tenants")
@pytest.mark.parametrize("ref", ALL_STACKS)
def test_no_route_between_tenants(ref: str) -> None:
    assert policies.check_tenant_isolation(items(graph(ref))) == []


@pytest.mark.invariant("cloud.isolation.tenants", "cloud.inventory.served")
@pytest.mark.parametrize("ref", ALL_STACKS)
def test_each_municipality_has_its_own_route_table_with_only_its_routes(ref: str) -> None:
    g = graph(ref)
    attachments, tables = policies.transit_tables(items(g))
    prefectures = {p.code: p for p in inventories(ref)}
    municipalities = {m.code: (p, m) for p in prefectures.values() for m in p.municipalities}
    vpn_tables: dict[str, str] = {}
    for table_id, table in tables.items():
        for a in table.associated:
            owner = attachments[a]
            if owner.label.startswith("VPN"):
                assert owner.municipality not in vpn_tables.values(), "two tables for one VPN"
                vpn_tables[table_id] = str(owner.municipality)
    assert sorted(vpn_tables.values()) == sorted(
        m.code for _, m in municipalities.values()
        if ref.startswith("security") or m.joint_cloud == "tottori-joint")
    every = items(g)
    ids = policies.Identities(every)
    routes = [r for r in every if r.type == policies.TGW_ROUTE]
    checked: set[str] = set()
    for table_id, code in vpn_tables.items():
        p, m = municipalities[code]
        for r in (r for r in routes if table_id in ids.of(r, "transitGatewayRouteTableId")):
            (target_key,) = ids.of(r, "transitGatewayAttachmentId")
            target = attachments[target_key]
            dest = r.props["destinationCidrBlock"]
            checked.add(table_id)
            if ref.startswith("security"):
                # only to its own prefecture's proxies, through the inspection VPC
                assert target.municipality is None
                assert policies.cidr_within(
                    dest, [p.shared_networks[SharedNetwork.SECURITY_CLOUD].cidr])
            else:
                # its own VPN (its individual-number segment) or its own tenant VPC
                assert target.municipality == code
                assert policies.cidr_within(dest, [
                    m.segments[Segment.INDIVIDUAL_NUMBER].cidr,
                    p.shared_networks[SharedNetwork.JOINT_CLOUD].cidr])
    assert checked == set(vpn_tables), "a municipality's table with no route was never judged"


@pytest.mark.invariant("cloud.isolation.tenants")
@pytest.mark.parametrize("ref", SECURITY_STACKS)
def test_security_cloud_routes_internet_segments_only(ref: str) -> None:
    """The hub and the proxies route back to each municipality's internet segment, nothing else;
    the individual-number and LGWAN segments never appear in a security-cloud route."""
    g = graph(ref)
    prefs = inventories(ref)
    internet = {str(m.segments[Segment.INTERNET].cidr) for p in prefs for m in p.municipalities}
    closed = [m.segments[s].cidr for p in prefs for m in p.municipalities
              for s in (Segment.INDIVIDUAL_NUMBER, Segment.LGWAN)]
    dests = [r.props["destinationCidrBlock"] for r in g
             if r.type in (policies.TGW_ROUTE, "aws:ec2/route:Route")]
    assert dests
    assert not [d for d in dests if d != "0.0.0.0/0" and any(
        ipaddress.IPv4Network(d).overlaps(c) for c in closed)]
    assert internet <= set(dests)


@pytest.mark.invariant("cloud.isolation.tenants")
@pytest.mark.parametrize("ref", SECURITY_STACKS)
def test_proxy_subnets_route_only_to_their_own_prefecture(ref: str) -> None:
    g = graph(ref)
    prefs = inventories(ref)
    own = {p.code: {str(m.segments[Segment.INTERNET].cidr) for m in p.municipalities}
           for p in prefs}
    proxy_routes = [r for r in g if r.type == "aws:ec2/route:Route" and "-route-proxy-" in r.name]
    assert proxy_routes
    for r in proxy_routes:
        code = r.name.split("-route-proxy-")[1].split("-")[0]
        dest = r.props["destinationCidrBlock"]
        assert dest == "0.0.0.0/0" or dest in own[code], f"{r.name} leads out of {code}"


@pytest.mark.invariant("cloud.ingress.no-world")
@pytest.mark.parametrize("ref", ALL_STACKS)
def test_no_security_group_admits_the_internet(ref: str) -> None:
    g = graph(ref)
    groups = g.of_type(policies.SG)
    assert groups
    for sg in groups:
        for rule in sg.props.get("ingress") or []:
            assert not set(rule.get("cidrBlocks") or []) & {"0.0.0.0/0"}, sg.name
        assert policies.check_no_open_ingress(sg.type, sg.props) == []


@pytest.mark.invariant("cloud.joint.closed", "cloud.public-address.none")
@pytest.mark.parametrize("ref", JOINT_STACKS)
def test_joint_cloud_has_no_internet_gateway_and_no_public_address(ref: str) -> None:
    g = graph(ref)
    assert not [r for r in g if r.type in policies.INTERNET_TYPES]
    assert all(s.props.get("mapPublicIpOnLaunch") is False
               for s in g.of_type("aws:ec2/subnet:Subnet"))
    databases = g.of_type(policies.RDS)
    assert len(databases) == 2 * 5
    assert all(d.props["publiclyAccessible"] is False for d in databases)
    assert [r for r in g if "0.0.0.0/0" in str(r.props.get("destinationCidrBlock"))] == []


@pytest.mark.invariant("cloud.ingress.tenants-only")
@pytest.mark.parametrize("ref", SECURITY_STACKS)
def test_proxies_admit_only_their_own_municipalities(ref: str) -> None:
    """Each prefecture's proxy and balancer groups admit exactly its municipalities' internet
    segments (and the balancer's health checks by group), nothing wider."""
    g = graph(ref)
    prefs = inventories(ref)
    own = {p.code: {str(m.segments[Segment.INTERNET].cidr) for m in p.municipalities}
           for p in prefs}
    groups = [r for r in g.of_type(policies.SG) if "-proxy-" in r.name]
    assert len(groups) == 2 * len(prefs)  # the proxies' group and the balancer's
    for sg in groups:
        code = sg.name.split("-proxy-")[1].split("-")[0]
        by_cidr = [rule for rule in sg.props["ingress"] if rule.get("cidrBlocks")]
        assert {c for rule in by_cidr for c in rule["cidrBlocks"]} == own[code], sg.name
        assert all(len(rule["cidrBlocks"]) == 1 for rule in by_cidr), sg.name
        assert all(rule.get("securityGroups") for rule in sg.props["ingress"]
                   if not rule.get("cidrBlocks")), sg.name


@pytest.mark.invariant("cloud.ingress.tenants-only", "cloud.joint.closed")
@pytest.mark.parametrize("ref", JOINT_STACKS)
def test_databases_admit_only_their_members_individual_number_segment(ref: str) -> None:
    g = graph(ref)
    members = {m.code: m for p in inventories(ref) for m in p.municipalities
               if m.joint_cloud == "tottori-joint"}
    groups = [r for r in g.of_type(policies.SG) if r.tags.get(tags.MUNICIPALITY) in members]
    assert {sg.tags[tags.MUNICIPALITY] for sg in groups} == set(members)
    for sg in groups:
        member = members[sg.tags[tags.MUNICIPALITY]]
        cidrs = {c for rule in sg.props["ingress"] for c in rule.get("cidrBlocks") or []}
        assert cidrs == {str(member.segments[Segment.INDIVIDUAL_NUMBER].cidr)}, sg.name
        assert not [rule for rule in sg.props["ingress"] if not rule.get("cidrBlocks")]
        assert sg.props.get("egress") == [], sg.name


@pytest.mark.invariant("cloud.data.encrypted", "cloud.data.backup-copies")
@pytest.mark.parametrize("ref", JOINT_STACKS)
def test_joint_cloud_databases_encrypted_and_backups_copied_to_second_region(ref: str) -> None:
    g = graph(ref)
    for d in g.of_type(policies.RDS):
        assert d.props["storageEncrypted"] is True and d.props["kmsKeyId"], d.name
    plans = g.of_type(policies.BACKUP_PLAN)
    assert len(plans) == 2
    for plan in plans:
        for rule in plan.props["rules"]:
            (copy,) = rule["copyActions"]
            assert ":ap-northeast-3:" in copy["destinationVaultArn"]
    assert policies.check_backup_copies(items(g)) == []


@pytest.mark.invariant("cloud.logs.archive", "cloud.data.encrypted")
@pytest.mark.parametrize("ref", ALL_STACKS)
def test_encryption_object_lock_and_flow_logs(ref: str) -> None:
    g = graph(ref)
    (bucket,) = g.of_type(policies.BUCKET)
    assert bucket.props["objectLockEnabled"] is True
    (lock,) = g.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert lock.props["rule"]["defaultRetention"]["days"] == 1827
    assert [r for r in g if policies.check_encryption(r.type, r.props)] == []
    assert policies.check_log_archive(items(g)) == []
    assert policies.check_flow_logs(items(g)) == []


@pytest.mark.invariant("cloud.tags.serves")
@pytest.mark.parametrize("ref", ALL_STACKS)
def test_every_taggable_resource_names_whom_it_serves(ref: str) -> None:
    g = graph(ref)
    untagged = [f"{r.name}: {p}" for r in g.cloud_resources for p in policies.check_tags(
        r.type, r.props)]
    assert untagged == []
    codes = {p.code for p in inventories(ref)} | {
        m.code for p in inventories(ref) for m in p.municipalities}
    for r in g.cloud_resources:
        if r.type in tags.UNTAGGABLE_TYPES:
            continue
        assert set(tags.SERVES) & set(r.tags), r.name
        assert {r.tags.get(k) for k in tags.SERVES} - {None} <= codes, r.name
        tenant = (owner_component(g, r, ":MunicipalityAttachment")
                  or owner_component(g, r, ":Tenant"))
        if tenant is not None:  # a tenant's resources carry that tenant's code
            assert r.tags.get(tags.MUNICIPALITY) == tenant.name.rsplit("-", 1)[1], r.name


@pytest.mark.parametrize("ref", SECURITY_STACKS)
def test_proxy_fleet_is_found_by_ansible_tags(ref: str) -> None:
    g = graph(ref)
    groups = g.of_type("aws:autoscaling/group:Group")
    assert len(groups) == len(inventories(ref))
    for asg in groups:
        assert asg.tags[tags.ROLE] == "proxy"
        assert all(t["propagateAtLaunch"] for t in asg.props["tags"])
    for lt in g.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        specs = {s["resourceType"]: s["tags"] for s in lt.props["tagSpecifications"]}
        assert specs["instance"][tags.ROLE] == "proxy"


@pytest.mark.invariant("cloud.tgw.no-defaults")
@pytest.mark.parametrize("ref", ALL_STACKS)
def test_transit_gateway_has_no_default_route_table(ref: str) -> None:
    g = graph(ref)
    (tgw,) = g.of_type(policies.TGW)
    assert tgw.props["defaultRouteTableAssociation"] == "disable"
    assert tgw.props["defaultRouteTablePropagation"] == "disable"


def test_models_differ_by_configuration_only() -> None:
    one, many = graph(SECURITY_STACKS[0]), graph(SECURITY_STACKS[1])
    assert Path(stacks.resolve(SECURITY_STACKS[0]).program_dir) == Path(
        stacks.resolve(SECURITY_STACKS[1]).program_dir)
    assert len(one.of_type("aws:ec2/vpnConnection:VpnConnection")) == 3
    assert len(many.of_type("aws:ec2/vpnConnection:VpnConnection")) == 5
    assert not one.of_type("aws:networkfirewall/firewall:Firewall")  # the flag is off there
    assert len(many.of_type("aws:networkfirewall/firewall:Firewall")) == 1


@pytest.mark.invariant("cloud.detection.guardduty", "cloud.aws.names")
def test_stacks_one_account_may_hold_collide_only_on_the_detector() -> None:
    """Names AWS keeps unique per account and region (aliases, explicit names) differ across all
    sample stacks; only their GuardDuty detectors would clash in one account (each sample stack
    assumes its own account; `cloud plan --same-account` says which flag to turn off)."""
    seen: dict[str, str] = {}
    for ref in ALL_STACKS:
        for alias in graph(ref).of_type("aws:kms/alias:Alias"):
            name = alias.props["name"]
            assert seen.setdefault(name, ref) == ref, f"{name} is in {seen[name]} and {ref}"
    assert len(seen) >= len(ALL_STACKS)
    (clash,) = policies.account_collisions({ref: items(graph(ref, preview=True))
                                            for ref in ALL_STACKS})
    assert clash.startswith("GuardDuty: ") and all(ref in clash for ref in ALL_STACKS)


# --- each invariant of municloud/cloud/invariants.py judged here on its own terms: from the
# inventory and the recorded resources, without the pack's helpers (test_cloud_invariants.py
# proves that each of these fails on its broken variant of a sample stack) ---------------------


def _by_id(g: Graph) -> dict[str, Resource]:
    return {str(r.props["id"]): r for r in g.cloud_resources if r.props.get("id")}


@pytest.mark.invariant("cloud.isolation.vpn-selectors")
@pytest.mark.parametrize("ref", ALL_STACKS)
def test_each_vpn_carries_only_its_own_segment_and_the_clouds_range(ref: str) -> None:
    g = graph(ref)
    prefs = {p.code: p for p in inventories(ref)}
    municipalities = {m.code: (p, m) for p in prefs.values() for m in p.municipalities}
    vpns = g.of_type(policies.VPN)
    assert vpns
    for vpn in vpns:
        p, m = municipalities[vpn.tags[tags.MUNICIPALITY]]
        if ref.startswith("security"):
            segment, shared = Segment.INTERNET, SharedNetwork.SECURITY_CLOUD
        else:
            segment, shared = Segment.INDIVIDUAL_NUMBER, SharedNetwork.JOINT_CLOUD
        assert vpn.props["localIpv4NetworkCidr"] == str(m.segments[segment].cidr), vpn.name
        assert vpn.props["remoteIpv4NetworkCidr"] == str(p.shared_networks[shared].cidr), vpn.name


@pytest.mark.invariant("cloud.tgw.no-defaults", "cloud.isolation.tenants")
@pytest.mark.parametrize("ref", ALL_STACKS)
def test_nothing_learns_routes_by_propagation(ref: str) -> None:
    """Every transit gateway route is written by hand: the programs create no propagation, and
    no attachment joins a default route table."""
    g = graph(ref)
    assert g.of_type(policies.TGW_PROPAGATION) == []
    for a in g.of_type(policies.TGW_VPC_ATTACHMENT):
        assert a.props["transitGatewayDefaultRouteTablePropagation"] is False, a.name
        assert a.props["transitGatewayDefaultRouteTableAssociation"] is False, a.name


@pytest.mark.invariant("cloud.public-address.none")
@pytest.mark.parametrize("ref", ALL_STACKS)
def test_nothing_has_a_public_address(ref: str) -> None:
    g = graph(ref)
    subnets = g.of_type(policies.SUBNET)
    assert subnets and all(s.props["mapPublicIpOnLaunch"] is False for s in subnets)
    for lt in g.of_type(policies.LAUNCH_TEMPLATE):
        for nic in lt.props["networkInterfaces"]:
            assert nic["associatePublicIpAddress"] == "false", lt.name
    assert all(d.props["publiclyAccessible"] is False for d in g.of_type(policies.RDS))


def _default_routes(g: Graph) -> dict[str, dict[str, str]]:
    """Subnet name -> its table's 0.0.0.0/0 route's target {key: id}, through associations."""
    by_id = _by_id(g)
    table_of = {by_id[a.props["subnetId"]].name: a.props["routeTableId"]
                for a in g.of_type(policies.ROUTE_TABLE_ASSOCIATION) if a.props.get("subnetId")}
    out: dict[str, dict[str, str]] = {}
    for subnet, table in table_of.items():
        for r in g.of_type(policies.ROUTE):
            if r.props["routeTableId"] == table and r.props["destinationCidrBlock"] == "0.0.0.0/0":
                out[subnet] = {k: r.props[k] for k in ("gatewayId", "natGatewayId",
                               "vpcEndpointId", "transitGatewayId") if r.props.get(k)}
    return out


@pytest.mark.invariant("cloud.egress.through-firewall")
@pytest.mark.parametrize("ref", SECURITY_STACKS)
def test_the_way_out_is_proxies_then_firewall_then_nat(ref: str) -> None:
    """Proxies leave through the firewall's endpoint when there is a firewall, else through
    NAT; the firewall's subnets through NAT; NAT gateways sit in the public subnets, whose
    only way out is the internet gateway; no other subnet has a way out."""
    g = graph(ref)
    by_id = _by_id(g)
    (igw,) = g.of_type(policies.INTERNET_GATEWAY)
    nats = g.of_type(policies.NAT_GATEWAY)
    firewall = bool(g.of_type(policies.FIREWALL))
    routes = _default_routes(g)
    public = {n for n in routes if "-public-" in n}
    assert public and {by_id[n.props["subnetId"]].name for n in nats} == public
    for subnet, target in routes.items():
        if subnet in public:
            assert target == {"gatewayId": igw.props["id"]}, subnet
        elif "-proxy-" in subnet and firewall:
            assert set(target) == {"vpcEndpointId"}, subnet
        elif "-proxy-" in subnet or "-firewall-" in subnet:
            assert set(target) == {"natGatewayId"}, subnet
            assert target["natGatewayId"] in {n.props["id"] for n in nats}, subnet
        else:
            raise AssertionError(f"{subnet} has a way out: {target}")
    proxies = {s.name for s in g.of_type(policies.SUBNET) if "-proxy-" in s.name}
    assert proxies <= set(routes), "a proxy subnet has no way out"


@pytest.mark.invariant("cloud.egress.appliance-mode")
@pytest.mark.parametrize("ref", SECURITY_STACKS)
def test_the_inspection_attachment_has_appliance_mode(ref: str) -> None:
    attachments = graph(ref).of_type(policies.TGW_VPC_ATTACHMENT)
    (inspection,) = [a for a in attachments if "-inspection-" in a.name]
    assert inspection.props["applianceModeSupport"] == "enable"


@pytest.mark.invariant("cloud.egress.firewall-default-deny")
def test_the_firewall_drops_what_its_rules_do_not_pass() -> None:
    """okayama-tottori turns the firewall on: unmatched packets go to the stateful engine,
    which drops them; HOME_NET is every prefecture's proxy subnets."""
    ref = "security-cloud/okayama-tottori"
    g = graph(ref)
    (policy,) = g.of_type(policies.FIREWALL_POLICY)
    fp = policy.props["firewallPolicy"]
    assert fp["statelessDefaultActions"] == ["aws:forward_to_sfe"]
    assert fp["statelessFragmentDefaultActions"] == ["aws:forward_to_sfe"]
    assert "aws:drop_established" in fp["statefulDefaultActions"]
    (rules,) = g.of_type(policies.FIREWALL_RULES)
    group = rules.props["ruleGroup"]
    (home,) = group["ruleVariables"]["ipSets"]
    proxies = {s.props["cidrBlock"] for s in g.of_type(policies.SUBNET) if "-proxy-" in s.name}
    assert home["key"] == "HOME_NET" and set(home["ipSet"]["definitions"]) == proxies
    assert group["rulesSource"]["rulesString"].splitlines()[-1].startswith(
        "drop ip $HOME_NET any -> $EXTERNAL_NET any")


@pytest.mark.invariant("cloud.logs.trail", "cloud.detection.guardduty")
@pytest.mark.parametrize("ref", ALL_STACKS)
def test_one_validated_encrypted_trail_and_one_detector(ref: str) -> None:
    g = graph(ref)
    (trail,) = g.of_type("aws:cloudtrail/trail:Trail")
    (key,) = [k for k in g.of_type(policies.KMS_KEY) if k.name.endswith("-logs-key")]
    assert trail.props["isMultiRegionTrail"] is True
    assert trail.props["enableLogFileValidation"] is True
    assert trail.props["kmsKeyId"] == key.props["arn"]
    (detector,) = g.of_type("aws:guardduty/detector:Detector")
    assert detector.props["enable"] is True


@pytest.mark.invariant("cloud.logs.flow-logs")
@pytest.mark.parametrize("ref", ALL_STACKS)
def test_every_vpc_has_its_own_flow_log_of_all_traffic(ref: str) -> None:
    g = graph(ref)
    logged = {f.props["vpcId"] for f in g.of_type(policies.FLOW_LOG)
              if f.props["trafficType"] == "ALL"}
    vpcs = g.of_type(policies.VPC)
    assert vpcs and {v.props["id"] for v in vpcs} <= logged


@pytest.mark.invariant("cloud.vpn.outside-address")
@pytest.mark.parametrize("ref", ALL_STACKS)
def test_customer_gateways_are_the_routers_outside_addresses(ref: str) -> None:
    g = graph(ref)
    outside = {m.code: m.gateway.outside_address for p in inventories(ref)
               for m in p.municipalities}
    gateways = g.of_type(policies.CUSTOMER_GATEWAY)
    assert gateways
    for cgw in gateways:
        code = cgw.name.rsplit("-cgw", 1)[0].rsplit("-", 1)[1]
        assert cgw.props["ipAddress"] == str(outside[code]), cgw.name


@pytest.mark.invariant("cloud.aws.names")
@pytest.mark.parametrize("ref", ALL_STACKS)
def test_names_fit_aws_after_the_autoname_suffix(ref: str) -> None:
    """Load balancers and target groups: at most 32 characters once Pulumi appends its 8
    (``-`` and seven random ones); database and snapshot identifiers start with a letter."""
    g = graph(ref)
    for r in [*g.of_type(policies.LOAD_BALANCER), *g.of_type(policies.TARGET_GROUP)]:
        assert len(r.name) + 8 <= 32, r.name
    for d in g.of_type(policies.RDS):
        assert d.name[0].isalpha() and d.props["finalSnapshotIdentifier"][0].isalpha(), d.name


@pytest.mark.invariant("cloud.aws.kms-key-users")
@pytest.mark.parametrize("ref", SECURITY_STACKS)
def test_proxy_volumes_use_the_aws_managed_key(ref: str) -> None:
    """The fleet's volumes are encrypted with AWS's own EBS key, which the auto scaling role may
    always use; a customer key would need a grant to that role in its policy."""
    for lt in graph(ref).of_type(policies.LAUNCH_TEMPLATE):
        for device in lt.props["blockDeviceMappings"]:
            assert device["ebs"]["encrypted"] == "true", lt.name
            assert not device["ebs"].get("kmsKeyId"), lt.name


@pytest.mark.invariant("cloud.balancer.reaches-targets")
@pytest.mark.parametrize("ref", SECURITY_STACKS)
def test_each_balancer_may_send_to_its_proxies_port(ref: str) -> None:
    g = graph(ref)
    by_id = _by_id(g)
    for lb in g.of_type(policies.LOAD_BALANCER):
        code = lb.name.split("-")[1]
        subnets = {by_id[s].props["cidrBlock"] for s in lb.props["subnets"]}
        (sg,) = [by_id[s] for s in lb.props["securityGroups"]]
        egress = [e for e in sg.props["egress"] if e["protocol"] == "tcp"
                  and e["fromPort"] <= 3128 <= e["toPort"]]
        assert {c for e in egress for c in e["cidrBlocks"]} >= subnets, (lb.name, code)
