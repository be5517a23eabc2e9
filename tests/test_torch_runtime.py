"""hccrad.torch_runtime: device choice and seeding shared by the deep and segmentation models."""

from __future__ import annotations

import pytest
import torch

from hccrad.torch_runtime import reproducible, resolve_device


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
