"""Triton building blocks of the layer-normalised LSTM and GRU kernels: the layer norm of a
step's ``K`` gate blocks of recurrent pre-activations (``G = K·H`` values a row), spread over
the programs of a tile as :mod:`rnnlab.backends.triton.kernels_common` describes.

Forward ``ẑ = (z - mean z)·s``, ``s = 1/sqrt(var z + eps)``; backward, with ``dẑ`` the
gradient reaching ``ẑ``, ``dz = (dẑ - mean dẑ - ẑ∘mean(dẑ∘ẑ))·s`` (means over the row's G
values, from the partial sums every program shares).
"""

import triton
import triton.language as tl

from rnnlab.backends.triton.kernels_common import (
    column_block,
    dot_accumulate,
    merge_moments,
    row_sums,
    tile_moments,
)


@triton.jit
def recurrent_moments(h_in, w_hh_ptr, pre, rows, row_mask, H, K: tl.constexpr,
                      BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
                      PRECISION: tl.constexpr):
    """``z = h̄ W_hhᵀ`` of the program's columns of the K gate blocks, stored at ``pre`` (the
    step's (B, K·H) slot); returns the rows' partial moments ``(count, mean, M2)`` over them."""
    n = tl.zeros((BLOCK_B,), dtype=tl.float32)
    mean = tl.zeros((BLOCK_B,), dtype=tl.float32)
    m2 = tl.zeros((BLOCK_B,), dtype=tl.float32)
    for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
        cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
        pre_tile = pre + rows[:, None] * K * H + cols[None, :]
        for k in tl.static_range(K):
            z = dot_accumulate(tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32), h_in, H, rows,
                               row_mask, w_hh_ptr, H, 1, cols + k * H, col_mask, H, BLOCK_K,
                               PRECISION)
            tl.store(pre_tile + k * H, z, mask=tile_mask)
            n_z, mean_z, m2_z = tile_moments(z, tile_mask)
            n, mean, m2 = merge_moments(n, mean, m2, n_z, mean_z, m2_z)
    return n, mean, m2


@triton.jit
def gradient_sums(part_d, part_dz, d, pre, ln_ptr, cols, col_mask, tile_mask, H,
                  K: tl.constexpr):
    """``part_d + Σ dẑ`` and ``part_dz + Σ dẑ∘ẑ`` per row of a tile of the K gate blocks,
    with ``dẑ = d∘γ`` (``γ`` the first K·H values of ``ln``) and ``ẑ`` read from ``pre``."""
    for k in tl.static_range(K):
        gain = tl.load(ln_ptr + k * H + cols, mask=col_mask, other=0.0)[None, :]
        d_hat = tl.load(d + k * H, mask=tile_mask, other=0.0) * gain
        z_hat = tl.load(pre + k * H, mask=tile_mask, other=0.0)
        part_d += tl.sum(d_hat, axis=1)
        part_dz += tl.sum(d_hat * z_hat, axis=1)
    return part_d, part_dz


@triton.jit
def gates_norm_backward(d, pre, out, ln_ptr, shared_ptr, s, rows, row_mask, B, H,
                        K: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr):
    """``dz = (dẑ - mean dẑ - ẑ∘mean(dẑ∘ẑ))·s`` into ``out`` for the program's columns of the
    K gate blocks (``d``, ``pre``, ``out``: the step's (B, K·H) slots; ``dẑ = d∘γ``), the
    means from the sums of :func:`gradient_sums` the tile's programs shared."""
    sum_d, sum_dz = row_sums(shared_ptr, rows, row_mask, B, BLOCK_B)
    mean_d = (sum_d / (K * H))[:, None]
    mean_dz = (sum_dz / (K * H))[:, None]
    for j in range(tl.program_id(1) * BLOCK_H, H, tl.num_programs(1) * BLOCK_H):
        cols, col_mask, tile_mask, at = column_block(j, rows, row_mask, H, BLOCK_H)
        offsets = rows[:, None] * K * H + cols[None, :]
        for k in tl.static_range(K):
            gain = tl.load(ln_ptr + k * H + cols, mask=col_mask, other=0.0)[None, :]
            d_hat = tl.load(d + offsets + k * H, mask=tile_mask, other=0.0) * gain
            z_hat = tl.load(pre + offsets + k * H, mask=tile_mask, other=0.0)
            tl.store(out + offsets + k * H, (d_hat - mean_d - z_hat * mean_dz) * s,
                     mask=tile_mask)
