"""``municloud cloud plan STACK``: an offline plan of a cloud stack, under mocks.

Runs the stack's program (``pulumi/<project>/__main__.py``) with its stack file's config under
``pulumi.runtime.set_mocks``, then prints the resource tree (component -> children), counts per
type and per prefecture / municipality (from the tags), and the verdict of the project's CrossGuard
policy pack, run by its own program (``pulumi/policy``) and spoken to over gRPC as the engine does
(:mod:`municloud.cloud.engine`), twice: on the graph a first ``pulumi preview`` sends (ids and
ARNs unknown) and on the graph after ``pulumi up``. Exit status 1 if a mandatory policy fails in
either. With ``--same-account OTHER``, the other stacks are run too and the plan also refuses
what one account and region cannot hold twice (a GuardDuty detector, a KMS alias): the pack sees
one stack at a time and cannot tell.

This is NOT ``pulumi preview``: no Pulumi engine, no AWS provider and no cloud account is
consulted, so it cannot tell what exists already or what would change; ids and ARNs are invented
by the mocks. It proves what the program would ask for, offline, with no credentials.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from municloud.cloud.engine import PolicyResult
    from municloud.cloud.mockrun import Graph, Resource
    from municloud.cloud.stacks import Stack

DISCLAIMER = (
    "OFFLINE PLAN UNDER MOCKS - this is NOT `pulumi preview`.",
    "No Pulumi engine, no AWS provider and no cloud account were consulted; ids and ARNs are "
    "invented by the mocks.",
    "It shows what the program asks for and checks it against the policy pack; it cannot show "
    "what exists or would change.",
)


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("stack", help="project/stack, e.g. security-cloud/tottori, "
                        "security-cloud/okayama-tottori, joint-cloud/tottori-joint; or the path "
                        "of a Pulumi.<stack>.yaml")
    parser.add_argument("--same-account", action="append", default=[], metavar="STACK",
                        help="another stack the same AWS account and region will hold; the "
                        "plan also refuses what the stacks would collide on (a second GuardDuty "
                        "detector, a KMS alias or explicit name twice); repeatable")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument("--no-tree", action="store_true",
                        help="leave out the resource tree (counts and policies only)")


def _names(stack: Stack) -> dict[str, str]:
    """Code -> Japanese name of the prefectures and municipalities of the stack's inventories."""
    from municloud.inventory import InventoryError, load

    names: dict[str, str] = {}
    for raw in stack.config.get("municloud:inventories") or []:
        try:
            pref = load(stack.program_dir / str(raw))
        except InventoryError:
            continue
        names[pref.code] = pref.name_ja
        names.update({m.code: m.name_ja for m in pref.municipalities})
    return names


def _short(type_: str) -> str:
    return type_.rsplit(":", 1)[-1] if type_.startswith("municloud:") else type_


def tree_lines(graph: Graph) -> list[str]:
    lines: list[str] = []
    children: dict[str | None, list[Resource]] = {}
    urns = {r.urn for r in graph}
    for r in graph:
        children.setdefault(r.parent if r.parent in urns else None, []).append(r)

    def walk(parent: str | None, depth: int) -> None:
        for r in children.get(parent, []):
            kids = children.get(r.urn, [])
            suffix = f"  ({len(kids)} children)" if not r.custom else ""
            lines.append(f"{'  ' * depth}{r.name}  [{_short(r.type)}]{suffix}")
            walk(r.urn, depth + 1)

    for kids in children.values():
        kids.sort(key=lambda r: (r.custom, r.name))  # components first, then by name
    walk(None, 0)
    return lines


def counts(graph: Graph) -> dict[str, Any]:
    from municloud.cloud import tags

    cloud = graph.cloud_resources
    by_pref: Counter[str] = Counter()
    by_mun: Counter[str] = Counter()
    for r in cloud:
        t = r.tags
        if t.get(tags.MUNICIPALITY):
            by_mun[t[tags.MUNICIPALITY]] += 1
        if t.get(tags.PREFECTURE):
            by_pref[t[tags.PREFECTURE]] += 1
    return {
        "resources": len(graph),
        "cloud_resources": len(cloud),
        "components": sum(1 for r in graph if not r.custom),
        "providers": sum(1 for r in graph if r.is_provider),
        "untagged_by_design": sum(1 for r in cloud if not r.tags),
        "per_type": dict(Counter(r.type for r in graph).most_common()),
        "per_prefecture": dict(sorted(by_pref.items())),
        "per_municipality": dict(sorted(by_mun.items())),
    }


