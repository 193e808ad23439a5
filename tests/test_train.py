"""The training loop through `lth.train.train`: determinism, resume, rewinding, masks, outputs."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import REPO, read_metrics, state_dicts_equal

import lth
from lth.checkpoints import build_model, init_model, load_checkpoint
from lth.errors import LthError
from lth.hparams import ModelHparams, PruneHparams, TrainHparams
from lth.info import describe_path
from lth.io import read_json
from lth.masks import dense_mask, mask_hash, prunable_names, prune, sparsity
from lth.provenance import source_digest
from lth.store import RunFinishedError
from lth.train import METRIC_COLUMNS, RunOptions, train

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = ModelHparams(name="resnet18", width=4)
DEFAULT = ModelHparams(name="resnet18", width=8)
DECLARED = {"final.pt", "metrics.csv", "hparams.yaml", "summary.json"}


def run(
    out: Path,
    data,
    *,
    epochs: int,
    model_hp: ModelHparams = SMALL,
    milestones=(0.5,),
    seed: int = 0,
    init: Path | None = None,
    mask=None,
    start_epoch: int = 0,
    save_epochs=(),
    callbacks=(),
    force: bool = False,
    record: dict | None = None,
) -> dict:
    """Train a fresh theta0 (or `init`'s weights) on `data` with tiny settings; return the summary."""
    if init is None:
        model = init_model(model_hp, data.num_classes, seed=0)
    else:
        model = build_model(model_hp, data.num_classes)
        model.load_state_dict(load_checkpoint(init)["state_dict"])
    hparams = TrainHparams(epochs=epochs, batch_size=32, lr=0.1, milestones=milestones)
    record = record or {
        "test": "train",
        "model": model_hp.to_dict(),
        "train": hparams.to_dict(),
        "init": str(init),
        "mask": mask_hash(mask) if mask else None,
    }
    options = RunOptions(device="cpu", threads=1, force=force, callbacks=callbacks)
    return train(
        model,
        data,
        hparams,
        out,
        seed=seed,
        model_hparams=model_hp,
        record=record,
        mask=mask,
        start_epoch=start_epoch,
        save_epochs=save_epochs,
        options=options,
    )


def final_state(out: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "final.pt")["state_dict"]


def prune_final(out: Path, model_hp: ModelHparams = SMALL, rounds: int = 1):
    weights = final_state(out)
    names = prunable_names(build_model(model_hp, 10))
    return prune(weights, dense_mask(weights, names), PruneHparams(rate=0.2), rounds=rounds)


def test_same_seed_same_run(tmp_path, digits_data):
    for name in ("a", "b"):
        run(tmp_path / name, digits_data, epochs=2, model_hp=DEFAULT)
    rows_a = read_metrics(tmp_path / "a" / "metrics.csv", drop_timing=True)
    assert rows_a == read_metrics(tmp_path / "b" / "metrics.csv", drop_timing=True)
    assert [row["epoch"] for row in rows_a] == ["1", "2"]
    assert state_dicts_equal(final_state(tmp_path / "a"), final_state(tmp_path / "b"))
    assert mask_hash(prune_final(tmp_path / "a", DEFAULT)) == mask_hash(prune_final(tmp_path / "b", DEFAULT))


def test_resume_after_interrupt_matches_uninterrupted_run(tmp_path, digits_data):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    run(whole, digits_data, epochs=3, model_hp=DEFAULT, save_epochs=[1, 3])

    def interrupt(ctx):
        if ctx.epoch == 2:  # epoch 1 is saved; stop at the end of epoch 2, before its state is saved
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(broken, digits_data, epochs=3, model_hp=DEFAULT, save_epochs=[1, 3], callbacks=[interrupt])
    assert (broken / ".resume" / "state.pt").is_file()
    assert sorted(p.name for p in broken.iterdir()) == [".resume"], "declared outputs appeared while interrupted"
    assert torch.load(broken / ".resume" / "state.pt", weights_only=False)["epoch"] == 1
    assert len(read_metrics(broken / ".resume" / "metrics.csv")) == 1
    assert describe_path(broken)["status"].startswith("interrupted or running: 1 epochs done")

    with pytest.raises(LthError, match="other settings"):  # a resume state is only continued by its own run
        run(broken, digits_data, epochs=3, model_hp=DEFAULT, save_epochs=[1, 3], record={"other": 1})

    summary = run(broken, digits_data, epochs=3, model_hp=DEFAULT, save_epochs=[1, 3])
    assert summary["epochs"] == 3 and (broken / "summary.json").is_file()
    assert not (broken / ".resume").exists()
    assert read_metrics(broken / "metrics.csv", drop_timing=True) == read_metrics(
        whole / "metrics.csv", drop_timing=True
    )
    for name in ("final.pt", "epoch1.pt", "epoch3.pt"):
        assert state_dicts_equal(
            load_checkpoint(broken / name)["state_dict"], load_checkpoint(whole / name)["state_dict"]
        ), name


@pytest.fixture(scope="module")
def rewind_runs(tmp_path_factory, digits_data):
    """A dense run (4 epochs, LR drop at epoch 2, epoch2.pt kept, a callback column) and a masked run
    rewound to its epoch 2."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("rewind")
    seen = []

    def weight_norm(ctx):
        seen.append((ctx.epoch, dict(ctx.row)))
        return {"weight_norm": float(sum(p.detach().square().sum() for p in ctx.model.parameters()).sqrt())}

    run(root / "dense", digits_data, epochs=4, save_epochs=[2], callbacks=[weight_norm])
    mask = prune_final(root / "dense", rounds=2)
    run(root / "masked", digits_data, epochs=4, init=root / "dense" / "epoch2.pt", mask=mask, start_epoch=2)
    return root / "dense", root / "masked", mask, seen


def test_dense_run_outputs(rewind_runs):
    dense, *_ = rewind_runs
    names = {p.name for p in dense.iterdir()}
    assert DECLARED | {"epoch2.pt"} <= names and ".resume" not in names
    assert load_checkpoint(dense / "epoch2.pt")["epoch"] == 2 and load_checkpoint(dense / "final.pt")["epoch"] == 4
    rows = read_metrics(dense / "metrics.csv")
    assert [row["epoch"] for row in rows] == ["1", "2", "3", "4"]
    assert [float(row["lr"]) for row in rows] == [TrainHparams(epochs=4, milestones=(0.5,)).lr_at(e) for e in range(4)]
    assert [float(row["lr"]) for row in rows] == pytest.approx([0.1, 0.1, 0.01, 0.01], rel=1e-12)


def test_rewound_masked_run_continues_the_schedule(rewind_runs):
    dense, masked, _, _ = rewind_runs
    dense_rows = {row["epoch"]: row for row in read_metrics(dense / "metrics.csv")}
    rows = read_metrics(masked / "metrics.csv")
    assert [row["epoch"] for row in rows] == ["3", "4"]
    assert [row["lr"] for row in rows] == [dense_rows["3"]["lr"], dense_rows["4"]["lr"]]
    assert float(rows[0]["lr"]) == pytest.approx(0.01, rel=1e-12)
    summary = read_json(masked / "summary.json")
    assert summary["start_epoch"] == 2 and summary["epochs"] == 4
    assert not (masked / "epoch2.pt").exists()


def test_masked_run_keeps_pruned_weights_zero(rewind_runs):
    _, masked, mask, _ = rewind_runs
    state = final_state(masked)
    start = load_checkpoint(masked.parent / "dense" / "epoch2.pt")["state_dict"]
    for name, keep in mask.items():
        assert (state[name][~keep] == 0).all(), name
        assert int(state[name][keep].count_nonzero()) == int(keep.sum()), name
    assert any(not torch.equal(state[n][mask[n]], start[n][mask[n]]) for n in mask), "kept weights did not train"
    summary = read_json(masked / "summary.json")
    assert summary["sparsity"] == pytest.approx(sparsity(mask)) and sparsity(mask) == pytest.approx(0.36, abs=1e-3)
    assert summary["nonzero_params"] <= summary["total_params"] - (
        sum(m.numel() for m in mask.values()) - sum(int(m.sum()) for m in mask.values())
    )


def test_callback_columns_in_metrics(rewind_runs):
    dense, _, _, seen = rewind_runs
    with open(dense / "metrics.csv") as handle:
        header = handle.readline().strip().split(",")
    assert header == METRIC_COLUMNS + ["weight_norm"]
    rows = read_metrics(dense / "metrics.csv")
    assert all(float(row["weight_norm"]) > 0 for row in rows)
    assert [epoch for epoch, _ in seen] == [1, 2, 3, 4]
    assert all({"val_acc", "test_acc", "lr"} <= set(row) for _, row in seen)


def test_summary_fields(rewind_runs):
    dense, *_ = rewind_runs
    summary = read_json(dense / "summary.json")
    rows = read_metrics(dense / "metrics.csv")
    best = max(rows, key=lambda row: float(row["val_acc"]))  # the first of equal values
    assert summary["best_val_epoch"] == int(best["epoch"])
    assert summary["best_val_acc"] == float(best["val_acc"])
    assert summary["test_acc_at_best_val"] == float(best["test_acc"])
    assert summary["final_test_acc"] == float(rows[-1]["test_acc"])
    assert summary["threads"] == 1 and summary["torch"] == torch.__version__
    assert summary["device"] == "cpu" and summary["start_epoch"] == 0 and summary["sparsity"] == 0.0
    assert isinstance(summary["git_commit"], str) and summary["git_commit"]
    assert summary["lth_source_sha256"] == source_digest() and summary["lth"] == lth.__version__
    if (REPO / ".git").exists():
        assert re.match(r"[0-9a-f]{40}", summary["git_commit"]), summary["git_commit"]


def test_refuses_to_overwrite_a_finished_run_unless_forced(tmp_path, digits_data):
    first = run(tmp_path, digits_data, epochs=1, save_epochs=[1])
    before = (tmp_path / "summary.json").read_text()
    with pytest.raises(RunFinishedError, match=re.escape(str(tmp_path))):
        run(tmp_path, digits_data, epochs=1)
    assert (tmp_path / "summary.json").read_text() == before
    again = run(tmp_path, digits_data, epochs=1, force=True)
    assert again["final_test_acc"] == first["final_test_acc"]  # deterministic, so the same result
    assert not (tmp_path / "epoch1.pt").exists()  # the forced run saved no epoch: the old file is gone


def test_bad_start_and_save_epochs_fail_before_training(tmp_path, digits_data):
    with pytest.raises(LthError, match="start epoch 2"):
        run(tmp_path, digits_data, epochs=2, start_epoch=2)
    with pytest.raises(LthError, match="save epoch 5"):
        run(tmp_path, digits_data, epochs=2, save_epochs=[5])
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_callback_column_that_starts_later(tmp_path, digits_data):
    run(tmp_path, digits_data, epochs=2, callbacks=[lambda ctx: {"late": 1.0} if ctx.epoch == 2 else None])
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [row["late"] for row in rows] == ["", "1.0"]


def test_width4_trains_with_default_options(tmp_path):
    """torch 2.14 crashes the process in the CPU backward of a channels-last 1x1 strided conv with
    < 8 input channels; lth must fall back to NCHW there (run in a subprocess: a crash is fatal)."""
    script = textwrap.dedent(f"""
        from lth import data
        from lth.checkpoints import init_model
        from lth.hparams import DataHparams, ModelHparams, TrainHparams
        from lth.train import RunOptions, train
        d = data.load(DataHparams(name="digits", subset_per_class=4), seed=0)
        mh = ModelHparams(name="resnet18", width=4)
        train(init_model(mh, 10, 0), d, TrainHparams(epochs=1, batch_size=32), {str(tmp_path)!r}, seed=0,
              model_hparams=mh, record={{}}, options=RunOptions(device="cpu", threads=1))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "summary.json").is_file()


