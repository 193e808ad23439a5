"""data_identity: what a dataset is (settings + content fingerprint), never where it lives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lth.data import identity as identity_module
from lth.data.identity import CANONICAL, FINGERPRINTED, data_identity, default_cache_path
from lth.data.sources import SOURCES, DataError
from lth.hparams import DataHparams

REPO = Path(__file__).resolve().parents[1]


def write_npz(root: Path, seed: int = 0, n: int = 8) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        np.savez(
            root / f"{split}.npz",
            images=rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8),
            labels=rng.integers(0, 2, n),
        )
    return root


def write_imagefolder(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(folder / f"{i}.png")
            (folder / "notes.txt").write_text("not an image: the loader skips it")
    return root


def ident(name: str, root: Path | str | None, cache: Path, **fields) -> dict:
    hparams = DataHparams.from_dict({"name": name, "root": str(root) if root else None, **fields})
    return data_identity(hparams, cache=cache)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "fingerprints.json"


@pytest.fixture
def count_hashes(monkeypatch) -> list[Path]:
    """Every file whose contents data_identity reads."""
    hashed: list[Path] = []
    real = identity_module.sha256_file
    monkeypatch.setattr(identity_module, "sha256_file", lambda path: hashed.append(path) or real(path))
    return hashed


@pytest.mark.parametrize("name,write", [("npz", write_npz), ("imagefolder", write_imagefolder)])
def test_same_content_elsewhere_same_identity_different_content_differs(tmp_path, cache, name, write):
    a = write(tmp_path / "a")
    moved = tmp_path / "elsewhere" / "b"
    shutil.copytree(a, moved)  # fresh mtimes and paths: only the contents are shared
    other = write(tmp_path / "c", seed=1)
    first = ident(name, a, cache)
    assert first == ident(name, moved, cache)
    assert first["fingerprint"] != ident(name, other, cache)["fingerprint"]
    assert first == {"name": name, "subset_per_class": None, "val_fraction": 0.1, "fingerprint": first["fingerprint"]}
    json.dumps(first)  # goes into a content hash


def test_settings_that_shape_the_data_are_in_the_identity(tmp_path, cache):
    root = write_npz(tmp_path / "a")
    base = ident("npz", root, cache)
    assert ident("npz", root, cache, download=True) == base
    assert ident("npz", root, cache, subset_per_class=2) != base
    assert ident("npz", root, cache, val_fraction=0.2) != base


def test_imagefolder_layout_is_part_of_the_fingerprint(tmp_path, cache):
    # Same bytes under another class name is another dataset: the labels differ.
    root = write_imagefolder(tmp_path / "a")
    before = ident("imagefolder", root, cache)["fingerprint"]
    (root / "test" / "dog").rename(root / "test" / "wolf")
    assert ident("imagefolder", root, cache)["fingerprint"] != before


def test_changed_file_gets_a_new_fingerprint(tmp_path, cache, count_hashes):
    root = write_npz(tmp_path / "a")
    before = ident("npz", root, cache)["fingerprint"]
    train = root / "train.npz"
    stat = train.stat()
    write_npz(tmp_path / "other", seed=5)
    shutil.copyfile(tmp_path / "other" / "train.npz", train)
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # in case the clock is coarse
    count_hashes.clear()
    assert ident("npz", root, cache)["fingerprint"] != before
    assert count_hashes == [train.resolve()]  # test.npz still comes from the cache


def test_warm_cache_reads_no_file_contents(tmp_path, cache, count_hashes, monkeypatch):
    npz, folder = write_npz(tmp_path / "a"), write_imagefolder(tmp_path / "b")
    cold = ident("npz", npz, cache), ident("imagefolder", folder, cache)
    assert len(count_hashes) == 2 + 8 and cache.is_file()
    count_hashes.clear()
    assert (ident("npz", npz, cache), ident("imagefolder", folder, cache)) == cold
    assert count_hashes == []
    # The cache is keyed by absolute path: a relative root finds the same entries.
    monkeypatch.chdir(tmp_path)
    assert ident("npz", "a", cache) == cold[0] and count_hashes == []


def test_corrupt_cache_is_ignored_and_rewritten(tmp_path, cache, count_hashes):
    root = write_npz(tmp_path / "a")
    expected = ident("npz", root, cache)
    for garbage in ("{not json", "\xff\xfe", '{"version": 1, "files": {"x": 3}}', "[]", ""):
        cache.write_text(garbage, encoding="latin-1")
        count_hashes.clear()
        assert ident("npz", root, cache) == expected
        assert len(count_hashes) == 2
        assert json.loads(cache.read_text())["files"]  # rebuilt, valid JSON


def test_unwritable_cache_location_does_not_fail(tmp_path):
    root = write_npz(tmp_path / "a")
    expected = ident("npz", root, tmp_path / "ok.json")
    # Failures that happen even as root: a file where the folder should be, a folder as the file.
    (tmp_path / "file").write_text("")
    (tmp_path / "folder.json").mkdir()
    for cache in (tmp_path / "file" / "fingerprints.json", tmp_path / "folder.json"):
        assert ident("npz", root, cache) == expected
    assert not list(tmp_path.rglob("*.tmp"))  # no temp file left behind
    if os.geteuid() != 0:  # root writes through read-only permissions
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        try:
            assert ident("npz", root, locked / "sub" / "fingerprints.json") == expected
            assert ident("npz", root, locked / "fingerprints.json") == expected
            assert not any(locked.iterdir())
        finally:
            locked.chmod(0o755)


def test_stale_entries_are_dropped(tmp_path, cache):
    ident("npz", write_npz(tmp_path / "a"), cache)
    shutil.rmtree(tmp_path / "a")
    ident("npz", write_npz(tmp_path / "b", seed=1), cache)
    assert all("/b/" in key for key in json.loads(cache.read_text())["files"])


def test_canonical_sources_touch_no_files(tmp_path, cache, count_hashes):
    missing = tmp_path / "not-downloaded-yet"
    assert ident("cifar100", missing, cache, download=True) == {
        "name": "cifar100",
        "subset_per_class": None,
        "val_fraction": 0.1,
    }
    # Where a canonical dataset is stored does not change what it is.
    assert ident("cifar10", missing, cache) == ident("cifar10", tmp_path / "x", cache)
    assert ident("tinyimagenet", missing, cache)["name"] == "tinyimagenet"
    assert ident("digits", None, cache) == {"name": "digits", "subset_per_class": None, "val_fraction": 0.1}
    assert not missing.exists() and not cache.exists() and count_hashes == []


def test_every_source_is_classified():
    # A new source must be declared canonical or fingerprinted, never fall through.
    assert set(SOURCES) == CANONICAL | FINGERPRINTED and not CANONICAL & FINGERPRINTED


def test_missing_npz_names_the_path(tmp_path, cache):
    root = write_npz(tmp_path / "a")
    (root / "test.npz").unlink()
    with pytest.raises(DataError, match=r"data\.root .*test\.npz not found: expected images uint8"):
        ident("npz", root, cache)
    with pytest.raises(DataError, match=r"data\.root .*nowhere.*train\.npz not found"):
        ident("npz", tmp_path / "nowhere", cache)
    with pytest.raises(DataError, match=r"set data\.root"):
        ident("npz", None, cache)


def test_missing_imagefolder_names_the_layout(tmp_path, cache):
    with pytest.raises(DataError, match=r"data\.root .*nowhere.*train not found: expected <root>/train"):
        ident("imagefolder", tmp_path / "nowhere", cache)
    root = write_imagefolder(tmp_path / "a")
    for image in (root / "test").rglob("*.png"):
        image.unlink()
    with pytest.raises(DataError, match=r"data\.root .*test holds no images"):
        ident("imagefolder", root, cache)


def test_cifar_shaped_npz_is_hashed_once_then_read_from_the_cache(npz_root, cache, count_hashes):
    first = ident("npz", npz_root, cache, subset_per_class=20)
    assert first["fingerprint"].startswith("sha256:") and len(count_hashes) == 2
    count_hashes.clear()
    assert ident("npz", npz_root, cache, subset_per_class=20) == first and count_hashes == []


def test_default_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv("LTH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "lth" / "fingerprints.json"
    monkeypatch.setenv("LTH_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_path() == tmp_path / "mine" / "fingerprints.json"
    monkeypatch.delenv("LTH_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_path() == Path.home() / ".cache" / "lth" / "fingerprints.json"


def test_module_itself_imports_no_torch(tmp_path):
    # lth/data/__init__.py imports torch, so bypass it to check what identity.py alone pulls in:
    # at DAG-build time the workflow needs no torch for canonical sources.
    code = f"""
import sys, types
package = types.ModuleType("lth.data"); package.__path__ = [{str(REPO / "lth" / "data")!r}]
sys.modules["lth.data"] = package
from lth.data.identity import data_identity
from lth.hparams import DataHparams
print(data_identity(DataHparams(name="cifar100", root="/nonexistent")))
assert "torch" not in sys.modules, "torch imported"
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
