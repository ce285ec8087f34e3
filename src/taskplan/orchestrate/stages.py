"""The pipeline's stages as dvc.yaml describes them: order, inputs, outputs, and the wiring between them.

    from taskplan.orchestrate.stages import load_stages, stage_configs
    stages = load_stages("dvc.yaml")                 # generate .. register, in dvc.yaml's order
    cfgs = stage_configs(stages, "params.yaml", ["sft.max_steps=2"])
    inputs_digest(stages["sft"], cfgs["sft"])        # cache key: the deps dvc.yaml lists, as this config reads them

dvc.yaml is the one description of the stages. The flow runs its stages that are neither frozen nor
`foreach` templates, in file order. Paths are written once, in params.yaml, and dvc.yaml names them with
DVC's templating (`${sft.out_dir}`), which this module fills in the same way. A path in dvc.yaml is thus the
params.yaml path of some config field, so a path is resolved through the stage's config: the field whose params.yaml value
is that path (or a folder above it) gives the path this run really uses (after `--set` overrides). Code deps
(`src/taskplan/...`) resolve to the installed package, so a run from another directory hashes the code it
runs. Hashing skips what `.dvcignore` tells DVC to skip.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

import taskplan
from taskplan.catalog import StageSpec, stage_specs
from taskplan.config import load_config, read_params
from taskplan.errors import ConfigError
from taskplan.io import path_digest

BIG_FILE = 64 << 20     # larger files are fingerprinted by size + mtime (a cache key need not read 3 GB)
CODE_PREFIX = "src/taskplan/"

@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]          # outs, metrics and plots: everything the stage writes
    root: Path                     # dvc.yaml's folder: literal paths are relative to it

    @property
    def code(self) -> tuple[str, ...]:
        return tuple(d for d in self.deps if d.startswith(CODE_PREFIX))

    @property
    def data(self) -> tuple[str, ...]:
        return tuple(d for d in self.deps if not d.startswith(CODE_PREFIX))

    @property
    def spec(self) -> StageSpec:
        """The stage's catalog entry (taskplan/catalog.py): its config, run and how the flow treats it."""
        return stage_specs()[self.name]


@dataclasses.dataclass(frozen=True)
class StageIO:
    """What one run of a stage reads and writes: (dvc.yaml path, the path this config uses) pairs."""

    root: Path
    inputs: tuple[tuple[str, Path | None], ...]
    outputs: tuple[tuple[str, Path | None], ...]


def stage_io(stage: Stage, cfg: Any, defaults: Any) -> StageIO:
    """The stage's data deps and outs, resolved through its config (for tracking: datasets, artifacts)."""
    return StageIO(stage.root, tuple((d, resolve(stage, d, cfg, defaults)[0]) for d in stage.data),
                   tuple((o, resolve(stage, o, cfg, defaults)[0]) for o in stage.outs))


def stage_io_for(name: str, cfg: Any, params: Path | str) -> StageIO | None:
    """stage_io for a command run outside the flow: None where no dvc.yaml beside the params file lists it."""
    try:
        stages = load_stages(find_dvc_yaml(params))
    except ConfigError:
        return None
    if name not in stages:
        return None
    return stage_io(stages[name], cfg, load_config(type(cfg), name, params, []))


def find_dvc_yaml(params: Path | str) -> Path:
    """dvc.yaml beside the params file (the project root)."""
    path = Path(params).resolve().parent / "dvc.yaml"
    if not path.is_file():
        raise ConfigError(f"no dvc.yaml beside {params}: the pipeline's stages are read from it; run from the "
                          "project root or pass --params <project>/params.yaml")
    return path


