"""Go-compatibility: code that reproduces the bytes and decisions of kit's Go libraries.

yaml.v3 (``goyaml``), ``encoding/json`` (``gojson``), ``path.Clean`` (``gopath``), ``net/url``
(``gourl``), ``archive/tar`` (``gotar``) and moby/patternmatcher (``ignore``). A digest depends on
every byte these produce, so they change only together with golden data produced by real Go
(``tests/data``). They import nothing of the package but :mod:`kit_jupyter.errors`.
"""
