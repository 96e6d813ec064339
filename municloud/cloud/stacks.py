"""Find a stack of the cloud programs and run it under mocks with its own stack file's config.

``security-cloud/tottori`` means ``pulumi/security-cloud/Pulumi.tottori.yaml``; a path to a
``Pulumi.<stack>.yaml`` works too. The program's own ``__main__.py`` is run, as ``pulumi up``
would, but under :mod:`municloud.cloud.mockrun`: no engine, no provider, no account, no network.
Secrets cannot be decrypted offline, so every secret (``secure:`` values and the secret keys the
programs require) gets a placeholder, and the caller is told which.
"""

from __future__ import annotations

import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from municloud.cloud.config import NAMESPACE, SECRET_KEYS

if TYPE_CHECKING:
    from municloud.cloud.mockrun import Graph

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = REPO / "pulumi"
PLACEHOLDER = "offline-plan-placeholder"


class StackError(Exception):
    """The stack cannot be found or read; the message says what to do."""


@dataclass(frozen=True)
class Stack:
    project: str
    name: str
    program_dir: Path
    stack_file: Path
    config: dict[str, Any] = field(default_factory=dict)
    secret_keys: tuple[str, ...] = ()
    placeholders: tuple[str, ...] = ()  # secrets replaced by a placeholder offline

    @property
    def ref(self) -> str:
        return f"{self.project}/{self.name}"


def available() -> list[str]:
    return sorted(f"{f.parent.name}/{f.name[len('Pulumi.'):-len('.yaml')]}"
                  for f in PROGRAMS.glob("*/Pulumi.*.yaml"))


def resolve(ref: str | Path) -> Stack:
    """The stack named ``project/stack``, or the one whose stack file is at ``ref``."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        stack_file = path.resolve()
    else:
        project, _, name = str(ref).partition("/")
        stack_file = PROGRAMS / project / f"Pulumi.{name}.yaml"
        if not name or not stack_file.is_file():
            raise StackError(f"no stack {ref!r}: use one of {', '.join(available())}, "
                             "or give the path of a Pulumi.<stack>.yaml")
    program_dir = stack_file.parent
    project_file = program_dir / "Pulumi.yaml"
    if not project_file.is_file():
        raise StackError(f"{program_dir} has no Pulumi.yaml: a stack file belongs next to its "
                         "program's Pulumi.yaml")
    project = str((yaml.safe_load(project_file.read_text(encoding="utf-8")) or {}).get("name"))
    name = stack_file.name[len("Pulumi."):].rsplit(".", 1)[0]
    data = yaml.safe_load(stack_file.read_text(encoding="utf-8")) or {}
    raw = data.get("config") or {}
    if not isinstance(raw, dict):
        raise StackError(f"{stack_file}: `config:` must be a mapping of key: value")
    config: dict[str, Any] = {}
    secrets: list[str] = []
    placeholders: list[str] = []
    for key, value in raw.items():
        full = key if ":" in key else f"{project}:{key}"
        if isinstance(value, dict) and "secure" in value:
            config[full] = PLACEHOLDER
            secrets.append(full)
            placeholders.append(full)
        else:
            config[full] = value
    for key in SECRET_KEYS:
        full = f"{NAMESPACE}:{key}"
        if full not in config:
            config[full] = PLACEHOLDER
            secrets.append(full)
            placeholders.append(full)
    return Stack(project, name, program_dir, stack_file, config, tuple(secrets),
                 tuple(placeholders))


def run(stack: Stack, preview: bool = False) -> Graph:
    """Run the stack's ``__main__.py`` under mocks and return the recorded graph (of a first
    ``pulumi preview`` with ``preview``: ids and computed values unknown)."""
    from municloud.cloud.mockrun import run_program

    main = stack.program_dir / "__main__.py"
    if not main.is_file():
        raise StackError(f"{stack.program_dir} has no __main__.py")
    return run_program(lambda: runpy.run_path(str(main), run_name="__main__") and None,
                       config=stack.config, project=stack.project, stack=stack.name,
                       secret_keys=list(stack.secret_keys), preview=preview)