def test_train_epoch_and_evaluate_report_what_they_did(digits_data):
    """The loop's two building blocks, as the benchmarks call them: a masked epoch keeps pruned
    weights exactly zero (momentum and weight decay included) and its mean loss and accuracy
    are those of the batches it saw; evaluate() agrees with a by-hand forward pass."""
    from lth.data.batches import Batches
    from lth.losses import make_loss
    from lth.masks import MaskEnforcer
    from lth.train import evaluate, train_epoch

    model = init_model(SMALL, digits_data.num_classes, seed=0)
    mask = prune(model.state_dict(), dense_mask(model.state_dict(), prunable_names(model)), PruneHparams(rate=0.5))
    enforcer = MaskEnforcer(model, mask)
    enforcer.apply_to_weights()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    # NCHW: width 4 in channels_last crashes torch's CPU backward (see channels_last_is_safe).
    batches = Batches(
        digits_data.train,
        64,
        digits_data.mean,
        digits_data.std,
        torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
        channels_last=False,
    )
    seen = []
    loss_fn = make_loss(TrainHparams())

    def recording_loss(outputs, labels, inputs):
        loss = loss_fn(outputs, labels, inputs)
        seen.append((loss.item() * len(labels), (outputs.argmax(1) == labels).sum().item()))
        return loss

    for _ in range(2):
        seen.clear()
        loss, accuracy = train_epoch(model, batches, optimizer, enforcer, recording_loss)
        assert loss == pytest.approx(sum(s for s, _ in seen) / batches.num_images, rel=1e-5)
        assert accuracy == sum(c for _, c in seen) / batches.num_images
    params = dict(model.named_parameters())
    assert all(
        torch.equal(params[name][keep == 0], torch.zeros_like(params[name][keep == 0])) for name, keep in mask.items()
    )
    assert any(not torch.equal(params[name].detach(), 0 * params[name].detach()) for name in mask)

    test = Batches(digits_data.test, 100, digits_data.mean, digits_data.std, torch.device("cpu"), channels_last=False)
    model.eval()
    with torch.no_grad():
        outputs = torch.cat([model(inputs) for inputs, _ in test])
    expected_loss = torch.nn.functional.cross_entropy(outputs, digits_data.test.labels).item()
    expected_accuracy = (outputs.argmax(1) == digits_data.test.labels).float().mean().item()
    assert evaluate(model, test) == (pytest.approx(expected_loss, rel=1e-5), pytest.approx(expected_accuracy))


