"""Build the embedded default models (reproducible, seeded).

    python scripts/build_tiny_model.py                      # assets/tiny-math: the arithmetic task
    python scripts/build_tiny_model.py --task function_spec # assets/tiny-code: the code task
    options: [--out DIR] [--seed 0] [--target 0.25]

A ~1 M-parameter Qwen3-architecture LM with the character-level tokenizer, trained by supervised
next-token prediction on procedurally generated problems that are *easier* than the RL task
(arithmetic: mostly 2-3 operands, 10 % 4-operand problems keep the format from breaking on longer
ones; code: mostly 1-2 operations, 10 % 3-operation specs).
Training stops at partial competence: as soon as greedy accuracy on a validation draw of the RL
task (train split, a separate stream; never the held-out split) reaches --target. That leaves RL
visible room to improve. Runs in a few minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reasonrl.models import tiny_config  # noqa: E402
from reasonrl.rollout.hf import HFEngine  # noqa: E402
from reasonrl.tasks.arithmetic import ArithmeticTask  # noqa: E402
from reasonrl.tasks.function_spec import FunctionSpecTask  # noqa: E402
from reasonrl.tokenizer import build_char_tokenizer  # noqa: E402
from reasonrl.types import SamplingParams  # noqa: E402
from verifiers import VerifierPool  # noqa: E402

RECIPES = {  # task -> (pretraining mix, the RL task it is validated on, default output)
    "arithmetic": ([(0.45, ArithmeticTask(2, 2, 30, "+-")), (0.45, ArithmeticTask(3, 3, 30, "+-")),
                    (0.10, ArithmeticTask(4, 4, 30, "+-"))], ArithmeticTask(), "assets/tiny-math"),
    "function_spec": ([(0.45, FunctionSpecTask(1, 1)), (0.45, FunctionSpecTask(2, 2)), (0.10, FunctionSpecTask(3, 3))],
                      FunctionSpecTask(), "assets/tiny-code"),
}


def sft_batch(tok, rng: random.Random, index: int, size: int, mix):
    seqs, masks = [], []
    for k in range(size):
        r, acc = rng.random(), 0.0
        for weight, task in mix:
            acc += weight
            if r <= acc:
                break
        rec = task.train_record(seed=1000 + rng.randrange(10**6), index=index * size + k)
        p = tok(rec.prompt, add_special_tokens=False)["input_ids"]
        a = tok(task.solution(rec), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        seqs.append(p + a)
        masks.append([0] * len(p) + [1] * len(a))
    width = max(map(len, seqs))
    ids = torch.tensor([s + [tok.pad_token_id] * (width - len(s)) for s in seqs])
    attn = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    loss_mask = torch.tensor([m + [0] * (width - len(m)) for m in masks])[:, 1:]
    return ids, attn, loss_mask


def accuracy(model, tok, records, pool: VerifierPool) -> float:
    engine = HFEngine(model, tok, batch_rows=512)
    outs = engine.generate([r.prompt for r in records], SamplingParams(n=1, temperature=0, max_new_tokens=72),
                           torch.Generator().manual_seed(0))
    verdicts = pool.verify_batch([o[0].text for o in outs], [r.reference for r in records], [r.verifier for r in records])
    return sum(v.correct for v in verdicts) / len(records)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="arithmetic", choices=sorted(RECIPES))
    ap.add_argument("--out", default=None, help="output directory (default: assets/tiny-math or assets/tiny-code)")
    ap.add_argument("--val-size", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--target", type=float, default=0.25, help="stop at this validation accuracy on the RL task")
    ap.add_argument("--max-steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    mix, rl_task, default_out = RECIPES[args.task]
    args.out = args.out or default_out

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    tok = build_char_tokenizer()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(tiny_config(len(tok)), attn_implementation="sdpa")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters", flush=True)
    val = [rl_task.train_record(seed=987654, index=i) for i in range(args.val_size)]
    pool = VerifierPool(workers=args.threads, timeout_s=30)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
    start, history, acc = time.time(), [], 0.0
    for step in range(1, args.max_steps + 1):
        ids, attn, mask = sft_batch(tok, rng, step, args.batch, mix)
        logits = model(input_ids=ids, attention_mask=attn, use_cache=False).logits[:, :-1]
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                                reduction="none").view_as(mask)
        loss = (nll * mask).sum() / mask.sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % args.eval_every == 0:
            acc = accuracy(model, tok, val, pool)
            history.append({"step": step, "loss": round(loss.item(), 4), "val_accuracy": acc,
                            "seconds": round(time.time() - start, 1)})
            print(json.dumps(history[-1]), flush=True)
            if acc >= args.target:
                break
    pool.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    info = {"task": args.task, "seed": args.seed, "target": args.target, "steps": step, "val_accuracy": acc, "parameters": n_params,
            "seconds": round(time.time() - start, 1), "pretrain_mix": [[w, type(t).__name__, t.__dict__] for w, t in mix],
            "history": history, "torch": torch.__version__}
    (out / "build_info.json").write_text(json.dumps(info, indent=1, default=str))
    print(f"saved {out} after {step} steps: validation accuracy {acc:.3f}", flush=True)


if __name__ == "__main__":
    main()
