"""Stage subcommands. Each module registers its commands on `taskplan.cli.app`
and keeps module-level imports light (typer, pathlib, taskplan.config)."""
