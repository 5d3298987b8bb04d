"""The floor every layer stands on; it imports nothing else of cxr_keras.

``ImageSpec`` and its resize geometry, the config error, the dataclass (de)serialisers,
path resolution (``sample:`` paths included) and the figure plumbing.
"""
