"""Triton building blocks shared by every family's kernels.

Every recurrent kernel follows one pattern. The grid is (tiles of ``BLOCK_B`` sequences,
column programs). The programs of a tile share its sequences for all T steps and split the
hidden units between them: program ``c`` of ``n`` takes the blocks of ``BLOCK_H`` columns
``c, c + n, c + 2n, …``. For its blocks a program runs the recurrent product (a ``tl.dot``
over the previous state, read back from the state buffer written one step earlier) and the
point-wise cell on the accumulator, in one pass. A step is one or more *sub-steps* (the phases
of a backward, say); each reads what the previous one wrote in every column, so each ends in
a synchronisation of the tile's programs, chosen by ``SYNC`` (see :func:`substep_end`).
Tiles never wait on each other.

The recurrent products take ``W_hh`` in one of two forms, the ``RESIDENT`` option of the
LSTM, GRU and RNN kernels (their layer-normalised forms included, through
:mod:`rnnlab.backends.triton.layernorm_common`): *streamed*, each step reads the program's columns of ``W_hh`` from
memory in ``BLOCK_K`` chunks (:func:`dot_accumulate`); *resident*, each program owns exactly
one block of columns and loads its slices of ``W_hh`` once, before the time loop, with the
reduction dimension padded to the power of two ``H_PAD`` (:func:`resident_slice`), so that
the compiler keeps them in shared memory; each step then reads its operand (``h̄_{t-1}``, or
the step's gate gradients) as one (BLOCK_B × H_PAD) tile and runs one ``tl.dot`` per gate
(:func:`gate_product`, :func:`state_product`).
"""

import triton
import triton.language as tl


@triton.jit
def substep_end(sync_ptr, tile, s, SYNC: tl.constexpr):
    """Close sub-step ``s``: what this program stored is visible to the tile's other programs.

    ``"cta"``: one program per tile, a block barrier is enough. ``"grid"``: several programs
    per tile, all resident at once; each arrives on the tile's counter and waits until every
    program of the tile has arrived (the counter starts at 0 for each launch). ``"launch"``:
    the kernel runs one sub-step and its end is the synchronisation (the Triton interpreter,
    which runs programs one after another, takes this path).
    """
    if SYNC == "cta":
        tl.debug_barrier()
    elif SYNC == "grid":
        tl.debug_barrier()
        tl.atomic_add(sync_ptr + tile, 1, sem="release", scope="gpu")
        target = (s + 1) * tl.num_programs(1)
        while tl.atomic_add(sync_ptr + tile, 0, sem="acquire", scope="gpu") < target:
            pass
        tl.debug_barrier()


@triton.jit
def tile_rows(lengths_ptr, B, BLOCK_B: tl.constexpr):
    """The program's tile of sequences: its index, rows, row mask and running lengths."""
    tile = tl.program_id(0)
    rows = tile * BLOCK_B + tl.arange(0, BLOCK_B)
    row_mask = rows < B
    return tile, rows, row_mask, tl.load(lengths_ptr + rows, mask=row_mask, other=0)


@triton.jit
def column_block(j, rows, row_mask, H, BLOCK_H: tl.constexpr):
    """Columns ``j … j + BLOCK_H`` of the tile: the columns, their mask, the (rows × columns)
    mask and the offsets of (rows, columns) in a (B, H) buffer."""
    cols = j + tl.arange(0, BLOCK_H)
    col_mask = cols < H
    tile_mask = row_mask[:, None] & col_mask[None, :]
    return cols, col_mask, tile_mask, rows[:, None] * H + cols[None, :]


@triton.jit
def zone_weights(zone_ptr, t64, at, tile_mask, B, H, ZONE: tl.constexpr):
    """Zoneout keep weights ``d_t`` of a tile (1 keeps the previous state): ``ZONE`` 1 reads
    them from a (T, B, H) tensor at step ``t64`` and offsets ``at``; 2 reads the one value of an
    expanded constant (the eval-mode expectation ``p``) and returns it as a scalar."""
    if ZONE == 1:
        d = tl.load(zone_ptr + t64 * B * H + at, mask=tile_mask, other=0.0).to(tl.float32)
    else:
        d = tl.load(zone_ptr).to(tl.float32)
    return d


