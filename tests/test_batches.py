"""Batches (augmentation, order, normalisation) and data.load (subset and 9:1 split)."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TEST_PER_CLASS, TRAIN_PER_CLASS

from lth import data
from lth.data import DataError, Split
from lth.data.batches import Batches
from lth.hparams import DataHparams

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def synthetic_split(n: int = 64, seed: int = 0) -> Split:
    """Random (so not mirror-symmetric) 32x32 images whose label is their own index."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(1, 256, (n, 3, 32, 32), generator=generator, dtype=torch.uint8)
    return Split(images, torch.arange(n))


def normalise(raw: torch.Tensor, batches: Batches) -> torch.Tensor:
    """The same float ops Batches applies, so equal pixels give bit-identical outputs."""
    return raw.float().mul_(batches.scale).add_(batches.shift)


def one_pass(batches: Batches) -> tuple[torch.Tensor, torch.Tensor]:
    inputs, labels = zip(*batches)
    return torch.cat(inputs), torch.cat(labels)


def test_augmented_batches_keep_shape_and_dtype():
    split = synthetic_split(50)
    batches = Batches(split, 16, MEAN, STD, CPU, generator=torch.Generator().manual_seed(0), flip=True, crop_padding=4)
    shapes = [(x.shape, x.dtype, y.shape, y.dtype) for x, y in batches]
    assert len(batches) == len(shapes) == 4
    assert shapes[0] == ((16, 3, 32, 32), torch.float32, (16,), torch.int64)
    assert shapes[-1][0] == (2, 3, 32, 32)
    _, offsets, flips = batches._draw_epoch()
    augmented = batches._augment(split.images[:5], offsets[:5], flips[:5])
    assert augmented.dtype == torch.uint8 and augmented.shape == (5, 3, 32, 32)  # raw pixels until normalised


