"""`municloud generate`: lab and national inventories, proven by the real validator and Ansible;
bad options refused without a trace; and the model's speed-ups (benchmarks/national.py) shown
to give what the code they replaced gave."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from sample_edit import REPO, SAMPLE

from municloud import generate, inventory, nftables, policy, yamlfile
from municloud.cli import main as cli
from municloud.lab import topology
from municloud.problems import Collector
from municloud.segments import GuidelineModel, HostRole, SharedNetwork

BIN = Path(sys.executable).parent
LAB_SIZES = (1, 3, 12, 60)
SHARED_HOSTS = 7
HOSTS_PER_TOWN = 8


def kinds(m: inventory.Municipality) -> list[tuple[str, str | None]]:
    """A municipality's hosts as (role, segment), sorted: its kinds of host."""
    return sorted((h.role.value, h.segment.value if h.segment else None) for h in m.hosts)


def lab(directory: Path, count: int) -> Path:
    assert cli(["generate", "lab", "--municipalities", str(count), "--output",
                str(directory)]) == 0
    return directory


@pytest.fixture(scope="module")
def national(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generate") / "national"
    assert cli(["generate", "national", "--output", str(out)]) == 0
    return out


def listing(directory: Path) -> list[str]:
    """Every path under ``directory``, hidden ones too (a staging directory left behind)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


# --- lab inventories ---------------------------------------------------------------------------


@pytest.mark.parametrize("count", LAB_SIZES)
def test_a_lab_inventory_passes_municloud_validate_and_the_labs_checks(
        tmp_path: Path, count: int) -> None:
    out = lab(tmp_path / f"lab{count}", count)
    proc = subprocess.run([str(BIN / "municloud"), "validate", str(out)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    hosts = SHARED_HOSTS + HOSTS_PER_TOWN * count
    assert proc.stdout.startswith(
        f"ok: 鳥取県 (Tottori, 310000): {count} municipalities"), proc.stdout
    assert f", {hosts} hosts, {4 + 3 * count} networks" in proc.stdout
    prefecture = inventory.load(out)
    assert topology.problems(prefecture) == []  # what `municloud lab up` checks first
    lab_net = topology.build(prefecture)
    assert len(lab_net.containers) == hosts  # one container per host: the sample's per town
    assert all(n.cidr.subnet_of(topology.LAB_RANGE) for n in prefecture.networks)
    if count <= 60:  # clear of 198.19.0.0/16, where the okayama and tiny labs are
        lab16 = ipaddress.IPv4Network("198.18.0.0/16")
        assert all(n.cidr.subnet_of(lab16) for n in prefecture.networks)
    codes = [m.code for m in prefecture.municipalities]
    assert len(set(codes)) == count
    assert all(inventory.code_problem(c) is None and c.startswith("31") for c in codes)
    outside = [m.gateway.outside_address for m in prefecture.municipalities]
    assert len(set(outside)) == count


@pytest.mark.parametrize("count", LAB_SIZES)
def test_ansible_reads_a_lab_inventory_with_every_host_in_its_group(
        tmp_path: Path, count: int) -> None:
    out = lab(tmp_path / f"lab{count}", count)
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(out), "--list"],
                          capture_output=True, text=True, check=True, env=env)
    found: dict[str, Any] = json.loads(proc.stdout)
    prefecture = inventory.load(out)
    groups = found["municipalities"]["children"]
    assert groups == [m.group for m in prefecture.municipalities] and len(groups) == count
    assert len(found["shared"]["hosts"]) == SHARED_HOSTS
    hostvars = found["_meta"]["hostvars"]
    assert len(hostvars) == SHARED_HOSTS + HOSTS_PER_TOWN * count
    for m in prefecture.municipalities:
        assert found[m.group]["hosts"] == [h.name for h in m.hosts]
        assert len(m.hosts) == HOSTS_PER_TOWN
        gw = hostvars[m.gateway.name]
        assert gw["municloud_municipality"]["code"] == m.code
        assert [u["name"] for u in gw["mfa_users"]] == [n for n, _ in generate.MFA_USERS]
        approved = gw.get("proxy_approved_destinations")
        alpha_prime = m.model is GuidelineModel.ALPHA_PRIME
        assert approved == ([generate.APPROVED_CLOUD] if alpha_prime else None), m.group
    # what the lab's roles read from group_vars/all, with this plan's addresses
    proxy = hostvars["sc-proxy"]
    vendor = str(next(h.primary_address for h in prefecture.shared_hosts
                      if h.role is HostRole.VENDOR_UPDATE_SOURCE))
    assert set(proxy["proxy_static_hosts"].values()) == {vendor}
    assert proxy["updates_store_endpoint"] == "https://198.18.2.10"
    assert proxy["log_collector_retention_days"] == 400


def test_three_municipalities_are_the_sample(tmp_path: Path) -> None:
    """The model of the sample (hosts, roles, addresses, codes, models, joint clouds), and its
    group_vars but the other prefecture's networks its proxy denies."""
    made, sample = inventory.load(lab(tmp_path / "lab3", 3)), inventory.load(SAMPLE)

    def model(p: inventory.Prefecture) -> Any:
        return (p.code, p.name_ja, p.name_romaji, dict(p.shared_networks),
                [(h.name, h.role, dict(h.addresses)) for h in p.shared_hosts],
                [(m.group, m.code, m.name_ja, m.name_romaji, m.model, m.joint_cloud,
                  dict(m.segments),
                  sorted((h.name, h.role, tuple(h.addresses.items()), h.outside_address)
                         for h in m.hosts)) for m in p.municipalities])

    assert model(made) == model(sample)
    tracked = subprocess.run(["git", "ls-files", "inventories/sample/group_vars"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    assert tracked
    for name in tracked:
        theirs = yaml.safe_load((REPO / name).read_text(encoding="utf-8"))
        ours = yaml.safe_load((made.path / Path(name).relative_to("inventories/sample"))
                              .read_text(encoding="utf-8"))
        theirs.pop("proxy_denied_networks", None)
        assert ours == theirs, name
    sample_vars = yaml.safe_load((SAMPLE / "hosts.yml").read_text(encoding="utf-8"))
    made_vars = yaml.safe_load((made.path / "hosts.yml").read_text(encoding="utf-8"))
    for m in sample.municipalities:
        groups = ("all", "children", "municipalities", "children", m.group, "vars")
        a, b = sample_vars, made_vars
        for key in groups:
            a, b = a[key], b[key]
        assert a == b, m.group  # mfa_users, the delivery window


def test_sizes_are_comparable_the_models_cycle_and_each_keeps_the_samples_hosts(
        tmp_path: Path) -> None:
    sample = inventory.load(SAMPLE)
    by_model = {m.model: kinds(m) for m in sample.municipalities}
    okayama = inventory.load(REPO / "inventories" / "okayama")
    beta_prime = next(m for m in okayama.municipalities if m.model is GuidelineModel.BETA_PRIME)
    # β' as okayama's 岡山市 has it, with the sample's one LGWAN terminal
    by_model[GuidelineModel.BETA_PRIME] = sorted({*kinds(beta_prime)})
    cycle = [GuidelineModel.ALPHA, GuidelineModel.BETA, GuidelineModel.ALPHA_PRIME,
             GuidelineModel.BETA_PRIME]
    seen: dict[int, list[Any]] = {}
    for count in (1, 3, 12):
        p = inventory.load(lab(tmp_path / f"lab{count}", count))
        assert [m.model for m in p.municipalities] == [cycle[i % 4] for i in range(count)]
        for m in p.municipalities:
            assert kinds(m) == by_model[m.model], (count, m.group)
        seen[count] = [(m.group, m.code, kinds(m)) for m in p.municipalities]
        assert [h.name for h in p.shared_hosts] == [h.name for h in sample.shared_hosts]
    assert seen[12][:3] == seen[3] and seen[3][:1] == seen[1]


def test_the_output_depends_on_the_options_only(tmp_path: Path) -> None:
    a, b = lab(tmp_path / "a", 12), lab(tmp_path / "b", 12)
    assert listing(a) == listing(b)
    for name in listing(a):
        if (a / name).is_file():
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_the_largest_lab_fills_the_lab_range_and_one_more_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    biggest = inventory.load(lab(tmp_path / "big", generate.LAB_MAX))
    assert topology.problems(biggest) == []
    assert cli(["generate", "lab", "-n", str(generate.LAB_MAX + 1), "-o",
                str(tmp_path / "over")]) == 2
    err = capsys.readouterr().err
    assert "--municipalities" in err and "198.18.0.0/15" in err and "nothing was written" in err
    assert not (tmp_path / "over").exists()


def test_generated_yaml_passes_yamllint(tmp_path: Path) -> None:
    out = lab(tmp_path / "lab3", 3)
    proc = subprocess.run([str(BIN / "yamllint"), "-s", "-c", str(REPO / ".yamllint"), str(out)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout


# --- the national inventories -------------------------------------------------------------------


def test_national_is_47_prefectures_of_1741_municipal_bodies_each_valid(
        national: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirs = sorted(national.iterdir())
    assert [d.name[:2] for d in dirs] == [f"{n:02d}" for n in range(1, 48)]
    prefectures = []
    for d in dirs:
        assert cli(["validate", str(d)]) == 0, capsys.readouterr().err
        assert capsys.readouterr().out.startswith("ok: ")
        prefectures.append(inventory.load(d))
    assert sum(len(p.municipalities) for p in prefectures) == generate.NATIONAL_TOTAL == 1741
    assert sum(count for *_, count in generate.PREFECTURES) == 1741
    expected = {f"{n:02d}": (name, count) for n, name, _, count in generate.PREFECTURES}
    codes: Counter[str] = Counter()
    for p in prefectures:
        by_model: dict[GuidelineModel, list[tuple[str, str | None]]] = {}
        assert inventory.code_problem(p.code) is None and p.code[2:5] == "000"
        assert (p.name_ja, len(p.municipalities)) == expected[p.code[:2]]
        assert p.management, p.name  # so every gateway's ruleset compiles
        for m in p.municipalities:
            assert m.code[:2] == p.code[:2]
            codes[m.code] += 1
            assert len(m.hosts) == HOSTS_PER_TOWN
            assert by_model.setdefault(m.model, kinds(m)) == kinds(m), m.group
    assert len(codes) == 1741 and max(codes.values()) == 1
    tokyo = prefectures[12]
    assert [m.code[2:5] for m in tokyo.municipalities[:23]] == [f"{101 + i}" for i in range(23)]
    # no two prefectures share a range, or an outside address: one cloud may take several
    ranges = [n.cidr for p in prefectures for n in p.networks]
    collapsed = list(ipaddress.collapse_addresses(ranges))
    assert sum(n.num_addresses for n in collapsed) == sum(r.num_addresses for r in ranges)
    outside = [m.gateway.outside_address for p in prefectures for m in p.municipalities]
    assert len(set(outside)) == 1741


def test_national_rulesets_compile_and_nft_accepts_a_sample(national: Path,
                                                            tmp_path: Path) -> None:
    """The largest prefecture: every gateway's ruleset; nft -c on its first gateway, a shared
    host's (a drop-log set per municipality) and each kind of segment host."""
    hokkaido = inventory.load(national / "01-hokkaido")
    assert len(hokkaido.municipalities) == 179
    texts = {m.gateway.name: nftables.gateway_ruleset(hokkaido, m.group)
             for m in hokkaido.municipalities}
    assert all("chain forward" in t for t in texts.values())
    if shutil.which("nft") is None:
        pytest.fail("nft is not installed: run ./scripts/install.sh (Debian's nftables)")
    first = hokkaido.municipalities[0]
    names = [first.gateway.name, "sc-proxy", "log-collector",
             *(h.name for h in first.hosts if h.role is not HostRole.GATEWAY)]
    for name in names:
        path = tmp_path / f"{name}.nft"
        path.write_text(nftables.ruleset(hokkaido, name))
        checked = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True,
                                 check=False)
        assert checked.returncode == 0, (name, checked.stderr)


# --- bad options: a clear error naming the option, and nothing written -------------------------


@pytest.mark.parametrize("count", ["0", "-3"])
def test_too_few_municipalities_are_refused(tmp_path: Path, count: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "deep" / "lab"
    assert cli(["generate", "lab", "--municipalities", count, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--municipalities: {count} is not between 1 and {generate.LAB_MAX}" in err
    assert listing(tmp_path) == []


def test_a_count_that_is_no_number_is_refused_by_the_parser(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli(["generate", "lab", "--municipalities", "twelve", "--output", str(tmp_path / "x")])
    assert exc.value.code == 2
    assert "--municipalities" in capsys.readouterr().err
    assert listing(tmp_path) == []


def test_an_output_that_is_not_empty_is_refused_and_left_alone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for args in (["lab", "-n", "3"], ["national"]):
        assert cli(["generate", *args, "--output", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"--output: {out} exists and is not empty" in err and "--force" in err
    # --force replaces only what `municloud generate` wrote
    assert cli(["generate", "lab", "-n", "3", "--output", str(out), "--force"]) == 2
    assert "was not written by `municloud generate`" in capsys.readouterr().err
    assert listing(tmp_path) == ["mine", "mine/notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"


def test_force_replaces_a_generated_directory_whole(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = lab(tmp_path / "lab", 3)
    (out / "group_vars" / "all" / "lab.yml").write_text("---\n")  # as `lab up` leaves it
    assert cli(["generate", "lab", "-n", "1", "--output", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert cli(["generate", "lab", "-n", "1", "--output", str(out), "--force"]) == 0
    assert len(inventory.load(out).municipalities) == 1
    assert not (out / "group_vars" / "all" / "lab.yml").exists()
    assert not (out / "group_vars" / "kurayoshi_shi").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab"]  # no staging, no old copy


def test_an_empty_directory_is_used_and_missing_parents_are_made(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    lab(tmp_path / "empty", 1)
    lab(tmp_path / "a" / "b" / "c", 1)
    assert len(inventory.load(tmp_path / "a" / "b" / "c").municipalities) == 1


@pytest.mark.parametrize("where", ["file", "under_a_file"])
def test_an_output_that_cannot_be_a_directory_is_refused(
        tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    out = tmp_path / "f" if where == "file" else tmp_path / "f" / "lab"
    assert cli(["generate", "lab", "-n", "1", "--output", str(out)]) == 2
    assert "--output: " in capsys.readouterr().err
    assert listing(tmp_path) == ["f"]


def test_an_inventory_the_model_refuses_is_never_put_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A defect of the generator (here a wrong check digit) is caught by the validator in the
    staging directory: the output, and the parents this run would have made, do not appear."""
    real = generate.lab_files

    def broken(count: int) -> dict[str, str]:
        files = real(count)
        files["hosts.yml"] = files["hosts.yml"].replace('code: "312011"', 'code: "312012"')
        return files

    monkeypatch.setattr(generate, "lab_files", broken)
    assert cli(["generate", "lab", "-n", "3", "--output", str(tmp_path / "a" / "lab")]) == 1
    err = capsys.readouterr().err
    assert "has check digit 2, but its first five digits need 1" in err
    assert "nothing was written" in err
    assert listing(tmp_path) == []


# --- the model's speed-ups give what the code they replaced gave -------------------------------


# Every ruleset of a 12-municipality lab (the four models; towns with and without a joint cloud),
# as the code before the speed-ups wrote them (both computed here, 2026-12-01, and equal).
LAB12_RULESETS_SHA256 = "9fe5de5c85a7359971666f9c478d5b46ef29322e13c91c13b75799518277ed2b"


def test_every_ruleset_of_a_generated_lab_is_what_the_model_wrote_before_its_speed_ups(
        tmp_path: Path) -> None:
    prefecture = dataclasses.replace(
        inventory.load(lab(tmp_path / "lab12", 12)),
        management=(ipaddress.IPv4Network("198.18.1.254/32"),
                    ipaddress.IPv4Network("192.0.2.0/28")))
    digest = hashlib.sha256()
    for host in prefecture.hosts:
        digest.update(nftables.ruleset(prefecture, host.name).encode())
    assert digest.hexdigest() == LAB12_RULESETS_SHA256, (
        "a firewall ruleset changed: if the segment policy, the rendering or the generator "
        "changed on purpose, write the new digest into LAB12_RULESETS_SHA256")


def test_collapse_is_ipaddress_collapse_addresses() -> None:
    rng = random.Random(1741)
    for _ in range(300):
        nets = []
        for _ in range(rng.randint(1, 40)):
            prefix = rng.choice((32, 32, 32, 31, 30, 29, 28, 24))
            start = (0xC6120000 + rng.randint(0, 600)) & ~((1 << (32 - prefix)) - 1)
            nets.append(ipaddress.IPv4Network((start, prefix)))
        assert policy.collapse(nets) == list(ipaddress.collapse_addresses(nets)), nets


def test_overlapping_ranges_are_reported_as_the_pairwise_check_reported_them() -> None:
    """The sweep finds the pairs the check of every pair found, in the same order and words."""
    rng = random.Random(15)
    for _ in range(100):
        shared = {SharedNetwork.INTERNET: inventory.Network(
            "internet", ipaddress.IPv4Network("198.18.0.0/24"))}
        groups: dict[str, Any] = {}
        made: list[ipaddress.IPv4Network] = []
        for g in range(rng.randint(1, 12)):
            segments = {}
            for seg in ("individual_number", "lgwan", "internet"):
                prefix = rng.choice((22, 23, 24, 25, 30, 32))
                start = (0xC6120000 + rng.randint(0, 4000)) & ~((1 << (32 - prefix)) - 1)
                if prefix == 32 and made and rng.random() < 0.5:
                    # the last address of another range: they overlap in that one address
                    start = int(rng.choice(made).broadcast_address)
                made.append(ipaddress.IPv4Network((start, prefix)))
                segments[seg] = str(made[-1])
            groups[f"town_{g}"] = {"vars": {"municloud_municipality": {"segments": segments}}}
        out = Collector("hosts.yml")
        overlapping = inventory._check_ranges(out, shared, groups)
        nets = [(f"all.vars.municloud_prefecture.shared_networks.{n.name}", n)
                for n in shared.values()]
        for group, body in groups.items():
            for seg, cidr in body["vars"]["municloud_municipality"]["segments"].items():
                nets.append((f"all.children.municipalities.children.{group}.vars."
                             f"municloud_municipality.segments.{seg}",
                             inventory.Network(seg, ipaddress.IPv4Network(cidr), group)))
        expected, ids = [], set()
        for i, (key_a, a) in enumerate(nets):
            for key_b, b in nets[i + 1:]:
                if a.cidr.overlaps(b.cidr):
                    expected.append((key_b, f"{b.cidr} ({b.id}) overlaps {a.cidr} ({a.id}, at "
                                     f"{key_a})"))
                    ids |= {a.id, b.id}
        assert [(p.key, p.message) for p in out.problems] == expected
        assert overlapping == ids


TRICKY_YAML = [
    "",
    "---\n",
    "a: 1\nb: [1, 2.5, true, null, ~, 2026-12-01, '3', \"x\", 0o17, 0x1f, 1_000, .inf]\n",
    "a: &x {b: 1}\nc: *x\n",
    "base: &b {x: 1}\nmore:\n  <<: *b\n  y: 2\n",
    "a: 1\na: 2\n",
    "a: 1\n1: 2\n'1': 3\n",
    "secret: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n",
    "a: !!str 1\n",
    "---\na: 1\n---\nb: 2\n",
    "? [a, b]\n: 1\n",
    "a: [1, 2\n",
    "a: b: c\n",
    "- 1\n- [2, {3: 4}]\n",
    "a: =\n",
    "empty:\nlist: []\nmap: {}\n",
]


def _loader(text: str) -> tuple[str, Any]:
    loader = yamlfile._StrictLoader(text)
    loader.duplicates = []
    try:
        return "ok", (loader.get_single_data(), loader.duplicates)
    except Exception as exc:  # compared as text
        return "error", str(exc)
    finally:
        loader.dispose()


@pytest.mark.parametrize("text", TRICKY_YAML)
def test_the_plain_yaml_path_gives_what_the_loader_gives_or_leaves_it_to_the_loader(
        text: str, tmp_path: Path) -> None:
    plain, data = yamlfile._plain(text)
    kind, expected = _loader(text)
    if plain:
        assert kind == "ok" and expected[1] == [], text
        assert repr(data) == repr(expected[0]), text
    path = tmp_path / "tricky.yml"
    path.write_text(text, encoding="utf-8")
    out = Collector(str(path))
    assert repr(yamlfile.read(path, out)) == repr(expected[0] if kind == "ok" else None)
    assert bool(out.problems) == (kind == "error" or bool(expected[1]))


def test_the_plain_yaml_path_reads_every_yaml_file_of_the_project_as_the_loader_does(
        national: Path, tmp_path: Path) -> None:
    tracked = subprocess.run(["git", "ls-files", "*.yml", "*.yaml"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    files = [REPO / f for f in tracked] + [national / "13-tokyo" / "hosts.yml"]
    files += sorted(lab(tmp_path / "lab12", 12).rglob("*.yml"))
    plain_count = 0
    for f in files:
        text = f.read_bytes().decode("utf-8-sig")
        plain, data = yamlfile._plain(text)
        kind, expected = _loader(text)
        if plain:
            plain_count += 1
            assert kind == "ok" and expected[1] == [], f
            assert repr(data) == repr(expected[0]), f
    assert plain_count > len(files) * 0.9  # the fast path is the common one
