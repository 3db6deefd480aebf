"""--threads and --device: the thread count follows the machine's free cores, and a device
that is not there is one clear sentence (these tests run on CPU-only machines too)."""

from __future__ import annotations

import os

import pytest
import torch
from typer.testing import CliRunner

from graphrec import device
from graphrec.errors import UsageError

runner = CliRunner()


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cores, load, expected", [(2, 0.0, 2), (2, 1.2, 1), (2, 7.0, 1), (16, 3.6, 12), (4, 0.4, 4)])
def test_default_threads_are_the_cores_the_load_leaves_free(monkeypatch, cores, load, expected):
    monkeypatch.setattr(device, "available_cores", lambda: cores)
    monkeypatch.setattr(device, "busy_cores", lambda: load)
    assert device.default_threads() == expected


def test_busy_cores_count_the_other_runnable_tasks_now_not_the_load_average(monkeypatch, tmp_path):
    import builtins

    readings = iter(["5.00 4.00 3.00 1/300 99\n", "5.00 4.00 3.00 3/300 99\n", "5.00 4.00 3.00 2/300 99\n"])
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: _Text(next(readings)) if path == "/proc/loadavg" else real_open(path, *a, **k))
    assert device.busy_cores(pause=0) == 1.0  # runnable 1, 3, 2 -> the median, minus this process
    def no_proc(path, *args, **kwargs):
        if path == "/proc/loadavg":
            raise OSError("no /proc")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    assert device.busy_cores(pause=0) == 1.5  # no /proc: the 1-minute load average


class _Text:
    def __init__(self, text):
        self.text = text

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self):
        return self.text


def test_use_threads_sets_torch_and_faiss(restore_threads):
    import faiss

    assert device.use_threads(1) == 1 and torch.get_num_threads() == 1 and faiss.omp_get_max_threads() == 1
    with pytest.raises(UsageError, match="--threads must be at least 1"):
        device.use_threads(0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_one_clear_sentence():
    with pytest.raises(UsageError, match="no CUDA GPU is available here .*use --device cpu"):
        device.resolve_device("cuda")
    with pytest.raises(UsageError, match="use cpu or cuda"):
        device.resolve_device("tpu")
    assert device.resolve_device(" CPU ") == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_names_past_the_last_gpu_are_refused():
    assert device.resolve_device("cuda") == "cuda"
    with pytest.raises(UsageError, match="numbered from 0"):
        device.resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_commands_take_threads(tmp_path, restore_threads):
    from test_cli_neighbours import write_catalogue

    from graphrec.cli import app

    _, graph_dir = write_catalogue(tmp_path)
    result = runner.invoke(app, ["train", "-g", str(graph_dir), "--k", "2", "--epochs", "1", "-o", str(tmp_path / "r"), "-q", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 1
    bad = runner.invoke(app, ["neighbours", "A000000001", "--run", str(tmp_path / "r"), "--threads", "0"])
    assert bad.exit_code != 0 and "--threads must be at least 1" in bad.output
    extract = runner.invoke(app, ["extract-features", "--help"])
    assert "--threads" in extract.output