def load_stages(dvc_yaml: Path | str) -> dict[str, Stage]:
    """The flow's stages (not frozen, not foreach), in dvc.yaml's order."""
    path = Path(dvc_yaml)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read {path} ({type(err).__name__}); restore it from git") from None
    variables = _dvc_vars(path.parent)
    stages: dict[str, Stage] = {}
    for name, body in (doc.get("stages") or {}).items():
        if "foreach" in body or body.get("frozen"):
            continue
        if name not in stage_specs() or not stage_specs()[name].pipeline:
            raise ConfigError(f"{path}: stage {name!r} has no pipeline StageSpec in the package (taskplan/catalog.py); "
                              "declare one in the stage's module, or freeze the stage")
        cmd = body["cmd"] if isinstance(body["cmd"], str) else " && ".join(body["cmd"])
        outs = [*_paths(body.get("outs")), *_paths(body.get("metrics")), *_paths(body.get("plots"))]
        deps = [_interpolate(p, variables, path) for p in _paths(body.get("deps"))]
        outs = [_interpolate(p, variables, path) for p in outs]
        stages[name] = Stage(name, cmd, tuple(deps), tuple(outs), path.parent.resolve())
    return stages


def stage_configs(stages: Iterable[str], params: Path | str, overrides: list[str]) -> dict[str, Any]:
    """Every stage's config from the params file (profile applied, overrides last): fails before any work."""
    return {name: load_config(_config_class(name), name, params, overrides) for name in stages}


def resolve(stage: Stage, path: str, cfg: Any, defaults: Any) -> tuple[Path | None, str | None]:
    """(the path this config uses for a dvc.yaml path, the config field it came from or None if literal).
    A field of `defaults` (params.yaml without overrides) equal to the path, or to a folder above it, maps
    it to the same field of `cfg`; list fields of `name=path` items map item by item."""
    if path.startswith(CODE_PREFIX):
        return Path(taskplan.__file__).parent / path.removeprefix(CODE_PREFIX), None
    target = Path(path)
    best: tuple[int, str, Path | None] | None = None
    for field, default, current in _field_paths(defaults, cfg):
        if default.parts and (default == target or default in target.parents):
            rest = target.relative_to(default)
            depth = len(default.parts)
            if best is None or depth > best[0]:
                best = (depth, field, None if current is None else current / rest)
    if best is None:
        return stage.root / target, None
    return best[2], best[1]


def inputs_digest(stage: Stage, cfg: Any, defaults: Any) -> str:
    """sha256 over what the stage reads as dvc.yaml lists it: data deps resolved through the config, and the
    package code deps."""
    ignore = dvcignore(stage.root)
    h = hashlib.sha256()
    for dep in stage.deps:
        path, _ = resolve(stage, dep, cfg, defaults)
        digest = path_digest(path, quick_over=BIG_FILE, ignore=ignore) if path is not None else "none"
        h.update(f"{dep}\0{digest}\0".encode())
    return h.hexdigest()


def outputs_exist(stage: Stage, cfg: Any, defaults: Any) -> bool:
    """False when a cached result would point at outputs that are gone (then the stage runs again)."""
    for out in stage.outs:
        path, _ = resolve(stage, out, cfg, defaults)
        if path is not None and not path.exists():
            return False
    return True


def check_wiring(stages: dict[str, Stage], cfgs: dict[str, Any], defaults: dict[str, Any],
                 selected: list[str]) -> None:
    """Each selected stage must read what the selected stage before it writes (dvc.yaml's dep/out pairs,
    resolved through both configs): one-line ConfigError naming the field if not."""
    order = list(stages)
    for consumer in selected:
        for dep in stages[consumer].data:
            producer = _producer(stages, order[:order.index(consumer)], selected, dep)
            if producer is None:
                continue
            got, field = resolve(stages[consumer], dep, cfgs[consumer], defaults[consumer])
            want, _ = resolve(stages[producer], dep, cfgs[producer], defaults[producer])
            if field is None or got is None or want is None or _same(got, want):
                continue
            raise ConfigError(f"{consumer}.{field}={_value(cfgs[consumer], field, got)} but {producer} writes "
                              f"{want}; make them the same in the params file")


