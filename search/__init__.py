"""Search over reasoning steps guided by a value function (the implicit PRM, or a verifier):
MCTS, step-level beam search, best-of-N and majority vote under a token budget (evaluate.py), and
ReST-MCTS* self-training data collection."""
