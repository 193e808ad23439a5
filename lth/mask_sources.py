"""Mask sources other than magnitude pruning: masks drawn at initialisation, at random, or given by the user.

Every source keeps, out of the prunable weights, the count magnitude pruning keeps at the same level
(`lth.masks.remaining_after`: round(rate * remaining) removed per round), so a level means the same
sparsity whatever drew the mask. Scores are ranked globally across layers, highest kept, ties broken
by position (layer order, then flat index), so a mask is a deterministic function of its inputs.

- `random`: uniformly random kept weights, seeded; globally, or (`like`) with each layer's kept count
  taken from a reference mask, the standard "random pruning" control of a ticket.
- `snip` (Lee et al. 2019, "SNIP: single-shot network pruning based on connection sensitivity"):
  the connection sensitivity |dL/dw * w| at initialisation, on mini-batches of training data.
- `grasp` (Wang et al. 2020, "Picking winning tickets before training by preserving gradient flow"):
  the score S(-w) = -w * (H g) with g the loss gradient and H g one Hessian-gradient product; GraSP
  removes the weights with the largest S(-w), so the kept weights are those with the largest w * H g.
- `synflow` (Tanaka et al. 2020, "Pruning neural networks without any data by iteratively conserving
  synaptic flow"): data-free. With every parameter replaced by its absolute value and BatchNorm in
  evaluation mode, R = sum of the network's output for an all-ones input, scores |dR/dw * w|; pruned
  iteratively over `rounds` rounds to the exponential schedule (kept fraction d^(k/rounds) at round
  k for a final kept fraction d), scores recomputed on the masked network each round. In float64, as
  the authors' code, since R spans many orders of magnitude.
- `nm`: N:M structure (lth/sparse/nm.py): in every group of M consecutive weights along the reduction
  dimension the N of largest magnitude, of the trained dense network (as OMP ranks it).
- `gmp`, `set`, `rigl`: the final mask of a sparse training (lth/sparse), which its final.pt holds.
- `file`: the user's own mask (`load_user_mask`): lth's format, a torch.nn.utils.prune state dict
  (`<parameter>_mask` entries, as ToST's and RV's code save them), or open_lth's `mask.pth`.
"""

from __future__ import annotations

import logging
import math
import time
from argparse import Namespace
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lth.errors import LthError, UsageError
from lth.hparams import DataHparams, ModelHparams, PruneHparams
from lth.masks import Mask, keep_top, remaining_after

log = logging.getLogger("lth")

Batch = tuple[torch.Tensor, torch.Tensor]
Drawn = tuple[Mask, dict[str, Any]]  # a mask and the settings it was drawn with (its sidecar's record)
Scores = Callable[..., dict[str, torch.Tensor]]


def kept_count(names: Iterable[str], weights: Mapping[str, torch.Tensor], rate: float, rounds: int) -> int:
    """Weights magnitude pruning keeps after `rounds` rounds at `rate`, from dense."""
    return remaining_after(sum(weights[name].numel() for name in names), rate, rounds)


# --- random ------------------------------------------------------------------------------


def random_mask(shapes: Mapping[str, torch.Size], count: int, seed: int, like: Mask | None = None) -> Mask:
    """`count` kept weights chosen uniformly at random across all tensors; with `like`, each tensor
    keeps exactly as many as `like` keeps in it (count is then `like`'s total)."""
    generator = torch.Generator().manual_seed(seed)
    if like is None:
        sizes = [math.prod(shape) for shape in shapes.values()]
        parts = torch.rand(sum(sizes), generator=generator, dtype=torch.float64).split(sizes)
        return keep_top({name: part.reshape(shape) for (name, shape), part in zip(shapes.items(), parts)}, count)
    mask = {}
    for name, shape in shapes.items():
        if name not in like:
            raise LthError(f"the reference mask has no {name!r}")
        if like[name].shape != shape:
            raise LthError(f"the reference mask's {name!r} has shape {tuple(like[name].shape)}, not {tuple(shape)}")
        scores = torch.rand(shape, generator=generator, dtype=torch.float64)
        mask[name] = keep_top({name: scores}, int(like[name].sum()))[name]
    return mask


