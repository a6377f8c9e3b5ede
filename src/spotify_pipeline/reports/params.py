"""The listening reports' parameters: each value validated and turned into an SQL literal, never pasted raw.

| parameter | accepts | becomes | default |
|---|---|---|---|
| `user` | a Spotify user ID (letters, digits, `._-+@`) | a quoted string | NULL = every user |
| `from`, `to` | `YYYY-MM-DD` (a real date; inclusive UTC days) | a UTC timestamp literal (*) | NULL = no bound |
| `period` | `day`, `week`, `month`, `year` | a quoted unit for `date_trunc` | `month` |
| `by` | `time`, `plays` | a quoted word | `time` |
| `include_incognito` | `true`/`false` (`1`/`0`, `yes`/`no`) | TRUE / FALSE | FALSE |

(*) `CAST('YYYY-MM-DD 00:00:00 UTC' AS TIMESTAMP WITH TIME ZONE)`; `to` becomes the start of the next day.
The literals are what DuckDB and Athena (Trino) both accept.
"""

from __future__ import annotations

import datetime as dt
import re

from ..errors import InputError

LISTENING_PARAMS = ("user", "from", "to", "period", "by", "include_incognito")
PERIODS = ("day", "week", "month", "year")
ORDERS = ("time", "plays")
_USER = re.compile(r"^[A-Za-z0-9._\-+@]{1,128}$")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")
NULL_TIME = "CAST(NULL AS TIMESTAMP WITH TIME ZONE)"


def parse_date(value: str, name: str) -> dt.date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        raise InputError(f"bad {name} date {value!r}", hint=f"use --param {name}=YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise InputError(f"bad {name} date {value!r}: {exc}", hint=f"use --param {name}=YYYY-MM-DD") from exc


def time_literal(day: dt.date) -> str:
    """The start of `day` in UTC, as a timestamp-with-time-zone literal (`day` is a date: digits only)."""
    return f"CAST('{day.isoformat()} 00:00:00 UTC' AS TIMESTAMP WITH TIME ZONE)"


def parse_flag(value: str, name: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InputError(f"bad {name} value {value!r}", hint=f"use --param {name}=true or false")


def _choice(value: str | None, name: str, choices: tuple[str, ...], default: str) -> str:
    text = (value or default).strip().lower()
    if text not in choices:
        raise InputError(f"bad {name} {value!r}", hint=f"{name} is one of: {', '.join(choices)}")
    return f"'{text}'"


def listening_literals(params: dict[str, str]) -> dict[str, str]:
    """Every listening placeholder -> its SQL literal, from `params` (validated) and the defaults."""
    user = (params.get("user") or "").strip()
    if user and not _USER.fullmatch(user):
        raise InputError(f"bad user {user!r}", hint="a Spotify user ID: letters, digits and . _ - + @")
    start = parse_date(params["from"], "from") if params.get("from") else None
    end = parse_date(params["to"], "to") if params.get("to") else None
    if start and end and end < start:
        raise InputError(f"to ({end}) is before from ({start})", hint="from and to are inclusive dates")
    return {
        "user": f"'{user}'" if user else "CAST(NULL AS VARCHAR)",
        "from": time_literal(start) if start else NULL_TIME,
        "to": time_literal(end + dt.timedelta(days=1)) if end else NULL_TIME,
        "period": _choice(params.get("period"), "period", PERIODS, "month"),
        "by": _choice(params.get("by"), "by", ORDERS, "time"),
        "include_incognito": str(parse_flag(params.get("include_incognito", ""), "include_incognito")).upper(),
    }