def per_batch_reference(batches: Batches) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One pass as Batches drew it before the epoch's draws moved up front: randperm, then per
    batch the crop offsets and then the flips, each drawn just before its batch is built."""
    generator, n, size = batches.generator, batches.num_images, batches.batch_size
    order = torch.randperm(n, generator=generator)
    out = []
    for start in range(0, n, size):
        index = order[start : start + size]
        images, labels = batches.images[index], batches.labels[index]
        batch, channels, height, width = images.shape
        if batches.crop_padding:
            pad = batches.crop_padding
            offsets = torch.randint(0, 2 * pad + 1, (batch, 2), generator=generator)
            padded = F.pad(images, (pad, pad, pad, pad))
            rows = (offsets[:, 0:1] + torch.arange(height)).view(batch, 1, height, 1)
            cols = (offsets[:, 1:2] + torch.arange(width)).view(batch, 1, 1, width)
            images = padded[
                torch.arange(batch).view(batch, 1, 1, 1), torch.arange(channels).view(1, -1, 1, 1), rows, cols
            ]
        if batches.flip:
            flips = torch.rand(batch, generator=generator) < 0.5
            images = torch.where(flips.view(batch, 1, 1, 1), images.flip(3), images)
        out.append((normalise(images, batches).contiguous(memory_format=torch.channels_last), labels))
    return out


@pytest.mark.parametrize("flip, crop_padding", [(True, 4), (True, 0), (False, 4), (False, 0)])
def test_epoch_draws_up_front_are_bit_identical_to_per_batch_draws(flip, crop_padding):
    """Drawing an epoch's randomness before its first batch changes nothing on the CPU: the same
    batches, bit for bit (50 images in 16s: a last partial batch), and the same generator state
    after each epoch, so resumed and earlier runs agree with new ones."""
    split = synthetic_split(50)
    ours = Batches(
        split, 16, MEAN, STD, CPU, generator=torch.Generator().manual_seed(11), flip=flip, crop_padding=crop_padding
    )
    reference = Batches(
        split, 16, MEAN, STD, CPU, generator=torch.Generator().manual_seed(11), flip=flip, crop_padding=crop_padding
    )
    for _ in range(2):
        got, expected = list(ours), per_batch_reference(reference)
        assert [len(y) for _, y in got] == [16, 16, 16, 2]
        for (x, y), (x_ref, y_ref) in zip(got, expected, strict=True):
            assert torch.equal(y, y_ref)
            assert x.dtype == x_ref.dtype and x.stride() == x_ref.stride()
            assert torch.equal(x.view(torch.int32), x_ref.view(torch.int32))  # bitwise, not just ==
        assert torch.equal(ours.generator.get_state(), reference.generator.get_state())


def test_crops_are_windows_of_the_zero_padded_image():
    split = synthetic_split(64)
    batches = Batches(split, 64, MEAN, STD, CPU, generator=torch.Generator().manual_seed(1), crop_padding=4)
    inputs, labels = one_pass(batches)
    padded = F.pad(split.images, (4, 4, 4, 4))
    offsets_seen = set()
    for i in range(0, 64, 7):
        source = padded[labels[i]]
        matches = [
            (dy, dx)
            for dy in range(9)
            for dx in range(9)
            if torch.equal(inputs[i], normalise(source[None, :, dy : dy + 32, dx : dx + 32], batches)[0])
        ]
        assert matches, f"sample {i} is not a 32x32 window of the padded image {int(labels[i])}"
        offsets_seen.update(matches)
    assert len(offsets_seen) > 1, "every crop used the same offset"
    # Zero padding is applied to raw pixels: a shifted crop has border pixels equal to normalised 0.
    zero = normalise(torch.zeros(1, 3, 1, 1, dtype=torch.uint8), batches)
    shifted = [i for i in range(64) if not torch.equal(inputs[i], normalise(split.images[labels[i]][None], batches)[0])]
    assert shifted and all((inputs[i] == zero[0]).any() for i in shifted)


def test_flip_false_never_flips_and_flip_true_flips_some():
    split = synthetic_split(64)
    plain = Batches(split, 20, MEAN, STD, CPU, generator=torch.Generator().manual_seed(2), flip=False)
    inputs, labels = one_pass(plain)
    assert torch.equal(inputs, normalise(split.images[labels], plain))
    flipping = Batches(split, 20, MEAN, STD, CPU, generator=torch.Generator().manual_seed(2), flip=True)
    inputs, labels = one_pass(flipping)
    same = [torch.equal(x, normalise(split.images[y][None], flipping)[0]) for x, y in zip(inputs, labels)]
    mirrored = [torch.equal(x, normalise(split.images[y][None].flip(3), flipping)[0]) for x, y in zip(inputs, labels)]
    assert all(s != m for s, m in zip(same, mirrored)), "each output is the image or its mirror, never both/neither"
    assert 0 < sum(mirrored) < 64


def test_same_seed_same_batches_and_new_draw_each_pass():
    split = synthetic_split(40)

    def passes(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        batches = Batches(
            split, 16, MEAN, STD, CPU, generator=torch.Generator().manual_seed(seed), flip=True, crop_padding=4
        )
        return [one_pass(batches) for _ in range(2)]

    a, b, c = passes(7), passes(7), passes(8)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    assert not torch.equal(a[0][1], a[1][1]), "the second pass reused the first pass's order"
    assert not torch.equal(a[0][0], c[0][0])


@pytest.mark.parametrize("batch_size", [1, 10, 64, 100])
def test_a_pass_yields_every_image_exactly_once(batch_size):
    split = synthetic_split(64)
    shuffled = Batches(
        split, batch_size, MEAN, STD, CPU, generator=torch.Generator().manual_seed(3), flip=True, crop_padding=4
    )
    _, labels = one_pass(shuffled)
    assert sorted(labels.tolist()) == list(range(64))
    assert len(shuffled) == -(-64 // batch_size) and shuffled.num_images == 64
    ordered = Batches(split, batch_size, MEAN, STD, CPU)  # evaluation: fixed order, no augmentation
    inputs, labels = one_pass(ordered)
    assert labels.tolist() == list(range(64)) and torch.equal(inputs, normalise(split.images, ordered))


def test_real_labels_multiset_preserved(digits_data):
    batches = Batches(
        digits_data.train,
        32,
        digits_data.mean,
        digits_data.std,
        CPU,
        generator=torch.Generator().manual_seed(0),
        flip=digits_data.flip,
        crop_padding=digits_data.crop_padding,
    )
    _, labels = one_pass(batches)
    assert torch.equal(torch.bincount(labels, minlength=10), torch.bincount(digits_data.train.labels, minlength=10))


def test_channels_last_output():
    split = synthetic_split(4)
    x, _ = next(iter(Batches(split, 4, MEAN, STD, CPU)))
    assert x.is_contiguous(memory_format=torch.channels_last)
    x, _ = next(iter(Batches(split, 4, MEAN, STD, CPU, channels_last=False)))
    assert x.is_contiguous()


def test_normalisation_uses_the_training_files_channel_statistics(npz_root, npz_data):
    """Per channel, from the whole training file (not the subset): what numpy computes from the raw
    pixels; the fixture's channels differ, so statistics swapped between channels would show."""
    with np.load(npz_root / "train.npz") as f:
        pixels = f["images"].reshape(-1, 3) / 255
    assert np.allclose(npz_data.mean, pixels.mean(0), rtol=0, atol=1e-6), (npz_data.mean, pixels.mean(0))
    assert np.allclose(npz_data.std, pixels.std(0), rtol=0, atol=1e-6), (npz_data.std, pixels.std(0))
    assert min(abs(a - b) for a, b in itertools.combinations(npz_data.mean, 2)) > 0.03
    inputs, _ = one_pass(Batches(npz_data.test, 100, npz_data.mean, npz_data.std, CPU))
    assert inputs.shape == (10 * TEST_PER_CLASS, 3, 32, 32)
    mean, std = inputs.mean(dim=(0, 2, 3)), inputs.std(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=0.1), mean
    assert torch.allclose(std, torch.ones(3), atol=0.1), std


