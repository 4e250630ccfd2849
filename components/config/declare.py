"""How a config key is declared, and how pydantic's findings become the project's messages.

A key is one field of a frozen pydantic dataclass in `model`: its Python name (the
camelCase key is derived, or given as `alias`), its type, its default, a `Rule` (the check,
the rule's wording, the JSON Schema it publishes) and a one-line `doc`:

    max_nodes: Annotated[int, Int(1, 1000), about("autoscaling maximum per zone", example=10)] = 3

pydantic walks the structure (objects, lists, unknown and missing keys, defaults) and
collects every problem at once; `validate` turns each one into a line that names the key
path and the rule, the unknown-key line with its "did you mean".
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo
from pydantic.alias_generators import to_camel
from pydantic_core import core_schema

from components.config.rules import Problems, is_int, unknown_key_message

# Every section: camelCase keys, unknown keys refused, immutable, constructible by Python name too.
SECTION = ConfigDict(alias_generator=to_camel, extra="forbid", validate_by_name=True,
                     validate_by_alias=True, arbitrary_types_allowed=True)


class RuleError(ValueError):
    """A broken rule: one line per problem, `<value> <rule>`, or `@.<sub-key> …` / `@[<index>] …` for a part."""

    def __init__(self, *lines: str) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


class Rule:
    """A key's check, its wording for the docs table, and its JSON Schema.

    `check(value, context)` returns the typed value or raises RuleError; `context` is the
    validation context (e.g. the declared cluster names) that `validate` always passes.
    """

    text = ""

    def __init__(self, why: str = "") -> None:
        self.why = why

    def check(self, value: Any, context: Mapping[str, Any] | None) -> Any:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        return {}

    def fail(self, value: Any, rule: str) -> RuleError:
        return RuleError(f"{value!r} {rule}{self.why}")

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        def run(value: Any, info: ValidationInfo) -> Any:
            if info.context is None:
                # Built in code (a component, a tool, a test), not read from a stack: a typed value, kept
                # as given. `validate` always passes a context, so every stack value is checked.
                return tuple(value) if isinstance(value, list) else value
            return self.check(value, info.context)

        return core_schema.with_info_plain_validator_function(run)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return self.schema()


class Bool(Rule):
    text = "bool"

    def check(self, value: Any, context: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(value, "must be true or false")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class Int(Rule):
    def __init__(self, low: int, high: int | None = None, why: str = "") -> None:
        super().__init__(why)
        self.low, self.high = low, high
        self.text = f"int {low}–{high}" if high is not None else f"int ≥ {low}"

    def check(self, value: Any, context: Any) -> int:
        if not is_int(value) or value < self.low or (self.high is not None and value > self.high):
            rule = (f"must be an integer from {self.low} to {self.high}" if self.high is not None
                    else f"must be an integer >= {self.low}")
            raise self.fail(value, rule)
        return int(value)

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer", "minimum": self.low}
        if self.high is not None:
            out["maximum"] = self.high
        return out


class Number(Rule):
    """A finite number; `above` is an exclusive lower bound, `low`/`high` inclusive ones."""

    def __init__(self, *, above: float | None = None, low: float | None = None, high: float | None = None,
                 why: str = "") -> None:
        super().__init__(why)
        self.above, self.low, self.high = above, low, high
        if above == 0 and high is None:
            self.rule, self.text = "must be a finite positive number", "number > 0"
        elif above is not None:
            self.rule = f"must be a number above {above:g} and at most {high:g}"
            self.text = f"number, {above:g} < x ≤ {high:g}"
        else:
            self.rule, self.text = f"must be a number from {low:g} to {high:g}", f"number {low:g}–{high:g}"

    def check(self, value: Any, context: Any) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (self.above is None or value > self.above) and (self.low is None or value >= self.low)
        if not ok or (self.high is not None and value > self.high):
            raise self.fail(value, self.rule)
        return float(value)

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "number"}
        for k, v in (("exclusiveMinimum", self.above), ("minimum", self.low), ("maximum", self.high)):
            if v is not None:
                out[k] = v
        return out


class Choice(Rule):
    def __init__(self, *values: str, why: str = "") -> None:
        super().__init__(why)
        self.values = values
        self.text = " / ".join(f"`{v}`" for v in values)

    def check(self, value: Any, context: Any) -> str:
        if value not in self.values or not isinstance(value, str):
            raise self.fail(value, f"must be one of {', '.join(self.values)}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.values)}


class Check(Rule):
    """A rule written as a function: `fn(value, context)` returns the typed value or raises RuleError."""

    def __init__(self, fn: Callable[[Any, Mapping[str, Any] | None], Any], text: str,
                 schema: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.fn, self.text, self._schema = fn, text, dict(schema or {"type": "string"})

    def check(self, value: Any, context: Any) -> Any:
        return self.fn(value, context)

    def schema(self) -> dict[str, Any]:
        return dict(self._schema)


@dataclasses.dataclass(frozen=True)
class Doc:
    """A key's documentation: one line of what it drives, an example, and the default in words if needed."""

    doc: str
    example: Any = None
    default: str | None = None


