"""The Python API (lth/api.py): a real tiny run loaded as a ticket, found through a summary.csv, the
example script, and `import lth` without torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lth
from lth.cli import main
from lth.errors import LthError
from lth.io import IntegrityError, write_sealed_csv
from lth.masks import load_mask
from lth.report.summary import COLUMNS

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")
COMMON = ["--model.width", "4", "--data.name", "digits", "--data.subset_per_class", "10"]
TRAIN = ["--seed", "0", "--threads", "1", "--device", "cpu", "--train.epochs", "1", "--train.batch_size", "32"]
DENSE, SPARSE, MASK = "results/runs/dense-tiny", "results/runs/sparse-tiny", "results/runs/omp-tiny/level3/mask.pt"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder as the workflow leaves it, paths in records and tables relative to it: theta0,
    a dense run and a re-training on an OMP level-3 mask (1 epoch each), and results/tiny/summary.csv
    naming them (written here: rows `lth` and `at+trt` on the same run, and one of another source)."""
    root = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert main(["-q", "init", "--out", f"{DENSE}/init.pt", "--seed", "0", *COMMON]) == 0
        assert main(["-q", "prune", "--weights", f"{DENSE}/init.pt", "--out", MASK, "--rounds", "3"]) == 0
        assert main(["-q", "train", "--init", f"{DENSE}/init.pt", "--out-dir", DENSE, *TRAIN, *COMMON]) == 0
        assert (
            main(["-q", "train", "--init", f"{DENSE}/init.pt", "--mask", MASK, "--out-dir", SPARSE, *TRAIN, *COMMON])
            == 0
        )
    rows = [
        {"seed": 0, "variant": "dense", "level": 0, "mask_source": "", "run": DENSE},
        {"seed": 0, "variant": "lth", "level": 3, "mask_source": "magnitude", "run": SPARSE},
        {"seed": 0, "variant": "at+trt", "level": 3, "mask_source": "magnitude", "run": SPARSE},
        {"seed": 0, "variant": "lth", "level": 3, "mask_source": "random", "run": SPARSE},
    ]
    filled = [{"sparsity_pct": 48.8, "test_acc_pct": 50.0, **row} for row in rows]
    (root / "results" / "tiny").mkdir()
    write_sealed_csv(root / "results" / "tiny" / "summary.csv", filled, COLUMNS)
    return root


def test_load_ticket_is_the_run_with_its_mask_applied(project):
    ticket = lth.load_ticket(project / SPARSE)  # from another working directory: the mask is found above the run
    mask = load_mask(project / MASK)
    assert ticket.mask.keys() == mask.keys() and all(torch.equal(ticket.mask[n], mask[n]) for n in mask)
    params = dict(ticket.model.named_parameters())
    assert all(not params[name][~keep].any() for name, keep in ticket.mask.items())  # pruned weights are zero
    assert not ticket.model.training
    assert ticket.sparsity == pytest.approx(ticket.summary["sparsity"]) and ticket.sparsity > 0.4
    assert ticket.settings["mask"]["path"] == MASK and ticket.settings["seed"] == 0
    assert list(ticket.metrics["epoch"]) == [1] and "test_acc" in ticket.metrics
    assert ticket.test_acc_pct == pytest.approx(100 * ticket.summary["test_acc_at_best_val"])
    with torch.no_grad():
        assert ticket.model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    dense = lth.load_ticket(project / DENSE)
    assert dense.mask == {} and dense.sparsity == 0.0 and dense.settings["mask"] is None


def test_a_ticket_exports_to_torch_prune_and_back_unchanged(project):
    ticket = lth.load_ticket(project / SPARSE)
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = ticket.model(images)
        lth.to_prune(ticket.model, ticket.mask)
        after = ticket.model(images)
    assert torch.equal(before, after)
    back = lth.mask_from_prune(ticket.model)
    assert back.keys() == ticket.mask.keys() and all(torch.equal(back[n], ticket.mask[n]) for n in back)


def test_a_pruned_models_state_dict_is_a_file_mask_source(project, tmp_path):
    """A ticket exported to torch.nn.utils.prune form and saved as codes using it do, drawn back by
    `lth prune --method file`: the same mask, its format recorded."""
    from lth.masks import read_sidecar

    ticket = lth.load_ticket(project / SPARSE)
    torch.save(lth.to_prune(ticket.model, ticket.mask).state_dict(), tmp_path / "pruned.pth")
    out = tmp_path / "level3" / "mask.pt"
    flags = ["--method", "file", "--file", str(tmp_path / "pruned.pth"), "--rounds", "3"]
    assert main(["-q", "prune", "--weights", str(project / DENSE / "init.pt"), "--out", str(out), *flags]) == 0
    assert read_sidecar(out)["sha256"] == read_sidecar(project / MASK)["sha256"]
    assert read_sidecar(out)["provenance"]["format"] == "torch.nn.utils.prune"