@triton.jit
def lerp(new, old, d):
    """``new + d∘(old - new)`` as :func:`torch.lerp` computes it (exact at d = 0 and d = 1):
    zoneout's ``s_t = d_t∘s_{t-1} + (1-d_t)∘s̃_t``."""
    diff = old - new
    return tl.where(d < 0.5, new + d * diff, old - diff * (1.0 - d))


@triton.jit
def store_state(h_new, h_old, running, h_prev, hbar_ptr, rec_ptr, zone_ptr, t64, at, tile_mask,
                B, H, REC: tl.constexpr, ZONE: tl.constexpr):
    """Close step t's state of a tile and return it: ``h_t = lerp(h̃_t, h_{t-1}, d_t)`` with
    ``ZONE`` (zoneout), ``h_{t-1}`` where the sequence is padded, stored one step past
    ``h_prev``; with ``REC`` also ``h̄_t = m∘h_t``, the next step's recurrent input."""
    if ZONE:
        h_new = lerp(h_new, h_old, zone_weights(zone_ptr, t64, at, tile_mask, B, H, ZONE))
    h_out = tl.where(running, h_new, h_old)
    tl.store(h_prev + B * H + at, h_out, mask=tile_mask)
    if REC:
        m = tl.load(rec_ptr + at, mask=tile_mask, other=0.0)
        tl.store(hbar_ptr + (t64 + 1) * B * H + at, h_out * m, mask=tile_mask)
    return h_out


@triton.jit
def state_grad(acc, t, at, tile_mask, length, rec_ptr, dh_ptr, B, H, REC: tl.constexpr,
               ZONE: tl.constexpr):
    """Close step t's BPTT for a tile: ``dh_{t-1} = acc∘m + g∘d_t`` (``acc`` the recurrent
    product ``da_t W_hh`` of its columns; ``m`` with ``REC``; with ``ZONE`` the kept share
    ``g∘d_t`` that opening step t left in slot t % 2), or the ``dh`` reaching ``h_t`` where step
    t is padded; stored in slot t % 2 of the two-slot ``dh`` (slot (t+1) % 2 holds ``dh_t``)
    and returned."""
    running = (t < length)[:, None]
    dh_out = dh_ptr + (t % 2) * B * H
    if REC:
        acc *= tl.load(rec_ptr + at, mask=tile_mask, other=0.0)
    if ZONE:
        acc += tl.load(dh_out + at, mask=tile_mask, other=0.0)
    dh = tl.load(dh_ptr + ((t + 1) % 2) * B * H + at, mask=tile_mask, other=0.0)
    dh_prev = tl.where(running, acc, dh)
    tl.store(dh_out + at, dh_prev, mask=tile_mask)
    return dh_prev


@triton.jit
def sigmoid(x):
    """σ(x), element-wise (Triton's ``tl.sigmoid``)."""
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
            w = w.to(tl.float32)
        acc = tile_dot(acc, a.to(w.dtype), w, PRECISION)
    return acc


@triton.jit
def resident_slice(w_ptr, row0, j, H, BLOCK_H: tl.constexpr, H_PAD: tl.constexpr,
                   TRANSPOSED: tl.constexpr, PRECISION: tl.constexpr):
    """The program's slice of the gate block ``W_g`` (rows ``row0 … row0 + H`` of a (G·H, H)
    matrix) for its columns ``j … j + BLOCK_H``, loaded once before the time loop so that it
    stays on chip: (H_PAD, BLOCK_H), the reduction dimension padded with zeros to ``H_PAD``.
    ``TRANSPOSED`` (forward, ``h̄ W_gᵀ``): ``S[k, n] = W[row0 + j + n, k]``; else (backward,
    ``da_g W_g``): ``S[k, n] = W[row0 + k, j + n]``. Half types stay half (the tensor cores'
    path); ``PRECISION`` "float32" widens them, as :func:`dot_accumulate` does."""
    ks = tl.arange(0, H_PAD)
    cols = j + tl.arange(0, BLOCK_H)
    mask = (ks < H)[:, None] & (cols < H)[None, :]
    if TRANSPOSED:
        w = tl.load(w_ptr + (row0 + cols[None, :]) * H + ks[:, None], mask=mask, other=0.0)
    else:
        w = tl.load(w_ptr + (row0 + ks[:, None]) * H + cols[None, :], mask=mask, other=0.0)
    if PRECISION == "float32":
        w = w.to(tl.float32)
    return w


