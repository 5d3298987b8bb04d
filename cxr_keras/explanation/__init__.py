"""Explanation: Grad-CAM family (``gradcam``, ``graph``), ``saliency_checks``, MC-dropout
``uncertainty``, ``overlays`` on the original film, and the ``explain`` stage."""
