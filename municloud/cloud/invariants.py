"""The catalogue of cloud invariants: what the cloud programs promise, each with one id.

Three judges read the same catalogue, at three moments of a cloud's life:

* the **graph tests** (``tests/unit/test_cloud_graph.py``) judge the recorded resource graph of
  each sample stack against the inventory; each is marked ``@pytest.mark.invariant("<id>")``;
* the **policy pack** (``pulumi/policy``, :mod:`municloud.cloud.policies`) judges every
  ``pulumi preview`` and ``pulumi up``; :attr:`Invariant.policies` names its rules;
* **``municloud cloud verify``** (:mod:`municloud.cloud.verify`) judges the cloud as deployed,
  through the AWS APIs; :attr:`Invariant.checks` names its checks.

Where a judge cannot see an invariant, the entry says why (``no_policy`` / ``no_check``) instead of
leaving a silent gap: an AWS name that AWS refuses, for one, never exists to be verified.

Each invariant has a broken variant of a sample stack (``tests/unit/cloud_breaks.py``), and, where
``cloud verify`` checks it, of a seeded moto cloud (``BROKEN`` in
``tests/unit/test_cloud_verify.py``); moto 5.2 drops a VPN connection's options, so
``vpn-selectors`` is proven on hand-built states instead (and is UNCHECKED on moto).
``tests/unit/test_cloud_invariants.py`` proves that the pack and the graph tests reject each
broken stack, and that every rule belongs to an entry; ``test_cloud_verify.py`` does the same
for the broken moto clouds and verify's checks.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Invariant:
    id: str
    title_ja: str
    title_en: str
    policies: tuple[str, ...] = ()  # the pack's rules (policies.RULES) that enforce it
    checks: tuple[str, ...] = ()  # cloud verify's checks that find it broken after up
    no_policy: str = ""  # why no rule of the pack can judge it, when ``policies`` is empty
    no_check: str = ""  # why cloud verify cannot judge it, when ``checks`` is empty

    @property
    def title(self) -> str:
        return f"{self.title_ja} / {self.title_en}"


CATALOGUE: tuple[Invariant, ...] = (
    # --- isolation (テナント分離) -------------------------------------------------------------
    Invariant(
        "cloud.tgw.no-defaults", "トランジットゲートウェイの既定ルートテーブル無効",
        "transit gateways neither associate nor propagate into a default route table "
        "(every attachment is placed by hand)",
        policies=("municloud-transit-gateway-defaults",), checks=("tgw-default-route-table",)),
    Invariant(
        "cloud.isolation.tenants", "団体間・県間の経路なし",
        "no transit gateway route, propagation or VPC route leads from one municipality (or "
        "prefecture) to another's attachment or address range, judged by CIDR, not by tags",
        policies=("municloud-tenant-isolation",), checks=("tgw-isolation",)),
    Invariant(
        "cloud.isolation.vpn-selectors", "VPNは自団体のセグメントのみ",
        "each municipality's VPN carries only its own segment's range and the cloud's range, "
        "never 0.0.0.0/0",
        policies=("municloud-transit-gateway-defaults",), checks=("vpn-selectors",)),
    Invariant(
        "cloud.ingress.no-world", "インターネットからの受信なし",
        "no security group admits 0.0.0.0/0 or ::/0, however the range is split",
        policies=("municloud-no-open-ingress",), checks=("sg-no-world-ingress",)),
    Invariant(
        "cloud.ingress.tenants-only", "受信は自テナントのセグメントからのみ",
        "a proxy admits only its prefecture's municipalities' internet segments, a joint-cloud "
        "database only its member's individual-number segment",
        policies=("municloud-ingress-from-tenants",), checks=("sg-ingress-tenants",)),
    Invariant(
        "cloud.public-address.none", "パブリックIPなし",
        "no instance, network interface, subnet or database has a public address",
        policies=("municloud-no-public-address",),
        checks=("no-public-ip", "subnet-no-public-ip")),
    # --- the way out (インターネット接続口) -----------------------------------------------------
    Invariant(
        "cloud.egress.through-firewall", "インターネットへの出口はファイアウォール経由",
        "NAT gateways sit in the public subnets behind the internet gateway, and where a "
        "network firewall is, no route reaches NAT or the internet around it",
        policies=("municloud-egress-path",), checks=("egress-path",)),
    Invariant(
        "cloud.egress.appliance-mode", "検査VPCはアプライアンスモード",
        "the inspection VPC's transit gateway attachment has appliance mode on, so both "
        "directions of a flow pass the same firewall endpoint",
        policies=("municloud-transit-gateway-defaults",), checks=("tgw-appliance-mode",)),
    Invariant(
        "cloud.egress.firewall-default-deny", "ファイアウォールは既定で遮断",
        "a network firewall policy drops what its rules do not let through, with HOME_NET "
        "set to the proxies' subnets",
        policies=("municloud-firewall-default-deny",),
        no_check="not read yet: moto (the test double of cloud verify) keeps firewalls but "
                 "no firewall policies, so a check could only be proven on hand-built states; "
                 "the policy is judged before up"),
    Invariant(
        "cloud.joint.closed", "自治体クラウドは閉域",
        "a joint cloud has no internet gateway, NAT or elastic IP, and its databases let no "
        "connection out",
        policies=("municloud-joint-cloud-closed",),
        checks=("no-internet-gateway", "db-no-egress")),
    # --- logs and evidence (ログ) -----------------------------------------------------------
    Invariant(
        "cloud.logs.archive", "ログ保管庫は改ざん不可",
        "log buckets are versioned, object-locked in COMPLIANCE mode for the retention, "
        "KMS-encrypted and private",
        policies=("municloud-log-archive", "municloud-encryption"),
        checks=("log-archive-object-lock", "log-archive-versioning", "log-archive-encryption",
                "log-archive-public-access")),
    Invariant(
        "cloud.logs.trail", "操作ログ(CloudTrail)",
        "a multi-region CloudTrail trail is logging, with log file validation and a KMS key",
        policies=("municloud-encryption",), checks=("cloudtrail",)),
    Invariant(
        "cloud.logs.flow-logs", "通信ログ(フローログ)",
        "every VPC has an active flow log",
        policies=("municloud-flow-logs",), checks=("vpc-flow-logs",)),
    Invariant(
        "cloud.detection.guardduty", "脅威検知(GuardDuty)",
        "GuardDuty is on, with one detector per account and region across all the stacks "
        "that account holds (the pack sees one stack; `municloud cloud plan --same-account` "
        "judges the stacks of one account together)",
        policies=("municloud-threat-detection",), checks=("guardduty",)),
    # --- core business data (基幹系) --------------------------------------------------------
    Invariant(
        "cloud.data.encrypted", "データベースの暗号化",
        "databases, volumes, keys and vaults are encrypted at rest",
        policies=("municloud-encryption",), checks=("rds-encrypted",)),
    Invariant(
        "cloud.data.backup-copies", "バックアップの遠隔地複製",
        "every backup plan rule copies to a vault in a second region, and backups cover every "
        "database",
        policies=("municloud-backup-copies",), checks=("backup-cross-region",)),
    # --- who is served (タグ) ---------------------------------------------------------------
    Invariant(
        "cloud.tags.serves", "リソースは誰のものか明示",
        "every resource names its cloud and the prefecture or municipality it serves",
        policies=("municloud-tags",), checks=("serves-tags",)),
    Invariant(
        "cloud.inventory.served", "台帳の全団体を収容",
        "every municipality the inventory puts in this cloud has its attachment or VPN",
        checks=("municipalities-attached",),
        no_policy="the program builds the attachments from the same inventory; the graph "
                  "tests compare them (test_each_municipality_has_its_own_route_table...)"),
    Invariant(
        "cloud.vpn.outside-address", "VPNの接続先は外部アドレス",
        "a customer gateway is a router's outside address, never inside a VPC of the cloud",
        policies=("municloud-vpn-outside-address",), checks=("vpn-outside-address",)),
    # --- what AWS itself would refuse (before anyone runs `pulumi up`) -----------------------
    Invariant(
        "cloud.aws.names", "AWSの命名規則",
        "every name fits AWS's length and character rules after Pulumi's suffix, and is "
        "unique where AWS wants it unique",
        policies=("municloud-aws-names",),
        no_check="AWS refuses such a name when the resource is created: nothing is left to "
                 "verify"),
    Invariant(
        "cloud.aws.kms-key-users", "KMSキーは利用するサービスに許可",
        "a customer key that encrypts an auto scaling group's volumes lets the group's "
        "service-linked role use it",
        policies=("municloud-kms-key-users",),
        no_check="a key the role may not use leaves the group without instances; verify reads "
                 "no key policies (their principals are account-specific)"),
    Invariant(
        "cloud.balancer.reaches-targets", "ロードバランサから転送先へ到達可能",
        "a load balancer's security groups let it reach its targets' port and health-check "
        "port",
        policies=("municloud-balancer-reaches-targets",),
        no_check="a balancer that cannot reach its targets marks them unhealthy; verify does "
                 "not read Elastic Load Balancing"),
)

BY_ID: Mapping[str, Invariant] = {inv.id: inv for inv in CATALOGUE}


def get(invariant_id: str) -> Invariant:
    """The invariant of ``invariant_id``; KeyError names the known ids."""
    try:
        return BY_ID[invariant_id]
    except KeyError:
        raise KeyError(f"unknown cloud invariant {invariant_id!r}; known: "
                       f"{', '.join(sorted(BY_ID))}") from None


# --- the catalogue as a document (`municloud cloud invariants > docs/cloud-invariants.md`) -----


def markdown() -> str:
    """The catalogue as the Markdown of ``docs/cloud-invariants.md`` (a unit test compares)."""
    out = [
        "# Cloud invariants",
        "",
        "Written by `municloud cloud invariants` from `municloud/cloud/invariants.py`; do not edit",
        "by hand (`make docs` writes it again, a unit test says when it is stale).",
        "",
        "Each invariant is judged three times: by the **graph tests** over the recorded resources",
        "of each sample stack (`tests/unit/test_cloud_graph.py`, marked",
        "`@pytest.mark.invariant(\"<id>\")`), by the **policy pack** at every `pulumi preview` and",
        "`pulumi up` (and `municloud cloud plan`), and by **`municloud cloud verify`** on the",
        "deployed cloud. Each has a broken variant of a sample stack",
        "(`tests/unit/cloud_breaks.py`) and, where verify judges it, of a seeded moto cloud",
        "(`BROKEN` in `tests/unit/test_cloud_verify.py`; moto drops VPN options, so",
        "`vpn-selectors` is proven on hand-built states), which every judge named here must",
        "reject. Where a judge cannot see an invariant, the table says why.",
        "",
        "| id | invariant | policy pack | cloud verify |",
        "| --- | --- | --- | --- |",
    ]
    for inv in CATALOGUE:
        pack = ", ".join(f"`{p}`" for p in inv.policies) or f"none: {inv.no_policy}"
        check = ", ".join(f"`{c}`" for c in inv.checks) or f"none: {inv.no_check}"
        out.append(f"| `{inv.id}` | {inv.title_ja}: {inv.title_en} | {pack} | {check} |")
    return "\n".join(out) + "\n"


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """``municloud cloud invariants`` takes no arguments: it prints the catalogue."""


def main(args: argparse.Namespace) -> int:
    print(markdown(), end="")
    return 0