# --- data.load ----------------------------------------------------------------------------


def image_keys(split: Split) -> list[str]:
    return [hashlib.sha1(image.numpy().tobytes()).hexdigest() for image in split.images]


def npz(root, **kwargs) -> DataHparams:
    return DataHparams(name="npz", root=str(root), **kwargs)


def test_split_is_9_to_1_disjoint_and_covers_the_subset(npz_root, npz_data):
    d = npz_data
    assert len(d.train.labels) == 180 and len(d.val.labels) == 20
    train_keys, val_keys = image_keys(d.train), image_keys(d.val)
    assert len(set(train_keys)) == 180 and len(set(val_keys)) == 20
    assert not set(train_keys) & set(val_keys)
    union = torch.cat([d.train.labels, d.val.labels])
    assert torch.bincount(union, minlength=10).tolist() == [20] * 10  # exactly the balanced subset
    raw = data.get_source("npz").load(npz_root, False)
    raw_keys = dict(zip(image_keys(raw.train), raw.train.labels.tolist()))
    assert all(raw_keys[k] == int(y) for k, y in zip(train_keys + val_keys, union))
    assert torch.equal(d.test.labels, raw.test.labels)


def test_split_is_deterministic_from_the_seed(npz_root, npz_data):
    again = data.load(npz(npz_root, subset_per_class=20), seed=0)
    assert torch.equal(again.val.images, npz_data.val.images) and torch.equal(again.train.labels, npz_data.train.labels)
    other = data.load(npz(npz_root, subset_per_class=20), seed=1)
    assert set(image_keys(other.val)) != set(image_keys(npz_data.val))
    assert other.mean == npz_data.mean and other.std == npz_data.std  # stats: whole training file


def test_split_without_subset_covers_all_training_images():
    full = data.load(DataHparams(name="digits"), seed=0)
    raw = data.get_source("digits").load(None, False)
    n = len(raw.train.labels)
    assert len(full.val.labels) == round(0.1 * n) and len(full.train.labels) + len(full.val.labels) == n
    assert torch.equal(torch.cat([full.train.labels, full.val.labels]).sort().values, raw.train.labels.sort().values)


@pytest.mark.parametrize("per_class", [1, 7])
def test_subset_per_class_is_exact(per_class):
    d = data.load(DataHparams(name="digits", subset_per_class=per_class, val_fraction=0.5), seed=0)
    counts = torch.bincount(torch.cat([d.train.labels, d.val.labels]), minlength=10)
    assert counts.tolist() == [per_class] * 10
    assert len(d.val.labels) == max(1, round(0.5 * 10 * per_class))


def test_too_large_subset_is_a_data_error(npz_root):
    too_many = TRAIN_PER_CLASS + 1
    with pytest.raises(DataError, match=rf"data\.subset_per_class: {too_many} is not allowed.*only {TRAIN_PER_CLASS} "):
        data.load(npz(npz_root, subset_per_class=too_many), seed=0)


def test_missing_npz_root_names_the_path(tmp_path):
    missing = tmp_path / "no-such-folder"
    with pytest.raises(DataError) as info:
        data.load(npz(missing), seed=0)
    assert str(missing / "train.npz") in str(info.value)
