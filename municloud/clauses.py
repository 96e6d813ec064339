"""The clause catalogue: what an acceptance test can claim to prove, in Japanese and English.

Every acceptance test names one clause (``@pytest.mark.clause("baseline.ssh.key-only")``), the
conftest refuses an id that is not here, and ``municloud report`` counts results per municipality
and clause. Keep it small and honest: ``references`` cite only what the source text says (the MIC
briefing of 2019-01-25 in ``seed/``, summarised in DOMAIN.md); a clause that is this project's own
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