@triton.jit
def gate_operand(w_ptr, g, H, BLOCK_H: tl.constexpr, H_PAD: tl.constexpr,
                 TRANSPOSED: tl.constexpr, PRECISION: tl.constexpr, RESIDENT: tl.constexpr):
    """The program's operand of gate block ``g`` of ``W`` (G·H, H), taken before the time loop:
    with ``RESIDENT`` its slice for the program's one block of columns, loaded now to stay on
    chip (:func:`resident_slice`); streamed, ``w_ptr``, which :func:`dot_accumulate` reads every
    step."""
    if RESIDENT:
        w = resident_slice(w_ptr, g * H, tl.program_id(1) * BLOCK_H, H, BLOCK_H, H_PAD,
                           TRANSPOSED, PRECISION)
    else:
        w = w_ptr
    return w


@triton.jit
def operand_tile(a_ptr, a_stride, rows, row_mask, K, w_slice, H_PAD: tl.constexpr):
    """``A[rows, :K]`` of a float32 buffer (row stride ``a_stride``) as one (rows × H_PAD)
    tile, zero past K, in the dtype of the resident ``w_slice`` it multiplies."""
    ks = tl.arange(0, H_PAD)
    a = tl.load(a_ptr + rows[:, None] * a_stride + ks[None, :],
                mask=row_mask[:, None] & (ks < K)[None, :], other=0.0)
    return a.to(w_slice.dtype)


@triton.jit
def gate_product(acc, a_ptr, a_tile, w_ptr, w_slice, g, rows, row_mask, cols, col_mask, H,
                 BLOCK_K: tl.constexpr, PRECISION: tl.constexpr, RESIDENT: tl.constexpr):
    """Forward: ``acc + Ā W_gᵀ`` for the tile's columns of gate block ``g`` (``Ā`` (B, H) at
    ``a_ptr``, ``W`` (G·H, H) at ``w_ptr``): with ``RESIDENT`` one ``tl.dot`` of the step's
    operand tile ``a_tile`` (:func:`operand_tile`) and the resident ``w_slice``
    (:func:`resident_slice`), else streamed from memory (:func:`dot_accumulate`)."""
    if RESIDENT:
        acc = tile_dot(acc, a_tile, w_slice, PRECISION)
    else:
        acc = dot_accumulate(acc, a_ptr, H, rows, row_mask, w_ptr, H, 1, cols + g * H, col_mask,
                             H, BLOCK_K, PRECISION)
    return acc


@triton.jit
def state_product(acc, d_ptr, d_stride, w_ptr, w_slice, g, rows, row_mask, cols, col_mask, H,
                  BLOCK_K: tl.constexpr, H_PAD: tl.constexpr, PRECISION: tl.constexpr,
                  RESIDENT: tl.constexpr):
    """Backward: ``acc + D_g W_g`` for the tile's columns, ``D_g`` the columns ``g·H …`` of a
    gradient buffer (row stride ``d_stride``), ``W_g`` the rows ``g·H …`` of ``W`` (G·H, H):
    with ``RESIDENT`` one ``tl.dot`` against the resident ``w_slice``, else streamed."""
    if RESIDENT:
        a = operand_tile(d_ptr + g * H, d_stride, rows, row_mask, H, w_slice, H_PAD)
        acc = tile_dot(acc, a, w_slice, PRECISION)
    else:
        acc = dot_accumulate(acc, d_ptr + g * H, d_stride, rows, row_mask, w_ptr + g * H * H, 1,
                             H, cols, col_mask, H, BLOCK_K, PRECISION)
    return acc


