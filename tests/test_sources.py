import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TEST_PER_CLASS, TRAIN_PER_CLASS
from PIL import Image

from lth import data as lth_data
from lth.data.sources import SOURCES, DataError, get_source
from lth.hparams import DataHparams


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


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as f:
        return f["images"], f["labels"]


def test_npz_reads_cifar_shaped_archives_exactly(npz_root, monkeypatch):
    source = get_source("npz")
    # num_classes must read only the small arrays, never the images.
    read = []
    npz, getitem = np.lib.npyio.NpzFile, np.lib.npyio.NpzFile.__getitem__
    monkeypatch.setattr(npz, "__getitem__", lambda f, k: read.append(k) or getitem(f, k))
    assert source.num_classes(npz_root) == 10 and read and "images" not in read
    monkeypatch.undo()
    data = source.load(npz_root, False)
    assert data.train.images.shape == (10 * TRAIN_PER_CLASS, 3, 32, 32)
    assert data.test.images.shape == (10 * TEST_PER_CLASS, 3, 32, 32)
    assert source.sizes(npz_root) == (10 * TRAIN_PER_CLASS, 10 * TEST_PER_CLASS)
    assert data.train.images.dtype == torch.uint8 and data.train.images.is_contiguous()
    assert data.train.labels.dtype == torch.int64
    assert set(data.train.labels.tolist()) == set(range(10)) == set(data.test.labels.tolist())
    assert data.num_classes == 10 and source.flip and source.crop_padding == 4
    for split, (images, labels) in (
        (data.train, read_npz(npz_root / "train.npz")),
        (data.test, read_npz(npz_root / "test.npz")),
    ):
        assert torch.equal(split.images, torch.from_numpy(images).permute(0, 3, 1, 2))
        assert torch.equal(split.labels, torch.from_numpy(labels))


def write_cifar(
    root: Path, name: str, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], monkeypatch
) -> None:
    """CIFAR-10 or CIFAR-100 as torchvision keeps it on disk after its download (the python
    release's pickled batches: rows of 3072 bytes, the red, green and blue planes in turn), made of
    the given (NHWC images, labels); the class's md5 list is pointed at these files, so torchvision
    still checks each of them as it checks the official release."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, name.upper())
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    label_key = "labels" if name == "cifar10" else "fine_labels"
    files = {}
    # CIFAR-10 spreads its training images over five batches; CIFAR-100 has one file per split.
    for entries, (images, labels) in ((cls.train_list, train), (cls.test_list, test)):
        rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
        for (filename, _), part in zip(entries, np.array_split(np.arange(len(images)), len(entries))):
            files[filename] = {
                "data": rows[part],
                label_key: labels[part].tolist(),
                "filenames": [f"{i}.png" for i in part],
            }
    files[cls.meta["filename"]] = {cls.meta["key"]: [f"class{i}" for i in range(10)]}
    md5 = {}
    for filename, content in files.items():
        (folder / filename).write_bytes(pickle.dumps(content, protocol=2))
        md5[filename] = hashlib.md5((folder / filename).read_bytes()).hexdigest()
    for attribute in ("train_list", "test_list"):
        monkeypatch.setattr(cls, attribute, [[filename, md5[filename]] for filename, _ in getattr(cls, attribute)])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5[cls.meta["filename"]]})


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reads_torchvisions_files_without_downloading(tmp_path, npz_root, monkeypatch, name):
    """The CIFAR source on a root that holds the extracted release: torchvision checks and unpickles
    its files, the source returns every pixel and label as the files hold them, and a subset per
    class is drawn from its training split as from any other source."""
    train, test = read_npz(npz_root / "train.npz"), read_npz(npz_root / "test.npz")
    write_cifar(tmp_path, name, train, test, monkeypatch)
    source = get_source(name)
    data = source.load(tmp_path, False)
    for split, (images, labels) in ((data.train, train), (data.test, test)):
        assert split.images.dtype == torch.uint8 and split.images.is_contiguous()
        assert torch.equal(split.images, torch.from_numpy(images).permute(0, 3, 1, 2))
        assert split.labels.dtype == torch.int64 and torch.equal(split.labels, torch.from_numpy(labels))
    assert data.num_classes == source.num_classes(tmp_path) == (10 if name == "cifar10" else 100)
    subset = lth_data.load(DataHparams(name=name, root=str(tmp_path), subset_per_class=7), seed=0)
    assert torch.bincount(torch.cat([subset.train.labels, subset.val.labels])).tolist() == [7] * 10
    assert torch.equal(subset.test.images, data.test.images)


def test_cifar_files_that_fail_their_checksum_are_refused(tmp_path, npz_root, monkeypatch):
    write_cifar(tmp_path, "cifar10", read_npz(npz_root / "train.npz"), read_npz(npz_root / "test.npz"), monkeypatch)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    content = bytearray(batch.read_bytes())
    content[len(content) // 2] ^= 1  # one flipped bit, among the pixels
    batch.write_bytes(bytes(content))
    with pytest.raises(DataError, match="cifar10 not found or corrupt under .*cifar-10-batches-py"):
        get_source("cifar10").load(tmp_path, False)


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
    for name, folder in (("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")):
        with pytest.raises(DataError, match=f"download.*{folder}"):
            get_source(name).load(tmp_path, False)
    assert get_source("cifar100").num_classes(None) == 100
