"""Reading an inventory's YAML strictly: what PyYAML and Ansible let pass silently is a problem.

* A file that is not UTF-8 is a problem naming the byte and the line, not a traceback.
* A key given twice in one mapping is a problem naming both lines: YAML keeps the last value, so
  a second municipality group of the same name would silently replace the first.
* Ansible's own tags (``!vault``, ``!unsafe``) are read as opaque strings, so a vars file with a
  vaulted secret in it can still be read for the keys the model needs.

A document of plain mappings, sequences and scalars (what inventories are) is built straight from
libyaml's events (:func:`_plain`), without the loader's nodes: loading and validating the 47
inventories of `municloud generate national` took 4.9 s through the loader and 1.6 s so (measured
here, 2026-12-01; benchmarks/national.py). Anything else (anchors, aliases, tags, merge keys,
complex keys, a key given twice, several documents, a syntax error) is read by the loader, so
results and problems are the loader's (tests/unit/test_generate.py compares the two on every YAML
file of the project).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode

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


class _NotPlain(Exception):
    """The document uses more than plain mappings, sequences and scalars."""


_STR = "tag:yaml.org,2002:str"
# The scalar tags plain scalars resolve to that SafeConstructor builds (others, such as a merge
# key's, go to the loader).
_SCALARS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "timestamp")
)


def _plain(text: str) -> tuple[bool, Any]:
    """(True, the document) when ``text`` is one document of plain mappings, sequences and
    scalars with no key given twice, built as the loader would build it; (False, None) for
    anything else, which the loader reads instead."""
    loader = _StrictLoader(text)
    resolved: dict[tuple[str, tuple[bool, bool]], str] = {}

    def scalar(event: Any) -> Any:
        if event.anchor is not None or event.tag is not None:
            raise _NotPlain
        value = event.value
        key = (value, event.implicit)
        tag = resolved.get(key)
        if tag is None:
            tag = resolved[key] = loader.resolve(ScalarNode, value, event.implicit)
        if tag == _STR:
            return value
        if tag in _SCALARS:
            return loader.yaml_constructors[tag](loader, ScalarNode(tag, value))
        raise _NotPlain

    def node(event: Any) -> Any:
        if isinstance(event, ScalarEvent):
            return scalar(event)
        if event.__class__ is MappingStartEvent:
            if event.anchor is not None or event.tag is not None:
                raise _NotPlain
            mapping: dict[Any, Any] = {}
            while True:
                event = loader.get_event()
                if event.__class__ is MappingEndEvent:
                    return mapping
                if not isinstance(event, ScalarEvent):
                    raise _NotPlain
                key = scalar(event)
                if key in mapping:
                    raise _NotPlain  # the loader reports it, with both lines
                mapping[key] = node(loader.get_event())
        if event.__class__ is SequenceStartEvent:
            if event.anchor is not None or event.tag is not None:
                raise _NotPlain
            sequence: list[Any] = []
            while True:
                event = loader.get_event()
                if event.__class__ is SequenceEndEvent:
                    return sequence
                sequence.append(node(event))
        raise _NotPlain  # an alias

    try:
        if not isinstance(loader.get_event(), StreamStartEvent):
            return False, None
        event = loader.get_event()
        if isinstance(event, StreamEndEvent):
            return True, None  # an empty file
        if not isinstance(event, DocumentStartEvent):
            return False, None
        data = node(loader.get_event())
        if not isinstance(loader.get_event(), DocumentEndEvent):
            return False, None
        if not isinstance(loader.get_event(), StreamEndEvent):
            return False, None  # another document: the loader refuses that
        return True, data
    except Exception:  # a syntax error, or anything unexpected: the loader says what
        return False, None
    finally:
        loader.dispose()


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
    plain, data = _plain(text)
    if plain:
        return data
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
