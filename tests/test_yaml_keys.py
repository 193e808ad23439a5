"""A key given twice in one YAML mapping is an error wherever lth reads YAML: the message names the
file, the key and both places. (`lth train --config` with a key twice: tests/faults/test_inputs.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_workflow import tiny_config
from workflow_helpers import REPO, snakemake

from lth.cli import main
from lth.yamlio import DuplicateKeyError, read_yaml

# (YAML text, the key as the message names it, its two places)
TWICE = {
    "a section twice": (
        "train: {epochs: 2}\nprune: {levels: 1}\ntrain: {epochs: 7}\n",
        "train",
        ["line 1, column 1", "line 3, column 1"],
    ),
    "a key twice in a flow mapping": (
        "train: {epochs: 2, epochs: 7}\n",
        "train.epochs",
        ["line 1, column 9", "line 1, column 20"],
    ),
    "a key twice in a block mapping": (
        "train:\n  epochs: 2\n  lr: 0.1\n  epochs: 7\n",
        "train.epochs",
        ["line 2, column 3", "line 4, column 3"],
    ),
    "inside an experiment": (
        "experiments:\n  a:\n    data: {name: npz}\n    data: {name: digits}\n",
        "experiments.a.data",
        ["line 3", "line 4"],
    ),
    "inside a list entry": (
        "masks:\n  - {source: file, path: a.pt, path: b.pt}\n",
        "masks[0].path",
        ["line 2, column 20", "line 2, column 32"],
    ),
    "one key spelt two ways": ("seeds: [0]\n1: a\n0x1: b\n", "1", ["line 2", "line 3"]),
}


@pytest.mark.parametrize("case", list(TWICE))
def test_a_key_given_twice_is_refused_naming_file_key_and_both_places(tmp_path, case):
    text, key, places = TWICE[case]
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(DuplicateKeyError) as error:
        read_yaml(tmp_path / "c.yaml")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'c.yaml'}: key {key!r} is given twice"), message
    assert all(place in message for place in places), message
    assert "\n" not in message


def test_a_merged_key_may_be_overridden(tmp_path):
    """`<<: *base` then a key of base is YAML's way to override, not a key given twice."""
    text = "base: &base {epochs: 2, lr: 0.1}\ntrain:\n  <<: *base\n  epochs: 7\n"
    (tmp_path / "c.yaml").write_text(text)
    assert read_yaml(tmp_path / "c.yaml") == yaml.safe_load(text)
    assert read_yaml(tmp_path / "c.yaml")["train"] == {"epochs": 7, "lr": 0.1}


SHIPPED = ["config.yaml", *(f"configs/{path.name}" for path in sorted((REPO / "configs").glob("*.yaml")))]


@pytest.mark.parametrize("path", SHIPPED)
def test_every_shipped_config_reads_as_before(path):
    assert read_yaml(REPO / path) == yaml.safe_load((REPO / path).read_text())


def config_text(npz_root: Path) -> str:
    return yaml.safe_dump(tiny_config(npz_root), sort_keys=False, default_flow_style=False)


def insert_after(text: str, line: str, new: str) -> tuple[str, int, int]:
    """`text` with `new` inserted after its `line`; the 1-based numbers of `line` and `new`."""
    lines = text.splitlines(keepends=True)
    index = lines.index(line + "\n")
    return "".join([*lines[: index + 1], new + "\n", *lines[index + 1 :]]), index + 1, index + 2


def twice_at_top_level(npz_root: Path) -> tuple[str, str, int, int]:
    text = config_text(npz_root)
    first = text.splitlines().index("train:") + 1
    return text + "train:\n  epochs: 7\n", "train", first, len(text.splitlines()) + 1


def twice_nested(npz_root: Path) -> tuple[str, str, int, int]:
    text, first, second = insert_after(config_text(npz_root), "  epochs: 3", "  epochs: 7")
    return text, "train.epochs", first, second


@pytest.mark.parametrize("make", [twice_at_top_level, twice_nested], ids=["top level", "nested"])
def test_a_workflow_config_with_a_key_twice_stops_the_dry_run(tmp_path, npz_root, make):
    text, key, first, second = make(npz_root)
    config = tmp_path / "twice.yaml"
    config.write_text(text)
    assert yaml.safe_load(text)["train"]["epochs"] == 7  # what Snakemake alone would train
    result = snakemake(tmp_path, config, "-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{config}: key {key!r} is given twice, at line {first}, column" in output, output
    assert f"and at line {second}, column" in output, output
    assert "Traceback" not in output and "Job stats" not in output, output
    assert not (tmp_path / "results").exists()


def test_lth_gc_refuses_a_config_with_a_key_twice(tmp_path, capsys):
    config = tmp_path / "twice.yaml"
    config.write_text(f"results: {tmp_path / 'results'}\nexperiment: a\nexperiment: b\n")
    assert main(["gc", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config}: key 'experiment' is given twice, at line 2, column 1 and at line 3, column 1" in err, err
    assert err.count("\n") == 1, err


def test_lth_info_names_a_key_twice_in_a_runs_record(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "hparams.yaml").write_text("train:\n  epochs: 2\n  epochs: 3\n")
    assert main(["info", str(run)]) == 2
    err = capsys.readouterr().err
    assert "key 'train.epochs' is given twice, at line 2, column 3 and at line 3, column 3" in err, err
    assert err.count("\n") == 1, err
