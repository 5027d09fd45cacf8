"""Config JSON: byte-exact Go json.Marshal output (spec §4, §3.4, §14.2)."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit_jupyter.errors import KitfileError
from kit_jupyter.gocompat.gojson import marshal, unmarshal
from kit_jupyter.gocompat.goyaml import go_format_g, go_json_float
from kit_jupyter.kitfile.model import Docs, Kitfile, load_kitfile

SPEC_KITFILE = """manifestVersion: 1.0.0
package:
  name: demo <&>
  version: 1.10
  authors: [Zoë, "R&D"]
model:
  name: m
  path: ./model.bin
  parameters:
    lr: 0.001
    epochs: 3
    whole: 2.0
    note: "a<b & c>d"
datasets:
  - name: train
    path: data
    parameters:
      split: 0.8
  - name: raw
    path: raw/file.csv
    remotePath: s3://bucket/raw/file.csv?versionId=v1
    remoteHash: 9b2cf535f27731c974343645a3985328
"""

SPEC_CONFIG = (
    '{"manifestVersion":"1.0.0","package":{"name":"demo \\u003c\\u0026\\u003e","version":"1.10",'
    '"authors":["Zoë","R\\u0026D"]},"model":{"name":"m","path":"./model.bin","parameters":'
    '{"epochs":3,"lr":0.001,"note":"a\\u003cb \\u0026 c\\u003ed","whole":2},"digest":"sha256:'
    + "a" * 64 + '","diffId":"sha256:' + "b" * 64 + '"},"datasets":[{"name":"train","path":'
    '"data","parameters":{"split":0.8},"digest":"sha256:' + "c" * 64 + '","diffId":"sha256:'
    + "c" * 64 + '"},{"name":"raw","path":"raw/file.csv","remotePath":'
    '"s3://bucket/raw/file.csv?versionId=v1","remoteHash":"9b2cf535f27731c974343645a3985328"}]}'
).encode("utf-8")


def test_spec_golden_bytes():
    kf = load_kitfile(SPEC_KITFILE)
    kf.model.digest = "sha256:" + "a" * 64
    kf.model.diff_id = "sha256:" + "b" * 64
    kf.datasets[0].digest = kf.datasets[0].diff_id = "sha256:" + "c" * 64
    out = kf.to_config_json()
    assert out == SPEC_CONFIG
    assert not out.endswith(b"\n")
    # and it survives a round trip through storage unchanged
    assert Kitfile.from_config_json(out).to_config_json() == SPEC_CONFIG
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(SPEC_CONFIG).hexdigest()


def test_string_escaping():
    path = "a\x01\b\f\t\n\r\u2028\u2029\x7f/é\"\\"
    kf = Kitfile(manifest_version="1.0.0", docs=[Docs(path=path)])
    assert kf.to_config_json() == (
        b'{"manifestVersion":"1.0.0","package":{},"docs":[{"path":"a\\u0001\\b\\f\\t\\n\\r'
        b'\\u2028\\u2029\x7f/\xc3\xa9\\"\\\\"}]}'
    )


def test_lone_surrogate_becomes_replacement_char():
    assert marshal("a\ud800b") == '"a\ufffdb"'.encode()


def test_package_always_present_and_docs_path_always_written():
    kf = load_kitfile("manifestVersion: 1.0.0\ndocs:\n  - description: d\n")
    assert kf.to_config_json() == (
        b'{"manifestVersion":"1.0.0","package":{},"docs":[{"path":"","description":"d"}]}'
    )
    assert Kitfile().to_config_json() == b'{"manifestVersion":"","package":{}}'


def test_empty_structures_kept_as_go_does():
    kf = load_kitfile("manifestVersion: 1.0.0\nmodel: {}\ncode: [{}]\n")
    assert kf.to_config_json() == (
        b'{"manifestVersion":"1.0.0","package":{},"model":{},"code":[{}]}'
    )
    for yaml_value, json_value in [("{}", b"{}"), ("[]", b"[]"), ("''", b'""'), ("0", b"0")]:
        kf = load_kitfile(f"manifestVersion: 1.0.0\nmodel:\n  parameters: {yaml_value}\n")
        assert kf.to_config_json() == (
            b'{"manifestVersion":"1.0.0","package":{},"model":{"parameters":' + json_value + b"}}"
        )
    kf = load_kitfile("manifestVersion: 1.0.0\nmodel:\n  name: m\n  parameters: ~\n")
    assert kf.to_config_json() == b'{"manifestVersion":"1.0.0","package":{},"model":{"name":"m"}}'


def test_full_key_order():
    kf = load_kitfile(
        "mcpServers:\n  - {description: d, path: s.mcpb, name: s}\n"
        "prompts:\n  - {description: d, path: p, name: n}\n"
        "docs:\n  - {description: d, path: p}\n"
        "datasets:\n  - {parameters: 1, license: l, description: d, remoteHash: h,"
        " remotePath: s3://b/k, path: p, name: n}\n"
        "code:\n  - {license: l, description: d, path: p}\n"
        "model:\n  parameters: 1\n  parts:\n    - {type: t, license: l, path: p, name: n}\n"
        "  description: d\n  version: v\n  format: f\n  framework: fw\n  license: l\n"
        "  path: p\n  name: n\n"
        "package:\n  authors: [a]\n  license: l\n  description: d\n  version: v\n  name: n\n"
        "manifestVersion: 1.0.0\n"
    )
    for e in [kf.model, *kf.model.parts, *kf.code, *kf.datasets, *kf.docs, *kf.prompts,
              *kf.mcp_servers]:
        e.digest, e.diff_id = "sha256:d", "sha256:i"
    assert kf.to_config_json() == (
        b'{"manifestVersion":"1.0.0","package":{"name":"n","version":"v","description":"d",'
        b'"license":"l","authors":["a"]},"model":{"name":"n","path":"p","license":"l",'
        b'"framework":"fw","format":"f","version":"v","description":"d","parts":[{"name":"n",'
        b'"path":"p","license":"l","type":"t","digest":"sha256:d","diffId":"sha256:i"}],'
        b'"parameters":1,"digest":"sha256:d","diffId":"sha256:i"},"code":[{"path":"p",'
        b'"description":"d","license":"l","digest":"sha256:d","diffId":"sha256:i"}],'
        b'"datasets":[{"name":"n","path":"p","remotePath":"s3://b/k","remoteHash":"h",'
        b'"description":"d","license":"l","parameters":1,"digest":"sha256:d",'
        b'"diffId":"sha256:i"}],"docs":[{"path":"p","description":"d","digest":"sha256:d",'
        b'"diffId":"sha256:i"}],"prompts":[{"name":"n","path":"p","description":"d",'
        b'"digest":"sha256:d","diffId":"sha256:i"}],"mcpServers":[{"name":"s","path":"s.mcpb",'
        b'"description":"d","digest":"sha256:d","diffId":"sha256:i"}]}'
    )


# The number table of spec §3.4: YAML scalar -> exact JSON text.
NUMBERS = [
    ("true", "true"), ("FALSE", "false"), ("yes", '"yes"'), ("off", '"off"'), ("3", "3"),
    ("-123", "-123"), ("1_000", "1000"), ("0x1F", "31"), ("0o17", "15"), ("017", "15"),
    ("12345678901234567890123", "1.2345678901234568e+22"), ("12.3", "12.3"), ("2.0", "2"),
    ("1e3", "1000"), ("1e16", "10000000000000000"), ("1e21", "1e+21"), ("1e-7", "1e-7"),
    ("1.5e-7", "1.5e-7"), ("-0.0", "-0"), ("2024-01-01", '"2024-01-01T00:00:00Z"'),
    ("~", "null"), ("null", "null"), ("", "null"), ("0.000001", "0.000001"),
    ("1.2e+3", "1200"), ("0xFF", "255"), ("18446744073709551615", "18446744073709551615"),
    ("-9223372036854775808", "-9223372036854775808"), ("123456789.123", "123456789.123"),
    ("1e20", "100000000000000000000"), ("1e-6", "0.000001"), ("9.999e-7", "9.999e-7"),
]


@pytest.mark.parametrize("scalar,json_text", NUMBERS, ids=[n[0] or "empty" for n in NUMBERS])
def test_number_table(scalar, json_text):
    kf = load_kitfile(f"manifestVersion: 1.0.0\nmodel:\n  parameters:\n    v: {scalar}\n")
    assert kf.to_config_json() == (
        b'{"manifestVersion":"1.0.0","package":{},"model":{"parameters":{"v":'
        + json_text.encode() + b"}}}"
    )


def test_map_keys_sorted_by_utf8_bytes():
    kf = load_kitfile("manifestVersion: 1.0.0\nmodel:\n  parameters:\n"
                      "    b: 1\n    a10: 2\n    a9: 3\n    Z: 4\n    é: 5\n    _: 6\n")
    assert kf.to_config_json().endswith(
        '"parameters":{"Z":4,"_":6,"a10":2,"a9":3,"b":1,"é":5}}}'.encode()
    )


def test_unsupported_values():
    kf = load_kitfile("manifestVersion: 1.0.0\ndatasets:\n  - path: d\n    parameters: [.nan]\n")
    with pytest.raises(KitfileError, match="^json: unsupported value: NaN$"):
        kf.to_config_json()


@pytest.mark.parametrize(
    "value,g,j",
    [
        (1234567.0, "1.234567e+06", "1234567"), (100000.0, "100000", "100000"),
        (123456789012345678.0, "1.2345678901234568e+17", "123456789012345680"),
        (0.0001, "0.0001", "0.0001"), (0.00001, "1e-05", "0.00001"), (1e21, "1e+21", "1e+21"),
        (1e100, "1e+100", "1e+100"), (5e-324, "5e-324", "5e-324"), (-2.5, "-2.5", "-2.5"),
        (0.0, "0", "0"),
    ],
)
def test_go_float_formats(value, g, j):
    assert go_format_g(value) == g
    assert go_json_float(value) == j


# --------------------------------------------------------------------------------------------
# JSON from outside: unmarshal, and a config too deep to be a Kitfile

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_json_values.map(json.dumps), st.text(max_size=40)),
       st.integers(min_value=0, max_value=3000), st.sampled_from("[{"))
def test_unmarshal_is_json_loads_or_a_value_error(text: str, depth: int, opener: str) -> None:
    """Whatever the text and however deep it is wrapped, ``unmarshal`` answers what
    ``json.loads`` answers, or a ValueError -- never a RecursionError (which ``json.loads``
    raises past about a thousand levels)."""
    wrapped = (opener if opener == "[" else '{"k":') * depth + text + \
        ("]" if opener == "[" else "}") * depth
    try:
        expected = json.loads(wrapped)
    except RecursionError:
        with pytest.raises(ValueError, match="^JSON nested too deeply$"):
            unmarshal(wrapped)
    except ValueError:
        with pytest.raises(ValueError):
            unmarshal(wrapped)
    else:
        if not _all_finite(expected):   # NaN, Infinity, 1e400: not JSON to Go
            with pytest.raises(ValueError, match="^(invalid character|cannot unmarshal)"):
                unmarshal(wrapped)
            return
        got = unmarshal(wrapped)
        assert json.dumps(got) == json.dumps(expected)


def _all_finite(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:  # NaN or an infinity somewhere
        return False
    return True


@pytest.mark.parametrize("text, message", [
    ("NaN", "invalid character 'N' looking for beginning of value"),
    ('{"a": [1, Infinity]}', "invalid character 'I' looking for beginning of value"),
    ("-Infinity", "invalid character 'I' in numeric literal"),
    ('{"size": 1e400}', "cannot unmarshal number 1e400 into Go value of type float64"),
    ("[-1e309]", "cannot unmarshal number -1e309 into Go value of type float64"),
])
def test_unmarshal_refuses_numbers_go_refuses(text: str, message: str) -> None:
    """Go's decoder refuses what is not a JSON number, or what no float64 holds, in any
    document; Python's would keep them, to fail later wherever they are written back."""
    for data in (text, text.encode()):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            unmarshal(data)


