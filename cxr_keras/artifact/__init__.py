"""The model artifact and what turns its outputs into answers.

``store`` (the folder every later stage loads), ``predictor`` (logits -> temperature ->
probabilities -> decisions), ``calibration``, ``referral`` (the decision logic of every
answer) and ``model_card``. Training writes artifacts; evaluation, explanation and
serving read them.
"""
