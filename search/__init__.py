"""Search over reasoning steps (MCTS, beam, best-of-N). Planned in the search issue; nothing here yet."""
