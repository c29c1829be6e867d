"""Context-adaptive range coding of a learned bottleneck's codes (codec ``bn:NAME+ctx``).

A code map's neighbours predict each code: measured on the shipped bottlenecks' held-out frames,
a table of each code's probability given the codes to its left and above takes 25% fewer bytes
than zstd finds (docs/benchmarks.md, "What bounds it"). The table is fitted on the training
frames' codes and travels in the bottleneck file; ``constriction`` does the arithmetic coding.
Written here because no entropy-coding library ships a context model over a 2-D code map.

Alphabet: codes below ``alphabet`` (the training codes' range, at most :data:`MAX_ALPHABET`) are
coded with the table; a larger code is coded as the escape symbol ``alphabet`` and sent raw after
the coded words. A neighbour's context is its code clipped to ``alphabet - 1``; outside the map it
is code 0. Decoding goes one anti-diagonal at a time (each position's context is on the one
before); encoding takes one call.

Wire (one frame after another for a batch): ``<II`` (coded 32-bit words, escaped codes), the
words little-endian, then one byte per escaped code in decoding order. Anything else raises
:class:`PayloadError`.
"""
from __future__ import annotations

import importlib.util
import struct

import numpy as np

from l2p_ros.codec_spec import PayloadError

MAX_ALPHABET = 32  # table entries grow with its cube; the shipped bottlenecks use 16
SMOOTHING = 0.1  # added to every count: a context never seen in training still codes every symbol
_HEADER = struct.Struct("<II")


UNAVAILABLE = ("codec bn:NAME+ctx needs the constriction package, not installed here (pip install constriction; "
               "PyPI has no wheel for Linux on ARM, e.g. a Jetson: use bn:NAME there)")
NO_MODEL = "carries no context model (l2p train-bottleneck --context-only adds one)"


def available() -> bool:
    """Whether this machine can range-code (constriction is installed). requirements.txt skips it on
    Linux aarch64, where PyPI has neither a wheel nor a source distribution of it."""
    return importlib.util.find_spec("constriction") is not None


def refusal(bottleneck: str, has_model: bool) -> str | None:
    """Why ``bn:NAME+ctx`` cannot run here for the file ``bottleneck`` (with or without a context model);
    None when it can. What the deployment, ``l2p run`` and ``l2p detect`` say at start."""
    if not has_model:
        return f"{bottleneck} {NO_MODEL}"
    return None if available() else UNAVAILABLE


def _constriction():
    try:
        import constriction
    except ImportError:
        raise PayloadError(UNAVAILABLE) from None
    return constriction


def context_of(codes: np.ndarray, alphabet: int) -> np.ndarray:
    """(…, H, W) codes -> each position's context index ``left * alphabet + above`` (clipped codes)."""
    clipped = np.minimum(codes, alphabet - 1).astype(np.int64)
    left = np.zeros_like(clipped)
    left[..., 1:] = clipped[..., :-1]
    above = np.zeros_like(clipped)
    above[..., 1:, :] = clipped[..., :-1, :]
    return left * alphabet + above


