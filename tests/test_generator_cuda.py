"""CUDA checks of the generator: fp32 on GPU matches CPU, fp16 blocks stay close. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("no CUDA device on this machine: GPU generator tests need one", allow_module_level=True)

from gghead_core import Generator, GeneratorConfig  # noqa: E402


def test_cuda_fp32_matches_cpu_and_fp16_is_close():
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    G = Generator(GeneratorConfig(channel_base=4096, channel_max=64, plane_resolution=64, n_uniform_flame_vertices=64,
                                  conv_clamp=256)).eval().requires_grad_(False)
    with torch.no_grad():
        for p in G.parameters():
            p.normal_(0, 0.5)
    ws = G.mapping(G.z_from_seed(0))
    cpu = G.synthesis(ws)
    Gc = G.to("cuda")
    gpu = Gc.synthesis(ws.cuda())
    assert (gpu.means.cpu() - cpu.means).abs().max() < 1e-4
    fp16 = Gc.synthesis(ws.cuda(), num_fp16_res=4)
    assert (fp16.means.cpu() - cpu.means).abs().max() < 2e-2
