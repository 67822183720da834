"""Strict YAML -> dataclass configs, `--set` overrides, and saving the resolved config.

Each component owns a `@dataclass` next to its code; `RootConfig` (raylm/root.py) only
composes them. This module knows nothing about any component: it walks type hints.

Rules (STYLE.md 4):
- an unknown key is an error naming the full dotted path and listing the valid keys;
- a wrong type is an error naming the path, the expected type and the value;
- numbers are coerced by the declared type, so PyYAML's string "3e-4" becomes 3e-4 for a
  float field (PyYAML only reads `3.0e-4` as a float);
- `--set a.b.c=value` parses `value` as YAML and assigns it before validation, so an
  override goes through exactly the same checks as the file.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from raylm import atomic


class ConfigError(ValueError):
    """A config problem; the message names the key path and what was expected."""


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Return `value` converted to the annotated type `tp`, or raise ConfigError."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{path}: {value!r} is not valid; choose one of {', '.join(map(repr, choices))}")
        return value
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        key_tp, val_tp = typing.get_args(tp) or (str, Any)
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return {_coerce(k, key_tp, path): _coerce(v, val_tp, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value.replace("_", ""))
            except ValueError:
                pass
            else:
                if f.is_integer():
                    return int(f)
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass `cls` from a mapping, strictly. `path` prefixes error messages."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or '<root>'}: expected a mapping of {cls.__name__} keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        where = f"{path}.{unknown[0]}" if path else str(unknown[0])
        raise ConfigError(f"unknown key '{where}'; valid keys{' under ' + repr(path) if path else ''}: "
                          + ", ".join(sorted(fields)))
    kwargs = {k: _coerce(v, hints[k], f"{path}.{k}" if path else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path and not str(e).startswith(path) else str(e)) from None
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{path or '<root>'}: {e}") from None


def to_dict(obj: Any) -> Any:
    """Dataclass tree -> plain dict/list/scalars, ready for yaml.safe_dump."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def parse_override(item: str) -> tuple[list[str], Any]:
    """'a.b.c=value' -> (['a','b','c'], yaml-parsed value)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, for example train.optim.lr=1e-3")
    key, raw = item.split("=", 1)
    keys = key.strip().split(".")
    if not all(keys):
        raise ConfigError(f"--set {item!r}: empty part in key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {item!r}: value is not valid YAML: {e}") from None
    return keys, value


def set_path(raw: dict, keys: list[str], value: Any) -> None:
    """Assign `value` at dotted `keys` in a nested dict, creating mappings as needed."""
    node = raw
    for i, k in enumerate(keys[:-1]):
        nxt = node.get(k)
        if nxt is None:
            nxt = node[k] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"{'.'.join(keys[: i + 1])} is a value, not a section; cannot set "
                              f"{'.'.join(keys)}")
        node = nxt
    node[keys[-1]] = value


def read_yaml(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping of sections")
    return data


def load(cls: type, path: str | os.PathLike | None = None, overrides: list[str] | tuple = ()) -> Any:
    """Read YAML at `path` (or start empty), apply `--set` overrides, validate into `cls`."""
    raw = read_yaml(path) if path else {}
    for item in overrides:
        keys, value = parse_override(item)
        set_path(raw, keys, value)
    return from_dict(cls, raw)


def dump(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False, default_flow_style=None)


@functools.cache
def field_comments(cls: type) -> dict[str, str]:
    """{field: its comment in the class source} for a config dataclass: the `# ...` after the
    field on its line, plus the comment-only lines right below it that are indented past it."""
    import inspect
    import re

    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    field_rx = re.compile(r"^(\s+)(\w+)\s*:[^#]*?(?:#\s?(.*))?$")
    last, last_indent = None, 0
    names = {f.name for f in dataclasses.fields(cls)}
    for line in lines[1:]:
        m = field_rx.match(line)
        if m and m.group(2) in names:
            last, last_indent = m.group(2), len(m.group(1))
            if m.group(3):
                out[last] = m.group(3).strip()
        elif last in out and line.strip().startswith("#") and line.index("#") > last_indent:
            out[last] += " " + line.strip().lstrip("#").strip()  # the comment runs on, aligned right of it
        else:
            last = None
    return out


def dump_commented(obj: Any) -> str:
    """`dump(obj)` with each field's comment from the code beside its value (`raylm check`)."""
    import re

    text = yaml.safe_dump(to_dict(obj), sort_keys=False, default_flow_style=False)  # a key per line
    stack: list[tuple[int, Any]] = [(-1, obj)]  # (indent, the dataclass whose fields sit deeper)
    out = []
    for line in text.splitlines():
        m = re.match(r"^(\s*)(\w+):(.*)$", line)
        if not m:
            out.append(line)
            continue
        indent, key = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        owner = stack[-1][1] if stack else None
        comment = field_comments(type(owner)).get(key) if dataclasses.is_dataclass(owner) else None
        value = getattr(owner, key, None) if dataclasses.is_dataclass(owner) else None
        if dataclasses.is_dataclass(value):
            stack.append((indent, value))
        out.append(f"{line}  # {comment}" if comment else line)
    return "\n".join(out) + "\n"


def save(obj: Any, path: str | os.PathLike) -> Path | str:
    """Write the resolved config atomically (raylm.atomic: temp name then rename, or one upload
    to an object store), opening with the run's provenance as comments."""
    from raylm import storage

    from raylm import provenance

    text = provenance.comment() + dump(obj)  # versions, commit, command, host as comments
    if storage.is_remote(storage.location(path)):
        return atomic.write_text(storage.location(path), text)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return atomic.write_text(p, text)