def dvcignore(root: Path) -> Callable[[str], bool]:
    """A matcher for names under a hashed folder, from `.dvcignore` (gitignore syntax)."""
    import pathspec

    try:
        lines = (root / ".dvcignore").read_text().splitlines()
    except OSError:
        lines = []
    spec = pathspec.GitIgnoreSpec.from_lines(lines)
    return spec.match_file


# --- helpers ----------------------------------------------------------------------------------------------

_TEMPLATE = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")


def _dvc_vars(root: Path) -> dict[str, Any]:
    """What DVC interpolates `${section.key}` in dvc.yaml from: the params.yaml beside it (through the
    bounded params reader), or nothing when there is none."""
    path = root / "params.yaml"
    return read_params(path) if path.exists() else {}


def _interpolate(entry: str, variables: dict[str, Any], dvc_yaml: Path) -> str:
    """A dvc.yaml path with its `${section.key}` templates filled in as DVC does (paths are written once, in
    params.yaml; dvc.yaml names the key). A key that a smaller params file leaves out is the stage config's
    default, which is what the stage runs with (DVC itself needs the key in params.yaml)."""
    def lookup(match: re.Match) -> str:
        section, _, key = match.group(1).partition(".")
        values = variables.get(section)
        value = values.get(key) if isinstance(values, dict) else None
        if value is None and section in stage_specs():
            value = {f.name: f.default for f in dataclasses.fields(stage_specs()[section].config)}.get(key)
        if value is None or value is dataclasses.MISSING:
            raise ConfigError(f"{dvc_yaml}: ${{{match.group(1)}}} is not a key of params.yaml; add it there "
                              "or write the path in dvc.yaml")
        return str(value)

    return _TEMPLATE.sub(lookup, entry)


def _paths(entries: Any) -> list[str]:
    """dvc.yaml lists: plain paths, or {path: {options}}."""
    out = []
    for entry in entries or ():
        out.extend([entry] if isinstance(entry, str) else list(entry))
    return out


def _config_class(name: str) -> type:
    return stage_specs()[name].config


def _field_paths(defaults: Any, cfg: Any) -> Iterable[tuple[str, Path, Path | None]]:
    """(field, its params.yaml path, the same field's path in cfg) for every path-like field and property."""
    names = [f.name for f in dataclasses.fields(defaults)]
    names += [n for n, v in vars(type(defaults)).items() if isinstance(v, property)]
    for name in names:
        default, current = getattr(defaults, name), getattr(cfg, name)
        if isinstance(default, (str, Path)) and _pathlike(default):
            yield name, Path(default), None if current is None else Path(current)
        elif isinstance(default, (list, tuple)):
            mine = dict(_named(current or ()))
            for key, value in _named(default):
                if _pathlike(value):
                    yield name, Path(value), Path(mine[key]) if key in mine else None


def _named(items: Iterable[Any]) -> list[tuple[str, str]]:
    """`name=path` items (policy specs) as (name, path); other string items as (item, item)."""
    out = []
    for item in items:
        if isinstance(item, (str, Path)):
            key, sep, value = str(item).partition("=")
            out.append((key, value) if sep else (str(item), str(item)))
    return out


def _pathlike(value: Any) -> bool:
    return isinstance(value, Path) or ("/" in str(value) and "://" not in str(value))


def _producer(stages: dict[str, Stage], before: list[str], selected: list[str], dep: str) -> str | None:
    """The last selected stage before the consumer whose outs contain (or are inside) `dep`."""
    for name in reversed(before):
        if name in selected and any(_overlap(dep, out) for out in stages[name].outs):
            return name
    return None


def _overlap(a: str, b: str) -> bool:
    pa, pb = Path(a), Path(b)
    return pa == pb or pb in pa.parents or pa in pb.parents


def _same(a: Path, b: Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _value(cfg: Any, field: str, resolved: Path) -> Any:
    value = getattr(cfg, field)
    return resolved if isinstance(value, (list, tuple)) else value
