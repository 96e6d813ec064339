"""Typed stack configuration of the cloud programs, read once from ``pulumi.Config``.

A stack names the inventories it serves (``municloud:inventories``, paths relative to the program
directory, e.g. ``../../inventories/sample``); everything about prefectures, municipalities and
their address ranges comes from those inventories through :func:`municloud.inventory.load`, so
nothing is typed twice. The stack file adds only what the inventory cannot know: regions, sizes,
retention, feature flags, and the one secret (the VPN pre-shared key, ``pulumi config set
--secret``).

All keys live in the ``municloud`` namespace for both projects, so one key means one thing in the
security cloud and in the joint cloud.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from municloud.inventory import InventoryError, Municipality, Prefecture, load
from municloud.segments import Uplink

NAMESPACE = "municloud"
SECRET_KEYS = ("vpnPreSharedKey",)  # the only secrets; offline plans substitute a placeholder

# The core systems of 自治体クラウド (基幹系業務) a tenant may run.
CORE_SYSTEMS = (
    "resident_registry",  # 住民基本台帳
    "tax",  # 税務
    "national_health_insurance",  # 国民健康保険
    "national_pension",  # 国民年金
    "welfare",  # 福祉
)

# Where the default availability zones differ from "<region>a, <region>b".
_DEFAULT_ZONES = {"ap-northeast-1": ("ap-northeast-1a", "ap-northeast-1c")}


class ConfigError(Exception):
    """The stack configuration is wrong; the message says which key and what to do."""


@dataclass(frozen=True)
class ProxySettings:
    instance_type: str = "t4g.small"
    min_size: int = 2
    max_size: int = 4
    image_id: str | None = None  # None: the newest Debian 12 arm64 image published by Debian
    port: int = 3128  # squid, as configured by the project's proxy role


@dataclass(frozen=True)
class DatabaseSettings:
    engine: str = "postgres"
    engine_version: str = "16"
    instance_class: str = "db.t4g.medium"
    allocated_storage: int = 50
    port: int = 5432
    backup_retention_days: int = 7  # RDS automated backups, besides the AWS Backup plan


@dataclass(frozen=True)
class CommonConfig:
    """What both programs read: inventories, region, zones, logs, the pre-shared key."""

    prefectures: tuple[Prefecture, ...]  # the first is the lead (代表) prefecture
    region: str
    availability_zones: tuple[str, str]
    log_retention_days: int  # object lock and lifecycle of the log archive
    cloudtrail: bool
    guardduty: bool
    customer_gateway_asn: int
    transit_gateway_asn: int
    vpn_pre_shared_key: pulumi.Output[str]

    @property
    def lead(self) -> Prefecture:
        """The prefecture that holds the contract; shared resources carry its code."""
        return self.prefectures[0]


@dataclass(frozen=True)
class SecurityCloudConfig(CommonConfig):
    """自治体情報セキュリティクラウド: one prefecture (prefectural model) or several (超広域)."""

    name: str  # the inventories' common ``security_cloud``
    network_firewall: bool
    proxy: ProxySettings

    @property
    def model(self) -> str:
        return "prefectural" if len(self.prefectures) == 1 else "multi-prefecture"


@dataclass(frozen=True)
class JointCloudConfig(CommonConfig):
    """自治体クラウド: the municipalities whose inventory entry names this joint cloud."""

    name: str
    members: tuple[tuple[Prefecture, Municipality], ...]
    systems: tuple[str, ...]
    backup_region: str
    backup_retention_days: int
    database: DatabaseSettings


def derived_psk(key: pulumi.Output[str], label: str) -> pulumi.Output[str]:
    """A per-tunnel pre-shared key derived from the stack's one secret; it stays secret.

    One secret per stack, one distinct key per municipality and cloud, nothing typed N times.
    AWS accepts 8-64 letters, digits, ``.`` and ``_``, not starting with ``0``.
    """
    # ``key`` comes from require_secret; apply keeps the result secret.
    return key.apply(
        lambda k: "k" + hmac.new(k.encode(), label.encode(), hashlib.sha256).hexdigest()[:40])


def _inventories(cfg: pulumi.Config, base_dir: Path) -> tuple[Prefecture, ...]:
    paths = cfg.require_object("inventories")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise ConfigError(f"{NAMESPACE}:inventories must be a non-empty list of inventory "
                          "directories, e.g. [../../inventories/sample]")
    prefectures: list[Prefecture] = []
    for raw in paths:
        path = (base_dir / raw).resolve()
        try:
            prefectures.append(load(path))
        except InventoryError as exc:
            raise ConfigError(f"{NAMESPACE}:inventories: {raw} is not a valid inventory:\n"
                              f"{exc}\nrun `municloud validate {path}` and fix it") from None
    codes = [p.code for p in prefectures]
    if len(set(codes)) != len(codes):
        raise ConfigError(f"{NAMESPACE}:inventories lists a prefecture twice ({codes}); "
                          "list each inventory once")
    _no_overlap(prefectures)
    return tuple(prefectures)


def _outside(p: Prefecture, m: Municipality) -> None:
    """The VPN's customer gateway is the router's outside address, so the gateway must name one
    (the inventory model already refuses one inside the networks the tunnel carries)."""
    if m.gateway.outside_address is None:
        raise ConfigError(
            f"{p.path / 'hosts.yml'}: {m.gateway.name} has no municloud_outside_address: the "
            f"VPN of {m.name_romaji} ({m.code}) comes from the router's outside address (on "
            "the internet or a closed line); write it on the gateway host")


def _no_overlap(prefectures: list[Prefecture]) -> None:
    """Prefectures of one cloud (超広域) share its transit gateway and route tables: one range in
    two of them would be one destination with two owners (AWS refuses the second route; a tag
    check would not notice). Every pair of networks of two prefectures is compared."""
    clashes = []
    for i, a in enumerate(prefectures):
        for b in prefectures[i + 1:]:
            clashes += [f"  {a.path / 'hosts.yml'}: {na.id} {na.cidr}\n"
                        f"  {b.path / 'hosts.yml'}: {nb.id} {nb.cidr}"
                        for na in a.networks for nb in b.networks if na.cidr.overlaps(nb.cidr)]
    if clashes:
        raise ConfigError(f"{NAMESPACE}:inventories: prefectures of one cloud overlap in "
                          f"{len(clashes)} pair(s) of ranges; give each its own:\n"
                          + "\n".join(clashes[:10]) + ("\n  ..." if len(clashes) > 10 else ""))


def _int(cfg: pulumi.Config, key: str, default: int, minimum: int = 1) -> int:
    value = cfg.get_int(key)
    value = default if value is None else value
    if value < minimum:
        raise ConfigError(f"{NAMESPACE}:{key} is {value}; it must be at least {minimum}")
    return value


def _bool(cfg: pulumi.Config, key: str, default: bool) -> bool:
    value = cfg.get_bool(key)
    return default if value is None else value


def _zones(cfg: pulumi.Config, region: str) -> tuple[str, str]:
    zones = cfg.get_object("availabilityZones")
    if zones is None:
        return _DEFAULT_ZONES.get(region, (f"{region}a", f"{region}b"))
    if not isinstance(zones, list) or len(zones) != 2 or not all(
            isinstance(z, str) and z.startswith(region) for z in zones):
        raise ConfigError(f"{NAMESPACE}:availabilityZones must list exactly two zones of "
                          f"{region}, e.g. [{region}a, {region}c]")
    return zones[0], zones[1]


def _common(cfg: pulumi.Config, base_dir: Path) -> dict[str, Any]:
    region = pulumi.Config("aws").get("region") or "ap-northeast-1"
    return {
        "prefectures": _inventories(cfg, base_dir),
        "region": region,
        "availability_zones": _zones(cfg, region),
        # Five years by default: the length of a security-cloud contract (契約期間).
        "log_retention_days": _int(cfg, "logRetentionDays", 1827),
        "cloudtrail": _bool(cfg, "cloudTrail", True),
        "guardduty": _bool(cfg, "guardDuty", True),
        "customer_gateway_asn": _int(cfg, "customerGatewayAsn", 65000),
        "transit_gateway_asn": _int(cfg, "transitGatewayAsn", 64512),
        "vpn_pre_shared_key": cfg.require_secret("vpnPreSharedKey"),
    }


def security_cloud_config(base_dir: Path) -> SecurityCloudConfig:
    """Read the security cloud's stack configuration; ``base_dir`` is the program directory."""
    cfg = pulumi.Config(NAMESPACE)
    common = _common(cfg, base_dir)
    prefectures: tuple[Prefecture, ...] = common["prefectures"]
    names = {p.security_cloud for p in prefectures}
    if len(names) != 1:
        listing = ", ".join(f"{p.path} says {p.security_cloud}" for p in prefectures)
        raise ConfigError(f"{NAMESPACE}:inventories belong to different security clouds "
                          f"({listing}); list only the inventories of one security cloud")
    for p in prefectures:
        for m in p.municipalities:
            if Uplink.SECURITY_CLOUD.value not in m.gateway.addresses:
                raise ConfigError(
                    f"{p.path}: {m.gateway.name} has no security_cloud address: the "
                    "municipality is not connected to the security cloud; add it to the "
                    "gateway's municloud_addresses")
            _outside(p, m)
    proxy = cfg.get_object("proxy") or {}
    if not isinstance(proxy, dict):
        raise ConfigError(f"{NAMESPACE}:proxy must be a mapping "
                          "(instanceType, minSize, maxSize, imageId)")
    settings = ProxySettings(
        instance_type=str(proxy.get("instanceType", ProxySettings.instance_type)),
        min_size=int(proxy.get("minSize", ProxySettings.min_size)),
        max_size=int(proxy.get("maxSize", ProxySettings.max_size)),
        image_id=proxy.get("imageId"),
    )
    if not 1 <= settings.min_size <= settings.max_size:
        raise ConfigError(f"{NAMESPACE}:proxy needs 1 <= minSize <= maxSize")
    return SecurityCloudConfig(
        **common,
        name=names.pop(),
        network_firewall=_bool(cfg, "networkFirewall", True),
        proxy=settings,
    )