def render(stack: Stack, graph: Graph, results: list[PolicyResult], tree: bool = True) -> str:
    names = _names(stack)
    c = counts(graph)
    out = list(DISCLAIMER)
    out.append("")
    out.append(f"Stack {stack.ref} ({stack.stack_file})")
    if stack.placeholders:
        out.append(f"Secrets replaced by placeholders: {', '.join(stack.placeholders)}")
    out.append(f"Mock run: {graph.seconds:.2f} s")
    out.append("")
    out.append(f"{c['resources']} resources: {c['cloud_resources']} cloud resources, "
               f"{c['components']} components, {c['providers']} providers")
    if tree:
        out.append("")
        out.append("Resource tree (component -> children):")
        out.extend(f"  {line}" for line in tree_lines(graph))
    out.append("")
    out.append("Count per type:")
    out.extend(f"  {n:5d}  {t}" for t, n in c["per_type"].items())
    out.append("")
    out.append("Cloud resources per prefecture / municipality (by tags; shared resources carry "
               "the lead prefecture):")
    for code, n in c["per_prefecture"].items():
        out.append(f"  {n:5d}  prefecture {code} {names.get(code, '')}".rstrip())
        for mcode, mn in c["per_municipality"].items():
            if mcode[:2] == code[:2]:
                out.append(f"  {mn:5d}    municipality {mcode} {names.get(mcode, '')}".rstrip())
    out.append(f"  {c['untagged_by_design']:5d}  untaggable by design "
               "(municloud.cloud.tags.UNTAGGABLE_TYPES)")
    out.append("")
    out.append(f"Policy pack municloud ({len(results)} policies), run by pulumi/policy as the "
               "engine runs it, at a first preview and at up:")
    for res in results:
        verdict = "PASS" if res.passed else "FAIL"
        out.append(f"  {verdict}  {res.name} [{res.enforcement}]: {res.description}")
        out.extend(f"          - {msg}" + (f" ({urn})" if urn else "")
                   for msg, urn in res.violations)
        out.extend(f"          ~ advisory: {msg}" for msg, _ in res.advisories)
    failed = [r for r in results if not r.passed and r.enforcement == "mandatory"]
    out.append("")
    out.append(f"Result: {len(failed)} mandatory policies fail" if failed
               else "Result: every mandatory policy passes (offline, under mocks)")
    return "\n".join(out)


def merge(preview: list[PolicyResult], up: list[PolicyResult]) -> list[PolicyResult]:
    """One verdict per policy over both runs; each finding says in which run it was made."""
    from municloud.cloud.engine import PolicyResult

    merged: dict[str, PolicyResult] = {}
    for phase, results in (("preview", preview), ("up", up)):
        for r in results:
            m = merged.setdefault(r.name, PolicyResult(r.name, r.description, r.enforcement))
            m.violations += [(f"[{phase}] {msg}", urn) for msg, urn in r.violations]
            m.advisories += [(f"[{phase}] {msg}", urn) for msg, urn in r.advisories]
    return list(merged.values())


def render_account(refs: list[str], collisions: list[str]) -> str:
    lines = ["", f"One account and region holds {', '.join(refs)}:"]
    lines += [f"  FAIL  {c}" for c in collisions] or ["  PASS  no detector, alias or explicit "
                                                      "name twice"]
    lines.append(f"Result: the stacks collide in one account ({len(collisions)})" if collisions
                 else "Result: the stacks can share one account and region")
    return "\n".join(lines)


def as_json(stack: Stack, graph: Graph, results: list[PolicyResult],
            collisions: list[str] | None = None) -> str:
    return json.dumps({
        "disclaimer": " ".join(DISCLAIMER),
        "offline": True,
        "stack": stack.ref,
        "stack_file": str(stack.stack_file),
        "placeholders": list(stack.placeholders),
        "seconds": round(graph.seconds, 3),
        "counts": counts(graph),
        "resources": [{"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent,
                       "custom": r.custom} for r in graph],
        "policies": [{"name": r.name, "enforcement": r.enforcement, "passed": r.passed,
                      "violations": [{"message": m, "urn": u} for m, u in r.violations],
                      "advisories": [{"message": m, "urn": u} for m, u in r.advisories]}
                     for r in results],
        "account_collisions": collisions or [],
    }, ensure_ascii=False, indent=2)


def main(args: argparse.Namespace) -> int:
    # Heavy imports (pulumi, pulumi_aws, pulumi_policy) only when the plan runs.
    from municloud.cloud import stacks
    from municloud.cloud.config import ConfigError
    from municloud.cloud.engine import AnalyzerError
    from municloud.cloud.mockrun import DEFAULT_REGION
    from municloud.cloud.policies import account_collisions, items_of, run_policy_pack

    try:
        stack = stacks.resolve(args.stack)
        preview = stacks.run(stack, preview=True)
        graph = stacks.run(stack)
        others = [stacks.resolve(ref) for ref in args.same_account]
        regions = {s.ref: str(s.config.get("aws:region", DEFAULT_REGION))
                   for s in (stack, *others)}
        if len(set(regions.values())) > 1:
            raise ConfigError("--same-account is for stacks in one account and region; these "
                              "are in " + ", ".join(f"{r} ({ref})" for ref, r in regions.items())
                              + ": plan them apart")
        neighbours = {other.ref: stacks.run(other, preview=True) for other in others}
    except (stacks.StackError, ConfigError) as exc:
        print(f"municloud cloud plan: {exc}", file=sys.stderr)
        return 2
    if not graph.resources:
        print(f"municloud cloud plan: {stack.ref} registered no resource; nothing was proven",
              file=sys.stderr)
        return 2
    try:
        results = merge(run_policy_pack(preview.resources), run_policy_pack(graph.resources))
    except AnalyzerError as exc:
        print(f"municloud cloud plan: {exc}", file=sys.stderr)
        return 2
    collisions = account_collisions({stack.ref: items_of(preview), **{
        ref: items_of(g) for ref, g in neighbours.items()}}) if neighbours else []
    if args.json:
        print(as_json(stack, graph, results, collisions))
    else:
        print(render(stack, graph, results, tree=not args.no_tree) + (
            render_account([stack.ref, *neighbours], collisions) if neighbours else ""))
    failed = [r for r in results if not r.passed and r.enforcement == "mandatory"]
    return 1 if failed or collisions else 0
