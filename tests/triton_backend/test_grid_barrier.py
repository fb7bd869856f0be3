"""The synchronisation of a tile's column programs (:func:`kernels_common.substep_end`): the grid
barrier (``SYNC="grid"``, CUDA) gives the results of one launch per sub-step (``"launch"``),
for many tiles and column programs, on a relay kernel whose every value depends on what every
program of its tile wrote one sub-step earlier, and on the layers' kernels.

The grid barrier needs compiled kernels on a GPU; under the interpreter the relay kernel runs
one launch per sub-step against its oracle, which checks the oracle the GPU tests rely on."""

from __future__ import annotations

import pytest
import torch
import triton
import triton.language as tl
from parity import loss_of, output_tensors

import rnnlab
from rnnlab.backends.triton.kernels_common import substep_end
from rnnlab.backends.triton.launch import column_programs, launch

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs CUDA: the grid barrier runs compiled kernels")
MODULUS = 65521
BLOCK = 64  # block_sizes' BLOCK_B and BLOCK_H at the sizes below: one tile / column per block


@triton.jit
def relay_kernel(buf_ptr, S0, S1, sync_ptr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                 BLOCK_K: tl.constexpr, PRECISION: tl.constexpr, SYNC: tl.constexpr,
                 BLOCK_C: tl.constexpr):
    """``buf`` (2, tiles, n) int32. Sub-step ``s``: program ``c`` of a tile reads the n values of
    its tile in slot ``s % 2`` and writes ``x'[c] = (Σ_j (j + 1)·x[j] + c + s) mod 65521`` to
    slot ``(s + 1) % 2``; a program that passes the barrier early reads a stale value."""
    tile, c = tl.program_id(0), tl.program_id(1)
    tiles, n = tl.num_programs(0), tl.num_programs(1)
    offsets = tl.arange(0, BLOCK_C)
    for s in range(S0, S1):
        row = tl.load(buf_ptr + ((s % 2) * tiles + tile) * n + offsets, mask=offsets < n,
                      other=0)
        value = (tl.sum(row * (offsets + 1), axis=0) + c + s) % 65521
        tl.store(buf_ptr + (((s + 1) % 2) * tiles + tile) * n + c, value)
        substep_end(sync_ptr, tile, s - S0, SYNC)


def relay_oracle(start: torch.Tensor, substeps: int) -> torch.Tensor:
    """The relay's values after ``substeps`` sub-steps from ``start`` (tiles, n)."""
    x = start.long()
    n = x.shape[1]
    weights, columns = torch.arange(1, n + 1), torch.arange(n)
    for s in range(substeps):
        x = ((x * weights).sum(1, keepdim=True) + columns + s) % MODULUS
    return x


def run_relay(start: torch.Tensor, substeps: int) -> torch.Tensor:
    """The relay kernel through the engine's launcher, ``start`` (tiles, n): one tile per
    ``BLOCK`` sequences, one column program per ``BLOCK`` hidden units."""
    tiles, n = start.shape
    buf = torch.full((2, tiles, n), -1, dtype=torch.int32, device=DEVICE)
    buf[0] = start
    launch(relay_kernel, tiles * BLOCK, n * BLOCK, substeps, buf, dtype=torch.float32,
           device=DEVICE, BLOCK_C=triton.next_power_of_2(n))
    return buf[substeps % 2].cpu().long()


def relay_start(tiles: int, n: int) -> torch.Tensor:
    return torch.randint(0, MODULUS, (tiles, n), dtype=torch.int32)


@pytest.mark.parametrize("tiles, columns", [(1, 3), (2, 5)])
def test_relay_one_launch_per_substep_matches_its_oracle(tiles, columns, monkeypatch):
    monkeypatch.setenv("RNNLAB_TRITON_COLUMN_PROGRAMS", str(columns))
    monkeypatch.setenv("RNNLAB_TRITON_SYNC", "launch")
    assert column_programs(tiles * BLOCK, columns * BLOCK, DEVICE) == (columns, "launch")
    start = relay_start(tiles, columns)
    assert torch.equal(run_relay(start, 6), relay_oracle(start, 6))


