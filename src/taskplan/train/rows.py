"""Read the single-turn dataset (outputs/single_turn) the trainers consume, and check its shape.

    ds = load_rows("outputs/single_turn")       # DatasetDict: "train", "validation"
    val = validation_subset(ds, n=64, seed=42)

Columns (written by `taskplan build-dataset`): `prompt` (system + user chat
messages), `completion` (one assistant message "Action: <expert action>"),
`answer` (the expert action), `valid_actions`, `task`, `seed`, `step`. A
missing split or column is a one-line `DatasetError` here, before any model
is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taskplan.errors import DatasetError

REQUIRED_COLUMNS = ("prompt", "completion", "answer", "valid_actions")
SPLITS = ("train", "validation")


def load_rows(dataset_dir: Path | str, splits: tuple[str, ...] = SPLITS) -> Any:
    """The saved `DatasetDict`, checked for the splits and columns training needs."""
    from datasets import DatasetDict, load_from_disk

    dataset_dir = Path(dataset_dir)
    if not dataset_dir.exists():
        raise DatasetError(f"single-turn dataset {dataset_dir} does not exist; run `taskplan build-dataset` first")
    try:
        ds = load_from_disk(str(dataset_dir))
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise DatasetError(f"cannot read dataset {dataset_dir} ({str(err).splitlines()[0][:120]}); "
                           "rebuild it with `taskplan build-dataset`") from None
    if not isinstance(ds, DatasetDict):
        raise DatasetError(f"{dataset_dir} holds a single split; expected splits {', '.join(splits)}")
    for split in splits:
        if split not in ds:
            raise DatasetError(f"{dataset_dir} has no {split!r} split; rebuild it with `taskplan build-dataset`")
        missing = [c for c in REQUIRED_COLUMNS if c not in ds[split].column_names]
        if missing:
            raise DatasetError(f"{dataset_dir}:{split} lacks column(s) {', '.join(missing)}; "
                               "rebuild it with `taskplan build-dataset`")
        if len(ds[split]) == 0:
            raise DatasetError(f"{dataset_dir}:{split} is empty; generate more trajectories")
    return ds


def validation_subset(ds: Any, n: int, seed: int) -> Any:
    """A fixed random sample of `n` validation rows (all of them when n <= 0 or n >= the split)."""
    val = ds["validation"]
    if n <= 0 or n >= len(val):
        return val
    return val.shuffle(seed=seed).select(range(n))


def training_columns(split: Any, keep: tuple[str, ...]) -> Any:
    """Drop the columns a trainer should not see (TRL passes extra columns to reward functions)."""
    return split.remove_columns([c for c in split.column_names if c not in keep])
