"""What one weight tile computes: the arithmetic contract between the array and the golden model.

Kept apart from the golden model's byte-stream interpreter so the array's block tests and the
golden model share one definition of a tile.
"""

from __future__ import annotations

import numpy as np

from hw.params import RillParams

__all__ = ["unpack_weight_tile", "diagonal_tile", "tile_psums"]


def unpack_weight_tile(params: RillParams, weight_words: np.ndarray, int4: bool) -> np.ndarray:
    """Weight words (``rows`` x ``cols`` bytes, as in weight SRAM) -> the tile's K x N int weights.

    INT8: byte ``[r, c]`` is ``W[r, c]``. INT4: byte ``[r, c]`` holds ``W[2r, c]`` in its low
    nibble and ``W[2r+1, c]`` in its high nibble (element 0 in the low nibble, as ONNX packs int4).
    """
    words = np.asarray(weight_words, dtype=np.uint8).reshape(params.rows, params.cols)
    if not int4:
        return words.view(np.int8).astype(np.int64)
    low = (words & 0x0F).astype(np.int64)
    high = (words >> 4).astype(np.int64)
    low = np.where(low >= 8, low - 16, low)
    high = np.where(high >= 8, high - 16, high)
    weights = np.empty((2 * params.rows, params.cols), dtype=np.int64)
    weights[0::2] = low
    weights[1::2] = high
    return weights


def diagonal_tile(params: RillParams, word: np.ndarray) -> np.ndarray:
    """A depthwise MATMUL's weight tile from its one stored word (``MatmulFlags.DEPTHWISE``):
    row ``r`` holds the word's byte ``r`` in column ``r``, zeros elsewhere (``rows`` words)."""
    word = np.asarray(word, dtype=np.uint8).reshape(params.cols)
    tile = np.zeros((params.rows, params.cols), np.uint8)
    diagonal = np.arange(min(params.rows, params.cols))
    tile[diagonal, diagonal] = word[diagonal]
    return tile


def tile_psums(params: RillParams, act_words: np.ndarray, weight_words: np.ndarray,
               int4: bool) -> np.ndarray:
    """Column sums one tile produces for ``m`` activation words: ``int64[m, cols]``.

    ``act_words`` is ``int8[m, 2*rows]`` (activation SRAM words). INT8 uses lanes ``0..rows-1``
    (lane ``k`` meets weight row ``k``); INT4 uses all ``2*rows`` lanes (lane ``k`` meets ``W[k]``).
    """
    acts = np.asarray(act_words, dtype=np.int8).reshape(-1, params.act_lanes).astype(np.int64)
    k = params.k_per_tile(int4)
    return acts[:, :k] @ unpack_weight_tile(params, weight_words, int4)
