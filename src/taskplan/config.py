"""Typed stage configs loaded strictly from params.yaml.

`load_config(cls, section, path, overrides)` merges, in order:
`common.seed`, the stage's `section`, `profiles[common.profile][section]`,
then `--set key=value` overrides (`key` or `section.key`; `common.seed` and
`common.profile` too). Like nanoGPT's configurator it refuses unknown keys,
unknown sections and type changes, so a misspelt key fails at load time
instead of deep inside a run. Core code receives the resulting
frozen dataclass and never opens params.yaml itself.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from taskplan.errors import ConfigError
from taskplan.io import check_output_dir, check_output_path, read_text_input

log = logging.getLogger(__name__)
T = TypeVar("T")


def read_params(path: Path | str) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise ConfigError(f"parameters file {path} not found; run from the project root or pass --params FILE")
    text = read_text_input(path, "parameters file", ConfigError, "pass --params FILE")
    try:
        data = yaml.safe_load(text) or {}
        check_expanded_size(data, str(path))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML ({str(err).splitlines()[0]}); fix the file") from None
    except RecursionError:
        raise ConfigError(f"{path} nests too deeply to be a parameters file; fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections; fix the file")
    return data


def load_config(cls: type[T], section: str, path: Path | str = "params.yaml",
                overrides: list[str] | tuple[str, ...] = (), profile: str | None = None) -> T:
    """Build `cls` from params.yaml (see module docstring)."""
    values: dict[str, Any] = {}
    for _, layer in config_layers(cls, section, path, overrides, profile):
        values.update(layer)
    cfg = build_config(cls, values, where=f"{path}:{section}")
    check_outputs(cfg)
    return cfg


def config_layers(cls: type, section: str, path: Path | str = "params.yaml",
                  overrides: list[str] | tuple[str, ...] = (), profile: str | None = None
                  ) -> list[tuple[str, dict[str, Any]]]:
    """The values that override the code defaults, in the order they apply, each with its source:
    common.seed, params.yaml's section, the profile's section, then `--set`."""
    params = read_params(path) if Path(path).exists() or path != "params.yaml" else {}
    own, common_set = _split_overrides(overrides, section, params, path)
    common = {**_mapping(params.get("common"), "common", path), **common_set}
    profile = profile or common.get("profile")
    if profile is not None and not isinstance(profile, str):
        raise ConfigError(f"common.profile={short_repr(profile)} in {path}: give one profile name, e.g. cpu-tiny")
    names = {f.name for f in dataclasses.fields(cls)}
    layers: list[tuple[str, dict[str, Any]]] = []
    if "seed" in names and "seed" in common:
        layers.append(("common.seed" + (" (--set)" if "seed" in common_set else ""), {"seed": common["seed"]}))
    layers.append((f"{Path(path).name}:{section}", _mapping(params.get(section), section, path)))
    if profile:
        profiles = _mapping(params.get("profiles"), "profiles", path)
        if profiles and profile not in profiles:
            raise ConfigError(f"unknown profile {profile!r} in {path}; try one of: {', '.join(map(str, profiles))}")
        chosen = _mapping(profiles.get(profile), f"profiles.{profile}", path)
        layers.append((f"profile {profile}", _mapping(chosen.get(section), f"profiles.{profile}.{section}", path)))
    layers.append(("--set", own))
    return layers


def effective_config(cls: type, section: str, path: Path | str = "params.yaml",
                     overrides: list[str] | tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every field of the stage's config as it runs: name, value, where the value came from (code default,
    params.yaml, profile, --set) and the help its declaration carries."""
    cfg = load_config(cls, section, path, overrides)
    source = {f.name: "code default" for f in dataclasses.fields(cls)}
    for name, layer in config_layers(cls, section, path, overrides):
        for key in layer:
            source[key] = name
    helps = field_help(cls)
    values = config_dict(cfg)
    return [{"name": f.name, "value": values[f.name], "source": source[f.name], "help": helps.get(f.name, "")}
            for f in dataclasses.fields(cls)]


def field_help(cls: type) -> dict[str, str]:
    """A field's help is the comment on its declaration line (`name: type = default  # help`), declared
    once in the config class (or the base class that declares it)."""
    import inspect
    import re

    out: dict[str, str] = {}
    pattern = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+)$")
    for klass in reversed(cls.__mro__):
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        for line in lines:
            m = pattern.match(line)
            if m:
                out[m.group(1)] = m.group(2).strip()
    return out


