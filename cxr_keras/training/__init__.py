"""Training and tuning: ``fit`` (what one ``model.fit`` is built, compiled and fed with,
shared by training and every tuning trial), resumable ``callbacks``, and the ``train`` and
``tune`` stages."""
