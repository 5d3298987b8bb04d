"""Evaluation: ``metrics`` and ``operating_points`` with patient-level bootstrap intervals,
the ``report`` and ``plots``, the dataset summary, and the ``evaluate`` and ``compare``
stages."""
