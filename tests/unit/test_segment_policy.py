"""The segment policy: the catalogue keeps its invariants, site flows that break one are refused by
`municloud validate` naming the flow, the invariant and the file, and the matrix says what the
guideline's table says, pair by pair (written out here by hand, not derived from the code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sample_edit import REPO, municipality, prefecture, write

from municloud import flows, inventory, policy
from municloud.cli import main as cli
from municloud.segments import GuidelineModel

SAMPLE = inventory.load(REPO / "inventories" / "sample")
OKAYAMA = inventory.load(REPO / "inventories" / "okayama")


# --- the catalogue ------------------------------------------------------------------------------


def test_catalogue_flows_are_complete_and_named_once() -> None:
    names = [f.name for f in flows.FLOWS]
    assert len(names) == len(set(names))
    for f in flows.FLOWS:
        assert f.reason.strip() and f.service in flows.SERVICES, f.name
        assert f.models, f.name
        from municloud import clauses

        clauses.get(f.clause)  # every flow names a clause of the catalogue


@pytest.mark.parametrize("model", list(GuidelineModel))
def test_every_model_keeps_every_invariant(tmp_path: Path, model: GuidelineModel) -> None:
    """All three sample towns switched to one model: the catalogue alone breaks nothing."""

    def edit(d: dict[str, Any]) -> None:
        for group in ("tottori_shi", "yonago_shi", "kurayoshi_shi"):
            municipality(d, group)["model"] = model.value
            # Screen-transfer servers sit where the model wants them.
            for host in d["all"]["children"]["municipalities"]["children"][group]["hosts"].values():
                if host["municloud_role"] == "screen_transfer":
                    seg, address = next(iter(host["municloud_addresses"].items()))
                    octets = address.split(".")
                    want = "lgwan" if model.value.startswith("beta") else "internet"
                    if seg != want:
                        third = int(octets[2]) + (-1 if want == "lgwan" else 1)
                        host["municloud_addresses"] = {want: f"198.18.{third}.40"}

    loaded = inventory.load(write(tmp_path, edit))  # raises on any problem
    assert policy.violations(loaded) == []


@pytest.mark.parametrize("loaded", [SAMPLE, OKAYAMA], ids=["sample", "okayama"])
def test_shipped_inventories_keep_every_invariant(loaded: inventory.Prefecture) -> None:
    assert policy.graph(loaded)  # a graph with no edge would prove nothing
    assert policy.violations(loaded) == []


# --- site flows that break an invariant are refused ---------------------------------------------


def _site(group: str | None, *items: dict[str, Any], services: dict[str, Any] | None = None):
    def edit(d: dict[str, Any]) -> None:
        if services:
            prefecture(d)["services"] = services
        target = prefecture(d) if group is None else municipality(d, group)
        target["flows"] = list(items)

    return edit


def _flow(name: str, source: str, to: str, where: str | None = None, **more: Any) -> dict[str, Any]:
    item = {"name": name, "from": source, "to": to, "reason": "a site's wish", **more}
    if where:
        item["in"] = where
    return item


VIOLATIONS = {
    "direct: individual number to the proxy": (
        _site("tottori_shi", _flow("mynumber-web", "individual_number", "proxy")),
        "mynumber-web",
        {"individual-number-closed-lines-only", "individual-number-no-internet"},
    ),
    "via a shared service: the 中間サーバー into the LGWAN segment": (
        _site(
            "tottori_shi",
            _flow(
                "chukan-push", "lgwan_backbone", "file_drop", "lgwan", roles=["intermediate_server"]
            ),
        ),
        "chukan-push",
        {"individual-number-no-internet", "municipalities-isolated"},
    ),
    # The 中間サーバー sends its logs to the collector; the collector fetches threat feeds
    # through the proxy. Each is harmless alone; together the individual-number segment has a
    # path to the internet: 個人番号 -> 中間サーバー -> collector -> proxy -> internet.
    "transitive: two site flows harmless alone": (
        _site(
            None,
            _flow("chukan-logs", "lgwan_backbone", "syslog", roles=["intermediate_server"]),
            _flow("collector-feeds", "security_cloud", "proxy", roles=["log_collector"]),
        ),
        "chukan-logs",
        {"individual-number-no-internet"},
    ),
    "direct: the internet segment around the proxy": (
        _site("yonago_shi", _flow("direct-web", "internet", "web")),
        "direct-web",
        {"internet-segment-via-security-cloud"},
    ),
    # LGWAN-ASP fetching from the internet: the internet segment gets out through it, around the
    # proxy: sanitiser -> file server (LGWAN) -> LGWAN-ASP -> internet.
    "around the proxy, through a host that is no internet exit": (
        _site(None, _flow("asp-to-web", "lgwan_backbone", "web", roles=["lgwan_asp"])),
        "asp-to-web",
        {"internet-segment-via-security-cloud"},
    ),
    "into the individual-number segment from the internet segment": (
        _site(
            "kurayoshi_shi",
            _flow("remote-juki", "internet", "juki-client", "individual_number"),
            services={"juki-client": {"ports": [8080], "roles": ["terminal"]}},
        ),
        "remote-juki",
        {"internet-never-reaches-individual-number"},
    ),
    "between municipalities, through a shared service": (
        _site(
            None,
            _flow("asp-to-relays", "lgwan_backbone", "update_relay", "lgwan", roles=["lgwan_asp"]),
        ),
        "asp-to-relays",
        {"municipalities-isolated"},
    ),
    "SSH from a segment": (
        _site("tottori_shi", _flow("lgwan-admin", "lgwan", "ssh", "internet")),
        "lgwan-admin",
        {"ssh-from-management-only"},
    ),
}


@pytest.mark.parametrize("case", VIOLATIONS)
def test_a_site_flow_that_breaks_an_invariant_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    edit, name, invariants = VIOLATIONS[case]
    inv = write(tmp_path, edit)
    assert cli(["validate", str(inv)]) == 1
    err = capsys.readouterr().err
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(inv)
    mine = [p for p in caught.value.problems if f"({name})" in p.key]
    assert mine, err
    for problem in mine:
        assert problem.file == str(inv / "hosts.yml")
        assert f"the flow {name!r}" in problem.message and "the path:" in problem.message
        assert "no inventory may override an invariant" in problem.fix
    broken = {i for p in mine for i in flows.INVARIANTS if f"invariant {i}:" in p.message}
    assert broken == invariants, [str(p) for p in mine]
    assert f"({name})" in err


@pytest.mark.parametrize("name", ["chukan-logs", "collector-feeds"])
def test_each_half_of_a_transitive_break_alone_is_accepted(tmp_path: Path, name: str) -> None:
    """The pair above breaks an invariant only together: the check follows chains of flows."""
    edit, _, _ = VIOLATIONS["transitive: two site flows harmless alone"]

    def only(d: dict[str, Any]) -> None:
        edit(d)
        prefecture(d)["flows"] = [f for f in prefecture(d)["flows"] if f["name"] == name]

    loaded = inventory.load(write(tmp_path, only))
    assert [f.name for f in loaded.flows] == [name]


def test_a_harmless_site_flow_is_accepted_and_compiled(tmp_path: Path) -> None:
    edit = _site(
        "tottori_shi",
        _flow("payroll-asp", "lgwan", "payroll", roles=["terminal"]),
        services={"payroll": {"title": "人事給与", "ports": [8443], "roles": ["lgwan_asp"]}},
    )
    loaded = inventory.load(write(tmp_path, edit))
    allows = [a for a in policy.allowed(loaded) if a.flow.name == "payroll-asp"]
    assert [(a.municipality, [h.name for h in a.destinations]) for a in allows] == [
        ("tottori_shi", ["lgwan-asp"])
    ]
    assert [str(s) for s in allows[0].sources] == ["198.18.17.10/32"]  # the terminal only


BAD_SITE_FLOWS = {
    "unknown zone": (_flow("x", "dmz", "proxy"), "from", "unknown zone 'dmz'"),
    "unknown service": (_flow("x", "lgwan", "ftp"), "to", "unknown service 'ftp'"),
    "no reason": ({"name": "x", "from": "lgwan", "to": "proxy"}, "reason", "needs a reason"),
    "bad name": (_flow("Payroll ASP", "lgwan", "proxy"), "name", "is not a flow name"),
    "name of the catalogue": (_flow("internet-to-proxy", "lgwan", "proxy"), "name", "is taken"),
    "role that cannot sit there": (
        _flow("x", "lgwan", "proxy", roles=["sanitiser"]),
        "roles",
        "no host of sanitiser",
    ),
    "ambiguous destination": (_flow("x", "lgwan", "screen_transfer"), "in", "may sit in"),
    "from management": (_flow("x", "management", "proxy"), "from", "management already"),
}


@pytest.mark.parametrize("case", BAD_SITE_FLOWS)
def test_a_malformed_site_flow_is_refused_with_its_key(tmp_path: Path, case: str) -> None:
    item, key, message = BAD_SITE_FLOWS[case]
    inv = write(tmp_path, _site("tottori_shi", item))
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(inv)
    found = [
        p
        for p in caught.value.problems
        if ".flows[0]" in p.key and p.key.endswith(f".{key}") and message in p.message
    ]
    assert found, [str(p) for p in caught.value.problems]
    assert found[0].fix


# --- the matrix: what the guideline's table says, by model --------------------------------------


def _expect(loaded: inventory.Prefecture, source: str, dest: str, service: str) -> bool:
    found = [
        p
        for p in policy.matrix(loaded)
        if p.source.name == source and p.destination.name == dest and p.service == service
    ]
    assert found, (source, dest, service)
    assert len({p.expected for p in found}) == 1
    return found[0].expected


# (source, destination, service, expected): hand-written from the table in docs/flows.md.
SAMPLE_TABLE = [
    # α (鳥取市): LGWAN terminals use screen transfer into the internet segment, not the proxy.
    ("tottori-shi-lgwan-term", "tottori-shi-screen", "screen_transfer", True),
    ("tottori-shi-lgwan-term", "sc-proxy", "proxy", False),
    ("tottori-shi-internet-term", "sc-proxy", "proxy", True),
    ("tottori-shi-internet-term", "vendor-updates", "web", False),
    ("tottori-shi-mynumber-term", "joint-core", "core_system", True),
    ("tottori-shi-mynumber-term", "intermediate-server", "intermediate_server", True),
    ("tottori-shi-mynumber-term", "sc-proxy", "proxy", False),
    ("tottori-shi-mynumber-term", "tottori-shi-lgwan-term", "ssh", False),
    ("tottori-shi-mynumber-term", "tottori-shi-update-relay", "update_relay", False),
    ("tottori-shi-internet-term", "tottori-shi-mynumber-term", "ping", False),
    ("tottori-shi-lgwan-term", "tottori-shi-update-relay", "update_relay", True),
    ("tottori-shi-lgwan-term", "update-platform", "update_platform", False),
    ("tottori-shi-update-relay", "update-platform", "update_platform", True),
    ("tottori-shi-lgwan-term", "vendor-updates", "web", False),
    ("tottori-shi-sanitiser", "tottori-shi-file-server", "file_drop", True),
    ("tottori-shi-internet-term", "tottori-shi-file-server", "file_drop", False),
    ("tottori-shi-internet-term", "tottori-shi-sanitiser", "sanitiser_inbox", True),
    ("tottori-shi-lgwan-term", "lgwan-asp", "lgwan_asp", True),
    ("tottori-shi-internet-term", "lgwan-asp", "lgwan_asp", False),
    ("tottori-shi-gw", "log-collector", "syslog", True),
    ("tottori-shi-gw", "tottori-shi-lgwan-term", "ssh", False),
    ("tottori-shi-lgwan-term", "tottori-shi-gw", "ssh", False),
    ("vendor-updates", "tottori-shi-mynumber-term", "ssh", False),
    ("sc-proxy", "tottori-shi-internet-term", "ssh", False),
    # β (米子市): the other way round: internet terminals use LGWAN systems by screen transfer.
    ("yonago-shi-internet-term", "yonago-shi-screen", "screen_transfer", True),
    ("yonago-shi-lgwan-term", "yonago-shi-screen", "screen_transfer", False),
    # α' (倉吉市): LGWAN terminals may use the proxy (approved cloud services); no joint cloud.
    ("kurayoshi-shi-lgwan-term", "sc-proxy", "proxy", True),
    ("kurayoshi-shi-update-relay", "sc-proxy", "proxy", False),
    ("kurayoshi-shi-mynumber-term", "joint-core", "core_system", False),
    ("kurayoshi-shi-lgwan-term", "kurayoshi-shi-screen", "screen_transfer", True),
    # The shared services among themselves.
    ("sc-proxy", "vendor-updates", "web", True),
    ("update-platform", "vendor-updates", "web", True),
    ("vendor-updates", "sc-proxy", "proxy", False),
    ("sc-proxy", "log-collector", "syslog", True),
]


OKAYAMA_TABLE = [
    # β' (岡山市): as β; its office systems sit in the internet segment, no new crossing.
    ("okayama-shi-web", "okayama-shi-vdi", "screen_transfer", True),
    ("okayama-shi-lgwan-1", "okayama-shi-vdi", "screen_transfer", False),
    ("okayama-shi-lgwan-2", "okayama-proxy", "proxy", False),
    ("okayama-shi-juki", "okayama-joint-juki", "core_system", True),
    ("okayama-shi-juki", "okayama-chukan", "intermediate_server", True),
    # α (倉敷市), with no joint-cloud uplink: its individual-number segment has no core system.
    ("kurashiki-shi-mynumber", "okayama-joint-juki", "core_system", False),
    ("kurashiki-shi-lgwan", "kurashiki-shi-rdp", "screen_transfer", True),
]


@pytest.mark.parametrize(
    ("loaded", "source", "dest", "service", "expected"),
    [(SAMPLE, *row) for row in SAMPLE_TABLE] + [(OKAYAMA, *row) for row in OKAYAMA_TABLE],
    ids=[f"{r[0]}->{r[1]}:{r[2]}" for r in (*SAMPLE_TABLE, *OKAYAMA_TABLE)],
)
def test_matrix_says_what_the_table_says(
    loaded: inventory.Prefecture, source: str, dest: str, service: str, expected: bool
) -> None:
    assert _expect(loaded, source, dest, service) is expected


@pytest.mark.parametrize("loaded", [SAMPLE, OKAYAMA], ids=["sample", "okayama"])
def test_every_municipality_has_allowed_and_denied_pairs(loaded: inventory.Prefecture) -> None:
    probes = policy.matrix(loaded)
    for group in [m.group for m in loaded.municipalities] + [policy.SHARED_GROUP]:
        outcomes = {p.expected for p in probes if p.group == group}
        assert outcomes == {True, False}, group
    ids = [p.id for p in probes]
    assert len(ids) == len(set(ids))  # one test id per source, destination, service, outcome


def test_no_probe_from_the_individual_number_segment_is_allowed_but_closed_lines() -> None:
    for loaded in (SAMPLE, OKAYAMA):
        for p in policy.matrix(loaded):
            if p.expected and p.source.segment and p.source.segment.value == "individual_number":
                assert p.service in ("core_system", "intermediate_server", "ping"), p.id
