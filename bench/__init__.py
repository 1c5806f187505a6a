"""Benchmarks that print the README's figures. Run each from the repository root as
``python -m bench.NAME`` (the checkout's ``trainer`` and ``app`` and, where a benchmark reuses
one, ``tests``' helpers are then importable without patching ``sys.path``)."""
