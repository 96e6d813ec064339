"""The words of the domain: segments, shared networks, guideline models, host roles.

Everything here is data with one home (docs/architecture.md, "One inventory, one model"): the
inventory model, the lab, the Ansible plugins, the Pulumi programs and the acceptance tests import
these names instead of spelling them again.
"""

from __future__ import annotations

from enum import StrEnum


class Segment(StrEnum):
    """The three segments of a municipality (三層の対策)."""

    INDIVIDUAL_NUMBER = "individual_number"  # 個人番号利用事務系 (マイナンバー利用事務系)
    LGWAN = "lgwan"  # LGWAN接続系
    INTERNET = "internet"  # インターネット接続系


class Uplink(StrEnum):
    """Networks shared by the prefecture that a municipality's gateway may have a leg in.

    A municipality never has a leg in the shared internet network: its internet segment reaches
    the internet only through the prefecture's security cloud.
    """

    SECURITY_CLOUD = "security_cloud"  # 自治体情報セキュリティクラウド
    LGWAN_BACKBONE = "lgwan_backbone"  # LGWAN and its ASP services (update platform, 中間サーバー)
    JOINT_CLOUD = "joint_cloud"  # 自治体クラウド (joint core-business systems)


class SharedNetwork(StrEnum):
    """Networks of the prefecture that do not belong to one municipality."""

    INTERNET = "internet"  # the public internet (vendor update sources, public web)
    SECURITY_CLOUD = "security_cloud"
    LGWAN_BACKBONE = "lgwan_backbone"
    JOINT_CLOUD = "joint_cloud"


class GuidelineModel(StrEnum):
    """The variants of MIC's guideline.

    地方公共団体における情報セキュリティポリシーに関するガイドライン
    """

    ALPHA = "alpha"  # αモデル: office terminals in the LGWAN segment
    ALPHA_PRIME = "alpha_prime"  # α'モデル: LGWAN terminals may reach approved cloud services
    BETA = "beta"  # βモデル: office terminals in the internet segment
    BETA_PRIME = "beta_prime"  # β'モデル: office systems too move to the internet segment


class HostRole(StrEnum):
    """What a host does. Municipality roles first, then the prefecture's shared services."""

    GATEWAY = "gateway"  # the municipality's router and firewall between its segments
    TERMINAL = "terminal"  # a staff terminal (端末) in one segment
    UPDATE_RELAY = "update_relay"  # 庁舎内配信サーバ in the LGWAN segment
    SCREEN_TRANSFER = (
        "screen_transfer"  # 画面転送サーバ: a desktop the other segment sees as pixels
    )
    SANITISER = (
        "sanitiser"  # 無害化: rebuilds files from the internet segment for the LGWAN segment
    )
    FILE_SERVER = "file_server"  # the LGWAN segment's drop for sanitised files
    PROXY = "proxy"  # the security cloud's web proxy
    LOG_COLLECTOR = "log_collector"  # the security cloud's central log server
    VENDOR_UPDATE_SOURCE = "vendor_update_source"  # an OS or antivirus vendor on the internet
    UPDATE_PLATFORM = "update_platform"  # 自治体情報セキュリティ向上プラットフォーム on LGWAN-ASP
    INTERMEDIATE_SERVER = "intermediate_server"  # 中間サーバー on LGWAN
    LGWAN_ASP = "lgwan_asp"  # an LGWAN-ASP service (電子申請, 文書管理, ...) on the LGWAN backbone
    CORE_SYSTEM = "core_system"  # a joint core-business system (住基, 税, ...) in the joint cloud


MUNICIPALITY_ROLES = frozenset(
    {
        HostRole.GATEWAY,
        HostRole.TERMINAL,
        HostRole.UPDATE_RELAY,
        HostRole.SCREEN_TRANSFER,
        HostRole.SANITISER,
        HostRole.FILE_SERVER,
    }
)
SHARED_ROLES = frozenset(HostRole) - MUNICIPALITY_ROLES

# The roles that route between networks; the lab turns IP forwarding on in their containers.
ROUTING_ROLES = frozenset({HostRole.GATEWAY})