def test_a_changed_mask_or_run_file_is_refused(project, tmp_path):
    import shutil

    copy = tmp_path / "project"
    shutil.copytree(project / "results", copy / "results")
    mask = load_mask(copy / MASK)
    first = next(iter(mask))
    mask[first] = ~mask[first]
    from lth.masks import save_mask

    save_mask(copy / MASK, mask)  # a valid mask, but not the one the run trained with
    with pytest.raises(IntegrityError, match="is not the mask .* trained with"):
        lth.load_ticket(copy / SPARSE)
    (copy / DENSE / "metrics.csv").write_text("epoch\n1\n")
    with pytest.raises(IntegrityError, match="metrics.csv does not match"):
        lth.load_ticket(copy / DENSE)


def test_find_ticket_selects_by_the_summary_and_says_what_exists(project, monkeypatch):
    monkeypatch.chdir(project / "results")  # a notebook in a subfolder: the table's paths are found above it
    experiment = project / "results" / "tiny"
    ticket = lth.find_ticket(experiment, variant="skip+swish+gradinit+ls", level=3, seed=0)  # = at+trt
    assert ticket.folder.resolve() == (project / SPARSE).resolve()
    assert lth.find_ticket(experiment, variant="dense").mask == {}
    assert lth.find_ticket(experiment, variant="lth", level=3, mask_source="random").folder.name == "sparse-tiny"
    with pytest.raises(LthError, match=r"no run in .*summary.csv is variant='swish', level=3; it holds variants dense"):
        lth.find_ticket(experiment, variant="swish", level=3)
    with pytest.raises(LthError, match=r"2 runs in .* are variant='lth', level=3 .*; name one by seed=, mask_source="):
        lth.find_ticket(experiment, variant="lth", level=3)
    with pytest.raises(LthError, match="summary.csv not found"):
        lth.find_ticket(project / "results", variant="lth")
    table = lth.runs(experiment)
    assert list(table["variant"]) == ["dense", "lth", "at+trt", "lth"] and "test_acc_pct" in table


def test_runs_takes_the_summary_or_its_folder_after_lth_ls_has_listed_the_store(project):
    import lth.run_folders  # what `lth ls` reads: it must not shadow the API's lth.runs

    assert len(lth.runs(project / "results" / "tiny" / "summary.csv")) == 4


def test_the_example_script_runs(project):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(REPO / "docs" / "api_example.py"), "results/tiny"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "sparse-tiny: sparsity 48.8%, test accuracy" in result.stdout and "logits (1, 10)" in result.stdout


def test_the_steps_from_python_write_what_the_commands_write(project, tmp_path, monkeypatch):
    """theta0, an OMP level-3 mask and a masked training from Python, with the settings dataclasses:
    the same mask and the same trained weights as the project's `lth` commands, bit for bit."""
    from lth.hparams import DataHparams, ModelHparams, TrainHparams

    monkeypatch.chdir(tmp_path)
    model, data = ModelHparams(width=4), DataHparams(name="digits", subset_per_class=10)
    init = lth.init_weights("init.pt", seed=0, model=model, data=data)
    mask = lth.draw_mask("mask.pt", weights=init, rounds=3)
    train = TrainHparams(epochs=1, batch_size=32)
    ticket = lth.train_run("run", init=init, mask=mask, seed=0, model=model, data=data, train=train, device="cpu")
    reference = lth.load_ticket(project / SPARSE)
    assert all(torch.equal(ticket.mask[name], reference.mask[name]) for name in reference.mask)
    ours, theirs = ticket.model.state_dict(), reference.model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[key], theirs[key]) for key in theirs)
    assert ticket.settings["train"] == reference.settings["train"]
    with pytest.raises(LthError, match="invalid choice: 'magnitudes'"):
        lth.draw_mask("other.pt", weights=init, method="magnitudes")


def test_import_lth_stays_torch_free():
    code = (
        "import sys, lth; assert lth.__version__ and 'load_ticket' in dir(lth); "
        "heavy = [m for m in ('torch', 'pandas', 'lth.api') if m in sys.modules]; assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        lth.nothing  # noqa: B018
