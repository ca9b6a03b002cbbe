"""Audit finding 1 (issue 14) as a probe: on the embedded default's first batch with the learner under bf16 autocast
and KL on, the PRM equals its reference, so q must be 0. Reusing the learner's bf16 logp_ref in the fp32 PRM (what
the loop did before: learner_forward=None tells ProcessStep the tensors match) breaks that; scoring the reference
under the PRM's own forward (the loop now) does not. Prints JSON: max|q| both ways, and how far the whitened
advantages move.

    python benchmarks/probe_precision.py
"""
from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != REPO / "benchmarks"]  # benchmarks/verifiers.py is not the package

from reasonrl.batching import collate
from reasonrl.loop import advantages, build, generate_and_verify, shaped_rewards
from reasonrl.process import ProcessStep
from reasonrl.validate import load_config


def main() -> None:
    cfg = load_config(["prm.enabled=true", "algorithm.advantage=prime", "algorithm.kl_coef=0.001",
                       "trainer.autocast=bf16", f"logging.run_dir={tempfile.mkdtemp()}", "verifier.workers=0",
                       "eval.size=0"])
    p = build(cfg)
    try:
        ro = generate_and_verify(p.sampler, p.engine, p.verifier, p.sampling, cfg, p.generators["sample"])
        batch = collate(ro.groups, p.engine.pad_id)
        p.learner.prepare(batch, old_needed_early=True)
        rewards = shaped_rewards(ro, batch, cfg)
        out = {}
        stamps = dict(batch.layouts)  # the layouts prepare() recorded: the fixed path judges reuse by them
        for name, forward in (("reused_bf16", None), ("prm_forward", p.learner.forward)):
            # the old behaviour: no stamps, and the caller's word (None: "the learner's tensors match") decides
            batch.layouts = {} if forward is None else dict(stamps)
            step = ProcessStep(copy.deepcopy(p.process.prm), cfg.prm, p.tokenizer, reuse_kl_ref=True,
                               learner_forward=forward and (lambda: forward), policy=p.policy)
            pr = step(batch, ro.groups, rewards.flatten(), ro.correct.flatten())
            out[name] = ((pr.values / cfg.prm.beta).abs().max().item(), advantages(rewards, batch, pr, cfg, p.dist))
        moved = (out["reused_bf16"][1] - out["prm_forward"][1])[batch.loss_mask.bool()].abs()
        print(json.dumps({"max_abs_q_reused_bf16": out["reused_bf16"][0], "max_abs_q_prm_forward": out["prm_forward"][0],
                          "advantage_shift_std_mean": moved.mean().item(), "advantage_shift_std_max": moved.max().item()}))
    finally:
        p.verifier.close()
        p.engine.close()


if __name__ == "__main__":
    main()