def test_unmarshal_refuses_a_long_integer_read_as_a_float_and_keeps_it_as_an_int() -> None:
    """``parse_int=float`` (a config's numbers are Go's float64) refuses what no float64
    holds; Python's own ints are exact, and stay so."""
    big = "1" + "0" * 400
    with pytest.raises(ValueError, match="^cannot unmarshal number 1000"):
        unmarshal(f"[{big}]", parse_int=float)
    assert unmarshal(f"[{big}]") == [10 ** 400]
    assert unmarshal("[1.5, 2]", parse_int=float) == [1.5, 2.0]


@pytest.mark.parametrize("data", [
    b'\xef\xbb\xbf{"a": 1}',                        # a UTF-8 byte order mark
    '{"a": 1}'.encode("utf-16"),                       # UTF-16 with its BOM
    '{"a": 1}'.encode("utf-16-le"),                    # and without
    '{"a": 1}'.encode("utf-32"),
])
def test_unmarshal_reads_utf8_only(data: bytes) -> None:
    """json.loads detects UTF-16 and UTF-32 and skips a BOM in bytes; Go reads UTF-8 and
    refuses all of these ("invalid character"), and so does ``unmarshal``."""
    assert json.loads(data) == {"a": 1}
    with pytest.raises(ValueError):
        unmarshal(data)


