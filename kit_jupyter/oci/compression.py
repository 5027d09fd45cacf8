"""Layer compression in both directions: the one home of gzip and zstd for layer blobs.

Pack (:func:`compressor`): kit's three writers -- Go's ``gzip.NewWriter`` (level 6),
``gzip.BestSpeed`` (level 1) and klauspost ``zstd.NewWriter`` with its defaults (``SpeedDefault``,
which is zstd level 3, with a content checksum). A compressed digest cannot match kit's byte for
byte anyway (spec §8.5), so what matters is that kit's decoder reads what we write: level 3 uses a
window of at most 8 MiB, far below the 512 MiB that klauspost's decoder accepts by default.

Unpack (:func:`decompressing_reader`): a stream in, the uncompressed bytes out through one bounded
buffer, never a whole layer in memory. zstd layers are hostile input like any other:

* the window a frame asks for is capped (:data:`ZSTD_MAX_WINDOW`, libzstd's own default limit of
  128 MiB), so a frame that asks for gigabytes is refused with one line before anything is
  allocated, not with a ``MemoryError``;
* libzstd's streaming decoder returns what it has when its input ends mid-frame, silently. A
  truncated layer whose digest still matches (made that way on purpose) would then unpack as a
  short file. :class:`ZstdFrames` therefore walks the frame and block headers of the compressed
  bytes as they go by -- headers only, no decoding -- and the end of the input must fall on a
  frame boundary (kit's decoder says ``unexpected EOF`` there);
* after the archive's end the caller drains the *compressed* rest (for the digest) with
  :meth:`ZstdReader.finish`, without decoding it: kit stops reading there too, and decoding a
  trailing stream of zeros that expands 40000-fold would only burn time.

Every decoding failure is a :class:`LayerDecodeError`: one line, ``failed to unpack: layer is not
valid zstd: <reason>``, the reason in klauspost's words where it has one (``unexpected EOF``,
``invalid input: magic number mismatch``, ``window size exceeded``). ``tests/data/zstd/`` holds
the program that ran kit's encoder and decoder (Go, klauspost/compress) against this module.
"""

from __future__ import annotations

import gzip
import zlib
from typing import BinaryIO, Protocol, cast

import zstandard

from kit_jupyter._fs import io_buffer
from kit_jupyter.errors import PackError, UnpackError

CHUNK = 1 << 20
#: klauspost's ``SpeedDefault`` corresponds to zstd level 3.
ZSTD_LEVEL = 3
#: The largest window a zstd frame may ask for (libzstd's default ``ZSTD_WINDOWLOG_LIMIT``).
ZSTD_MAX_WINDOW = 1 << 27

_ZSTD_MAGIC = 0xFD2FB528
_SKIPPABLE_MASK = 0xFFFFFFF0
_SKIPPABLE_MAGIC = 0x184D2A50


class LayerDecodeError(UnpackError):
    """A compressed layer that does not decode (maybe a corrupt blob: callers check its digest
    before they report this)."""


Bytes = bytes | bytearray | memoryview


class Source(Protocol):
    """A compressed blob as the readers take it (a verifying blob reader, a registry stream)."""

    def read(self, n: int = -1, /) -> bytes: ...

    def readinto(self, buffer: bytearray | memoryview, /) -> int: ...


class Compressor(Protocol):
    def compress(self, data: Bytes, /) -> bytes: ...

    def flush(self) -> bytes: ...


def compressor(compression: str) -> Compressor | None:
    """The streaming compressor for ``--compression`` (None for ``none``)."""
    if compression == "none":
        return None
    if compression in ("gzip", "gzip-fastest"):
        return zlib.compressobj(6 if compression == "gzip" else 1, zlib.DEFLATED, 31)
    if compression == "zstd":
        return _ZstdCompressor()
    raise PackError(f"unsupported compression format: {compression}")


class _ZstdCompressor:
    """``zstandard``'s compressobj with zlib's ``flush()`` signature (it wants a mode)."""

    def __init__(self) -> None:
        self._obj = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True).compressobj()

    def compress(self, data: Bytes, /) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush()


# =============================================================================================
# Decoding
# =============================================================================================

def _zstd_error(reason: str) -> LayerDecodeError:
    return LayerDecodeError(f"failed to unpack: layer is not valid zstd: {reason}")