def joint_cloud_config(base_dir: Path) -> JointCloudConfig:
    """Read the joint cloud's stack configuration; ``base_dir`` is the program directory."""
    cfg = pulumi.Config(NAMESPACE)
    common = _common(cfg, base_dir)
    name = cfg.require("jointCloud")
    prefectures: tuple[Prefecture, ...] = common["prefectures"]
    members = tuple((p, m) for p in prefectures for m in p.municipalities if m.joint_cloud == name)
    if not members:
        raise ConfigError(f"no municipality in {NAMESPACE}:inventories names joint_cloud "
                          f"{name!r}; set `joint_cloud: {name}` in the members' "
                          "municloud_municipality, or correct municloud:jointCloud")
    for p, m in members:
        if Uplink.JOINT_CLOUD.value not in m.gateway.addresses:
            raise ConfigError(f"{p.path}: {m.gateway.name} has no joint_cloud address: the "
                              "member is not connected to the joint cloud; add it to the "
                              "gateway's municloud_addresses")
        _outside(p, m)
    systems = cfg.get_object("systems") or list(CORE_SYSTEMS)
    unknown = [s for s in systems if s not in CORE_SYSTEMS]
    if unknown or not systems:
        raise ConfigError(f"{NAMESPACE}:systems: unknown {unknown}; use some of "
                          f"{', '.join(CORE_SYSTEMS)}")
    backup_region = cfg.get("backupRegion") or "ap-northeast-3"
    if backup_region == common["region"]:
        raise ConfigError(f"{NAMESPACE}:backupRegion is {backup_region}, the same region as "
                          "aws:region; backups must survive the loss of a region: name another")
    db = cfg.get_object("database") or {}
    database = DatabaseSettings(
        engine=str(db.get("engine", DatabaseSettings.engine)),
        engine_version=str(db.get("engineVersion", DatabaseSettings.engine_version)),
        instance_class=str(db.get("instanceClass", DatabaseSettings.instance_class)),
        allocated_storage=int(db.get("allocatedStorage", DatabaseSettings.allocated_storage)),
    )
    return JointCloudConfig(
        **common,
        name=name,
        members=members,
        systems=tuple(systems),
        backup_region=backup_region,
        backup_retention_days=_int(cfg, "backupRetentionDays", 35),
        database=database,
    )
