"""Adapters: the IPython magics, the one argparse parser, progress display, and the table of
public names (:mod:`kit_jupyter.ui.api`) that the package root, ``%kit`` and the terminal share.

Thin on purpose: they parse a command line, call a function of :mod:`kit_jupyter.commands`
found through that table, and turn :class:`~kit_jupyter.errors.KitError` into ``UsageError`` or
exit status 1. Nothing below this package imports it.
"""
