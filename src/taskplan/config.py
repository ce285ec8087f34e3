"""Typed stage configs loaded strictly from params.yaml.

`load_config(cls, section, path, overrides)` merges, in order:
`common.seed`, the stage's `section`, `profiles[common.profile][section]`,
then `--set key=value` overrides (`key` or `section.key`). Like nanoGPT's
configurator it refuses unknown keys and type changes, so a misspelt key fails
at load time instead of deep inside a run. Core code receives the resulting
frozen dataclass and never opens params.yaml itself.
"""

from __future__ import annotations

import dataclasses
import logging
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from taskplan.errors import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")


def read_params(path: Path | str) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"parameters file {path} not found; run from the project root or pass --params FILE")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML ({str(err).splitlines()[0]}); fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections; fix the file")
    return data


def load_config(cls: type[T], section: str, path: Path | str = "params.yaml",
                overrides: list[str] | tuple[str, ...] = (), profile: str | None = None) -> T:
    """Build `cls` from params.yaml (see module docstring)."""
    params = read_params(path) if Path(path).exists() or path != "params.yaml" else {}
    common = params.get("common") or {}
    profile = profile or common.get("profile")
    values: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    if "seed" in names and "seed" in common:
        values["seed"] = common["seed"]
    values.update(_section(params, section, path))
    if profile:
        profiles = params.get("profiles") or {}
        if profiles and profile not in profiles:
            raise ConfigError(f"unknown profile {profile!r} in {path}; try one of: {', '.join(profiles)}")
        values.update((profiles.get(profile) or {}).get(section) or {})
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not key=value; e.g. --set {section}.max_steps=2")
        key = key.strip()
        if "." in key:
            sec, _, key = key.partition(".")
            if sec != section:
                continue  # an override meant for another stage
        import yaml

        values[key] = yaml.safe_load(raw)
    return build_config(cls, values, where=f"{path}:{section}")


def build_config(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Coerce `values` onto the dataclass fields of `cls`; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in {where}; valid keys: {', '.join(fields)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{where}: {err}") from None


def config_dict(cfg: Any) -> dict[str, Any]:
    """Flat, JSON-friendly view of a config (for logging what ran)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = str(v) if isinstance(v, Path) else (list(v) if isinstance(v, tuple) else v)
    return out


def _section(params: dict[str, Any], section: str, path: Path | str) -> dict[str, Any]:
    sec = params.get(section) or {}
    if not isinstance(sec, dict):
        raise ConfigError(f"section {section!r} in {path} must be a mapping")
    return dict(sec)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if hint is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ConfigError(f"{where}={value!r}: expected a path string")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}={value!r}: expected a list")
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, where) for v in value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}={value!r}: expected one of {', '.join(map(repr, args))}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}={value!r}: expected a number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}={value!r}: expected an integer")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}={value!r}: expected true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}={value!r}: expected a string")
        return value
    return value
