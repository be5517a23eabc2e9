"""hccrad.core.torch_runtime: device and seeds shared by the deep and segmentation models."""

from __future__ import annotations

import logging

import pytest
import torch

from hccrad.core import torch_runtime
from hccrad.core.torch_runtime import reproducible, resolve_device


def test_unknown_device_names_the_setting() -> None:
    with pytest.raises(ValueError, match=r"segment\.device must be 'auto', 'cpu' or 'cuda'"):
        resolve_device("gpu", "segment.device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_an_error_and_auto_falls_back_to_the_cpu() -> None:
    with pytest.raises(ValueError, match=r"deep\.device 'cuda'.*use 'auto'"):
        resolve_device("cuda", "deep.device")
    assert resolve_device("auto") == torch.device("cpu")


def test_same_seed_same_draws_and_settings_restored() -> None:
    before = torch.are_deterministic_algorithms_enabled()
    draws = []
    for _ in range(2):
        with reproducible(3, torch.device("cpu")):
            assert torch.are_deterministic_algorithms_enabled()
            draws.append(torch.rand(4))
    assert torch.equal(draws[0], draws[1])
    assert torch.are_deterministic_algorithms_enabled() == before


def test_torch_runs_the_configured_threads_whatever_was_granted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    previous = torch.get_num_threads()
    try:
        with caplog.at_level(logging.WARNING, logger="hccrad.core.torch_runtime"):
            assert torch_runtime.set_torch_threads(2, granted=1) == 2
        assert torch.get_num_threads() == 2
        assert "granted 1 core(s) but the config asks for 2" in caplog.text
        caplog.clear()
        torch_runtime.set_torch_threads(1, granted=4)
        assert torch.get_num_threads() == 1 and not caplog.text
    finally:
        torch.set_num_threads(previous)
