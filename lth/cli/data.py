"""`lth data`: fetch a dataset and check that it loads, before any training reads it."""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lth import store
from lth.cli.options import add_command, add_config, add_store_flags
from lth.errors import LthError, UsageError
from lth.hparams import DataHparams
from lth.inputs import load_config

log = logging.getLogger("lth")


def add_commands(commands: Any) -> None:
    fetch = add_command(
        commands, "data", cmd_data, "fetch a dataset (with --data.download true) and check that it loads"
    )
    fetch.add_argument("--out", required=True, help="JSON file to write: what was found (sizes, classes)")
    add_store_flags(fetch)
    add_config(fetch)
    DataHparams.add_arguments(fetch)


def cmd_data(args: argparse.Namespace) -> None:
    """Fetch a dataset (when data.download is set) and check that it loads, once, before any training
    reads it; writes what it found to --out (JSON)."""
    from lth import data
    from lth.io import read_json

    data_hp = DataHparams.from_sources(load_config(args.config), args)
    source = data.get_source(data_hp.name)

    def intact(path: Path) -> None:
        try:
            found = read_json(path)
        except (OSError, ValueError) as error:
            raise LthError(f"not a dataset record ({error})") from None
        if not isinstance(found, dict) or found.get("dataset") != data_hp.name or found.get("root") != data_hp.root:
            raise UsageError(f"--out: {path} records another dataset or folder; delete it or choose another path")

    store.produce(
        args.out,
        "--out",
        reuse=args.reuse,
        force=args.force,
        intact=intact,
        prepare=lambda: fetcher(data_hp, source, args.out),
    )


def fetcher(data_hp: DataHparams, source: Any, out: str) -> Callable[[], None]:
    """Load (or download) the dataset from `source` and write what was found to `out`."""
    from lth import data
    from lth.io import write_json

    def fetch() -> None:
        root = Path(data.data_root(data_hp))
        # Two workflows fetching into one folder at once would write the same files together.
        downloading = store.claim(root / data_hp.name) if data_hp.download else contextlib.nullcontext()
        log.info("%s %s under %s", "fetching" if data_hp.download else "checking", data_hp.name, data_hp.root)
        with downloading:
            raw = source.load(data.data_root(data_hp), data_hp.download)
        found = {
            "dataset": data_hp.name,
            "root": data_hp.root,
            "num_classes": raw.num_classes,
            "train": len(raw.train.labels),
            "test": len(raw.test.labels),
            "image_shape": list(raw.train.images.shape[1:]),
        }
        write_json(out, found)
        log.info(
            "%s: %d train and %d test images of %d classes",
            data_hp.name,
            found["train"],
            found["test"],
            found["num_classes"],
        )

    return fetch
