"""The command line of ``municloud cloud verify``: arguments, inventories, the report."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict

from municloud.cloud import tags
from municloud.cloud.verify.collect import _error_code, collect
from municloud.cloud.verify.model import (
    KINDS,
    SECURITY_CLOUD,
    Expected,
    Inventories,
    KnownRange,
    VerifyError,
)
from municloud.cloud.verify.registry import exit_code, run_checks, summary, verdicts

# --- inventory ---------------------------------------------------------------------------------


def load_inventories(paths: Sequence[str], cloud: str, kind: str) -> Inventories:
    """What the inventories say about ``cloud``; VerifyError if they do not describe it."""
    from municloud.inventory import InventoryError, load

    expected: list[Expected] = []
    ranges: list[KnownRange] = []
    for path in paths:
        try:
            pref = load(path)
        except InventoryError as exc:
            raise VerifyError(f"inventory {path} is not valid:\n{exc}") from None
        if kind == SECURITY_CLOUD:
            if pref.security_cloud != cloud:
                raise VerifyError(
                    f"inventory {path} ({pref.name_ja}) belongs to security cloud "
                    f"{pref.security_cloud!r}, not {cloud!r}: pass --cloud {pref.security_cloud} "
                    "or the inventory of a prefecture this cloud serves")
            members = list(pref.municipalities)
        else:
            members = [m for m in pref.municipalities if m.joint_cloud == cloud]
            if not members:
                clouds = sorted({m.joint_cloud for m in pref.municipalities if m.joint_cloud})
                raise VerifyError(
                    f"no municipality of inventory {path} ({pref.name_ja}) belongs to joint "
                    f"cloud {cloud!r} (its joint clouds: {', '.join(clouds) or 'none'})")
        expected.extend(Expected(m.code, m.name_ja, pref.name) for m in members)
        ranges.extend(KnownRange(str(n.cidr), None, pref.code, pref.name)
                      for n in pref.shared_networks.values())
        ranges.extend(KnownRange(str(n.cidr), m.code, pref.code, pref.name)
                      for m in pref.municipalities for n in m.segments.values())
    return Inventories(tuple(expected), tuple(ranges))


# --- command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    parser.description = (
        "Check a deployed security cloud (自治体情報セキュリティクラウド) or joint cloud "
        "(自治体クラウド) against the project's invariants. Credentials come from the usual "
        "boto3 chain (environment, profile, instance role). Exit 0: every check passed; "
        "1: a check failed or could not be checked; 2: verify could not run.")
    parser.add_argument("--kind", required=True, choices=KINDS, help="which kind of cloud")
    parser.add_argument("--cloud", required=True, metavar="NAME",
                        help=f"the value of the {tags.CLOUD} tag that selects the resources")
    parser.add_argument("--region", help="AWS region (default: the boto3 configuration's)")
    parser.add_argument("--endpoint-url", metavar="URL",
                        help="an AWS-compatible endpoint, e.g. a local moto server")
    parser.add_argument("--inventory", action="append", default=[], metavar="DIR",
                        help="an inventory whose municipalities this cloud serves; checks each "
                             "has its attachment or VPN (repeat for a multi-prefecture cloud)")
    parser.add_argument("--json", action="store_true", help="print a JSON report instead")


def main(args: argparse.Namespace) -> int:
    import boto3  # type: ignore[import-untyped,unused-ignore]
    from botocore.exceptions import (  # type: ignore[import-untyped,unused-ignore]
        BotoCoreError,
        ClientError,
        ConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    def fail(message: str) -> int:
        print(f"municloud cloud verify: {message}", file=sys.stderr)
        return 2

    try:
        inventories = (load_inventories(args.inventory, args.cloud, args.kind)
                       if args.inventory else None)
        session = boto3.session.Session(region_name=args.region)
        region = args.region or session.region_name
        if not region:
            return fail("no region: pass --region or set AWS_REGION / a profile region")
        state = collect(args.cloud, args.kind, region, args.endpoint_url, session)
    except VerifyError as exc:
        return fail(str(exc))
    except (NoCredentialsError, PartialCredentialsError, ProfileNotFound) as exc:
        return fail(f"no usable AWS credentials ({exc}); set AWS_PROFILE or "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on a host with a role")
    except NoRegionError:
        return fail("no region: pass --region or set AWS_REGION / a profile region")
    except ConnectionError as exc:
        where = args.endpoint_url or f"AWS in {args.region or 'the configured region'}"
        return fail(f"cannot reach {where} ({exc}); check --endpoint-url, the network and "
                    "any proxy settings")
    except ClientError as exc:
        return fail(f"AWS refused the credentials ({_error_code(exc)} on "
                    f"{getattr(exc, 'operation_name', '?')}); check which account and key "
                    "are in use")
    except BotoCoreError as exc:
        return fail(f"AWS client error: {exc}")

    findings = run_checks(state, inventories)
    if args.json:
        report = {
            "kind": state.kind,
            "cloud": state.cloud,
            "region": state.region,
            "ok": exit_code(findings) == 0,
            "summary": summary(state, findings),
            "checks": {k: v.value for k, v in verdicts(findings).items()},
            "findings": [{**asdict(f), "status": f.status.value} for f in findings],
        }
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        for finding in findings:
            print(finding.line())
        print(summary(state, findings))
    return exit_code(findings)