def about(doc: str, *, example: Any = None, default: str | None = None, alias: str | None = None,
        repr: bool = True) -> Any:
    """The documentation (and, rarely, the key's name when it is not the camelCase field name)."""
    extra: dict[str, Any] = {}
    if default is not None:
        extra["x-default"] = default
    return Field(alias=alias, description=doc, examples=None if example is None else [example],
                 json_schema_extra=extra or None, repr=repr)


# ------------------------------------------------------------------ walking the declaration

def _unwrap(tp: Any) -> Any:
    """The declared class behind Annotated/Optional, or the item type of a tuple/list."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0]
        else:
            return tp


def declared_fields(cls: Any) -> dict[str, Any]:
    """camelCase key -> pydantic FieldInfo of a section."""
    return {info.alias or name: info for name, info in cls.__pydantic_fields__.items()}


def rule_of(info: Any) -> Rule | None:
    return next((m for m in info.metadata if isinstance(m, Rule)), None)


def section_of(info: Any) -> Any:
    """The nested section a field holds (itself, or as list items), or None for a plain value."""
    tp = _unwrap(info.annotation)
    if typing.get_origin(tp) in (tuple, list):
        tp = _unwrap(typing.get_args(tp)[0])
    return tp if dataclasses.is_dataclass(tp) and hasattr(tp, "__pydantic_fields__") else None


def _owner(root: Any, loc: Sequence[Any]) -> Any:
    """The section class that holds the last element of `loc`."""
    cls = root
    for part in loc[:-1]:
        if isinstance(part, int) or cls is None:
            continue
        info = declared_fields(cls).get(part)
        cls = section_of(info) if info is not None else None
    return cls


def path(prefix: str, loc: Sequence[Any]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_CONTAINER = {"dataclass_type": "an object", "dataclass_args_type": "an object", "dict_type": "an object",
              "model_type": "an object", "tuple_type": "a list", "list_type": "a list"}


def messages(error: ValidationError, root: Any, prefix: str) -> list[str]:
    """pydantic's errors as the project's lines: the key path, the value and the rule."""
    out: list[str] = []
    for e in error.errors(include_url=False):
        loc = tuple(e["loc"])
        where = path(prefix, loc)
        kind = e["type"]
        if kind == "missing":
            out.append(f"{where} is required")
        elif kind in ("extra_forbidden", "unexpected_keyword_argument"):
            owner = _owner(root, loc)
            known = list(declared_fields(owner)) if owner is not None else []
            out.append(unknown_key_message(where, known))
        elif kind in _CONTAINER:
            out.append(f"{where} must be {_CONTAINER[kind]}, got {type(e['input']).__name__}")
        elif kind == "value_error" and isinstance(e.get("ctx", {}).get("error"), RuleError):
            for line in e["ctx"]["error"].lines:
                out.append(f"{where}{line[1:]}" if line.startswith("@") else f"{where} {line}")
        else:  # not expected from the rules above; still name the key
            out.append(f"{where} {e['input']!r}: {e['msg']}")
    return out


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def validate(cls: Any, raw: Any, key_path: str, p: Problems, context: Mapping[str, Any] | None = None) -> Any:
    """`raw` (the user's keys) as a `cls`, or None with every problem added to `p`."""
    adapter = _ADAPTERS.get(cls)
    if adapter is None:
        adapter = _ADAPTERS[cls] = TypeAdapter(cls)
    try:
        return adapter.validate_python({} if raw is None else raw, context=dict(context or {}),
                                       by_alias=True, by_name=False)
    except ValidationError as error:
        for line in messages(error, cls, key_path):
            p.add(line)
        return None


def validate_key(owner: Any, alias: str, raw: Any, key_path: str, p: Problems,
                 context: Mapping[str, Any] | None = None) -> Any:
    """One key of `owner` (e.g. StackConfig's `meshNamespaces`) as declared, or None with its problems in `p`."""
    cache_key = (owner, alias)
    adapter = _ADAPTERS.get(cache_key)
    if adapter is None:
        info = declared_fields(owner)[alias]
        tp = typing.Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        adapter = _ADAPTERS[cache_key] = TypeAdapter(tp)
    try:
        return adapter.validate_python(raw, context=dict(context or {}))
    except ValidationError as error:
        for line in messages(error, section_of(declared_fields(owner)[alias]) or owner, key_path):
            p.add(line)
        return None
