"""A model file checked against the published schema (the ``bsmschema`` package, the
specification's own Pydantic models), its errors turned into one line naming the JSON
path."""

from __future__ import annotations

import re

from .errors import InputError
from .stats_model import _shown


class _Repeated(Exception):
    pass


class _Constant(Exception):
    pass


_UNION_TAG = re.compile(r"^(str|int|float|bool|none|[a-z-]+\[.*\])$")


def check_schema(spec: dict, source: str = "model") -> None:
    """Validate against the published schema (``bsmschema``); one line on failure."""
    from bsmschema.models import BIDSStatsModel
    from pydantic import ValidationError

    try:
        BIDSStatsModel.model_validate(spec)
    except ValidationError as exc:
        raise InputError(f"{source}: {_schema_error(exc.errors())}") from None


def _schema_error(errors: list) -> str:
    """One line for pydantic's errors: the first place, the alternatives a union
    allowed there merged, at the deepest place a union's branches reached."""
    def split(loc):
        for i, part in enumerate(loc):
            if isinstance(part, str) and _UNION_TAG.match(part):
                return loc[:i]
        return loc

    def clean(loc):
        return tuple(p for p in loc if not (isinstance(p, str) and _UNION_TAG.match(p)))

    prefix = split(errors[0]["loc"])
    group = [e for e in errors if split(e["loc"]) == prefix]
    depth = max(len(clean(e["loc"])) for e in group)
    group = [e for e in group if len(clean(e["loc"])) == depth]
    where = _json_path(clean(group[0]["loc"]))
    messages = list(dict.fromkeys(e["msg"] for e in group))
    lead = "Input should be "
    if len(messages) > 1 and all(m.startswith(lead) for m in messages):
        message = lead + " or ".join(m[len(lead):] for m in messages)
    else:
        message = "; ".join(messages)
    message = message[:1].lower() + message[1:]
    if group[0]["type"] != "missing":
        message += f" (got {_shown(group[0].get('input'))})"
    return f"{where}: {message}" if where else message


def _json_path(loc) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


