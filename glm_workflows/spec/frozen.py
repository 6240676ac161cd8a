"""Plain JSON values <-> the hashable values a spec holds, and dataclasses <-> JSON
objects tagged with their ``type`` (the spec's JSON form; a spec holds no list, so every
list read back is a tuple)."""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass

from ..core.errors import InputError


@dataclass(frozen=True)
class FrozenMap:
    """A JSON object made hashable: sorted ``(key, value)`` pairs (values frozen too)."""

    items: tuple


def freeze(value):
    """JSON values -> hashable ones (objects: FrozenMap, lists: tuples)."""
    if isinstance(value, dict):
        return FrozenMap(tuple(sorted((str(k), freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value):
    """:func:`freeze` undone (tuples become lists)."""
    if isinstance(value, FrozenMap):
        return {k: thaw(v) for k, v in value.items}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def to_dict(value):
    """A dataclass (nested) as plain JSON values, each object tagged with its ``type``."""
    if is_dataclass(value):
        return {"type": type(value).__name__,
                **{f.name: to_dict(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, tuple):
        return [to_dict(v) for v in value]
    return value


def from_dict(value, types: dict):
    """:func:`to_dict` undone, with ``types`` naming the classes."""
    if isinstance(value, dict):
        cls = types.get(value.get("type"))
        if cls is None:
            raise InputError(f"spec JSON: unknown type {value.get('type')!r}")
        try:
            return cls(**{k: from_dict(v, types) for k, v in value.items() if k != "type"})
        except TypeError as exc:
            raise InputError(f"spec JSON: {exc}") from None
    if isinstance(value, list):
        return tuple(from_dict(v, types) for v in value)
    return value
