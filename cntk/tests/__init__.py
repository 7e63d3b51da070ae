"""Helpers CNTK's tutorials import from ``cntk.tests`` (``cntk.tests.test_utils``)."""
