"""Versioned schema migrations (tortoise-orm's own format), applied in order by `echain migrate`.

Write the next one with `echain makemigrations [--name N]` after changing a model; never edit an applied one.
"""
