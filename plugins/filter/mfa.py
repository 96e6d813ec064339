"""Filters of the mfa role (roles/mfa): the staff list joined with their enrolment."""

from __future__ import annotations

from typing import Any


def municloud_mfa_enrolled(users: Any, enrolment: Any) -> list[dict[str, str]]:
    """[{name, secret, password, enrolled}] for every user of ``users`` (mfa_users), from
    ``enrolment`` (mfa_enrolment, whose values Ansible decrypts from the vault when read here).
    The role refuses a user with no enrolment before it gets here."""
    joined = []
    for user in users:
        entry = enrolment[user["name"]]
        joined.append({
            "name": str(user["name"]),
            "secret": str(entry["totp_secret"]),
            "password": str(entry["password"]),
            "enrolled": str(entry["enrolled"]),
        })
    return joined


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"municloud_mfa_enrolled": municloud_mfa_enrolled}