class ContextModel:
    """Per-channel probabilities of a code given its left and upper neighbours' codes.

    ``probabilities``: (channels, alphabet, alphabet, alphabet + 1) float32, indexed
    [channel, left, above, code]; the last symbol is the escape. ``levels``: the largest code.
    """

    def __init__(self, probabilities: np.ndarray, levels: int):
        probabilities = np.asarray(probabilities)
        if probabilities.ndim != 4 or probabilities.shape[1] != probabilities.shape[2] \
                or probabilities.shape[3] != probabilities.shape[1] + 1:
            raise ValueError(f"context probabilities must be (channels, A, A, A + 1), got {probabilities.shape}")
        alphabet = probabilities.shape[1]
        if not 2 <= alphabet <= min(MAX_ALPHABET, levels + 1):
            raise ValueError(f"context alphabet {alphabet} must be 2..{min(MAX_ALPHABET, levels + 1)}")
        if not (np.isfinite(probabilities).all() and (probabilities > 0).all()):
            raise ValueError("context probabilities must be finite and positive")
        self.probabilities = probabilities.astype(np.float32)
        self.alphabet, self.levels, self.channels = alphabet, int(levels), probabilities.shape[0]
        self._rows = self.probabilities.reshape(-1, alphabet + 1)
        self._orders: dict[tuple[int, int, int], tuple] = {}

    @classmethod
    def fit(cls, codes: np.ndarray, levels: int) -> ContextModel:
        """The model of (frames, channels, H, W) training codes, its alphabet their range."""
        codes = np.asarray(codes)
        if codes.ndim != 4 or codes.shape[0] == 0:
            raise ValueError(f"fit takes (frames, channels, H, W) codes, got shape {codes.shape}")
        alphabet = int(min(MAX_ALPHABET, levels + 1, max(2, int(codes.max()) + 1)))
        contexts = context_of(codes, alphabet)
        symbols = np.minimum(codes, alphabet).astype(np.int64)
        counts = np.zeros((codes.shape[1], alphabet * alphabet, alphabet + 1))
        for channel in range(codes.shape[1]):
            np.add.at(counts[channel], (contexts[:, channel].ravel(), symbols[:, channel].ravel()), 1)
        counts += SMOOTHING
        probabilities = counts / counts.sum(-1, keepdims=True)
        return cls(probabilities.reshape(codes.shape[1], alphabet, alphabet, alphabet + 1), levels)

    def _order(self, shape: tuple[int, int, int]) -> tuple:
        """Index arrays for one code map: per anti-diagonal (positions, their left and upper
        neighbours, their channel's first table row), and the same concatenated (the encoder's)."""
        if shape not in self._orders:
            channels, height, width = shape
            position = np.arange(channels * height * width).reshape(shape)
            outside = position.size  # a missing neighbour reads the extra zero at the end
            left = np.full(shape, outside)
            left[..., 1:] = position[..., :-1]
            above = np.full(shape, outside)
            above[:, 1:] = position[:, :-1]
            first_row = np.broadcast_to((np.arange(channels) * self.alphabet ** 2)[:, None, None], shape)
            rows, cols = np.indices((height, width))
            diagonals = [tuple(array[:, rows + cols == d].ravel() for array in (position, left, above, first_row))
                         for d in range(height + width - 1)]
            self._orders[shape] = (diagonals, tuple(map(np.concatenate, zip(*diagonals))))
        return self._orders[shape]

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 4 or shape[1] != self.channels:
            raise PayloadError(f"context coder: codes (N, {self.channels}, H, W) expected, got {tuple(shape)}")

    def encode(self, codes: np.ndarray) -> bytes:
        """(N, channels, H, W) codes (0..levels) -> the wire bytes (module docstring)."""
        codes = np.asarray(codes)
        self._check_shape(codes.shape)
        constriction = _constriction()
        _, (order, left, above, first_row) = self._order(codes.shape[1:])
        family = constriction.stream.model.Categorical(perfect=False)
        parts = []
        for frame in codes:
            clipped = np.append(np.minimum(frame.ravel(), self.alphabet - 1), 0).astype(np.int64)
            symbols = frame.ravel()[order].astype(np.int32)
            escaped = symbols[symbols >= self.alphabet].astype(np.uint8)
            encoder = constriction.stream.queue.RangeEncoder()
            encoder.encode(np.minimum(symbols, self.alphabet), family,
                           self._rows[first_row + clipped[left] * self.alphabet + clipped[above]])
            words = encoder.get_compressed().astype("<u4")
            parts += [_HEADER.pack(words.size, escaped.size), words.tobytes(), escaped.tobytes()]
        return b"".join(parts)

    def decode(self, data: bytes | memoryview, shape: tuple[int, int, int, int]) -> np.ndarray:
        """Wire bytes -> (N, channels, H, W) uint8 codes; PayloadError for anything malformed."""
        self._check_shape(shape)
        constriction = _constriction()
        diagonals, _ = self._order(tuple(shape[1:]))
        family = constriction.stream.model.Categorical(perfect=False)
        data = memoryview(data).cast("B")
        frames, offset = [], 0
        for _ in range(shape[0]):
            if offset + _HEADER.size > len(data):
                raise PayloadError(f"context-coded codes: {len(data)} bytes end before frame {len(frames)}'s header")
            word_count, escape_count = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size
            end = offset + 4 * word_count + escape_count
            if end > len(data):
                raise PayloadError(f"context-coded codes: frame {len(frames)} states {word_count} words and "
                                   f"{escape_count} escaped codes, more than the {len(data)} bytes hold")
            words = np.frombuffer(data[offset:offset + 4 * word_count], dtype="<u4").astype(np.uint32)
            escaped = np.frombuffer(data[offset + 4 * word_count:end], dtype=np.uint8)
            frames.append(self._decode_frame(constriction, family, diagonals, words, escaped, shape[1:]))
            offset = end
        if offset != len(data):
            raise PayloadError(f"context-coded codes: {len(data) - offset} bytes after the last frame")
        return np.stack(frames)

    def _decode_frame(self, constriction, family, diagonals, words, escaped, shape) -> np.ndarray:
        alphabet = self.alphabet
        if escaped.size and alphabet > self.levels:
            raise PayloadError(f"context-coded codes: {escaped.size} escaped codes sent, but this model codes "
                               f"every code 0..{self.levels} itself")
        if escaped.size and (escaped.min() < alphabet or escaped.max() > self.levels):
            raise PayloadError(f"context-coded codes: an escaped code outside {alphabet}..{self.levels}")
        # Contexts read the clipped codes, which are the codes themselves but where escaped: decoded
        # into one array (an escape stored as alphabet - 1), the escaped values set after the loop.
        clipped = np.zeros(int(np.prod(shape)) + 1, dtype=np.int32)
        escape_positions = []
        try:
            decoder = constriction.stream.queue.RangeDecoder(words)
            for position, left, above, first_row in diagonals:
                symbols = decoder.decode(family, self._rows[first_row + clipped[left] * alphabet + clipped[above]])
                if symbols.max(initial=0) == alphabet:  # rare: escapes on this diagonal
                    escapes = symbols == alphabet
                    escape_positions.append(position[escapes])
                    symbols[escapes] = alphabet - 1
                clipped[position] = symbols
            exhausted = decoder.maybe_exhausted()
        except PayloadError:
            raise
        except (ValueError, RuntimeError, AssertionError) as error:  # constriction on corrupt words
            raise PayloadError(f"context-coded codes: not decodable ({error})") from None
        positions = np.concatenate(escape_positions) if escape_positions else np.zeros(0, dtype=np.int64)
        if positions.size != escaped.size or not exhausted:
            raise PayloadError("context-coded codes: the coded words and escapes do not match the code map "
                               "(damaged or coded with another model)")
        codes = clipped[:-1].astype(np.uint8)
        codes[positions] = escaped
        return codes.reshape(shape)