@triton.jit
def tile_dot(acc, a, w, PRECISION: tl.constexpr):
    """``acc + a @ w`` at the input precision ``PRECISION`` ("float32": operands already
    float32, computed exactly)."""
    if PRECISION == "float32":
        acc = tl.dot(a, w, acc, input_precision="ieee")
    else:
        acc = tl.dot(a, w, acc, input_precision=PRECISION)
    return acc


@triton.jit
def tile_moments(x, tile_mask):
    """Per row of a (rows × columns) tile, over its valid columns: the count, the mean and
    ``M2 = Σ (x - mean)²``."""
    n = tl.sum(tile_mask.to(tl.float32), axis=1)
    mean = tl.sum(tl.where(tile_mask, x, 0.0), axis=1) / tl.maximum(n, 1.0)
    dev = tl.where(tile_mask, x - mean[:, None], 0.0)
    return n, mean, tl.sum(dev * dev, axis=1)


@triton.jit
def merge_moments(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Two sets of rows' ``(count, mean, M2)`` as one (Chan, Golub and LeVeque's pairwise
    update): no cancellation, unlike ``E[x²] - E[x]²``."""
    n = n_a + n_b
    w = n_b / tl.maximum(n, 1.0)
    delta = mean_b - mean_a
    return n, mean_a + delta * w, m2_a + m2_b + delta * delta * n_a * w


@triton.jit
def share_rows(buf_ptr, rows, row_mask, B, a, b, c):
    """Store this program's per-row partials ``a, b, c`` at ``buf[program, row, 0:3]``, for the
    tile's programs to combine after the sub-step's barrier (:func:`gather_rows`)."""
    at = (tl.program_id(1) * B + rows) * 3
    tl.store(buf_ptr + at, a, mask=row_mask)
    tl.store(buf_ptr + at + 1, b, mask=row_mask)
    tl.store(buf_ptr + at + 2, c, mask=row_mask)


@triton.jit
def gather_rows(buf_ptr, rows, row_mask, B, p):
    """Program ``p``'s per-row partials, as :func:`share_rows` stored them."""
    at = (p * B + rows) * 3
    return (tl.load(buf_ptr + at, mask=row_mask, other=0.0),
            tl.load(buf_ptr + at + 1, mask=row_mask, other=0.0),
            tl.load(buf_ptr + at + 2, mask=row_mask, other=0.0))


@triton.jit
def row_statistics(buf_ptr, rows, row_mask, B, EPS, BLOCK_B: tl.constexpr):
    """Mean and ``1/sqrt(var + EPS)`` (biased variance) of each row of the tile, from the
    moments every program of the tile shared (:func:`share_rows` of ``n, mean, M2``)."""
    n = tl.zeros((BLOCK_B,), dtype=tl.float32)
    mean = tl.zeros((BLOCK_B,), dtype=tl.float32)
    m2 = tl.zeros((BLOCK_B,), dtype=tl.float32)
    for p in range(tl.num_programs(1)):
        n_p, mean_p, m2_p = gather_rows(buf_ptr, rows, row_mask, B, p)
        n, mean, m2 = merge_moments(n, mean, m2, n_p, mean_p, m2_p)
    return mean, 1.0 / tl.sqrt(m2 / tl.maximum(n, 1.0) + EPS)


@triton.jit
def row_sums(buf_ptr, rows, row_mask, B, BLOCK_B: tl.constexpr):
    """The sums over the tile's programs of the first two partials they shared."""
    a = tl.zeros((BLOCK_B,), dtype=tl.float32)
    b = tl.zeros((BLOCK_B,), dtype=tl.float32)
    for p in range(tl.num_programs(1)):
        a_p, b_p, _ = gather_rows(buf_ptr, rows, row_mask, B, p)
        a += a_p
        b += b_p
    return a, b


def block_sizes(batch: int, hidden: int) -> dict:
    """Tile sizes: tl.dot needs every side ≥ 16."""
    return {
        "BLOCK_B": max(16, min(64, triton.next_power_of_2(batch))),
        "BLOCK_H": max(16, min(64, triton.next_power_of_2(hidden))),
        "BLOCK_K": max(16, min(64, triton.next_power_of_2(hidden))),
    }