class ZstdFrames:
    """The frame structure of a zstd stream (RFC 8878 §3.1), from its headers alone.

    Fed the compressed bytes in order, it knows whether the stream so far ends on a frame
    boundary (:attr:`at_boundary`). Magic numbers, the reserved bit of the frame header and
    the reserved block type are checked (libzstd refuses them too); everything else is left
    to the decoder.
    """

    _MAGIC, _SKIP_SIZE, _FRAME_HEADER, _BLOCK = range(4)
    _WANT = {_MAGIC: 4, _SKIP_SIZE: 4, _FRAME_HEADER: 1, _BLOCK: 3}

    def __init__(self) -> None:
        self._state = self._MAGIC
        self._head = bytearray()
        self._skip = 0  # bytes to pass over before the next header
        self._checksum = False
        self.frames = 0

    @property
    def at_boundary(self) -> bool:
        return self._state == self._MAGIC and not self._head and not self._skip

    def feed(self, data: Bytes) -> None:
        view = memoryview(data).cast("B")
        i, n = 0, len(view)
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                self._skip -= take
                i += take
                continue
            want = self._WANT[self._state] - len(self._head)
            take = min(want, n - i)
            self._head += view[i:i + take]
            i += take
            if take == want:
                head = bytes(self._head)
                self._head.clear()
                self._header(head)

    def _header(self, head: bytes) -> None:
        value = int.from_bytes(head, "little")
        if self._state == self._MAGIC:
            if value == _ZSTD_MAGIC:
                self._state = self._FRAME_HEADER
            elif value & _SKIPPABLE_MASK == _SKIPPABLE_MAGIC:
                self._state = self._SKIP_SIZE
            else:
                raise _zstd_error("invalid input: magic number mismatch")  # klauspost's text
        elif self._state == self._SKIP_SIZE:
            self._skip = value
            self._state = self._MAGIC
            self.frames += 1
        elif self._state == self._FRAME_HEADER:
            if value & 0x08:
                raise _zstd_error("reserved bit set in frame header")
            single = bool(value & 0x20)
            fcs = (1 if single else 0, 2, 4, 8)[value >> 6]
            self._skip = (0 if single else 1) + (0, 1, 2, 4)[value & 3] + fcs
            self._checksum = bool(value & 0x04)
            self._state = self._BLOCK
        else:
            block_type = (value >> 1) & 3
            if block_type == 3:
                raise _zstd_error("reserved block type")
            self._skip = 1 if block_type == 1 else value >> 3
            if value & 1:  # last block: the checksum (if any), then the next frame
                self._skip += 4 if self._checksum else 0
                self._state = self._MAGIC
                self.frames += 1


class _Tap:
    """The compressed source as the decoder reads it, shown to a :class:`ZstdFrames`."""

    def __init__(self, raw: Source, frames: ZstdFrames):
        self._raw = raw
        self._frames = frames

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._frames.feed(data)
        return data


class ZstdReader:
    """Uncompressed bytes of a zstd stream through ``readinto`` (see the module docstring)."""

    def __init__(self, raw: Source):
        self._frames = ZstdFrames()
        self._tap = _Tap(raw, self._frames)
        dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        # zstandard only calls read() on its source; its stubs want a full IO
        self._z = dctx.stream_reader(cast(BinaryIO, self._tap),
                                     read_size=CHUNK, read_across_frames=True)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        try:
            n = self._z.readinto(buffer)
        except zstandard.ZstdError as err:
            raise _zstd_error(_zstd_reason(err)) from None
        if not n:
            self._check_end()
        return n

    def finish(self) -> None:
        """Drain the compressed rest without decoding it (the digest is checked at its end
        by the source), then insist the stream ended on a frame boundary."""
        while self._tap.read(CHUNK):
            pass
        self._check_end()

    def _check_end(self) -> None:
        if not self._frames.at_boundary:
            raise _zstd_error("unexpected EOF")


def _zstd_reason(err: Exception) -> str:
    text = str(err).removeprefix("zstd decompress error: ")
    if "too much memory" in text:  # klauspost's text, and our limit
        return f"window size exceeded (more than {ZSTD_MAX_WINDOW >> 20} MiB)"
    return text[:1].lower() + text[1:] if text else type(err).__name__


_GZIP_ERRORS = (zlib.error, EOFError, gzip.BadGzipFile)


class GzipReader:
    """Uncompressed bytes of a gzip stream; decoding errors as :class:`LayerDecodeError`."""

    def __init__(self, raw: Source):
        self._raw = raw
        # GzipFile only reads forward (its stubs also ask for seek, used by rewind alone)
        self._z = gzip.GzipFile(fileobj=cast(BinaryIO, raw), mode="rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        try:
            return self._z.readinto(buffer) or 0
        except _GZIP_ERRORS as err:
            raise LayerDecodeError(f"failed to unpack: layer is not valid gzip: {err}") from None

    def finish(self) -> None:
        """Read to the end: gzip checks its CRC there, and the source its digest."""
        buf = io_buffer(CHUNK)
        while self.readinto(buf):
            pass
        while self._raw.readinto(buf):
            pass


def decompressing_reader(raw: Source, compression: str) -> GzipReader | ZstdReader:
    """A reader of ``raw``'s uncompressed bytes for a layer's compression (``gzip``, ``zstd``,
    as :func:`kit_jupyter.oci.mediatypes.parse_media_type` reports it)."""
    if compression in ("gzip", "gzip-fastest"):
        return GzipReader(raw)
    if compression == "zstd":
        return ZstdReader(raw)
    raise UnpackError(f"failed to unpack: {compression}-compressed layers are not supported")


__all__ = ["CHUNK", "ZSTD_LEVEL", "ZSTD_MAX_WINDOW", "Compressor", "GzipReader",
           "LayerDecodeError", "ZstdFrames", "ZstdReader", "compressor", "decompressing_reader"]
