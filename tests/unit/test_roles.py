"""Every role keeps its house rules: public variables are prefixed with the role's name, written
once in defaults/main.yml, described in meta/argument_specs.yml with the same default, and listed
in the role's README; internal ones are `__<role>_*` in vars/main.yml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir())


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None


@pytest.mark.parametrize("role", ROLES)
def test_defaults_specs_and_readme_agree(role: str) -> None:
    base = REPO / "roles" / role
    defaults = _yaml(base / "defaults" / "main.yml") or {}
    options = _yaml(base / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    readme = (base / "README.md").read_text(encoding="utf-8")
    assert set(defaults) == set(options), role
    for name, value in defaults.items():
        assert name.startswith(f"{role}_"), name
        assert f"`{name}`" in readme, f"{role}/README.md does not list {name}"
        spec = options[name]
        if "default" in spec:
            assert spec["default"] == value, name
        elif not (isinstance(value, str) and "{{" in value):
            pytest.fail(f"{name}: argument_specs gives no default")


@pytest.mark.parametrize("role", ROLES)
def test_internal_variables_are_dunder_prefixed(role: str) -> None:
    internal = _yaml(REPO / "roles" / role / "vars" / "main.yml") or {}
    for name in internal:
        assert name.startswith(f"__{role}_"), name