# --- scores at initialisation ---------------------------------------------------------------


def _parameters(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Parameter]:
    params = dict(model.named_parameters())
    return {name: params[name] for name in names}


def snip_scores(model: nn.Module, names: list[str], batches: Iterable[Batch]) -> dict[str, torch.Tensor]:
    """|dL/dw * w|, the gradient summed over `batches` (cross-entropy, mean over each batch)."""
    model.train()
    params = _parameters(model, names)
    grads = {name: torch.zeros_like(p) for name, p in params.items()}
    for inputs, labels in batches:
        loss = F.cross_entropy(model(inputs), labels)
        for name, grad in zip(params, torch.autograd.grad(loss, list(params.values()))):
            grads[name] += grad
    return {name: (grads[name] * p.detach()).abs() for name, p in params.items()}


def grasp_scores(model: nn.Module, names: list[str], batches: list[Batch]) -> dict[str, torch.Tensor]:
    """w * (H g), whose largest values GraSP keeps: g is the loss gradient over `batches` (not
    differentiated), H g the gradient of g . grad L, with the Hessian of the same loss."""
    model.train()
    params = _parameters(model, names)
    weights = list(params.values())
    g = [torch.zeros_like(p) for p in weights]
    for inputs, labels in batches:
        for total, grad in zip(g, torch.autograd.grad(F.cross_entropy(model(inputs), labels), weights)):
            total += grad
    hg = [torch.zeros_like(p) for p in weights]
    for inputs, labels in batches:
        grads = torch.autograd.grad(F.cross_entropy(model(inputs), labels), weights, create_graph=True)
        product = sum((grad * fixed).sum() for grad, fixed in zip(grads, g))
        for total, term in zip(hg, torch.autograd.grad(product, weights)):
            total += term
    return {name: p.detach() * h for (name, p), h in zip(params.items(), hg)}


