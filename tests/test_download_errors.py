"""A dataset download that cannot reach its server fails in one line: the dataset, the URL, why, and how
to install the files by hand (the folder to extract into and the config keys), never a traceback, from
`lth data` and on the console of a Snakemake run.

Nothing here reaches beyond this machine: downloads go to 127.0.0.1 (port 9, where nothing listens, or a
server the test starts), or through a proxy at 127.0.0.1:9 that refuses every connection.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import socket
import subprocess
import sys
import threading

import pytest
import torchvision.datasets
import yaml
from workflow_helpers import REPO, SNAKEFILE, write_config

from lth.cli import main
from lth.data import sources
from lth.data.sources import DataError, get_source

REFUSED = "http://127.0.0.1:9"  # the discard port on loopback: nothing listens, connecting is refused at once

# name -> (the attribute holding its URL, the folder its archive extracts to)
DOWNLOADS = {
    "cifar10": ((torchvision.datasets.CIFAR10, "url"), "cifar-10-batches-py"),
    "cifar100": ((torchvision.datasets.CIFAR100, "url"), "cifar-100-python"),
    "tinyimagenet": ((sources, "_TINY_URL"), "tiny-imagenet-200"),
}


def point_download_at(monkeypatch, name: str, server: str) -> str:
    """Make dataset `name` download its archive (same file name) from `server`; returns the new URL."""
    (owner, attribute), _ = DOWNLOADS[name]
    url = f"{server}/{getattr(owner, attribute).rsplit('/', 1)[-1]}"
    monkeypatch.setattr(owner, attribute, url)
    return url


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "error:" in line or "Traceback" in line]


@pytest.mark.parametrize("name", sorted(DOWNLOADS))
def test_lth_data_without_a_server_fails_in_one_line_saying_how_to_install_by_hand(name, tmp_path, monkeypatch, capsys):
    url = point_download_at(monkeypatch, name, REFUSED)
    root, out = tmp_path / "data", tmp_path / "data.json"
    code = main(["data", "--out", str(out), "--data.name", name, "--data.root", str(root), "--data.download", "true"])
    stderr = capsys.readouterr().err
    archive, folder = url.rsplit("/", 1)[-1], DOWNLOADS[name][1]
    assert code == 2 and not out.exists()
    assert "Traceback" not in stderr
    assert error_lines(stderr) == [
        f"lth data: error: cannot download {name} from {url} (Connection refused); to install it by hand, extract "
        f"{archive} from that URL into {root} (the folder data.root names) so that {root / folder} exists, and set "
        "data.download: false"
    ]


@pytest.fixture
def local_server(tmp_path):
    """An HTTP server on loopback serving an empty folder: every file is a 404."""
    (tmp_path / "served").mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("name", ["cifar10", "tinyimagenet"])
def test_an_http_error_names_the_status_and_the_url(name, tmp_path, monkeypatch, local_server):
    url = point_download_at(monkeypatch, name, local_server)
    with pytest.raises(DataError) as error:
        get_source(name).load(tmp_path, True)
    message = str(error.value)
    assert message.startswith(f"cannot download {name} from {url} (HTTP 404 ") and "\n" not in message
    assert f"{tmp_path / DOWNLOADS[name][1]} exists" in message


def test_a_server_that_never_answers_times_out_with_the_same_message(tmp_path, monkeypatch):
    """A connection that is accepted but never answered (what a firewall that drops packets looks like
    to a reader): urllib alone would wait forever."""
    monkeypatch.setattr(sources, "_DOWNLOAD_TIMEOUT_S", 0.5)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody reads or replies
        url = point_download_at(monkeypatch, "cifar10", f"http://127.0.0.1:{silent.getsockname()[1]}")
        with pytest.raises(DataError, match="^" + re.escape(f"cannot download cifar10 from {url} (timed out); ")):
            get_source("cifar10").load(tmp_path, True)
    assert socket.getdefaulttimeout() is None  # the process's default is restored


@pytest.mark.parametrize("name", ["cifar10", "tinyimagenet"])
def test_a_data_root_that_cannot_be_written_is_a_local_error_not_a_network_one(name, tmp_path, monkeypatch):
    url = point_download_at(monkeypatch, name, REFUSED)
    root = tmp_path / "a-file"
    root.write_text("")  # not a folder: the download cannot create it
    with pytest.raises(DataError) as error:
        get_source(name).load(root, True)
    message = str(error.value)
    assert message.startswith(
        f"cannot save the {name} download from {url} in {root} (File exists: {root}); make data.root a writable folder"
    )
    assert "\n" not in message


def test_every_shipped_profile_shows_a_failed_jobs_log_on_the_console():
    for profile in ("default", "workstation", "slurm"):
        settings = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())
        assert settings.get("show-failed-logs") is True, profile


@pytest.mark.workflow
def test_snakemake_offline_stops_in_the_data_job_and_prints_its_one_line_error(tmp_path):
    """The real URL, through a proxy on loopback that refuses every connection (urllib honours
    http(s)_proxy; the target host is never even resolved): as a machine without network sees it."""
    config = write_config(
        tmp_path,
        "offline",
        {
            "experiment": "offline",
            "seeds": [0],
            "device": "cpu",
            "model": {"name": "resnet18", "width": 4},
            "data": {"name": "cifar10", "root": str(tmp_path / "data"), "download": True},
            "train": {"epochs": 1, "batch_size": 32},
            "prune": {"method": "imp", "levels": 1},
            "variants": ["lth"],
        },
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    }
    env.update(http_proxy=REFUSED, https_proxy=REFUSED)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(SNAKEFILE),
            "-d",
            str(tmp_path),
            "--configfile",
            str(config),
            "--cores",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    console = result.stdout + result.stderr
    url = torchvision.datasets.CIFAR10.url
    assert result.returncode != 0
    assert "Traceback" not in console
    assert (
        f"lth data: error: cannot download cifar10 from {url} (Connection refused); to install it by hand, "
        f"extract cifar-10-python.tar.gz from that URL into {tmp_path / 'data'} (the folder data.root names) so "
        f"that {tmp_path / 'data' / 'cifar-10-batches-py'} exists, and set data.download: false"
    ) in console
    log = (tmp_path / "results" / "logs" / "data" / "cifar10.log").read_text()
    assert "Traceback" not in log and len(error_lines(log)) == 1
    assert not list((tmp_path / "results" / "runs").glob("[!.]*"))  # nothing trained
