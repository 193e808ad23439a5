"""Dataset sources: load a dataset once into memory as uint8 tensors.

Every source returns images as a contiguous uint8 tensor of shape (N, 3, H, W), RGB, and
labels as int64. Augmentation runs later, per batch, on these tensors; a source only
declares which augmentations make sense for its data (`flip`, `crop_padding`).

torch is imported only where tensors are built: the workflow reads names, sizes and layouts
from here while it plans, without torch.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from lth.errors import LthError

if TYPE_CHECKING:
    import torch


class DataError(LthError):
    """Data is missing or malformed; the message names the path and how to fix it."""


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8, (N, 3, H, W), contiguous
    labels: torch.Tensor  # int64, (N,)


@dataclass(frozen=True)
class RawData:
    train: Split
    test: Split
    num_classes: int


@dataclass(frozen=True)
class Source:
    name: str
    load: Callable[[Path | None, bool], RawData]  # (root, download) -> RawData
    num_classes: Callable[[Path | None], int]  # cheap: never decodes images
    sizes: Callable[[Path | None], tuple[int, int]]  # (train, test) images, cheap: never decodes images
    flip: bool  # random horizontal flip preserves the label
    crop_padding: int  # zero padding for random crops, in pixels; 0 = no crop
    downloads: bool = False  # fetches its files when data.download is set (the workflow's `data` rule)
    image_size: int = 32  # nominal side in pixels, for job resource estimates (lth.resources)


def _require_root(root: Path | str | None, name: str) -> Path:
    if root is None:
        raise DataError(f"dataset {name!r} needs a data folder: set data.root")
    return Path(root)


def _split(images_nhwc: np.ndarray, labels: np.ndarray) -> Split:
    import torch

    images = torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2)
    return Split(images.contiguous(), torch.as_tensor(labels, dtype=torch.int64))


def _decode(paths: list[Path], hw: tuple[int, int] | None = None) -> np.ndarray:
    """Decode image files to one (N, H, W, 3) uint8 array; all must be H x W (default:
    the first file's size)."""
    from PIL import Image

    out = None
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                rgb = np.asarray(image.convert("RGB"))
        except OSError as e:
            raise DataError(f"{path} cannot be decoded ({e}); replace or delete it") from e
        if out is None:  # preallocate once: stacking a list would double peak memory
            out = np.empty((len(paths), *(hw or rgb.shape[:2]), 3), dtype=np.uint8)
        if rgb.shape != out.shape[1:]:
            raise DataError(
                f"{path} is {rgb.shape[0]}x{rgb.shape[1]} (HxW) but images must all be "
                f"{out.shape[1]}x{out.shape[2]}; resize the files (sources never resize)"
            )
        out[i] = rgb
    return out


def _decode_classes(
    split_dir: Path,
    classes: list[str],
    suffixes: set[str],
    hw: tuple[int, int] | None = None,
    subdir: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Decode split_dir/<class>/<subdir>/<image> for every class, labelled by class index."""
    paths, labels = [], []
    for index, name in enumerate(classes):
        files = (split_dir / name / subdir).glob("*")
        files = sorted(f for f in files if f.suffix.lower() in suffixes)
        paths += files
        labels += [index] * len(files)
    if not paths:
        raise DataError(f"{split_dir} holds no images ({', '.join(sorted(suffixes))})")
    return _decode(paths, hw), np.asarray(labels, dtype=np.int64)


# --- Downloads --------------------------------------------------------------------------

# Seconds a download waits on one connect or read before it gives up: urllib waits forever by
# default, so a firewall that drops packets would hang the `data` job. A slow transfer that keeps
# moving is never cut off.
_DOWNLOAD_TIMEOUT_S = 60.0


@contextlib.contextmanager
def _download_timeout() -> Iterator[None]:
    # torchvision's downloader takes no timeout; urllib falls back on the socket default.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _download_errors() -> tuple[type[BaseException], ...]:
    """What a failed download raises: OSError covers urllib's URLError and HTTPError, refused or
    reset connections, timeouts and local write errors; http.client's errors (a truncated
    response) are not OSErrors. Imported here: planning the workflow never downloads."""
    import http.client

    return OSError, http.client.HTTPException


def _reason(error: BaseException) -> str:
    """Why a download failed, in a few words: "Name or service not known", "HTTP 404 Not Found"."""
    import urllib.error

    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        error = error.reason  # the socket's own error, which urllib wraps
    if isinstance(error, urllib.error.HTTPError):
        text = f"HTTP {error.code} {error.reason}"
    elif isinstance(error, urllib.error.URLError):
        text = str(error.reason)
    elif isinstance(error, OSError) and error.strerror:
        text = error.strerror
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())  # one line, whatever the server or the OS said


def _is_network_error(error: BaseException) -> bool:
    """True when the server could not be reached or failed to deliver; False for local errors
    (a folder that is not writable, a full disk)."""
    import ssl
    import urllib.error

    network = (urllib.error.URLError, ConnectionError, TimeoutError, socket.gaierror, socket.herror, ssl.SSLError)
    return isinstance(error, network) or not isinstance(error, OSError)


def _download_failed(name: str, url: str, root: Path, folder: str, error: BaseException) -> DataError:
    """One line for a download that failed: the dataset, the URL, why, and how to put the files in
    place by hand (where to extract the archive, and the config keys that then use it)."""
    root = root.absolute()  # the job's working folder is not the reader's
    by_hand = (
        f"extract {url.rsplit('/', 1)[-1]} from that URL into {root} (the folder data.root names) so that "
        f"{root / folder} exists, and set data.download: false"
    )
    if _is_network_error(error):
        return DataError(f"cannot download {name} from {url} ({_reason(error)}); to install it by hand, {by_hand}")
    where = getattr(error, "filename", None) or root
    return DataError(
        f"cannot save the {name} download from {url} in {root} ({_reason(error)}: {where}); make "
        f"data.root a writable folder with room for it, or {by_hand}"
    )


# --- CIFAR ------------------------------------------------------------------------------


def _cifar(name: str, num_classes: int) -> Source:
    def load(root: Path | None, download: bool) -> RawData:
        import torchvision.datasets

        root = _require_root(root, name)
        dataset_cls = getattr(torchvision.datasets, name.upper())
        try:
            with _download_timeout():
                train, test = (dataset_cls(root, train=t, download=download) for t in (True, False))
        except RuntimeError as e:  # torchvision's "not found or corrupted", of the archive or its files
            if download:
                raise DataError(
                    f"{dataset_cls.url} was fetched into {root} but fails its md5 check (a proxy's or "
                    f"captive portal's page?); it is fetched again on the next try, or extract the official "
                    f"archive into {root} so that {root / dataset_cls.base_folder} exists"
                ) from e
            raise DataError(
                f"{name} not found or corrupt under {root}: set data.download: true, or put "
                f"the extracted {dataset_cls.base_folder} folder there"
            ) from e
        except _download_errors() as e:
            if not download:
                raise
            raise _download_failed(name, dataset_cls.url, root, dataset_cls.base_folder, e) from e
        return RawData(
            _split(train.data, np.asarray(train.targets)),
            _split(test.data, np.asarray(test.targets)),
            num_classes,
        )

    return Source(
        name, load, lambda root: num_classes, lambda root: (50_000, 10_000), flip=True, crop_padding=4, downloads=True
    )


# --- Tiny ImageNet ----------------------------------------------------------------------

_TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
_TINY_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"  # of the official zip, as every loader of it records
_TINY_DIR = "tiny-imagenet-200"
_TINY_CACHE = "lth-cache.npz"
_VAL_ARRANGED = ".lth-val-arranged"
_TINY_HW = (64, 64)
_JPEG = {".jpeg", ".jpg"}


def _tiny_folder(root: Path | None, download: bool) -> Path:
    root = _require_root(root, "tinyimagenet")
    folder = root / _TINY_DIR
    if not folder.is_dir():
        if not download:
            raise DataError(f"{folder} not found: set data.download: true, or extract {_TINY_URL} into {root}")
        from torchvision.datasets.utils import download_and_extract_archive

        # The zip stays in root (a rerun reuses it once its checksum matches); it is extracted
        # into a scratch folder and renamed, so a killed extraction never looks like a dataset.
        try:
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=root, prefix=".tiny-imagenet-extract-") as scratch:
                with _download_timeout():
                    download_and_extract_archive(_TINY_URL, download_root=root, extract_root=scratch, md5=_TINY_MD5)
                os.replace(Path(scratch) / _TINY_DIR, folder)
        except RuntimeError as e:  # torchvision's "not found or corrupted"
            raise DataError(
                f"{_TINY_URL} was fetched into {root} but fails its md5 check ({_TINY_MD5}); it is fetched "
                f"again on the next try, or extract the official zip into {root} so that {folder} exists"
            ) from e
        except _download_errors() as e:
            raise _download_failed("tinyimagenet", _TINY_URL, root, _TINY_DIR, e) from e
    _arrange_val(folder / "val")
    return folder


def _arrange_val(val: Path) -> None:
    """Move val/images/X to val/<wnid>/images/X, as train is laid out. Idempotent."""
    if (val / _VAL_ARRANGED).exists():
        return
    annotations = val / "val_annotations.txt"
    if not annotations.is_file():
        raise DataError(f"{annotations} missing: {val.parent} is not the official layout")
    for line in annotations.read_text().splitlines():
        if not line.strip():
            continue
        filename, wnid = line.split("\t")[:2]
        src, dst = val / "images" / filename, val / wnid / "images" / filename
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        elif not dst.exists():  # dst alone means an interrupted earlier run moved it
            raise DataError(f"{src} listed in {annotations} but missing; re-extract the zip")
    if (val / "images").is_dir() and not any((val / "images").iterdir()):
        (val / "images").rmdir()
    (val / _VAL_ARRANGED).touch()


def _tiny_classes(folder: Path) -> list[str]:
    wnids = folder / "wnids.txt"
    if wnids.is_file():
        return sorted(wnids.read_text().split())
    if not (folder / "train").is_dir():
        raise DataError(f"{folder} has neither wnids.txt nor train/: re-extract {_TINY_URL}")
    return sorted(d.name for d in (folder / "train").iterdir() if d.is_dir())


def _load_tiny(root: Path | None, download: bool) -> RawData:
    folder = _tiny_folder(root, download)
    classes = _tiny_classes(folder)
    cache = folder / _TINY_CACHE
    arrays = None
    if cache.is_file():
        try:
            with np.load(cache) as f:
                # A cache for another class list is stale; a damaged one is just ignored.
                if f["classes"].tolist() == classes:
                    arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            arrays = None
    if arrays is None:
        train_x, train_y = _decode_classes(folder / "train", classes, _JPEG, _TINY_HW, "images")
        test_x, test_y = _decode_classes(folder / "val", classes, _JPEG, _TINY_HW, "images")
        arrays = dict(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)
        _write_atomically(cache, classes=np.asarray(classes), **arrays)
    return RawData(
        _split(arrays["train_x"], arrays["train_y"]),
        _split(arrays["test_x"], arrays["test_y"]),
        len(classes),
    )


def _write_atomically(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz so readers never see a partial file; skip quietly if unwritable."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:  # read-only data folder: the cache is only an optimisation
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        os.unlink(tmp)


def _tiny_num_classes(root: Path | None) -> int:
    folder = _require_root(root, "tinyimagenet") / _TINY_DIR
    # Before the download, report what the download will bring: the official 200 classes.
    return len(_tiny_classes(folder)) if folder.is_dir() else 200


# --- Image folders ----------------------------------------------------------------------

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"}
_FOLDER_LAYOUT = "expected <root>/train/<class>/<image> and <root>/test/<class>/<image>"


def _class_dirs(split_dir: Path) -> list[str]:
    if not split_dir.is_dir():
        raise DataError(f"{split_dir} not found: {_FOLDER_LAYOUT}")
    classes = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    if not classes:
        raise DataError(f"{split_dir} has no class folders: {_FOLDER_LAYOUT}")
    return classes


def _imagefolder_num_classes(root: Path | None) -> int:
    return len(_class_dirs(_require_root(root, "imagefolder") / "train"))


def _imagefolder_sizes(root: Path | None) -> tuple[int, int]:
    root = _require_root(root, "imagefolder")
    counts = []
    for split in ("train", "test"):
        folder = root / split
        counts.append(
            sum(
                1
                for c in _class_dirs(folder)
                for path in (folder / c).iterdir()
                if path.suffix.lower() in _IMAGE_SUFFIXES
            )
        )
    return counts[0], counts[1]


def _load_imagefolder(root: Path | None, download: bool) -> RawData:
    root = _require_root(root, "imagefolder")
    classes = _class_dirs(root / "train")
    test_classes = _class_dirs(root / "test")
    if test_classes != classes:
        raise DataError(
            f"class folders differ between {root / 'train'} and {root / 'test'}: only in "
            f"train {sorted(set(classes) - set(test_classes))}, only in test "
            f"{sorted(set(test_classes) - set(classes))}"
        )
    splits, hw = [], None
    for split in ("train", "test"):
        # Passing train's size on makes test images match it too.
        images, labels = _decode_classes(root / split, classes, _IMAGE_SUFFIXES, hw)
        hw = images.shape[1:3]
        splits.append(_split(images, labels))
    return RawData(splits[0], splits[1], len(classes))


# --- NumPy archives ---------------------------------------------------------------------

_NPZ_LAYOUT = "expected images uint8 (N, H, W, 3) and labels int (N,)"
_NPZ_ERRORS = (OSError, ValueError, KeyError, zipfile.BadZipFile)


def _npz_path(root: Path | None, split: str) -> Path:
    path = _require_root(root, "npz") / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"{path} not found: {_NPZ_LAYOUT}, in train.npz and test.npz")
    return path


def _npz_num_classes(root: Path | None) -> int:
    """Read only the small members: an .npz loads each array on first access."""
    maxima = []
    for split in ("train", "test"):
        path = _npz_path(root, split)
        try:
            with np.load(path) as f:
                labels = f["labels"]
                if labels.size == 0:  # checked here, before any image is decoded
                    raise DataError(f"{path} holds no images; {_NPZ_LAYOUT}, at least one per split")
                if "classes" in f.files:
                    return len(f["classes"])
                maxima.append(int(labels.max()))
        except _NPZ_ERRORS as e:
            raise DataError(f"{path} is not a readable .npz: {_NPZ_LAYOUT} ({e})") from e
    return max(maxima) + 1


def _npz_sizes(root: Path | None) -> tuple[int, int]:
    counts = []
    for split in ("train", "test"):
        path = _npz_path(root, split)
        try:
            with np.load(path) as f:
                counts.append(len(f["labels"]))  # the small member; images are not read
        except _NPZ_ERRORS as e:
            raise DataError(f"{path} is not a readable .npz: {_NPZ_LAYOUT} ({e})") from e
    return counts[0], counts[1]


def _load_npz(root: Path | None, download: bool) -> RawData:
    num_classes = _npz_num_classes(root)
    splits = []
    for split in ("train", "test"):
        path = _npz_path(root, split)
        try:
            with np.load(path) as f:
                images, labels = f["images"], f["labels"]
        except _NPZ_ERRORS as e:
            raise DataError(f"{path} is not a readable .npz: {_NPZ_LAYOUT} ({e})") from e
        problem = None
        if images.size == 0:  # an empty split would divide by zero in the first epoch
            problem = "it holds no images"
        elif images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            problem = f"images are {images.dtype} {images.shape}"
        elif not np.issubdtype(labels.dtype, np.integer) or labels.shape != images.shape[:1]:
            problem = f"labels are {labels.dtype} {labels.shape} for {len(images)} images"
        elif len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            problem = f"labels span {labels.min()}..{labels.max()}, not 0..{num_classes - 1}"
        elif splits and images.shape[1:] != tuple(splits[0].images.shape[2:]) + (3,):
            problem = f"image size {images.shape[1:3]} differs from train.npz"
        if problem:
            raise DataError(f"{path}: {problem}; {_NPZ_LAYOUT}")
        splits.append(_split(images, labels))
    return RawData(splits[0], splits[1], num_classes)


# --- scikit-learn digits ----------------------------------------------------------------


def _digits_file() -> Path:
    """scikit-learn's bundled digits.csv.gz (what load_digits reads), found without importing
    scikit-learn: that import alone costs ~3 s of every workflow job here."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("dataset 'digits' needs scikit-learn: pip install scikit-learn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        raise DataError(f"scikit-learn's digits file is missing at {path}; reinstall scikit-learn")
    return path


def _digits_table() -> tuple[np.ndarray, np.ndarray]:
    """(pixels 0..16 as float32 (N, 64), is_test (N,)): every fifth image of each class in
    dataset order is a test image, a deterministic, stratified 20%."""
    table = np.loadtxt(_digits_file(), delimiter=",", dtype=np.float32)
    labels = table[:, 64].astype(np.int64)
    is_test = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        is_test[np.flatnonzero(labels == c)[::5]] = True
    return table, is_test


def _digits_sizes(root: Path | None) -> tuple[int, int]:
    _, is_test = _digits_table()
    return int((~is_test).sum()), int(is_test.sum())


def _load_digits(root: Path | None, download: bool) -> RawData:
    """The 1797 bundled 8x8 digits, upscaled to 32x32 RGB; works offline, ignores root.

    Bilinear upscaling gives smooth strokes rather than 4x4 blocks (antialiasing only
    matters when downscaling, so it is off). Test split: see `_digits_table`.
    """
    import torch

    table, is_test_np = _digits_table()
    pixels = torch.from_numpy(table[:, :64]).view(-1, 1, 8, 8) * (255 / 16)  # 0..16 -> 0..255
    pixels = torch.nn.functional.interpolate(
        pixels, size=(32, 32), mode="bilinear", align_corners=False, antialias=False
    )
    images = pixels.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(table[:, 64]).long()
    is_test = torch.from_numpy(is_test_np)
    return RawData(
        Split(images[~is_test].contiguous(), labels[~is_test]),
        Split(images[is_test].contiguous(), labels[is_test]),
        10,
    )


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        _cifar("cifar10", 10),
        _cifar("cifar100", 100),
        Source(
            "tinyimagenet",
            _load_tiny,
            _tiny_num_classes,
            lambda root: (100_000, 10_000),
            flip=True,
            crop_padding=4,
            downloads=True,
            image_size=64,
        ),
        # 4 px at any size: the CIFAR convention, not scaled with the image size.
        Source(
            "imagefolder", _load_imagefolder, _imagefolder_num_classes, _imagefolder_sizes, flip=True, crop_padding=4
        ),
        Source("npz", _load_npz, _npz_num_classes, _npz_sizes, flip=True, crop_padding=4),
        # Digits are not mirror-symmetric, and they fill the frame: a 4 px shift is a whole
        # source pixel and crops strokes, 2 px (half a source pixel) keeps them.
        Source("digits", _load_digits, lambda root: 10, _digits_sizes, flip=False, crop_padding=2),
    )
}


def get_source(name: str) -> Source:
    """Look up a source by name."""
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(SOURCES)}")
    return SOURCES[name]
