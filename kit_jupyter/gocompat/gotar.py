"""Go's ``archive/tar`` as kit drives it: the header writer (spec §8.2-§8.4) and the reader.

Writer: Python's ``tarfile`` differs from Go in directory names, devmajor/devminor, record padding,
the USTAR split and PAX naming (spec §8.7); any one of those changes a layer's digest, and the
promise is that an uncompressed layer packed here has the digest kit would give it. So the
headers are built by hand, and change only with golden data.

Reader: what Go's ``tar.Reader.Next`` accepts and refuses, so that an archive kit cannot unpack
is refused here too and one kit can unpack is read the same way: USTAR (with its prefix), PAX
``x`` records (parsed and merged by Go's rules: ``size`` a signed decimal, no NUL in ``path``),
GNU long names, base-256 numbers, both checksum variants, two zero blocks as the end. The
special files that carry metadata (PAX records, GNU long names) are capped at 1 MiB like Go's
``maxSpecialFileSize``, and refused *before* they are read, so a header that claims gigabytes
costs nothing. ``tarfile`` is not used: its stream mode re-slices its buffer on every read (about
5x slower than ``tar -x``) and it accepts what Go refuses (``size=abc`` raises ``ValueError``).

The reader never touches the file system: it parses headers from a :class:`TarInput` and hands
the member's bytes to whoever extracts them (``kit_jupyter.oci.extract``), so one reader serves
local blobs (kernel copies) and streams (registry, gzip) alike.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from typing import Protocol
from zlib import adler32

from kit_jupyter.errors import UnpackError
from kit_jupyter.gocompat.gopath import go_clean

BLOCK = 512
KIT_UID = 1000
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)
#: Go's ``maxSpecialFileSize``: the largest PAX record block or GNU long name it reads.
MAX_SPECIAL_FILE_SIZE = 1 << 20
_MAX_USTAR_SIZE = 0o77777777777  # 8 GiB - 1: the largest size an 11-digit octal field holds
_NAME_SIZE = 100
_PREFIX_SIZE = 155
_ZERO_BLOCK = bytes(BLOCK)


# =============================================================================================
# Writing headers (Go archive/tar, as driven by kit)
# =============================================================================================

def _octal(value: int, width: int) -> bytes:
    """Go ``formatOctal``: zero-padded, leaving room for a NUL; 0 if it does not fit."""
    if value < 0 or value >= 8 ** (width - 1):
        value = 0
    return format(value, "o").rjust(width - 1, "0").encode() + b"\0"


def _put_string(block: bytearray, offset: int, size: int, value: bytes) -> None:
    """Go ``formatString`` incl. its cut-and-drop-trailing-slash rule for over-long names."""
    chunk = value[:size]
    block[offset:offset + len(chunk)] = chunk
    if len(value) > size and chunk.endswith(b"/"):
        n = len(chunk.rstrip(b"/"))
        block[offset + n] = 0


def _to_ascii(value: bytes) -> bytes:
    return bytes(b for b in value if 0 < b < 0x80)


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """Go's ``splitUSTARPath``: the *last* ``/`` within the first 156 bytes."""
    length = len(name)
    if length <= _NAME_SIZE or not name.isascii():
        return None
    if length > _PREFIX_SIZE + 1:
        length = _PREFIX_SIZE + 1
    elif name[length - 1:length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    nlen = len(name) - i - 1
    if i <= 0 or nlen > _NAME_SIZE or nlen == 0 or i > _PREFIX_SIZE:
        return None
    return name[:i], name[i + 1:]


def _checksum(block: bytearray) -> None:
    block[148:156] = b" " * 8
    total = sum(block)
    block[148:156] = format(total, "o").rjust(6, "0").encode() + b"\0 "


def _v7_plus(name: bytes, mode: int, uid: int, size: int, typeflag: bytes,
             devnums: bool) -> bytearray:
    block = bytearray(BLOCK)
    _put_string(block, 0, 100, name)
    block[100:108] = _octal(mode, 8)
    block[108:116] = _octal(uid, 8)
    block[116:124] = _octal(0, 8)
    block[124:136] = _octal(size, 12)
    block[136:148] = _octal(0, 12)
    block[156:157] = typeflag
    block[257:263] = b"ustar\0"
    block[263:265] = b"00"
    if devnums:
        block[329:337] = _octal(0, 8)
        block[337:345] = _octal(0, 8)
    return block


def _pax_record(key: str, value: bytes) -> bytes:
    body = key.encode() + b"=" + value + b"\n"
    size = len(body) + 1
    size += len(str(size))
    record = str(size).encode() + b" " + body
    if len(record) != size:
        record = str(len(record)).encode() + b" " + body
    return record


#: a USTAR block as the fields :func:`header_into` fills (name, size, checksum) and the runs of
#: cached bytes between them: one ``pack_into`` writes it all ("100s" pads the name with NULs)
_USTAR_FIELDS = struct.Struct("100s24s12s12s8s356s")
_TEMPLATES: dict[int, tuple[bytes, bytes, bytes, int]] = {}


def header_into(buf: bytearray | memoryview, pos: int, name: bytes, mode: int, size: int,
                is_dir: bool) -> int:
    """Put the header kit writes for one entry at ``buf[pos:pos + BLOCK]`` if it is one USTAR
    block with the name in the name field (a short ASCII name: nearly every entry of a code
    layer) and return ``BLOCK``; return 0, writing nothing, where it is not (then
    :func:`tar_header` builds it). The bytes of a cached block for the mode and type go around
    the name, the size and the checksum, which is the cached sum of those bytes plus theirs:
    the general path's bytes in one ``pack_into``, at a tenth of its cost (pack writes one
    header per file: 1.5-2.1 us here, against 3.1 us for the four slice assignments this did
    before and 15 us for the general path)."""
    if is_dir:
        size = 0
    if len(name) > _NAME_SIZE or not name.isascii() or b"\0" in name or \
            not 0 <= mode < 0o7777777 or size >= 8 ** 11:
        return 0
    key = mode << 1 | is_dir
    cached = _TEMPLATES.get(key)
    if cached is None:
        block = _v7_plus(b"", mode, KIT_UID, 0, b"5" if is_dir else b"0", devnums=True)
        block[124:136] = bytes(12)
        block[148:156] = b" " * 8
        # Adler-32's low half below is 1 + the sum of its bytes: the 1 is taken off here
        cached = _TEMPLATES[key] = (bytes(block[100:124]), bytes(block[136:148]),
                                    bytes(block[156:]), sum(block) - 1)
        if len(_TEMPLATES) > 64:  # modes are few; never let odd ones pile up
            _TEMPLATES.clear()
    ids, mtime, rest, base_sum = cached
    size_field = b"%011o\0" % size
    # the sum of the name's and the size's bytes: at most 100 ASCII bytes and 12 octal digits
    # sum to under 13,400, below Adler-32's modulus (zlib's C loop, not sum()'s)
    checksum = base_sum + (adler32(size_field, adler32(name)) & 0xFFFF)
    _USTAR_FIELDS.pack_into(buf, pos, name, ids, size_field, mtime, b"%06o\0 " % checksum, rest)
    return BLOCK


def tar_header(name: bytes, mode: int, size: int, is_dir: bool) -> bytes:
    """The header block(s) kit writes for one entry (spec §8.2-§8.3).

    USTAR when possible; otherwise a PAX extended header named the way Go names it, followed by
    the USTAR-shaped main header with the name reduced to ASCII and cut to 100 bytes.
    """
    block = bytearray(BLOCK)
    if header_into(block, 0, name, mode, size, is_dir):
        return bytes(block)
    typeflag = b"5" if is_dir else b"0"
    size = 0 if is_dir else size
    pax: dict[str, bytes] = {}
    if not name.isascii() or b"\0" in name or len(name) > _NAME_SIZE:
        pax["path"] = name
    if size > _MAX_USTAR_SIZE:
        pax["size"] = str(size).encode()
    ustar_ok = "size" not in pax and b"\0" not in name and (
        (name.isascii() and len(name) <= _NAME_SIZE) or _split_ustar(name) is not None)
    if ustar_ok:
        prefix = b""
        split = _split_ustar(name)
        if split is not None:
            prefix, name = split
        block = _v7_plus(name, mode, KIT_UID, size, typeflag, devnums=True)
        _put_string(block, 345, 155, prefix)
        _checksum(block)
        return bytes(block)
    data = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
    directory, _, base = name.rpartition(b"/")
    pax_name = go_clean(os.fsdecode(directory + b"/PaxHeaders.0/" + base if directory
                                    else b"PaxHeaders.0/" + base))
    pax_name_b = _to_ascii(os.fsencode(pax_name))[:_NAME_SIZE].rstrip(b"/")
    xblock = bytearray(BLOCK)
    _put_string(xblock, 0, 100, pax_name_b)
    xblock[100:108] = _octal(0, 8)
    xblock[108:116] = _octal(0, 8)
    xblock[116:124] = _octal(0, 8)
    xblock[124:136] = _octal(len(data), 12)
    xblock[136:148] = _octal(0, 12)
    xblock[156:157] = b"x"
    xblock[257:263] = b"ustar\0"
    xblock[263:265] = b"00"
    _checksum(xblock)
    main = _v7_plus(_to_ascii(name), mode, KIT_UID, size, typeflag, devnums=True)
    _checksum(main)
    return bytes(xblock) + data + padding(len(data)) + bytes(main)


def padding(size: int) -> bytes:
    """The NULs that round a member's data up to whole blocks."""
    return b"\0" * (-size % BLOCK)


# =============================================================================================
# Reading headers (Go's tar.Reader.Next)
# =============================================================================================

class TarFormatError(UnpackError):
    """The layer's bytes are not an archive Go's reader would accept (maybe a corrupt blob)."""


def _invalid(why: str) -> TarFormatError:
    return TarFormatError(f"failed to unpack: invalid tar header: {why}")


def unexpected_eof() -> TarFormatError:
    return TarFormatError("failed to unpack: unexpected EOF in layer archive")


class TarInput(Protocol):
    """Where the archive's bytes come from. ``read_upto`` returns fewer than ``n`` bytes only at
    the end of the input; ``skip`` and ``copy_to`` raise :class:`TarFormatError` (via
    :func:`unexpected_eof`) if the input ends first."""

    def read_upto(self, n: int) -> bytes: ...

    def skip(self, n: int) -> None: ...

    def copy_to(self, fd: int, n: int) -> None: ...


#: Go's typeflags, by what kit (and so unpack) makes of them.
_KINDS = {b"0": "file", b"5": "dir", b"1": "hardlink", b"2": "symlink", b"3": "chardev",
          b"4": "blockdev", b"6": "fifo"}
_HEADER_ONLY = frozenset(b"123456")
_NUMERIC_FIELDS = (("mode", 100, 108), ("uid", 108, 116), ("gid", 116, 124),
                   ("mtime", 136, 148))  # Go's isHeaderOnlyType: no data whatever the size says


@dataclass(slots=True)
class TarHeader:
    """One entry as Go's reader returns it. ``kind`` is file/dir/symlink/hardlink/chardev/
    blockdev/fifo/other (``other``: any other typeflag, or a GNU sparse file); ``mode`` is the
    header's raw mode (setuid/setgid/sticky included -- what to restore is the extractor's
    decision); ``size`` is the number of data bytes that follow (0 for header-only types)."""

    name: str
    kind: str
    mode: int
    size: int
    linkname: str = ""


class TarReader:
    """Go's ``tar.Reader`` over a :class:`TarInput`: :meth:`next` returns the next entry's
    header; its data is either consumed with :meth:`copy_to` or skipped by the next call."""

    def __init__(self, src: TarInput):
        self._src = src
        self._left = 0  # data bytes of the current entry not consumed yet
        self._pad = 0
        self._numbers: tuple[int, int] | None = None  # the last block's (mode, size), if read

    def copy_to(self, fd: int) -> None:
        """Write the current entry's data to ``fd`` (at its current position, via the input)."""
        left, self._left = self._left, 0
        if left:
            self._src.copy_to(fd, left)

    def next(self) -> TarHeader | None:
        """The next entry, or None at the end of the archive (two zero blocks, or the input
        ending on a block boundary, as Go's reader takes it)."""
        if self._left or self._pad:
            self._src.skip(self._left + self._pad)
            self._left = self._pad = 0
        pax: dict[bytes, bytes] = {}
        long_name: bytes | None = None
        long_link: bytes | None = None
        while True:
            block = self._block()
            if block is None:
                return None
            typeflag = block[156:157]
            numbers = self._numbers
            size = numbers[1] if numbers is not None else _parse_numeric(block[124:136], "size")
            if size < 0:
                raise _invalid(f"negative size {size}")
            if typeflag in (b"x", b"g", b"L", b"K"):
                data = self._special(size)
                if typeflag == b"x":
                    pax = _parse_pax(data)  # Go: a second x header replaces the first
                elif typeflag == b"g":
                    _parse_pax(data)  # checked like Go, then ignored (nothing we apply)
                elif typeflag == b"L":
                    long_name = _cstr(data)
                else:
                    long_link = _cstr(data)
                continue
            return self._entry(block, typeflag, size, pax, long_name, long_link)

    def _entry(self, block: bytes, typeflag: bytes, size: int, pax: dict[bytes, bytes],
               long_name: bytes | None, long_link: bytes | None) -> TarHeader:
        name = _cstr(block[0:100])
        linkname = _cstr(block[157:257])
        if block[257:263] == b"ustar\0":  # USTAR/PAX (or star): the prefix field is a prefix
            prefix = _cstr(block[345:476] if block[508:512] == b"tar\0" else block[345:500])
            if prefix:
                name = prefix + b"/" + name
        numbers = self._numbers
        mode = numbers[0] if numbers is not None else _parse_numeric(block[100:108], "mode")
        if pax:
            name, linkname, size = _merge_pax(pax, name, linkname, size)
        if long_name:
            name = long_name
        if long_link:
            linkname = long_link
        if typeflag == b"\0":  # Go's TypeRegA: a regular file, or a directory by its slash
            typeflag = b"5" if name.endswith(b"/") else b"0"
        kind = _KINDS.get(typeflag, "other")
        if typeflag == b"S" or pax and any(k.startswith(b"GNU.sparse.") for k in pax):
            kind = "other"  # GNU sparse files: kit extracts TypeReg/TypeDir only
        if kind == "dir":
            name = name.rstrip(b"/") or name  # tarfile-style and Go-style writers alike
        data = 0 if typeflag[0] in _HEADER_ONLY else size
        self._left, self._pad = data, -data % BLOCK
        return TarHeader(os.fsdecode(name), kind, mode, data,
                         os.fsdecode(linkname) if linkname else "")

    def _block(self) -> bytes | None:
        block = self._src.read_upto(BLOCK)
        if not block:
            return None  # like Go: an input ending on a header boundary is a complete archive
        if len(block) < BLOCK:
            raise unexpected_eof()
        if block == _ZERO_BLOCK:
            second = self._src.read_upto(BLOCK)
            if second and second != _ZERO_BLOCK:
                if len(second) < BLOCK:
                    raise unexpected_eof()
                raise _invalid("a zero block followed by data")
            return None
        kit = _kit_numbers(block)
        if kit is not None:  # the numbers as kit (Go) writes them: one regex match
            if kit[2] != _unsigned_sum(block) and not _checksum_ok(block):
                raise _invalid("checksum mismatch")
            self._numbers = (kit[0], kit[1])
            return block
        fast = _plain_octals(block)
        if fast is not None:  # every number plain octal: parsed once, here
            if fast[5] != _unsigned_sum(block) and not _checksum_ok(block):
                raise _invalid("checksum mismatch")
            self._numbers = (fast[0], fast[3])
            return block
        self._numbers = None
        if not _checksum_ok(block):
            raise _invalid("checksum mismatch")
        for what, start, end in _NUMERIC_FIELDS:  # Go parses them all; garbage fails
            _parse_numeric(block[start:end], what)
        if block[257:263] == b"ustar\0":
            _parse_numeric(block[329:337], "devmajor")
            _parse_numeric(block[337:345], "devminor")
        return block

    def _special(self, size: int) -> bytes:
        if size > MAX_SPECIAL_FILE_SIZE:
            raise _invalid(f"a PAX or long-name header of {size} bytes (more than 1 MiB)")
        data = self._src.read_upto(size)
        if len(data) < size:
            raise unexpected_eof()
        if size % BLOCK:
            self._src.skip(-size % BLOCK)
        return data


_OCTAL_FIELD_BYTES = b"01234567 \0"
_NUL_AS_SPACE = bytes.maketrans(b"\0", b" ")
#: mode, uid, gid, size, mtime, checksum: contiguous, bytes 100 to 156
_PLAIN_SPANS = ((100, 108), (108, 116), (116, 124), (124, 136), (136, 148), (148, 156))
_DEV_SPANS = ((329, 337), (337, 345))


#: mode, uid, gid, size, mtime, checksum exactly as Go's writer formats them (zero-padded octal,
#: NUL-terminated; the checksum six digits, NUL, space): bytes 100 to 156 of its headers
_KIT_NUMBERS = re.compile(rb"([0-7]{7})\0[0-7]{7}\0[0-7]{7}\0([0-7]{11})\0[0-7]{11}\0([0-7]{6})\0 ")
_KIT_DEVICES = b"0000000\0" * 2


def _kit_numbers(block: bytes) -> tuple[int, int, int] | None:
    """(mode, size, checksum) of a header whose numeric fields are exactly as kit writes them
    (every header of a layer kit or kit_jupyter packed), in one match; None for anything
    else, which :func:`_plain_octals` and Go's per-field parser then decide. Where this
    answers, they give the same numbers (a property test holds it to that)."""
    m = _KIT_NUMBERS.fullmatch(block, 100, 156)
    if m is None or block[257:263] == b"ustar\0" and block[329:345] != _KIT_DEVICES:
        return None
    return int(m[1], 8), int(m[2], 8), int(m[3], 8)


def _plain_octals(block: bytes) -> list[int] | None:
    """The numeric fields of a header as every writer but an odd one makes them (octal
    digits between spaces and NULs), parsed in one go: mode, uid, gid, size, mtime, checksum.
    None if any field is anything else (base-256, garbage, a space inside the digits): then
    :func:`_parse_numeric` decides field by field, with Go's errors. For the fields this
    accepts both give the same numbers."""
    region = block[100:156]
    if region.translate(None, _OCTAL_FIELD_BYTES):
        return None
    ustar = block[257:263] == b"ustar\0"
    devs = block[329:345] if ustar else b"0\0" * 8
    if ustar and devs.translate(None, _OCTAL_FIELD_BYTES):
        return None
    # the usual case in one split: each field ends in a separator and holds one run of digits
    # (six tokens for six fields, two for two), so no token can straddle or share a field
    spaced, dev_spaced = region.translate(_NUL_AS_SPACE), devs.translate(_NUL_AS_SPACE)
    if spaced[7] == spaced[15] == spaced[23] == spaced[35] == spaced[47] == spaced[55] == \
            dev_spaced[7] == dev_spaced[15] == 0x20:
        tokens = spaced.split()
        if len(tokens) == 6 and len(dev_spaced.split()) == 2:
            return [int(t, 8) for t in tokens]
    spans = _PLAIN_SPANS + _DEV_SPANS if ustar else _PLAIN_SPANS
    values = []
    for start, end in spans:
        digits = block[start:end].strip(b" \0")
        if not digits:
            values.append(0)
        elif digits.isdigit():
            values.append(int(digits, 8))
        else:
            return None
    return values[:6]


def _cstr(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


_OCTAL = re.compile(rb"[0-7]+")
_DECIMAL = re.compile(rb"[+-]?[0-9]+")
_INT64 = 1 << 63


def _parse_numeric(field: bytes, what: str) -> int:
    """Go's ``parser.parseNumeric``: base-256 (two's complement) if the first byte has its high
    bit set, else octal with leading/trailing spaces and NULs ignored."""
    if field[:1] and field[0] & 0x80:
        inv = 0xFF if field[0] & 0x40 else 0
        x = 0
        for i, c in enumerate(field):
            c ^= inv
            if i == 0:
                c &= 0x7F
            if x >> 56:
                raise _invalid(f"{what} field overflows")
            x = x << 8 | c
        if x >> 63:
            raise _invalid(f"{what} field overflows")
        return ~x if inv else x
    text = _cstr(field.strip(b" \0"))
    if not text:
        return 0
    if not _OCTAL.fullmatch(text):
        raise _invalid(f"{what} field {_show(text)} is not an octal number")
    value = int(text, 8)
    if value >= 1 << 64:
        raise _invalid(f"{what} field overflows")
    return value - (1 << 64) if value >= _INT64 else value  # Go's int64(uint64)


def _unsigned_sum(block: bytes) -> int:
    """The header's unsigned checksum: the sum of its bytes, the checksum field counted as
    spaces. Adler-32's low half is 1 + the sum of the bytes modulo 65521, and 256 bytes sum
    to at most 65,280: two halves give the exact sum in zlib's C loop, a third of ``sum()``'s
    time on every header of an unpack."""
    return ((adler32(block[:256]) & 0xFFFF) + (adler32(block[256:]) & 0xFFFF) - 2
            - sum(block[148:156]) + 8 * 32)


def _checksum_ok(block: bytes) -> bool:
    """Go accepts the sum of the bytes as unsigned or as signed (old writers), the checksum
    field counted as spaces."""
    try:
        stored = _parse_numeric(block[148:156], "checksum")
    except TarFormatError:
        return False
    unsigned = _unsigned_sum(block)
    if stored == unsigned:
        return True
    high = sum(1 for b in block[:148] + block[156:] if b > 127)
    return stored == unsigned - 256 * high


def _show(value: bytes) -> str:
    """A value for an error message: one line, never long (a PAX value may be 1 MiB)."""
    text = repr(value[:40])[1:]
    return text[:-1] + "...'" if len(value) > 40 else text


def _parse_pax(data: bytes) -> dict[bytes, bytes]:
    """Go's ``parsePAX``/``parsePAXRecord``: ``<len> <key>=<value>\\n`` records, ``len``
    counting the whole record; any malformed record fails the archive."""
    records: dict[bytes, bytes] = {}
    pos, end = 0, len(data)
    while pos < end:
        space = data.find(b" ", pos)
        if space < 0:
            raise _invalid("malformed PAX record")
        digits = data[pos:space]
        if not _DECIMAL.fullmatch(digits):
            raise _invalid("malformed PAX record length")
        length = int(digits)
        if length < 5 or length > end - pos or length <= len(digits) + 1:
            raise _invalid("malformed PAX record length")
        record = data[space + 1:pos + length]
        if not record.endswith(b"\n"):
            raise _invalid("malformed PAX record")
        key, eq, value = record[:-1].partition(b"=")
        if not eq or not key:
            raise _invalid("malformed PAX record")
        if key in (b"path", b"linkpath", b"uname", b"gname"):
            if b"\0" in value:
                raise _invalid(f"PAX {key.decode()} contains NUL")
        elif b"\0" in key:
            raise _invalid("PAX key contains NUL")
        records[key] = value
        pos += length
    return records


def _pax_int(key: bytes, value: bytes) -> int:
    """``strconv.ParseInt(v, 10, 64)``: optional sign, decimal digits, int64 range."""
    if not _DECIMAL.fullmatch(value):
        raise _invalid(f"PAX {key.decode()} {_show(value)} is not a number")
    number = int(value)
    if not -_INT64 <= number < _INT64:
        raise _invalid(f"PAX {key.decode()} {_show(value)} is out of range")
    return number


def _pax_time(key: bytes, value: bytes) -> None:
    """Go's ``parsePAXTime``, for its errors only (times are not applied)."""
    secs, _, frac = value.partition(b".")
    _pax_int(key, secs)
    if frac.strip(b"0123456789"):
        raise _invalid(f"PAX {key.decode()} {_show(value)} is not a time")


def _merge_pax(pax: dict[bytes, bytes], name: bytes, linkname: bytes,
               size: int) -> tuple[bytes, bytes, int]:
    """Go's ``mergePAX``: an empty value keeps the USTAR field; a value Go cannot parse fails
    the archive; a negative size fails it (``handleRegularFile``)."""
    for key, value in pax.items():
        if not value:
            continue
        if key == b"path":
            name = value
        elif key == b"linkpath":
            linkname = value
        elif key in (b"uid", b"gid"):
            _pax_int(key, value)
        elif key in (b"atime", b"mtime", b"ctime"):
            _pax_time(key, value)
        elif key == b"size":
            size = _pax_int(key, value)
            if size < 0:
                raise _invalid(f"PAX size {size} is negative")
    return name, linkname, size


__all__ = ["BLOCK", "END_OF_ARCHIVE", "KIT_UID", "MAX_SPECIAL_FILE_SIZE", "TarFormatError",
           "TarHeader", "TarInput", "TarReader", "header_into", "padding", "tar_header",
           "unexpected_eof"]
