"""Thin kopf handlers: parse a view, call pure code, do one kind of I/O, write status. Registered by `main`."""