# Config fields that name what a stage writes: refused before any work when the path holds something that
# must not be replaced (taskplan.io). Inputs never carry these names.
OUTPUT_DIRS = ("out_dir", "outputs_dir", "plots_dir", "checkpoint_dir")
OUTPUT_FILES = ("metrics_path", "stats_path", "out_path", "decision_path", "report_path", "verdict_path",
                "cross_task_path", "single_turn_path", "holdout_path")


def check_outputs(cfg: Any) -> None:
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if not isinstance(value, (str, Path)) or not str(value):
            continue
        if f.name in OUTPUT_DIRS:
            check_output_dir(value)
        elif f.name in OUTPUT_FILES:
            check_output_path(value)


def build_config(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Coerce `values` onto the dataclass fields of `cls`; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(values) - set(fields)))
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


def _mapping(value: Any, where: str, path: Path | str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} in {path} must be a mapping of key: value, not {type(value).__name__}; fix the file")
    return dict(value)


def _split_overrides(overrides: list[str] | tuple[str, ...], section: str, params: dict[str, Any],
                     path: Path | str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parse `--set [section.]key=value` items: (this section's values, common's values).

    An override for another known section (one of params.yaml's, as `taskplan pipeline` passes every
    override to every stage) is skipped; an unknown section or an unparsable value is an error."""
    known = {section, "common"} | {str(k) for k in params if k != "profiles"}
    own: dict[str, Any] = {}
    common: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value; e.g. --set {section}.max_steps=2")
        sec = section
        if "." in key:
            sec, _, key = key.partition(".")
            if sec not in known:
                raise ConfigError(f"override {item!r} names unknown section {sec!r}; valid sections: "
                                  f"{', '.join(sorted(known))}")
        if sec not in (section, "common"):
            continue  # an override meant for another stage
        (own if sec == section else common)[key] = _yaml_value(item, raw)
    allowed = {"seed", "profile"} | set(_mapping(params.get("common"), "common", path))
    unknown = sorted(set(common) - allowed)
    if unknown:
        raise ConfigError(f"unknown key common.{unknown[0]} in --set; valid keys: {', '.join(sorted(allowed))}")
    return own, common


def _yaml_value(item: str, raw: str) -> Any:
    import yaml

    try:
        value = yaml.safe_load(raw)
        check_expanded_size(value, f"override {short_repr(item)}")
        return value
    except RecursionError:
        raise ConfigError(f"override {short_repr(item)}: value nests too deeply; give a plain value or list") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"override {short_repr(item)}: value {short_repr(raw)} is not valid YAML ({where}); quote strings, "
                          "close brackets, e.g. --set 'evaluate.seeds=[42, 84]'") from None


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
        raise ConfigError(f"{where}={short_repr(value)}: expected a path string")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}={short_repr(value)}: expected a list")
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, where) for v in value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}={short_repr(value)}: expected one of {', '.join(map(repr, args))}")
        return value
    if hint is float:
        if isinstance(value, str) and _looks_numeric(value):
            raise ConfigError(f"{where}={short_repr(value)}: YAML reads this as a string, not a number; write it "
                              f"with a dot and a signed exponent (e.g. 1.0e-3) or as a decimal (0.001)")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}={short_repr(value)}: expected a number")
        if not math.isfinite(value):
            raise ConfigError(f"{where}={value!r}: expected a finite number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}={short_repr(value)}: expected an integer")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}={short_repr(value)}: expected true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}={short_repr(value)}: expected a string")
        return value
    return value


MAX_YAML_VALUES = 100_000   # params.yaml has ~400; YAML aliases can make a few lines expand to billions


def check_expanded_size(data: Any, where: str, limit: int = MAX_YAML_VALUES) -> None:
    """Refuse YAML whose values, counted as a reader would see them (an alias counts each time it is
    used), exceed `limit`: an alias bomb is a few bytes that expand without bound."""
    stack, seen = [data], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > limit:
            raise ConfigError(f"{where} expands to more than {limit:,} values (nested YAML aliases?); "
                              "write the values out")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def short_repr(value: Any, limit: int = 60) -> str:
    """repr of a value for an error line, cut to `limit` characters (a value may be huge)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
