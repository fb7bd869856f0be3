"""Triton building blocks shared by every family's kernels.

Every recurrent kernel follows one pattern. A program owns a tile of ``BLOCK_B`` sequences for
all T steps, so the steps need no synchronisation between programs. Inside a step it walks the
hidden units in blocks of ``BLOCK_H`` columns: the recurrent product of the block is a
``tl.dot`` over the previous state (read back from the state buffer the program wrote one step
earlier), and the point-wise cell runs in the same pass, on the accumulator. A
``tl.debug_barrier()`` ends the step, so every column written in step t is visible to the whole
program before step t+1 reads it.
"""

import triton
import triton.language as tl


@triton.jit
def sigmoid(x):
    return tl.sigmoid(x)


@triton.jit
def tanh(x):
    """tanh(x) = 2σ(2x) - 1, in the float32 the kernels compute in."""
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0


@triton.jit
def dot_accumulate(acc, a_ptr, a_stride, rows, row_mask, w_ptr, stride_n, stride_k, cols,
                   col_mask, K, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr):
    """``acc += A[rows, :K] @ Wblock`` with ``Wblock[k, n] = w_ptr[cols[n]·stride_n + k·stride_k]``.

    ``A`` is a float32 state or gradient buffer (row stride ``a_stride``); it is cast to the
    weight's dtype, so half-precision weights take the tensor cores' half path with a float32
    accumulator. ``PRECISION`` is ``tl.dot``'s input precision ("ieee", "tf32"), or
    "float32": the weights are widened instead (the Triton interpreter's ``tl.dot`` mishandles
    bfloat16 operands). ``stride_n, stride_k = K, 1`` reads ``Wᵀ`` (forward: ``h W_hhᵀ``);
    ``1, H`` reads ``W`` (backward: ``da W_hh``).
    """
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_mask = ks < K
        a = tl.load(a_ptr + rows[:, None] * a_stride + ks[None, :],
                    mask=row_mask[:, None] & k_mask[None, :], other=0.0)
        w = tl.load(w_ptr + cols[None, :] * stride_n + ks[:, None] * stride_k,
                    mask=k_mask[:, None] & col_mask[None, :], other=0.0)
        if PRECISION == "float32":
            acc = tl.dot(a, w.to(tl.float32), acc, input_precision="ieee")
        else:
            acc = tl.dot(a.to(w.dtype), w, acc, input_precision=PRECISION)
    return acc


def block_sizes(batch: int, hidden: int) -> dict:
    """Tile sizes: tl.dot needs every side ≥ 16."""
    return {
        "BLOCK_B": max(16, min(64, triton.next_power_of_2(batch))),
        "BLOCK_H": max(16, min(64, triton.next_power_of_2(hidden))),
        "BLOCK_K": max(16, min(64, triton.next_power_of_2(hidden))),
    }
