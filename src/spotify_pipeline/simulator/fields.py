"""The Web API's `fields` filter: `a,b.c,items(added_at,track(name,album(!images)))`."""

from __future__ import annotations

from typing import Any

Selector = dict[str, "Selector | None"]  # name -> nested selector (None = the whole value)


class FieldsSyntaxError(ValueError):
    pass


def parse_fields(text: str) -> tuple[Selector, set[str]]:
    """Parse a fields expression into (included, excluded) at the top level."""
    selector, excluded, rest = _parse_list(text.replace(" ", ""), 0)
    if rest != len(text.replace(" ", "")):
        raise FieldsSyntaxError(f"unexpected character at {rest}")
    return selector, excluded


def _parse_list(text: str, pos: int) -> tuple[Selector, set[str], int]:
    included: Selector = {}
    excluded: set[str] = set()
    while pos < len(text) and text[pos] != ")":
        negate = text[pos] == "!"
        if negate:
            pos += 1
        start = pos
        while pos < len(text) and text[pos] not in ",.()!":
            pos += 1
        name = text[start:pos]
        if not name:
            raise FieldsSyntaxError(f"empty field name at {pos}")
        nested: Selector | None = None
        if pos < len(text) and text[pos] == ".":
            inner, inner_excluded, pos = _parse_path(text, pos + 1)
            nested = {**inner, **{f"!{n}": None for n in inner_excluded}}
        elif pos < len(text) and text[pos] == "(":
            inner, inner_excluded, pos = _parse_list(text, pos + 1)
            if pos >= len(text) or text[pos] != ")":
                raise FieldsSyntaxError("unbalanced parentheses")
            pos += 1
            nested = {**inner, **{f"!{n}": None for n in inner_excluded}}
        if negate:
            excluded.add(name)
        else:
            previous = included.get(name)
            included[name] = _merge(previous, nested) if name in included else nested
        if pos < len(text) and text[pos] == ",":
            pos += 1
    return included, excluded, pos


def _parse_path(text: str, pos: int) -> tuple[Selector, set[str], int]:
    """One dotted step: `b.c` after `a.` selects a single nested field."""
    negate = text[pos] == "!" if pos < len(text) else False
    if negate:
        pos += 1
    start = pos
    while pos < len(text) and text[pos] not in ",.()!":
        pos += 1
    name = text[start:pos]
    if not name:
        raise FieldsSyntaxError(f"empty field name at {pos}")
    nested: Selector | None = None
    if pos < len(text) and text[pos] == ".":
        inner, inner_excluded, pos = _parse_path(text, pos + 1)
        nested = {**inner, **{f"!{n}": None for n in inner_excluded}}
    elif pos < len(text) and text[pos] == "(":
        inner, inner_excluded, pos = _parse_list(text, pos + 1)
        pos += 1
        nested = {**inner, **{f"!{n}": None for n in inner_excluded}}
    if negate:
        return {}, {name}, pos
    return {name: nested}, set(), pos


def _merge(a: Selector | None, b: Selector | None) -> Selector | None:
    if a is None or b is None:
        return None
    merged = dict(a)
    for key, value in b.items():
        merged[key] = _merge(merged[key], value) if key in merged else value
    return merged


def apply_fields(value: Any, selector: Selector | None) -> Any:
    """Keep only what `selector` names; lists are filtered element by element."""
    if selector is None:
        return value
    if isinstance(value, list):
        return [apply_fields(v, selector) for v in value]
    if not isinstance(value, dict):
        return value
    excluded = {k[1:] for k in selector if k.startswith("!")}
    included = {k: v for k, v in selector.items() if not k.startswith("!")}
    if included:
        return {k: apply_fields(value[k], sub) for k, sub in included.items() if k in value}
    return {k: v for k, v in value.items() if k not in excluded}


def filter_fields(value: Any, expression: str) -> Any:
    included, excluded = parse_fields(expression)
    return apply_fields(value, {**included, **{f"!{n}": None for n in excluded}})