@pytest.mark.parametrize("data, value", [
    (b'["a\xffb"]', "a\ufffdb"),                     # a byte no UTF-8 has
    (b'["\xe2\x82x"]', "\ufffd\ufffdx"),               # a cut sequence: one U+FFFD a byte
    (b'["\xed\xa0\x80"]', "\ufffd" * 3),            # a surrogate's UTF-8 form
    (b'{"k\xc0": 1}', "k\ufffd"),                     # in a key
    ('["\u00e9\u20ac"]'.encode(), "\u00e9\u20ac"),  # valid UTF-8 is kept
])
def test_unmarshal_reads_a_byte_that_is_not_utf8_as_go_does(data: bytes, value: str) -> None:
    """Go's decoder puts U+FFFD for each byte of a string that is not UTF-8 (``utf8.DecodeRune``
    takes one byte at a time then); Python's would refuse the whole document."""
    got = unmarshal(data)
    assert (got if isinstance(got, list) else list(got)) == [value]


@pytest.mark.parametrize("depth, ok", [(10, True), (248, True), (249, False), (600, False),
                                       (5000, False)])
def test_a_config_nested_deeper_than_a_kitfile_may_be_is_one_line(depth: int, ok: bool) -> None:
    """Parameters nested ``depth`` levels below ``model`` (two levels from the top): up to the
    YAML decoder's bound the Kitfile reads back and writes out as YAML and as config JSON;
    deeper, a KitfileError line -- not a RecursionError from the writers (nor, past about a
    thousand levels, from the JSON decoder)."""
    doc = ('{"manifestVersion":"1.0.0","model":{"path":"m","parameters":' + "[" * depth
           + "]" * depth + "}}")
    if ok:
        kf = Kitfile.from_config_json(doc)
        assert kf.to_yaml().count("-") >= depth - 1
        assert Kitfile.from_config_json(kf.to_config_json()).to_config_json() == \
            kf.to_config_json()
    else:
        with pytest.raises(KitfileError) as err:
            Kitfile.from_config_json(doc)
        assert str(err.value) in ("invalid config JSON: nested deeper than 250 levels",
                                  "invalid config JSON: JSON nested too deeply")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=3), st.integers(0xD800, 0xDFFF).map(
    lambda c: f"\\u{c:04x}")), max_size=6), st.booleans(), st.booleans())
def test_unmarshal_reads_a_lone_surrogate_as_go_does(pieces: list[str], as_key: bool,
                                                     as_bytes: bool) -> None:
    """Escapes of surrogates, paired or lone, in a value or a key: a pair is its character, a
    lone one U+FFFD (Go's reading); no string that comes back fails to encode as UTF-8."""
    text = json.dumps("".join(pieces))[1:-1].replace("\\\\u", "\\u")
    doc = f'{{"{text}": 1}}' if as_key else f'["{text}"]'
    try:
        expected = json.loads(doc)
    except ValueError:
        return  # the pieces made an escape json refuses
    got = unmarshal(doc.encode() if as_bytes else doc)
    (value,) = list(got) if as_key else got
    (raw,) = list(expected) if as_key else expected
    value.encode("utf-8")
    assert value == "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in raw)