class CountingWrapper(torch.nn.Module):
    """What `train` gets from torch.compile in the test below (a real compile takes minutes on this
    CPU): a module around the model that counts the forward passes it runs."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(inputs)


def test_compile_wraps_the_training_steps_and_does_not_guard_the_resume_state(tmp_path, digits_data, monkeypatch):
    """train.compile hands the training steps to torch.compile's module, and only them (evaluation
    and checkpoints use the model itself). It is how a run executes, not what it computes: a run
    interrupted without it resumes with it (and vice versa) and ends where an uninterrupted run does."""
    wrappers: list[CountingWrapper] = []

    def fake_compile(model: torch.nn.Module, **kwargs) -> CountingWrapper:
        wrappers.append(CountingWrapper(model))
        return wrappers[-1]

    monkeypatch.setattr(torch, "compile", fake_compile)

    def go(out: Path, compile: bool, callbacks=()) -> dict:
        hparams = TrainHparams(epochs=2, batch_size=32, lr=0.1, milestones=(0.5,), compile=compile)
        record = {"model": SMALL.to_dict(), "train": hparams.to_dict()}
        return train(
            init_model(SMALL, digits_data.num_classes, seed=0),
            digits_data,
            hparams,
            out,
            seed=0,
            model_hparams=SMALL,
            record=record,
            options=RunOptions(device="cpu", threads=1, callbacks=callbacks),
        )

    whole = go(tmp_path / "whole", compile=False)
    assert not wrappers and whole["compile"] is False

    def interrupt(ctx):
        if ctx.epoch == 2:  # the resume state holds epoch 1
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        go(tmp_path / "resumed", compile=False, callbacks=[interrupt])
    resumed = go(tmp_path / "resumed", compile=True)
    (wrapper,) = wrappers
    steps = -(-len(digits_data.train.labels) // 32)
    assert wrapper.calls == steps, "the compiled module ran exactly the training steps of epoch 2"
    assert resumed["compile"] is True
    assert read_metrics(tmp_path / "resumed" / "metrics.csv", drop_timing=True) == read_metrics(
        tmp_path / "whole" / "metrics.csv", drop_timing=True
    )
    assert state_dicts_equal(final_state(tmp_path / "resumed"), final_state(tmp_path / "whole"))


def test_evaluation_batch_size_changes_only_the_summation_order(digits_data):
    """RunOptions.eval_batch_size (large, for a GPU) cannot change which predictions are right."""
    from lth.data.batches import Batches
    from lth.train import evaluate

    model = init_model(SMALL, digits_data.num_classes, seed=0)
    losses, accuracies = zip(
        *[
            evaluate(
                model,
                Batches(
                    digits_data.test, size, digits_data.mean, digits_data.std, torch.device("cpu"), channels_last=False
                ),
            )
            for size in (50, RunOptions().eval_batch_size)
        ]
    )
    assert RunOptions().eval_batch_size > len(digits_data.test.labels) > 50  # one batch against eight
    assert accuracies[0] == accuracies[1] and losses[0] == pytest.approx(losses[1], rel=1e-6)
