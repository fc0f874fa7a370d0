"""The one config base: frozen dataclasses read from YAML or nested dicts with one behaviour.

Every component config of the project subclasses :class:`Config` and is declared
``@dataclass(frozen=True, kw_only=True)``. Its fields may be other dataclasses (nested sections of
the YAML); :meth:`Config.from_dict` builds them recursively, turns YAML lists into tuples where a
field is a tuple, reads numbers YAML 1.1 leaves as strings (``1e-3``) into float fields, and refuses
what it does not know with a ``ValueError`` naming the key, its nesting path and the file::

    configs/x.yaml: unknown key 'sam.bogus' (known: ['checkpoint', 'variant', ...])

Overrides are dotted keys (``lora.r=8`` strings whose values are parsed as YAML, or a mapping
``{"lora.r": 8}`` of values taken as they are), applied to the plain dict before it is built, so
they meet the same checks as the file. No third-party import happens at module import.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

Overrides = Sequence[str] | Mapping[str, Any]
"""``["a.b=3", ...]`` (values parsed as YAML scalars) or ``{"a.b": 3}`` (values used as given)."""


class Config:
    """Mixin for ``@dataclass(frozen=True, kw_only=True)`` configs: dict / YAML round trip."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Self:
        """Build from nested plain dicts (e.g. parsed YAML or checkpoint metadata).

        ``source`` names where ``data`` came from in error messages (default: the class name).
        Unknown or missing keys, and a value that should be a section but is not a mapping, raise
        ``ValueError``; so do the invariants each config checks in ``__post_init__``.
        """
        where = source or cls.__name__
        try:
            return _build(cls, data, path="", where=where)
        except ValueError as err:
            if str(err).startswith(f"{where}: "):
                raise
            raise ValueError(f"{where}: {err}") from err

    @classmethod
    def from_yaml(cls, path: str | Path, *, overrides: Overrides = ()) -> Self:
        """Read a YAML file whose top level is this config's fields, then apply ``overrides``."""
        data = apply_overrides(read_yaml_mapping(path), overrides)
        return cls.from_dict(data, source=str(path))

    def with_overrides(self, overrides: Overrides) -> Self:
        """A copy with ``overrides`` applied, rebuilt through :meth:`from_dict` (so checked again)."""
        return type(self).from_dict(apply_overrides(self.to_dict(), overrides), source="overrides")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples become lists) that :meth:`from_dict` reads back."""
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload]


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file (an empty file is ``{}``; anything else raises)."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def apply_overrides(data: Mapping[str, Any], overrides: Overrides) -> dict[str, Any]:
    """A deep copy of ``data`` with dotted-key ``overrides`` applied (missing sections are created)."""
    out = copy.deepcopy(dict(data))
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = [_parse_override(item) for item in overrides]
    for key, value in items:
        *parents, leaf = key.split(".")
        node = out
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {key!r}: {parent!r} is not a mapping")
        node[leaf] = value
    return out


def _parse_override(item: str) -> tuple[str, Any]:
    import yaml

    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ValueError(f"override {item!r} is not key=value")
    return key, yaml.safe_load(raw)


def _build(cls: type, data: Any, *, path: str, where: str) -> Any:
    if not isinstance(data, Mapping):
        name = path.rstrip(".") or "top level"
        raise ValueError(f"{where}: {name!r} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        keys = ", ".join(repr(f"{path}{k}") for k in unknown)
        plural = "s" if len(unknown) > 1 else ""
        raise ValueError(f"{where}: unknown key{plural} {keys} (known: {sorted(fields)})")
    missing = [
        name
        for name, f in fields.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        keys = ", ".join(repr(f"{path}{k}") for k in missing)
        raise ValueError(f"{where}: missing key{'s' if len(missing) > 1 else ''} {keys}")
    hints = typing.get_type_hints(cls)
    kwargs = {key: _value(hints[key], value, path=f"{path}{key}", where=where) for key, value in data.items()}
    return cls(**kwargs)


def _value(hint: Any, value: Any, *, path: str, where: str) -> Any:
    """``value`` read as type ``hint``: sections built, lists made tuples, numeric strings made floats."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if union else (hint,)
    if value is None:
        return None
    section = next((t for t in options if dataclasses.is_dataclass(t)), None)
    if section is not None and (isinstance(value, Mapping) or len(options) == 1):
        return _build(section, value, path=f"{path}.", where=where)
    if any(typing.get_origin(t) is tuple or t is tuple for t in options) and isinstance(value, list):
        return tuple(value)
    if float in options and isinstance(value, str | int) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{where}: {path} {value!r} is not a number") from None
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