def grid_fits(tiles: int, columns: int) -> None:
    """Skip where the whole grid cannot be resident at once (the launcher would not barrier)."""
    sms = torch.cuda.get_device_properties(DEVICE).multi_processor_count
    if tiles * columns > sms:
        pytest.skip(f"{tiles * columns} programs > {sms} multiprocessors")


@needs_cuda
@pytest.mark.parametrize("tiles, columns", [(1, 2), (3, 5), (4, 16), (8, 12), (1, 100)])
def test_grid_barrier_relay_matches_one_launch_per_substep(tiles, columns, monkeypatch):
    """300 sub-steps in one launch behind the grid barrier, against one launch per sub-step
    and the oracle."""
    grid_fits(tiles, columns)
    monkeypatch.setenv("RNNLAB_TRITON_COLUMN_PROGRAMS", str(columns))
    assert column_programs(tiles * BLOCK, columns * BLOCK, DEVICE) == (columns, "grid")
    start = relay_start(tiles, columns)
    expected = relay_oracle(start, 300)
    assert torch.equal(run_relay(start, 300), expected)
    monkeypatch.setenv("RNNLAB_TRITON_SYNC", "launch")
    assert torch.equal(run_relay(start, 300), expected)


def layer_results(layer, x, lengths) -> dict[str, torch.Tensor]:
    """Output, final states and the gradients of x and every parameter, by name."""
    out = output_tensors(layer(x, lengths=lengths))
    grads = torch.autograd.grad(loss_of(out), [x, *layer.parameters()])
    names = ["output", *(f"final state {k}" for k in range(len(out) - 1)), "grad input",
             *(f"grad {n}" for n, _ in layer.named_parameters())]
    return dict(zip(names, [*out, *grads], strict=True))


@needs_cuda
@pytest.mark.parametrize("family, options, B, H, columns", [
    ("LSTM", {"peephole": True, "cell_clip": 0.5}, 130, 256, 4),
    # the projection: a second sub-step per step over the P columns, 2T + 1 in the BPTT
    ("LSTM", {"proj_size": 100, "peephole": True}, 130, 256, 4),
    ("GRU", {"reset_after": False}, 384, 1024, 16),
    ("RNN", {"nonlinearity": "relu"}, 64, 512, 8),
    # the layer norms: row statistics shared between a tile's programs at every barrier
    ("LSTM", {"layer_norm": True}, 130, 256, 4),
    ("GRU", {"layer_norm": True}, 64, 512, 8),
], ids=["lstm-3tiles-4columns", "lstm-proj-3tiles-4columns", "gru-6tiles-16columns", "rnn-1tile-8columns",
        "layernorm-lstm-3tiles-4columns", "layernorm-gru-1tile-8columns"])
def test_layers_under_the_grid_barrier_match_one_launch_per_substep(family, options, B, H,
                                                                   columns, monkeypatch):
    """Forward and BPTT kernels of a layer, with variable lengths, float32 (IEEE): the grid
    barrier's results are those of one launch per sub-step (a race would be far off)."""
    tiles = triton.cdiv(B, BLOCK)
    grid_fits(tiles, columns)
    monkeypatch.setenv("RNNLAB_TRITON_COLUMN_PROGRAMS", str(columns))
    assert column_programs(B, H, DEVICE) == (columns, "grid")
    layer = getattr(rnnlab, family)(H, H, **options, backend="triton", device=DEVICE)
    x = torch.randn(8, B, H, device=DEVICE, requires_grad=True)
    lengths = torch.randint(1, 9, (B,))
    lengths[0] = 8
    grid = layer_results(layer, x, lengths)
    monkeypatch.setenv("RNNLAB_TRITON_SYNC", "launch")
    launched = layer_results(layer, x, lengths)
    for name, value in launched.items():
        torch.testing.assert_close(grid[name], value, atol=1e-5, rtol=1e-5,
                                   msg=lambda m, n=name: f"{n}: {m}")
