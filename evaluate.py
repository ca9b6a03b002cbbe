"""Evaluate a policy on held-out problems with greedy decoding and search, at equal token budgets.

    python evaluate.py --config configs/eval_mcts.yaml model.path=runs/<run>/checkpoints/latest [data.path=...]
    python evaluate.py model.path=... search.methods=[greedy,mcts] search.budgets=[256] eval.size=100

Takes the same config keys as train.py (data and eval choose the problems) plus the `search` section:
methods (greedy, best_of_n, majority, weighted_vote, beam, mcts), token budgets per problem, the value function (the
run's implicit PRM, or the verifier) and the search settings. Prints one table, writes per-problem
results (answers, paths, tree summaries) to search.output as JSONL, and the rows as JSON last.
"""
from __future__ import annotations

import json
import sys


def evaluate_and_report(cfg) -> int:
    from search.evaluate import run, table

    summary = run(cfg, log=lambda line: print(line, file=sys.stderr))
    if not summary.get("main", True):  # under torchrun, rank 0 reports
        return 0
    if "collected" in summary:  # collection mode: what was written, not a table
        c = summary["collected"]
        print(f"searched {c['problems']} training problems ({c['solved']} solved, {c['tokens_per_problem']:.0f} tokens "
              f"each): {c['sft_rows']} verified traces and {c['value_rows']} value targets in {c['dir']}")
        print(json.dumps(c))
        return 0
    print(f"{summary['problems']} problems" + (f"; per-problem results in {summary['output']}" if summary["output"] else ""))
    print(table(summary["rows"]))
    print(json.dumps(summary["rows"]))
    return 0


def main(argv: list[str]) -> int:
    from reasonrl.cli import run_command

    return run_command(argv, __doc__, evaluate_and_report, search=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
