"""Damaged artifacts: every command that reads one stops with exit 2 and a message naming the file.

Each kind of file lth writes (mask, mask sidecar, checkpoint, resume state, summary.json,
metrics.csv), cut short or with bytes flipped, is given to every command that reads it; so are
files of the wrong kind; so are tables (summary.csv, results/summary.csv, a collected analysis CSV)
edited by hand or without their seal. The error must come before any data is loaded, name the bad
file, fit on one line (no traceback), and leave no output behind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from faults.conftest import COMMON, TRAIN, World
from faults.damage import cut, flip
from lth.checkpoints import FORMAT

pytestmark = pytest.mark.usefixtures("one_thread", "no_data_load")

# stage(world, tmp) copies a file into tmp and returns the path to damage (or the bad file itself);
# command(world, tmp, path) is the command line that reads it.
Stage = Callable[[World, Path], Path]
Command = Callable[[World, Path, Path], list]


def mask_file(world: World, tmp: Path) -> Path:
    return world.copy(world.mask, tmp / "imp" / "mask.pt")


def sidecar_file(world: World, tmp: Path) -> Path:
    return mask_file(world, tmp).with_suffix(".json")


def checkpoint_file(world: World, tmp: Path) -> Path:
    return world.copy(world.dense / "epoch1.pt", tmp / "epoch1.pt")


def resume_state(world: World, tmp: Path) -> Path:
    return world.copy(world.interrupted, tmp / "run") / ".resume" / "state.pt"


def run_file(name: str) -> Stage:
    return lambda world, tmp: world.copy(world.masked, tmp / "run") / name


def masked_train(world: World, tmp: Path, mask: Path) -> list:
    return ["train", "--init", world.dense / "epoch1.pt", "--mask", mask, "--out-dir", tmp / "out", *TRAIN, *COMMON]


def kd_train(world: World, tmp: Path, teacher: Path) -> list:
    return [
        "train",
        "--init",
        world.dense / "init.pt",
        "--teacher",
        teacher,
        "--train.kd_alpha",
        "0.5",
        "--out-dir",
        tmp / "out",
        *TRAIN,
        *COMMON,
    ]


MASK_READERS: dict[str, Command] = {
    "train --mask": lambda w, tmp, _: masked_train(w, tmp, tmp / "imp" / "mask.pt"),
    "prune --mask": lambda w, tmp, _: [
        "prune",
        "--weights",
        w.masked / "final.pt",
        "--mask",
        tmp / "imp" / "mask.pt",
        "--out",
        tmp / "level2" / "mask.pt",
    ],
    "info": lambda w, tmp, _: ["info", tmp / "imp" / "mask.pt"],
    "info folder": lambda w, tmp, _: ["info", tmp / "imp"],
}
READERS: dict[str, tuple[Stage, dict[str, Command]]] = {
    "mask.pt": (mask_file, MASK_READERS),
    "mask.json": (sidecar_file, MASK_READERS),
    "checkpoint": (
        checkpoint_file,
        {
            "train --init": lambda w, tmp, f: ["train", "--init", f, "--out-dir", tmp / "out", *TRAIN, *COMMON],
            "train --teacher": kd_train,
            "prune --weights": lambda w, tmp, f: ["prune", "--weights", f, "--out", tmp / "level2" / "mask.pt"],
            "info": lambda w, tmp, f: ["info", f],
        },
    ),
    "resume state": (
        resume_state,
        {
            "train (resume)": lambda w, tmp, _: w.dense_train_args(tmp / "run"),
            "info folder": lambda w, tmp, _: ["info", tmp / "run"],
        },
    ),
    "summary.json": (
        run_file("summary.json"),
        {
            "aggregate": lambda w, tmp, _: [
                "aggregate",
                "--out",
                tmp / "summary.csv",
                f"0:lth:1:magnitude:{tmp / 'run'}",
            ],
            "info folder": lambda w, tmp, _: ["info", tmp / "run"],
        },
    ),
    "metrics.csv": (run_file("metrics.csv"), {"info folder": lambda w, tmp, _: ["info", tmp / "run"]}),
    "final.pt in a run": (run_file("final.pt"), {"info folder": lambda w, tmp, _: ["info", tmp / "run"]}),
    "hparams.yaml": (run_file("hparams.yaml"), {"info folder": lambda w, tmp, _: ["info", tmp / "run"]}),
}
DAMAGES = {"cut": cut, "flipped": flip}
CASES = [
    (artifact, damage, reader)
    for artifact, (_, commands) in READERS.items()
    for damage in DAMAGES
    for reader in commands
]


def assert_clear_error(code: int, err: str, named: Path, tmp: Path) -> None:
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err  # one line, no traceback
    assert str(named) in err, f"{named} not named in: {err}"
    written = [tmp / "level2", tmp / "summary.csv", tmp / "m.pt", tmp / "out" / "summary.json"]
    assert not [path for path in written if path.exists()], "a refused command wrote output"


@pytest.mark.parametrize(("artifact", "damage", "reader"), CASES, ids=["/".join(case) for case in CASES])
def test_damaged_artifact_stops_its_reader(world, tmp_path, cli, artifact, damage, reader):
    stage, commands = READERS[artifact]
    damaged = stage(world, tmp_path)
    DAMAGES[damage](damaged)
    assert_clear_error(*cli(*commands[reader](world, tmp_path, damaged)), damaged, tmp_path)


def text_file(world: World, tmp: Path) -> Path:
    (tmp / "notes.pt").write_text("not a checkpoint\n")
    return tmp / "notes.pt"


def plain_torch_file(world: World, tmp: Path) -> Path:
    torch.save({"weights": torch.zeros(3)}, tmp / "plain.pt")
    return tmp / "plain.pt"


def checkpoint_without_digest(world: World, tmp: Path) -> Path:  # as lth wrote them before they carried one
    torch.save({"format": FORMAT, "model": {}, "num_classes": 10, "epoch": 0, "state_dict": {}}, tmp / "old.pt")
    return tmp / "old.pt"


def mask_without_sidecar(world: World, tmp: Path) -> Path:
    sidecar_file(world, tmp).unlink()
    return tmp / "imp" / "mask.json"  # the error names the missing sidecar


def sidecar_of_another_mask(world: World, tmp: Path) -> Path:
    """A sidecar that verifies on its own but describes another mask (the 50 flipped bytes of the issue,
    done by someone who then rewrote the .pt properly)."""
    from lth.masks import load_mask, save_mask

    mask = load_mask(mask_file(world, tmp))
    name = next(iter(mask))
    mask[name].view(-1)[:50] = True
    save_mask(tmp / "other" / "mask.pt", mask)
    (tmp / "other" / "mask.json").replace(tmp / "imp" / "mask.json")
    return tmp / "imp" / "mask.json"


def wide_mask(world: World, tmp: Path) -> Path:
    return world.copy(world.wide_mask, tmp / "wide" / "mask.pt")


WRONG_FILES: dict[str, tuple[Stage, Command]] = {
    "text as --init": (text_file, lambda w, tmp, f: ["train", "--init", f, "--out-dir", tmp / "out", *TRAIN, *COMMON]),
    "text as --mask": (text_file, masked_train),
    "text as --teacher": (text_file, kd_train),
    "text as --weights": (text_file, lambda w, tmp, f: ["prune", "--weights", f, "--out", tmp / "m.pt"]),
    "text to info": (text_file, lambda w, tmp, f: ["info", f]),
    "plain torch file as --init": (
        plain_torch_file,
        lambda w, tmp, f: ["train", "--init", f, "--out-dir", tmp / "out", *TRAIN, *COMMON],
    ),
    "plain torch file to info": (plain_torch_file, lambda w, tmp, f: ["info", f]),
    "checkpoint without digest": (checkpoint_without_digest, lambda w, tmp, f: ["info", f]),
    "checkpoint as --mask": (checkpoint_file, masked_train),
    "mask as --init": (mask_file, lambda w, tmp, f: ["train", "--init", f, "--out-dir", tmp / "out", *TRAIN, *COMMON]),
    "mask without sidecar, train": (
        mask_without_sidecar,
        lambda w, tmp, _: masked_train(w, tmp, tmp / "imp" / "mask.pt"),
    ),
    "mask without sidecar, info": (mask_without_sidecar, lambda w, tmp, _: ["info", tmp / "imp" / "mask.pt"]),
    "sidecar of another mask, train": (
        sidecar_of_another_mask,
        lambda w, tmp, _: masked_train(w, tmp, tmp / "imp" / "mask.pt"),
    ),
    "sidecar of another mask, prune": (sidecar_of_another_mask, MASK_READERS["prune --mask"]),
    "sidecar of another mask, info": (sidecar_of_another_mask, MASK_READERS["info"]),
    "mask of another model, train": (wide_mask, masked_train),
    "mask of another model, prune": (
        wide_mask,
        lambda w, tmp, f: ["prune", "--weights", w.dense / "final.pt", "--mask", f, "--out", tmp / "m.pt"],
    ),
}


@pytest.mark.parametrize("case", list(WRONG_FILES))
def test_wrong_file_stops_its_reader(world, tmp_path, cli, case):
    stage, command = WRONG_FILES[case]
    bad = stage(world, tmp_path)
    assert_clear_error(*cli(*command(world, tmp_path, bad)), bad, tmp_path)


# Tables (summary.csv, results/summary.csv, a collected analysis CSV) are sealed by their writer
# (`<table>.sha256`); a table edited by hand (one accuracy changed, as a user would) or without a
# seal (written by hand or by an lth before tables were sealed) is refused by every reader, with a
# message saying how to regenerate it, and nothing is drawn or written from it.
def summary_table(world: World, tmp: Path) -> Path:
    from lth.report.summary import aggregate

    rows = [f"0:dense:0::{world.dense}", f"0:lth:1:magnitude:{world.masked}", f"0:at+trt:1:magnitude:{world.masked}"]
    aggregate(rows, tmp / "tables" / "summary.csv")  # at+trt: the same run under a second name, for the figures
    return tmp / "tables" / "summary.csv"


def merged_table(world: World, tmp: Path) -> Path:
    from lth.report.summary import merge_summaries

    merge_summaries([f"tiny={summary_table(world, tmp)}"], tmp / "tables" / "all.csv")
    return tmp / "tables" / "all.csv"


def collected_table(world: World, tmp: Path) -> Path:
    from lth.report.collect import collect

    run = world.copy(world.masked, tmp / "run")
    (run / "activation_sparsity.csv").write_text("stage,near_zero,total,fraction,threshold\nall,1,4,0.25,0.01\n")
    collect("activations", [f"0:lth:1:2:{run}:activation_sparsity.csv"], tmp / "tables" / "activation_sparsity.csv")
    return tmp / "tables" / "activation_sparsity.csv"


def edit_cell(table: Path, column: str, value: str) -> None:
    """Change one cell of the last row, every other byte as written (a hand edit in an editor)."""
    lines = table.read_text().splitlines(keepends=True)
    index = lines[0].rstrip("\n").split(",").index(column)
    cells = lines[-1].rstrip("\n").split(",")
    assert cells[index] != value
    cells[index] = value
    table.write_text("".join(lines[:-1]) + ",".join(cells) + "\n")


def unseal(table: Path) -> None:
    from lth.io import seal_path

    seal_path(table).unlink()


def figure(name: str, suffix: str = "png") -> Command:
    return lambda w, tmp, table: ["figure", name, "--csv", table, "--out", tmp / "new" / f"figure.{suffix}"]


TABLES: dict[str, tuple[Stage, Callable[[Path], None], dict[str, Command]]] = {
    "summary.csv": (
        summary_table,
        lambda table: edit_cell(table, "test_acc_pct", "99.0"),
        {
            "tickets": lambda w, tmp, table: ["tickets", "--summary", table, "--out", tmp / "new" / "tickets.csv"],
            "plot": lambda w, tmp, table: ["plot", "--summary", table, "--out", tmp / "new" / "figure.png"],
            "figure": figure("fig4a_at_trt"),
            "aggregate --experiments": lambda w, tmp, table: [
                "aggregate",
                "--out",
                tmp / "new" / "all.csv",
                "--experiments",
                f"tiny={table}",
            ],
        },
    ),
    "results/summary.csv": (
        merged_table,
        lambda table: edit_cell(table, "test_acc_pct", "99.0"),
        {"figure": figure("fig6_grid")},
    ),
    "analysis CSV": (
        collected_table,
        lambda table: edit_cell(table, "near_zero_pct", "99.0"),
        {"figure": figure("tableA1_activation_sparsity", "csv")},
    ),
}
TABLE_DAMAGES = {"edited": None, "unsealed": unseal}  # None: the table's own edit (TABLES)
TABLE_CASES = [
    (table, damage, reader)
    for table, (_, _, readers) in TABLES.items()
    for damage in TABLE_DAMAGES
    for reader in readers
]


@pytest.mark.parametrize(("table", "damage", "reader"), TABLE_CASES, ids=["/".join(case) for case in TABLE_CASES])
def test_a_table_edited_by_hand_or_unsealed_stops_its_reader(world, tmp_path, cli, table, damage, reader):
    stage, edit, readers = TABLES[table]
    staged = stage(world, tmp_path)
    (TABLE_DAMAGES[damage] or edit)(staged)
    code, err = cli(*readers[reader](world, tmp_path, staged))
    assert_clear_error(code, err, staged, tmp_path)
    assert "regenerate it: delete it and rerun snakemake" in err, err
    assert not (tmp_path / "new").exists(), "a refused table was read into an output"


@pytest.mark.parametrize(
    ("table", "reader"), [(table, reader) for table, (_, _, readers) in TABLES.items() for reader in readers]
)
def test_a_sealed_table_is_read_by_every_reader(world, tmp_path, cli, table, reader):
    """The refusals above are the seal's doing: the same table, as written, is read."""
    stage, _, readers = TABLES[table]
    code, err = cli(*readers[reader](world, tmp_path, stage(world, tmp_path)))
    assert code == 0, err
    assert any((tmp_path / "new").iterdir())
