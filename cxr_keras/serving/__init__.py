"""Serving a model artifact: the ``predict`` stage, the web ``app`` (with ``case_analysis``,
the model side of one upload) and ``export``."""