def synflow_scores(model: nn.Module, names: list[str], input_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """|dR/dw * w| of the linearised network: every parameter and buffer already made non-negative by
    the caller (`synflow_mask`), R the sum of its output for one all-ones input."""
    params = _parameters(model, names)
    reference = next(model.parameters())
    output = model(torch.ones(1, *input_shape, dtype=reference.dtype, device=reference.device))
    grads = torch.autograd.grad(output.sum(), list(params.values()))
    return {name: (grad * p.detach()).abs() for (name, p), grad in zip(params.items(), grads)}


def synflow_mask(
    model: nn.Module, names: list[str], count: int, input_shape: tuple[int, ...], rounds: int = 100
) -> Mask:
    """SynFlow's iterative pruning to `count` kept weights on a float64 copy of `model`."""
    linear = _linearised(model)
    params = _parameters(linear, names)
    originals = {name: p.detach().clone() for name, p in params.items()}
    total = sum(p.numel() for p in params.values())
    mask: Mask = {name: torch.ones_like(p, dtype=torch.bool) for name, p in params.items()}
    for k in range(1, rounds + 1):
        keep = count if k == rounds else max(count, round(total * (count / total) ** (k / rounds)))
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(originals[name] * mask[name])
        mask = keep_top(synflow_scores(linear, names, input_shape), keep, mask)
    return mask


def _linearised(model: nn.Module) -> nn.Module:
    """A float64 copy with |parameters|, in eval mode: BatchNorm then applies its running statistics
    (at initialisation mean 0, variance 1), so the network is the positive linear map SynFlow scores."""
    import copy

    linear = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for tensor in [*linear.parameters(), *linear.buffers()]:
            if tensor.is_floating_point():
                tensor.abs_()
    return linear


# --- the user's own masks -------------------------------------------------------------------


def load_user_mask(
    path: Path, prunable: Mapping[str, torch.Size], all_names: Iterable[str]
) -> tuple[Mask, dict[str, Any]]:
    """A mask from the user's file, checked against the model: every name a prunable tensor of it, each
    of its shape, boolean. Returns the mask and its record (sha256 of the file; for another code's
    format, its name). Errors name the file and the tensor. The formats (`foreign_mask`):

    - lth's own: `.pt`, a mapping name -> bool tensor; `.npz`, name -> bool array.
    - torch.nn.utils.prune state dicts (ToST, RV and other codes save these): `.pt`/`.pth`, every
      `<parameter>_mask` entry (0/1 or bool) is the mask of `<parameter>`; other entries are ignored.
    - open_lth's `mask.pth`: a mapping name -> 0/1 tensor (int or float).

    Names are taken as they are: another code's masks fit only where its models name their parameters
    as lth's do, and the first name that does not is refused."""
    from lth.io import sha256_file

    if not path.is_file():
        raise LthError(f"mask file {path} not found")
    try:
        if path.suffix == ".npz":
            import numpy as np

            with np.load(path, allow_pickle=False) as arrays:
                raw = {name: torch.from_numpy(arrays[name]) for name in arrays.files}
        elif path.suffix in (".pt", ".pth"):
            raw = torch.load(path, map_location="cpu", weights_only=True)
        else:
            suffix = path.suffix or "no suffix"
            raise LthError(f"mask file {path}: expected .pt or .npz (or .pth, as open_lth's), not {suffix}")
    except LthError:
        raise
    except Exception as error:  # torch and numpy raise many kinds for a file that is not theirs
        raise LthError(
            f"mask file {path} could not be read ({error}); expected a mapping of parameter names to boolean arrays"
        ) from None
    if not isinstance(raw, Mapping) or not raw:
        raise LthError(f"mask file {path}: expected a non-empty mapping of parameter names to boolean arrays")
    known = set(all_names)
    numeric = "0/1" if path.suffix == ".npz" else "open_lth"  # open_lth saves torch files
    raw, form = foreign_mask(raw, f"mask file {path}", known, prunable, numeric)
    hint = f" ({form} masks fit only where their model names parameters as lth's does)" if form else ""
    mask = {}
    for name, value in raw.items():
        if name not in known:
            raise LthError(f"mask file {path}: {name!r} is not a parameter of this model{hint}")
        if name not in prunable:
            raise LthError(
                f"mask file {path}: {name!r} is not a prunable tensor (prunable: the Conv2d weights, and "
                "the Linear weights with prune.include_linear)"
            )
        if not isinstance(value, torch.Tensor) or value.dtype != torch.bool:
            kind = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
            raise LthError(f"mask file {path}: {name!r} holds {kind}, not booleans")
        if value.shape != prunable[name]:
            raise LthError(
                f"mask file {path}: {name!r} has shape {tuple(value.shape)}, the model's is {tuple(prunable[name])}"
            )
        mask[name] = value.clone()
    record = {"file": str(path), "sha256": sha256_file(path)}
    return mask, {**record, "format": form} if form else record  # lth's own: the record as it always was


def foreign_mask(
    raw: Mapping[str, Any],
    where: str,
    known: set[str],
    prunable: Mapping[str, torch.Size],
    numeric: str = "open_lth",
) -> tuple[Mapping[str, Any], str | None]:
    """`raw` as name -> bool tensor when it is another code's mask, with the format's name; else `raw` as
    it is and None (lth's own format, checked by the caller). A torch.nn.utils.prune state dict has a
    `<parameter>_mask` entry that is no parameter; open_lth's mask.pth holds only non-boolean tensors
    (named `numeric`; lth's own holds booleans, so a mix is lth's, refused for its non-boolean tensor).
    Another code's all-kept entry for a tensor lth never prunes (open_lth's classifier) is dropped: lth
    keeps it dense anyway."""
    from lth.interop import SUFFIX, masks_in_state_dict, zero_one

    if any(isinstance(name, str) and name.endswith(SUFFIX) and name not in known for name in raw):
        mask, form = masks_in_state_dict(raw, where), "torch.nn.utils.prune"
    elif all(isinstance(value, torch.Tensor) and value.dtype != torch.bool for value in raw.values()):
        mask, form = {name: zero_one(value, where, name) for name, value in raw.items()}, numeric
    else:
        return raw, None
    return {
        name: keep for name, keep in mask.items() if name in prunable or name not in known or not bool(keep.all())
    }, form


# --- drawing the mask `lth prune` writes ----------------------------------------------------


def mask_writer(
    args: Namespace,
    config: dict[str, Any],
    out: Path,
    prune_hp: PruneHparams,
    weights_path: Path,
    mask_path: Path | None,
    drawer: Callable[..., Drawn] | None,
) -> Callable[[], None]:
    """How `lth prune` makes its mask, its inputs read and checked: returns the drawing and writing.
    `drawer`: the source's (lth.mask_registry), None for magnitude pruning."""
    from lth.checkpoints import build_model, load_checkpoint, nonfinite
    from lth.inputs import read_input
    from lth.masks import dense_mask, load_mask, prunable_names, prune, save_mask

    checkpoint = read_input("--weights", weights_path, load_checkpoint)
    weights = checkpoint["state_dict"]
    diverged = nonfinite(weights)
    if diverged:  # magnitudes of NaN or inf weights rank nothing
        raise UsageError(
            f"--weights: {weights_path} holds non-finite values ({', '.join(diverged[:3])}): the run "
            "that wrote it diverged; retrain it with a lower train.lr"
        )
    model = build_model(ModelHparams.from_dict(checkpoint["model"]), checkpoint["num_classes"])
    if mask_path:
        mask = read_input("--mask", mask_path, load_mask)  # an existing mask fixes which tensors are prunable
    else:
        mask = dense_mask(weights, prunable_names(model, prune_hp.include_linear))
    provenance = {"method": args.method, "weights": str(weights_path), "mask": str(mask_path) if mask_path else None}
    provenance.update(rounds=args.rounds, **prune_hp.to_dict())
    new_mask = None
    if drawer is None:  # magnitude: quick, and its failure is one of the input: before anything is written
        try:
            new_mask = prune(weights, mask, prune_hp, rounds=args.rounds)
        except LthError as error:
            raise UsageError(f"--mask: {mask_path} does not fit --weights {weights_path}: {error}") from None

    def write() -> None:
        nonlocal new_mask
        if new_mask is None:  # the source's mask at level --rounds's count, from theta0, and how it was drawn
            if args.threads:
                torch.set_num_threads(args.threads)
            model.load_state_dict(weights)
            names = list(mask)
            count, started = kept_count(names, weights, prune_hp.rate, args.rounds), time.perf_counter()
            new_mask, settings = drawer(args, config, model, names, count)
            provenance.update(settings, seconds=round(time.perf_counter() - started, 3))
        info = save_mask(out, new_mask, provenance)
        kept = (100 * info["sparsity"], info["kept"], info["total"])
        log.info("wrote %s (%s): sparsity %.2f%% (%d of %d weights kept)", args.out, args.method, *kept)

    return write


def draw_random(args: Namespace, config: dict[str, Any], model: nn.Module, names: list[str], count: int) -> Drawn:
    from lth.inputs import read_input, require_file
    from lth.masks import load_mask

    params = dict(model.named_parameters())
    like = read_input("--like", require_file(args.like, "--like"), load_mask) if args.like else None
    kept = count if like is None else sum(int(keep.sum()) for keep in like.values())
    if kept != count:
        log.warning(
            "--like %s keeps %d weights, level %d keeps %d: its per-layer counts win",
            args.like,
            kept,
            args.rounds,
            count,
        )
    try:
        mask = random_mask({name: params[name].shape for name in names}, count, args.seed, like)
    except LthError as error:
        raise UsageError(f"--like: {args.like}: {error}") from None
    return mask, {"seed": args.seed, "like": args.like}


def draw_file(args: Namespace, config: dict[str, Any], model: nn.Module, names: list[str], count: int) -> Drawn:
    params = dict(model.named_parameters())
    try:
        return load_user_mask(Path(args.file), {name: params[name].shape for name in names}, params)
    except LthError as error:
        raise UsageError(f"--file: {error}") from None


def draw_trained(args: Namespace, config: dict[str, Any], model: nn.Module, names: list[str], count: int) -> Drawn:
    """gmp, set, rigl: the mask a sparse training ended with, saved with its weights (--weights, the
    run's final.pt); its sparsity is the run's, not `count`."""
    from lth.checkpoints import load_checkpoint

    trained = load_checkpoint(args.weights).get("mask")
    if trained is None:
        raise UsageError(
            f"--weights: {args.weights} holds no mask; --method {args.method} reads the final.pt of a "
            f"run trained with `lth train --sparse-training {args.method}`"
        )
    params = dict(model.named_parameters())
    if sorted(trained) != sorted(names):
        raise UsageError(
            f"--weights: {args.weights}'s mask covers {len(trained)} weights, not the {len(names)} prunable "
            "ones of --prune.include_linear; give the same include_linear as the sparse training had"
        )
    misshapen = [name for name in names if trained[name].shape != params[name].shape]
    if misshapen:
        raise UsageError(f"--weights: {args.weights}'s mask of {misshapen[0]!r} does not have its weight's shape")
    return {name: trained[name].to(torch.bool) for name in names}, {}


def draw_nm(args: Namespace, config: dict[str, Any], model: nn.Module, names: list[str], count: int) -> Drawn:
    """nm: N of every M weights by magnitude of --weights (lth/sparse/nm.py); its sparsity is 1 - N/M,
    not `count`."""
    from lth.sparse.nm import check_nm, nm_mask

    params = dict(model.named_parameters())
    try:
        check_nm(args.nm_n, args.nm_m)
        mask = nm_mask({name: params[name].detach() for name in names}, args.nm_n, args.nm_m, args.nm_indivisible)
    except LthError as error:
        raise UsageError(f"--nm-n/--nm-m/--nm-indivisible: {error}") from None
    return mask, {"n": args.nm_n, "m": args.nm_m, "indivisible": args.nm_indivisible}


def draw_synflow(args: Namespace, config: dict[str, Any], model: nn.Module, names: list[str], count: int) -> Drawn:
    from lth.data.sources import SOURCES

    channels = dict(model.named_parameters())[names[0]].shape[1]  # the first prunable layer reads the image
    size = SOURCES[DataHparams.from_sources(config, args).name].image_size
    mask = synflow_mask(model, names, count, (channels, size, size), args.synflow_rounds)
    return mask, {"synflow_rounds": args.synflow_rounds, "input_shape": [channels, size, size]}


def draw_scored(
    scores: Scores, args: Namespace, config: dict[str, Any], model: nn.Module, names: list[str], count: int
) -> Drawn:
    """snip, grasp: `scores` on the first training batches of the seed."""
    from lth import data
    from lth.data.batches import Batches

    data_hp = DataHparams.from_sources(config, args)
    dataset = data.load(data_hp, args.seed)
    batches = Batches(
        dataset.train,
        args.batch_size,
        dataset.mean,
        dataset.std,
        torch.device("cpu"),
        generator=torch.Generator().manual_seed(args.seed),
        flip=dataset.flip,
        crop_padding=dataset.crop_padding,
        channels_last=False,
    )
    sample = [batch for batch, _ in zip(batches, range(args.batches))]
    mask = keep_top(scores(model, names, sample), count)
    return mask, {"seed": args.seed, "batches": len(sample), "batch_size": args.batch_size, "data": data_hp.to_dict()}


draw_snip = partial(draw_scored, snip_scores)
draw_grasp = partial(draw_scored, grasp_scores)
