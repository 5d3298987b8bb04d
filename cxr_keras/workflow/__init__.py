"""Workflows of several stages: a published pipeline's ``recipe``, end to end."""
