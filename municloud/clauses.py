"""The clause catalogue: what an acceptance test can claim to prove, in Japanese and English.

Every acceptance test names one clause (``@pytest.mark.clause("baseline.ssh.key-only")``), the
conftest refuses an id that is not here, and ``municloud report`` counts results per municipality
and clause. Keep it small and honest: ``references`` cite only what the source text says
(MIC's briefing of 2019-01-25, 地域力創造グループの施策等について③; docs/domain.md summarises
it) or the later guideline revisions that define the models; a clause that is this project's own
baseline, with no guideline text behind it, says so and cites nothing.

Each clause is proven one of two ways, never neither (tests/unit/test_clauses.py):

* by acceptance tests: found by reading tests/acceptance (:func:`acceptance_tests`, an AST scan,
  no pytest collection): the tests that carry ``@pytest.mark.clause("<id>")`` (on the function,
  in a ``pytestmark`` of the module or in a ``pytest.param``'s marks), and the reachability matrix
  (a test taking ``probe``), whose pairs carry the clauses of :func:`matrix_clauses`;
* or by hand (``manual``): what no test here can prove (lines, contracts, what people do). The
  check says what a person looks at, the evidence what they attach to the report.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

# The source document, as cited in references below.
SEED = "総務省 地域力創造グループの施策等について③ (2019-01-25)"


# Where the acceptance tests are, in a checkout of this repository.
ACCEPTANCE = Path(__file__).resolve().parents[1] / "tests" / "acceptance"


@dataclass(frozen=True)
class Manual:
    """A check made by a person, not by a test: what they check, and what they attach."""

    check_ja: str
    check_en: str
    evidence_ja: str
    evidence_en: str


@dataclass(frozen=True)
class Clause:
    id: str
    title_ja: str
    title_en: str
    references: tuple[str, ...] = ()  # where the guideline asks for it; empty: project baseline
    manual: Manual | None = None  # None: acceptance tests prove it (see acceptance_tests)

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
            "segments.individual-number.remote-access",
            "個人番号利用事務系への庁舎外からの接続 (保守等のリモートアクセスを含む) は特定通信 "
            "(閉域回線) のみ",
            "connections into the individual-number segment from outside the town hall (remote "
            "maintenance included) only over closed lines (特定通信)",
            (_SEPARATION,),
            Manual(
                "個人番号利用事務系のネットワーク構成図と回線の契約書で、庁舎外へつながる回線 "
                "(自治体クラウド、中間サーバー、事業者の保守回線) がすべて特定通信 (閉域回線) で、"
                "名前の決まったシステムにだけつながることを確認する。インターネット経由のVPNや"
                "リモートデスクトップのサービスが同系のホストに導入されていないことも確認する。",
                "With the segment's network diagram and its line contracts, confirm that every "
                "line leaving the town hall (the joint cloud, the 中間サーバー, vendors' "
                "maintenance lines) is a closed line (特定通信) to a named system, and that no "
                "VPN over the internet or remote desktop service is installed on its hosts.",
                "構成図、回線契約の該当箇所、保守回線の一覧 (接続先・事業者・利用の記録)、"
                "各ホストの導入済みパッケージの一覧",
                "the diagram, the relevant pages of the line contracts, the list of maintenance "
                "lines (where to, which vendor, the record of their use), each host's list of "
                "installed packages",
            ),
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
            # The reachability matrix probes each municipality's hosts and the shared ones, not
            # one municipality's hosts against another's; `municloud validate` proves the policy
            # (the invariant municipalities-isolated), a person proves the hosts.
            Manual(
                "ある団体のLGWAN接続系端末から、他の団体の各セグメントのホストへ、SSH (22番) と"
                "そのホストのサービスのポートに時間を区切って接続を試み、どれも接続できないことを"
                "確認する。`municloud validate` が不変条件 municipalities-isolated の違反を報告"
                "しないことも確認する。",
                "From an LGWAN terminal of one municipality, try to connect, with a time limit, "
                "to hosts in each segment of another municipality (SSH on port 22 and the ports "
                "of their services): none may connect. `municloud validate` must report no "
                "breach of the invariant municipalities-isolated.",
                "試した接続元・接続先・ポートと各コマンドの出力 (例: `nc -vz -w 3 宛先 22` の"
                "タイムアウト)、`municloud validate` の出力",
                "the source, destinations and ports tried, with each command's output (e.g. "
                "`nc -vz -w 3 ADDRESS 22` timing out), and the output of `municloud validate`",
            ),
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
            "security-cloud.monitoring",
            "セキュリティクラウドによる集中監視 (ログを監視し、異常を団体へ連絡する体制)",
            "the security cloud watches centrally: someone reads the central log and tells the "
            "municipality",
            (_SECURITY_CLOUD, _MONITORING),
            Manual(
                "セキュリティクラウドの運用者の監視手順書で、中央ログ (プロキシのログ、"
                "ゲートウェイの遮断ログ等) を誰がいつ確認し、異常をどの経路で団体に連絡するかが"
                "定められていることを確認し、直近の監視報告でそのとおりに運用されていることを"
                "確認する。",
                "In the security cloud operator's monitoring procedure, confirm who reads the "
                "central log (the proxy's log, the gateways' drop logs) and when, and how an "
                "incident reaches the municipality; in the latest monitoring report, confirm it "
                "is done so.",
                "監視手順書の該当箇所と直近の監視報告書",
                "the relevant part of the monitoring procedure and the latest monitoring report",
            ),
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
            "mfa.enrolment.handover",
            "登録シート (初期パスワード・ワンタイムコードの秘密) は本人にだけ渡し、渡した後に削除",
            "enrolment sheets (first password, one-time code secret) go to their owner only "
            "and are deleted once handed over",
            (_MFA_CREDENTIALS,),
            Manual(
                "各職員の登録シートが本人に直接手渡されたこと、`municloud mfa enrol --sheets` の"
                "出力先にシートが残っていないことを確認する。",
                "Confirm that each staff member's enrolment sheet was handed to them in person, "
                "and that no sheet is left where `municloud mfa enrol --sheets` wrote them.",
                "職員ごとの受領記録 (氏名・日付・署名) と、出力先ディレクトリの一覧 (空であること)",
                "a receipt per staff member (name, date, signature) and a listing of that "
                "directory, empty",
            ),
        ),
        Clause(
            "export.removable-storage",
            "端末からデータの持出し不可設定 (USBメモリ等の外部記憶媒体の無効化)",
            "no data export from the terminals: removable storage cannot be used, attempts are "
            "recorded",
            (_NO_EXPORT,),
        ),
        Clause(
            "export.exceptions.approved",
            "データ持出し不可設定の例外は承認されたもののみ",
            "every exception to the no-export setting is approved",
            (_NO_EXPORT,),
            Manual(
                "インベントリの各ホストの `export_control_exceptions` の項目ごとに、理由と承認の"
                "記録があることを確認する (承認者は `approved_by` に書ける)。",
                "For every entry of a host's `export_control_exceptions` in the inventory, "
                "confirm that it has a reason and a record of its approval (`approved_by` may "
                "name it).",
                "例外の一覧 (ホスト・モジュール・理由) と承認の記録",
                "the list of exceptions (host, module, reason) and the records of their approval",
            ),
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


# --- how each clause is proven: the acceptance tests, read from their source ------------------

# The clause of every site flow (municloud/flows.py gives it to the flows an inventory adds).
SITE_FLOWS = "segments.site-flows"


def matrix_clauses() -> frozenset[str]:
    """The clauses the reachability matrix's pairs can carry: each catalogue flow's, a site
    flow's, and the ones ``municloud.policy`` gives a pair no flow allows (the strings its
    ``_clause`` returns, read from its source so that this list cannot drift from it)."""
    from municloud import flows, policy

    source = textwrap.dedent(inspect.getsource(policy._clause))
    denied = {
        node.value.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }
    return frozenset({f.clause for f in flows.FLOWS} | denied | {SITE_FLOWS})


@dataclass(frozen=True)
class Proofs:
    """What the acceptance tests prove, read from their source (no pytest collection)."""

    # clause id -> the tests that carry it, as "tests/acceptance/test_x.py::test_y"
    tests: Mapping[str, tuple[str, ...]]
    # what the scan could not read, or a clause id that is not in the catalogue
    problems: tuple[str, ...] = field(default=())

    def of(self, clause_id: str) -> tuple[str, ...]:
        return self.tests.get(clause_id, ())


def acceptance_tests(directory: Path = ACCEPTANCE) -> Proofs:
    """Each clause's acceptance tests, from the ``clause`` marks in ``directory``'s test modules:
    on the test function or class, in a ``pytest.param(..., marks=...)`` (also through a helper
    function of the module that makes such params), or in the module's ``pytestmark``; the
    closest one counts, as for pytest. A test taking ``probe`` without a mark of its own is the
    reachability matrix, whose pairs carry :func:`matrix_clauses`."""
    found: dict[str, list[str]] = {}
    problems: list[str] = []
    matrix = matrix_clauses()
    for path in sorted(directory.glob("test_*.py")):
        module = _Module(path)
        for test, ids in module.tests(matrix):
            for clause_id in ids:
                found.setdefault(clause_id, []).append(test)
                if clause_id not in CLAUSES:
                    problems.append(f"{test}: clause {clause_id!r} is not in municloud/clauses.py")
        problems.extend(module.problems)
    return Proofs({k: tuple(v) for k, v in found.items()}, tuple(problems))


class _Module:
    """One test module's clause marks."""

    def __init__(self, path: Path) -> None:
        try:
            self.where = str(path.resolve().relative_to(ACCEPTANCE.parents[1]))
        except ValueError:
            self.where = str(path)
        self.tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        self.problems: list[str] = []
        self.constants = {
            node.targets[0].id: node.value.value
            for node in self.tree.body
            if isinstance(node, ast.Assign) and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        }
        self.helpers: dict[str, list[str]] = {}
        for node in self.tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("test"):
                ids = self._ids(node.body)
                if ids:
                    self.helpers[node.name] = ids
        self.module_ids = self._ids(
            node.value for node in self.tree.body
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)
        )

    def _ids(self, nodes: Iterator[ast.AST] | list[ast.expr] | list[ast.stmt]) -> list[str]:
        """The clause ids in ``nodes``' ``*.clause(...)`` calls and calls to the helpers."""
        ids: list[str] = []
        for top in nodes:
            for node in ast.walk(top):
                if not isinstance(node, ast.Call):
                    continue
                if isinstance(node.func, ast.Name) and node.func.id in self.helpers:
                    ids += self.helpers[node.func.id]
                if not (isinstance(node.func, ast.Attribute) and node.func.attr == "clause"):
                    continue
                arg = node.args[0] if len(node.args) == 1 else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    ids.append(arg.value)
                elif isinstance(arg, ast.Name) and arg.id in self.constants:
                    ids.append(self.constants[arg.id])
                else:
                    self.problems.append(
                        f"{self.where}:{node.lineno}: a clause mark whose id is neither a string "
                        "nor a module constant of strings; the scan cannot read it")
        return list(dict.fromkeys(ids))

    def tests(self, matrix: frozenset[str]) -> Iterator[tuple[str, list[str]]]:
        """(test id, its clause ids) for each test function of the module."""
        functions = ast.FunctionDef, ast.AsyncFunctionDef
        for node in self.tree.body:
            if isinstance(node, functions) and node.name.startswith("test"):
                yield self._test(node.name, node, [], matrix)
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                class_ids = self._ids(node.decorator_list)
                for method in node.body:
                    if isinstance(method, functions) and method.name.startswith("test"):
                        yield self._test(f"{node.name}::{method.name}", method, class_ids,
                                         matrix)

    def _test(self, name: str, node: ast.FunctionDef | ast.AsyncFunctionDef,
              outer: list[str], matrix: frozenset[str]) -> tuple[str, list[str]]:
        test = f"{self.where}::{name}"
        ids = self._ids(node.decorator_list) or outer or self.module_ids
        if not ids and any(a.arg == "probe" for a in node.args.args):
            ids = sorted(matrix)
        if not ids:
            self.problems.append(f"{test}: no clause mark (every acceptance test names one)")
        return test, ids
