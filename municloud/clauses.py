"""The clause catalogue: what an acceptance test can claim to prove, in Japanese and English.

Every acceptance test names one clause (``@pytest.mark.clause("baseline.ssh.key-only")``), the
conftest refuses an id that is not here, and ``municloud report`` counts results per municipality
and clause. Keep it small and honest: ``references`` cite only what the source text says
(MIC's briefing of 2019-01-25, 地域力創造グループの施策等について③; docs/domain.md summarises
it) or the later guideline revisions that define the models; a clause that is this project's own
baseline, with no guideline text behind it, says so and cites nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# The source document, as cited in references below.
SEED = "総務省 地域力創造グループの施策等について③ (2019-01-25)"


@dataclass(frozen=True)
class Clause:
    id: str
    title_ja: str
    title_en: str
    references: tuple[str, ...] = ()  # where the guideline asks for it; empty: project baseline

    @property
    def title(self) -> str:
        return f"{self.title_ja} / {self.title_en}"


_ACCESS_CONTROL = f"{SEED}: 三層の対策 — アクセス制御 (access control)"
_ATTACKS = f"{SEED}: 三層の対策 — 外部からの攻撃対策の徹底 (thorough defence against attacks)"
_CREDENTIALS = (
    f"{SEED}: ガイドライン改定 — 認証情報を適切に管理し、認証情報の不正利用の防止 "
    "(manage credentials, prevent their misuse; stated for 多要素認証, applied here to "
    "administrative logins)"
)
_MONITORING = (
    f"{SEED}: ⑤ 集中して高度な監視 (central monitoring, which compares the logs of many hosts: "
    "one time zone makes their times comparable)"
)

_SEPARATION = (
    f"{SEED}: 三層の対策 — マイナンバー利用事務系の分離 "
    "(isolation of the individual-number segment)"
)
_SANITISE = f"{SEED}: 三層の対策 — インターネットとLGWANの間は無害化通信 (sanitised transfer)"
_SECURITY_CLOUD = (
    f"{SEED}: 自治体情報セキュリティクラウド — インターネット接続口の集約と集中監視 "
    "(the prefecture's single, watched internet exit)"
)
_UPDATES = (
    f"{SEED}: 自治体情報セキュリティ向上プラットフォーム — 更新プログラムの配信 "
    "(updates through the platform, not USB sticks)"
)
_UPDATES_WINDOW = (
    f"{SEED}: 自治体情報セキュリティ向上プラットフォーム — 配信時間帯 23:00〜6:00 "
    "(それ以外はトラフィックを絞って配信) (the delivery window; throttled outside it)"
)
_MFA = (
    f"{SEED}: ③ 個人番号利用事務関連システム — 二要素認証の導入; ガイドライン改定 — "
    "マイナンバー利用事務系では複数の認証を用いる多要素認証を実施 (multi-factor authentication "
    "on the individual-number segment)"
)
_MFA_CREDENTIALS = (
    f"{SEED}: ガイドライン改定 — 多要素認証において、認証情報を適切に管理し、認証情報の不正利用の"
    "防止 (manage the authentication credentials, prevent their misuse)"
)
_NO_EXPORT = (
    f"{SEED}: ③ 個人番号利用事務関連システム — 端末からデータの持出し不可設定 "
    "(no data export from the terminals)"
)
_MODELS = (
    "地方公共団体における情報セキュリティポリシーに関するガイドライン (later revisions): "
    "α/α'/β/β' models"
)

CLAUSES: Mapping[str, Clause] = {
    c.id: c
    for c in (
        Clause(
            "baseline.ssh.key-only",
            "管理者認証は鍵認証のみ",
            "administration by key only: no password logins, for root or anyone",
            (_ACCESS_CONTROL, _CREDENTIALS),
        ),
        Clause(
            "baseline.ssh.hardened",
            "SSHサーバの設定強化 (認証試行回数の制限、X11転送の無効化、詳細なログ)",
            "hardened SSH server (few authentication attempts, no X11 forwarding, verbose log)",
            (_ATTACKS,),
        ),
        Clause(
            "baseline.ssh.modern-crypto",
            "SSHは安全な暗号アルゴリズムのみ",
            "SSH offers modern algorithms only; weak ones are refused",
            (_ATTACKS,),
        ),
        Clause(
            "baseline.admin.account",
            "自動化用の管理アカウント (鍵認証、パスワードなしのsudo)",
            "a management account for automation (key login, sudo without a password)",
            (_ACCESS_CONTROL,),
        ),
        Clause(
            "baseline.time.jst",
            "時刻帯は日本標準時 (Asia/Tokyo)",
            "the time zone in force is Japan Standard Time (Asia/Tokyo)",
            (_MONITORING,),
        ),
        # --- three-segment separation (三層の対策), proven by real packets both ways ---
        Clause(
            "segments.individual-number.isolated",
            "個人番号利用事務系はインターネット・他のセグメントから分離",
            "the individual-number segment is cut off from the internet and the other segments, "
            "both ways",
            (_SEPARATION, _ACCESS_CONTROL),
        ),
        Clause(
            "segments.individual-number.closed-lines",
            "個人番号利用事務系は特定通信 (自治体クラウドの基幹系・中間サーバー) のみ",
            "the individual-number segment reaches only named systems over closed lines (the "
            "joint cloud's core systems, the 中間サーバー)",
            (_SEPARATION,),
        ),
        Clause(
            "segments.lgwan.services",
            "LGWAN接続系からLGWAN-ASPの利用",
            "the LGWAN segment uses LGWAN-ASP services",
            (_ACCESS_CONTROL,),
        ),
        Clause(
            "segments.lgwan.updates",
            "更新プログラムは庁舎内配信サーバ・プラットフォーム経由のみ",
            "updates reach the LGWAN segment only through the town-hall relay and the platform",
            (_UPDATES,),
        ),
        Clause(
            "segments.lgwan.screen-transfer",
            "インターネットとLGWANの間は画面転送のみ (α・α': LGWAN→インターネット、β・β': 逆方向)",
            "between the internet and LGWAN segments only screen transfer (α/α': from LGWAN "
            "terminals; β/β': from internet terminals to LGWAN systems)",
            (_MODELS,),
        ),
        Clause(
            "segments.lgwan.sanitised-files",
            "インターネットからLGWANへのファイルは無害化を経由",
            "files reach the LGWAN segment from the internet only through the sanitiser",
            (_SANITISE,),
        ),
        Clause(
            "segments.lgwan.approved-cloud",
            "α'モデル: LGWAN端末から認められたクラウドサービスへ "
            "(セキュリティクラウドのプロキシ経由)",
            "α': LGWAN terminals reach approved cloud services, through the security cloud's "
            "proxy only",
            (_MODELS,),
        ),
        Clause(
            "segments.lgwan.no-internet",
            "LGWAN接続系とインターネットの直接通信の遮断",
            "no direct traffic between the LGWAN segment and the internet or the internet segment",
            (_ACCESS_CONTROL,),
        ),
        Clause(
            "segments.internet.via-security-cloud",
            "インターネットへは自治体情報セキュリティクラウド経由のみ",
            "the internet is reached only through the prefecture's security cloud",
            (_SECURITY_CLOUD,),
        ),
        Clause(
            "segments.municipalities.isolated",
            "団体間の通信の遮断",
            "no traffic between the segments of different municipalities",
            (_ACCESS_CONTROL,),
        ),
        Clause(
            "segments.ssh.management-only",
            "管理通信 (SSH) は管理用アドレスからのみ",
            "administration (SSH) only from the management addresses; nothing reaches a gateway "
            "itself",
            (_ACCESS_CONTROL, _ATTACKS),
        ),
        Clause(
            "segments.logs.central",
            "ログの集中管理 (セキュリティクラウドへの送信)",
            "logs go to the security cloud's central log",
            (_MONITORING,),
        ),
        Clause(
            "segments.default-deny",
            "許可されていない通信はすべて遮断",
            "everything not allowed by a flow is dropped",
            (_ACCESS_CONTROL,),
        ),
        Clause(
            "segments.site-flows",
            "団体固有の許可通信 (インベントリで定義、不変条件を検査済み)",
            "a site's own flows (from the inventory, checked against the invariants)",
            (_ACCESS_CONTROL,),
        ),
        Clause(
            "segments.no-bypass",
            "ゲートウェイを迂回する経路がない (SSHの転送禁止、方針外のポートで待ち受けない)",
            "no way around the gateways: no SSH tunnels, no host listens outside the policy",
            (_ACCESS_CONTROL, _ATTACKS),
        ),
        # --- the individual-number segment: multi-factor login, no data export ---
        Clause(
            "mfa.login.two-factor",
            "個人番号利用事務系の多要素認証 (パスワードとワンタイムコード)",
            "multi-factor login on the individual-number segment: the account's password and a "
            "time-based one-time code, neither enough alone",
            (_MFA,),
        ),
        Clause(
            "mfa.login.no-replay",
            "ワンタイムコードの再利用の禁止",
            "a one-time code cannot be used twice",
            (_MFA, _MFA_CREDENTIALS),
        ),
        Clause(
            "mfa.login.lockout",
            "認証の連続失敗によるアカウントロック",
            "repeated failed logins lock the account for a set time",
            (_MFA_CREDENTIALS, _ATTACKS),
        ),
        Clause(
            "mfa.management.exception",
            "管理用アカウントは例外 (鍵認証のみ・管理用アドレスからのみ)",
            "the management account is the one exception: key only, and only from the "
            "management addresses",
            (_MFA_CREDENTIALS, _ACCESS_CONTROL),
        ),
        Clause(
            "mfa.credentials.protected",
            "認証情報の適切な管理 (秘密鍵・シードは管理者のみ読取可、ログに出さない)",
            "the credentials are protected: the files that hold them are root-only",
            (_MFA_CREDENTIALS,),
        ),
        Clause(
            "export.removable-storage",
            "端末からデータの持出し不可設定 (USBメモリ等の外部記憶媒体の無効化)",
            "no data export from the terminals: removable storage cannot be used, attempts are "
            "recorded",
            (_NO_EXPORT,),
        ),
        Clause(
            "updates.delivery",
            "更新プログラムの配信 (ベンダー → プラットフォーム → 庁舎内配信サーバ → 端末)",
            "updates reach LGWAN terminals from the vendor through the platform and the town "
            "hall's delivery server: a new package version is installed by apt, a new pattern file "
            "arrives",
            (_UPDATES,),
        ),
        Clause(
            "updates.window",
            "配信時間帯 (23時〜6時) の外は転送しない、時間帯内も帯域を制限",
            "the delivery server transfers nothing outside its delivery window (23:00-06:00 in the "
            "source) and keeps to a byte-rate cap inside it",
            (_UPDATES_WINDOW,),
        ),
        Clause(
            "updates.verified",
            "改ざんされた更新・不正な署名の拒否 (最初に検証できる地点で)",
            "a tampered package, a tampered pattern file or a bad signature is refused at the "
            "first hop that can check it, logged, and never served",
            (_UPDATES,),
        ),
        Clause(
            "updates.atomic",
            "同期の中断で配信中のスナップショットを損なわない",
            "a sync cut short leaves the snapshot being served intact, and the next sync completes",
            (_UPDATES,),
        ),
        Clause(
            "baseline.host.name",
            "ホスト名はインベントリの名前と一致",
            "the host name is its inventory name (project baseline: evidence and logs name hosts)",
        ),
    )
}


def get(clause_id: str) -> Clause:
    """The clause ``clause_id``; KeyError with the known ids if there is none."""
    try:
        return CLAUSES[clause_id]
    except KeyError:
        raise KeyError(
            f"unknown clause {clause_id!r}: add it to municloud/clauses.py, or use one of "
            f"{', '.join(sorted(CLAUSES))}"
        ) from None
