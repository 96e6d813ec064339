"""Reading an inventory's YAML strictly: what PyYAML and Ansible let pass silently is a problem.

* A file that is not UTF-8 is a problem naming the byte and the line, not a traceback.
* A key given twice in one mapping is a problem naming both lines: YAML keeps the last value, so
  a second municipality group of the same name would silently replace the first.
* Ansible's own tags (``!vault``, ``!unsafe``) are read as opaque strings, so a vars file with a
  vaulted secret in it can still be read for the keys the model needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from municloud.problems import Collector


class VaultedValue(str):
    """A value Ansible decrypts (``!vault``); the model never needs its clear text."""


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """SafeLoader that reports duplicate keys and reads Ansible's tags as strings."""

    duplicates: list[tuple[str, int, int]]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int) and key in seen:
                self.duplicates.append((str(key), seen[key], line))
            elif isinstance(key, str | int):
                seen[key] = line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _opaque(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> str:
    value = loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else ""
    return VaultedValue(value) if suffix == "vault" else str(value)


_StrictLoader.add_multi_constructor("!", _opaque)


def read(path: Path, out: Collector) -> Any:
    """The YAML document in ``path``, or None with the reason added to ``out``."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        out.add(
            f"line {line}",
            f"not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start} cannot be decoded",
            "save the file as UTF-8 (e.g. `iconv -f SHIFT_JIS -t UTF-8`); Ansible and the "
            "model read inventories as UTF-8 only",
            root=True,
        )
        return None
    loader = _StrictLoader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        out.add("-", f"not valid YAML: {exc}".replace("\n", " "), "fix the YAML syntax", root=True)
        return None
    finally:
        loader.dispose()
    for key, first, again in loader.duplicates:
        out.add(
            f"line {again}",
            f"the key {key!r} is given twice in one mapping (lines {first} and {again}); YAML "
            "keeps only the last, so the first entry would be lost without a word",
            "give each entry its own key, or merge the two",
            root=True,
        )
    return data
