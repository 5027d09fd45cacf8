"""Commands as plain functions (pack, unpack, push ...): the API under %kit and the CLI."""
