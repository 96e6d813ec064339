"""The CrossGuard policy pack (`pulumi up --policy-pack pulumi/policy`); every policy MANDATORY."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, PolicyPack

from municloud.cloud.policies import policy_pack_policies

PolicyPack(
    name="municloud",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policy_pack_policies(),
)
