"""pulumi/inventory/aws_ec2.yml finds the security cloud's proxy instances as the program tags them.

The tags are read from each sample stack's resources under Pulumi mocks (the launch template's
instance tags and the auto scaling group's tags propagated at launch). Instances carrying exactly
those tags, and decoys, are made on a local moto server (loopback only), and the real
``amazon.aws.aws_ec2`` plugin, run by ``ansible-inventory`` on the shipped file (only an
``endpoint_url`` added), groups them: what is asserted is what Ansible's own templating made of
the file's keyed_groups and compose. Last, with the prefecture's inventory beside it, the proxy
role's filter renders each instance's squid.conf, which ``squid -k parse`` accepts, and refuses
an instance of another prefecture.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cloud_stacks import SECURITY_STACKS, graph

from municloud.cloud import stacks, tags

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "pulumi" / "inventory" / "aws_ec2.yml"
BIN = Path(sys.executable).parent
REGION = "ap-northeast-1"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"
SQUID = "/usr/sbin/squid"


def instance_tags(ref: str) -> dict[str, dict[str, str]]:
    """Prefecture code -> the tags an instance of its proxy fleet gets, from the graph; the
    launch template's and the auto scaling group's must agree."""
    g = graph(ref)
    out = {}
    for lt in g.of_type(LAUNCH_TEMPLATE):
        (spec,) = [s for s in lt.props["tagSpecifications"] if s["resourceType"] == "instance"]
        out[lt.tags[tags.PREFECTURE]] = dict(spec["tags"])
    for asg in g.of_type(ASG):
        launched = {t["key"]: t["value"] for t in asg.props["tags"] if t["propagateAtLaunch"]}
        assert launched == out[launched[tags.PREFECTURE]], asg.name
    assert out and all(t[tags.ROLE] == "proxy" for t in out.values())
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    empty = tmp_path_factory.mktemp("aws") / "empty"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": str(empty),
                "AWS_SHARED_CREDENTIALS_FILE": str(empty), "AWS_EC2_METADATA_DISABLED": "true",
                "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")})
    return env


@pytest.fixture(scope="module")
def endpoint(aws_env: dict[str, str]) -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _ec2(endpoint: str, aws_env: dict[str, str]) -> Any:
    import boto3

    return boto3.client("ec2", region_name=REGION, endpoint_url=endpoint,
                        aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"])


def _launch(ec2: Any, tag_set: dict[str, str]) -> str:
    image = ec2.describe_images()["Images"][0]["ImageId"]
    made = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t4g.small",
                             TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                 {"Key": k, "Value": v} for k, v in tag_set.items()]}])
    return str(made["Instances"][0]["InstanceId"])


def _source(tmp_path: Path, endpoint: str) -> Path:
    """The shipped source with only the endpoint added (the file name must end in aws_ec2.yml)."""
    data = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    data["endpoint_url"] = endpoint
    path = tmp_path / "aws_ec2.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _value(v: Any) -> Any:
    """A value as ansible-inventory --list writes it (data from the cloud is marked unsafe)."""
    return v["__ansible_unsafe"] if isinstance(v, dict) and "__ansible_unsafe" in v else v


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=REPO, env=env,
                          capture_output=True, text=True, check=False, timeout=300)


@pytest.mark.parametrize("ref", SECURITY_STACKS)
def test_the_source_groups_the_program_s_proxies(ref: str, tmp_path: Path, endpoint: str,
                                                 aws_env: dict[str, str]) -> None:
    fleet_tags = instance_tags(ref)
    ec2 = _ec2(endpoint, aws_env)
    proxies = {_launch(ec2, t): code for code, t in fleet_tags.items()}
    some = next(iter(fleet_tags.values()))
    decoys = [
        _launch(ec2, {**some, tags.ROLE: "log_collector"}),  # another role of the cloud
        _launch(ec2, {k: v for k, v in some.items() if k != tags.MANAGED_BY}),  # not ours
    ]
    stopped = _launch(ec2, some)
    ec2.stop_instances(InstanceIds=[stopped])
    listed = _run(aws_env, "ansible-inventory", "-i", str(_source(tmp_path, endpoint)), "--list")
    assert listed.returncode == 0, listed.stderr
    inv = json.loads(listed.stdout)
    hostvars = inv["_meta"]["hostvars"]
    # this module's moto server lives for every stack: each run sees the proxies made so far
    found = set(inv.get("municloud_role_proxy", {}).get("hosts", []))
    assert set(proxies) <= found
    assert not found & {*decoys, stopped}
    assert set(hostvars) == found
    for instance, code in proxies.items():
        assert instance in inv[f"municloud_prefecture_{code}"]["hosts"]
        v = {k: _value(x) for k, x in hostvars[instance].items()}
        assert v["municloud_role"] == "proxy"
        assert v["proxy_prefecture"] == code
        assert v["ansible_host"] == instance
        assert v["ansible_connection"] == "amazon.aws.aws_ssm"
        assert v["ansible_aws_ssm_region"] == REGION
    for code in fleet_tags:
        members = set(inv[f"municloud_prefecture_{code}"]["hosts"])
        assert {i for i, c in proxies.items() if c == code} <= members
        assert all(_value(hostvars[i]["proxy_prefecture"]) == code for i in members)


def test_the_role_renders_an_instance_s_config_with_its_prefecture_s_inventory(
        tmp_path: Path, endpoint: str, aws_env: dict[str, str]) -> None:
    """With the sample inventory beside the source: the Tottori instance's squid.conf, from the
    role's filter, passes squid -k parse and admits the sample's internet segments; an Okayama
    instance is refused, naming the group to limit the run to."""
    ref = "security-cloud/okayama-tottori"
    fleet_tags = instance_tags(ref)
    ec2 = _ec2(endpoint, aws_env)
    tottori, okayama = _launch(ec2, fleet_tags["310000"]), _launch(ec2, fleet_tags["330001"])
    source = _source(tmp_path, endpoint)
    sample = stacks.resolve(ref).program_dir / "../../inventories/sample"
    expression = ("{{ hostvars | municloud_proxy_squid_conf(groups, inventory_hostname, "
                  "{'prefecture': proxy_prefecture, 'deny_list': proxy_deny_list}) }}")
    out = tmp_path / "conf"
    rendered = _run(aws_env, "ansible", "-i", str(sample.resolve()), "-i", str(source), tottori,
                    "-m", "ansible.builtin.copy",
                    "-a", json.dumps({"content": expression, "dest": str(out)}),
                    "-e", "ansible_connection=local",
                    "-e", f"ansible_python_interpreter={sys.executable}")
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    config = out.read_text(encoding="utf-8")
    assert "http_port 3128\n" in config  # every address, behind the load balancer
    assert "acl municipality_clients src 198.18.18.0/24" in config
    assert "note municipality 312011 from_312011" in config
    assert "acl deny_list dstdomain -n blocked.lab.invalid" in config
    if os.access(SQUID, os.X_OK):
        parsed = subprocess.run([SQUID, "-k", "parse", "-f", str(out)], capture_output=True,
                                text=True, check=False, timeout=60)
        assert parsed.returncode == 0, parsed.stdout + parsed.stderr
    refused = _run(aws_env, "ansible", "-i", str(sample.resolve()), "-i", str(source), okayama,
                   "-m", "ansible.builtin.debug", "-a", f"msg={expression}")
    assert refused.returncode != 0
    assert "serves prefecture 330001, not Tottori (310000)" in refused.stdout + refused.stderr
    assert "municloud_prefecture_310000" in refused.stdout + refused.stderr
