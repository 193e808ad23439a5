import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lth.data.sources import SOURCES, DataError, get_source


def shared_data() -> Path:
    path = Path(os.environ.get("LTH_SHARED_DATA", Path(__file__).parents[2] / "shared" / "data"))
    assert path.is_dir(), f"shared data folder {path} missing: set LTH_SHARED_DATA"
    return path


def save_images(folder: Path, pixels: list[np.ndarray], suffix: str = ".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, array in enumerate(pixels):
        Image.fromarray(array).save(folder / f"{i}{suffix}")


def random_images(n: int, hw: tuple[int, int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(n)]


def test_unknown_name_lists_allowed():
    with pytest.raises(ValueError, match="'nope'.*cifar10.*npz"):
        get_source("nope")
    assert get_source("digits") is SOURCES["digits"]


def test_root_required():
    with pytest.raises(DataError, match="data.root"):
        get_source("npz").load(None, False)


def test_npz_cifar10_mini(monkeypatch):
    root = shared_data() / "cifar10-mini"
    source = get_source("npz")
    # num_classes must read only the small arrays, never the images.
    read = []
    npz, getitem = np.lib.npyio.NpzFile, np.lib.npyio.NpzFile.__getitem__
    monkeypatch.setattr(npz, "__getitem__", lambda f, k: read.append(k) or getitem(f, k))
    assert source.num_classes(root) == 10 and read and "images" not in read
    monkeypatch.undo()
    data = source.load(root, False)
    assert data.train.images.shape == (10000, 3, 32, 32)
    assert data.test.images.shape == (2000, 3, 32, 32)
    assert data.train.images.dtype == torch.uint8 and data.train.images.is_contiguous()
    assert data.train.labels.dtype == torch.int64
    assert set(data.train.labels.tolist()) == set(range(10)) == set(data.test.labels.tolist())
    assert data.num_classes == 10 and source.flip and source.crop_padding == 4
    raw = np.load(root / "test.npz")["images"]
    assert torch.equal(data.test.images[5], torch.from_numpy(raw[5]).permute(2, 0, 1))


def test_npz_validates(tmp_path):
    images = np.zeros((4, 8, 8, 3), np.uint8)
    np.savez(tmp_path / "train.npz", images=images, labels=np.array([0, 1, 2, 1]))
    np.savez(tmp_path / "test.npz", images=images.astype(np.float32), labels=np.zeros(4, int))
    assert get_source("npz").num_classes(tmp_path) == 3
    with pytest.raises(DataError, match="test.npz.*float32"):
        get_source("npz").load(tmp_path, False)


def test_digits():
    source = get_source("digits")
    data = source.load(None, False)
    assert data.train.images.shape[1:] == data.test.images.shape[1:] == (3, 32, 32)
    assert len(data.train.labels) + len(data.test.labels) == 1797
    assert torch.equal(data.train.images[:, 0], data.train.images[:, 2])
    assert data.train.images.max() > 200 and data.num_classes == source.num_classes(None) == 10
    assert not source.flip and source.crop_padding == 2
    counts = torch.bincount(data.test.labels, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 37
    again = source.load(None, False)
    assert torch.equal(again.test.images, data.test.images)
    assert torch.equal(again.train.labels, data.train.labels)


def test_digits_file_is_what_load_digits_reads():
    from sklearn.datasets import load_digits

    from lth.data.sources import _digits_file

    table = np.loadtxt(_digits_file(), delimiter=",")
    reference = load_digits()
    assert np.array_equal(table[:, :64].reshape(-1, 8, 8), reference.images)
    assert np.array_equal(table[:, 64].astype(int), reference.target)


def make_folder(root: Path, test_classes=("a", "b"), odd_size: bool = False) -> dict:
    pixels = {}
    for split, classes in (("train", ("a", "b")), ("test", test_classes)):
        for seed, name in enumerate(classes):
            pixels[split, name] = random_images(3, (8, 8), seed=len(pixels) + seed)
            save_images(root / split / name, pixels[split, name])
    if odd_size:
        Image.fromarray(random_images(1, (8, 9), seed=9)[0]).save(root / "test/b/odd.png")
    return pixels


def test_imagefolder_round_trip(tmp_path):
    pixels = make_folder(tmp_path)
    data = get_source("imagefolder").load(tmp_path, False)
    assert get_source("imagefolder").num_classes(tmp_path) == data.num_classes == 2
    assert data.train.images.shape == (6, 3, 8, 8)
    assert data.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    expected = torch.from_numpy(np.stack(pixels["test", "b"])).permute(0, 3, 1, 2)
    assert torch.equal(data.test.images[3:], expected)


def test_imagefolder_size_mismatch(tmp_path):
    make_folder(tmp_path, odd_size=True)
    with pytest.raises(DataError, match="odd.png is 8x9"):
        get_source("imagefolder").load(tmp_path, False)


def test_imagefolder_class_mismatch(tmp_path):
    make_folder(tmp_path, test_classes=("a", "c"))
    with pytest.raises(DataError, match=r"only in train \['b'\], only in test \['c'\]"):
        get_source("imagefolder").load(tmp_path, False)


def make_tiny(folder: Path) -> None:
    """A two-class Tiny-ImageNet in the official zip's layout (val images not yet in class folders)."""
    wnids = ["n02", "n01"]  # unsorted on purpose: class indices follow sorted wnids
    (folder / "val").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for seed, wnid in enumerate(wnids):
        save_images(folder / "train" / wnid / "images", random_images(2, (64, 64), seed), ".JPEG")
    save_images(folder / "val" / "images", random_images(3, (64, 64), seed=7), ".JPEG")
    (folder / "val" / "val_annotations.txt").write_text(
        "0.JPEG\tn01\t0\t0\t9\t9\n1.JPEG\tn02\t0\t0\t9\t9\n2.JPEG\tn01\t0\t0\t9\t9\n"
    )


def test_tinyimagenet_layout_and_cache(tmp_path):
    folder = tmp_path / "tiny-imagenet-200"
    make_tiny(folder)
    source = get_source("tinyimagenet")
    data = source.load(tmp_path, False)
    assert (folder / "val" / "n01" / "images" / "2.JPEG").is_file()
    assert not (folder / "val" / "images").exists()
    assert data.train.images.shape == (4, 3, 64, 64) and data.test.images.shape == (3, 3, 64, 64)
    assert data.train.labels.tolist() == [0, 0, 1, 1] and data.test.labels.tolist() == [0, 0, 1]
    assert source.num_classes(tmp_path) == data.num_classes == 2
    assert (folder / "lth-cache.npz").is_file()
    # The second load reads the cache: even with the JPEGs gone it gives identical tensors.
    for jpeg in folder.rglob("*.JPEG"):
        jpeg.unlink()
    again = source.load(tmp_path, False)
    for a, b in ((data.train, again.train), (data.test, again.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


@pytest.fixture
def tiny_server(tmp_path, monkeypatch):
    """A local HTTP server in place of cs231n's: serves `served/tiny-imagenet-200.zip`, built from
    a two-class dataset in the official layout; the source's URL and checksum point at it."""
    import functools
    import hashlib
    import http.server
    import shutil
    import threading

    from lth.data import sources

    make_tiny(tmp_path / "build" / "tiny-imagenet-200")
    served = tmp_path / "served"
    served.mkdir()
    archive = Path(shutil.make_archive(str(served / "tiny-imagenet-200"), "zip", tmp_path / "build"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(sources, "_TINY_URL", f"http://127.0.0.1:{server.server_port}/{archive.name}")
    monkeypatch.setattr(sources, "_TINY_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    yield archive
    server.shutdown()


def test_tinyimagenet_download_checks_and_extracts_into_place(tmp_path, tiny_server):
    """data.download: true into a root that does not exist yet: torchvision fetches the zip and
    verifies its md5, it is extracted into a scratch folder renamed into place, and the
    validation images are sorted into class folders."""
    root = tmp_path / "new" / "root"
    data = get_source("tinyimagenet").load(root, True)
    assert data.train.labels.tolist() == [0, 0, 1, 1] and data.test.labels.tolist() == [0, 0, 1]
    assert (root / "tiny-imagenet-200" / "val" / "n02" / "images" / "1.JPEG").is_file()
    assert sorted(path.name for path in root.iterdir()) == ["tiny-imagenet-200", "tiny-imagenet-200.zip"]


def test_tinyimagenet_download_that_fails_its_checksum_leaves_no_dataset(tmp_path, tiny_server):
    tiny_server.write_bytes(tiny_server.read_bytes()[:-100])  # a truncated download
    root = tmp_path / "root"
    with pytest.raises(DataError, match="md5 check"):
        get_source("tinyimagenet").load(root, True)
    assert sorted(path.name for path in root.iterdir()) == ["tiny-imagenet-200.zip"]


def test_tinyimagenet_missing(tmp_path):
    with pytest.raises(DataError, match="data.download: true"):
        get_source("tinyimagenet").load(tmp_path, False)


def test_cifar_missing(tmp_path):
    # Real CIFAR loading is untested here: torchvision checks md5 sums of the pickled
    # release, which is not available offline and cannot be faked.
    for name, folder in (("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")):
        with pytest.raises(DataError, match=f"download.*{folder}"):
            get_source(name).load(tmp_path, False)
    assert get_source("cifar100").num_classes(None) == 100
