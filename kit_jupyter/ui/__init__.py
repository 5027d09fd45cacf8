"""Adapters: the IPython magics, the one argparse parser, and progress display.

Thin on purpose: they parse a command line, call a function of :mod:`kit_jupyter.commands`,
and turn :class:`~kit_jupyter.errors.KitError` into ``UsageError`` or exit status 1.
Nothing below this package imports it.
"""
