"""torchrun on this CPU (gloo, FSDP2): two ranks reproduce one process, two "nodes" agree with it, checkpoints
resume at two ranks (exactly) and at one (resharded), and a rank killed mid-run ends the job with its rank named.

The one-process reference uses rollout.seeding=prompt, as torchrun does: a prompt's samples then do not depend
on which rank serves it. Tolerances (relative): the loss statistics and gradient norms 1e-4, the weights 1e-5
in norm (||w_1 - w_2|| / ||w_1||). Elementwise, Adam's first steps turn the float noise of near-zero
gradients (the ranks sum them in another order) into differences of up to lr, so the norm is what is compared.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reasonrl.config import load
from reasonrl.distributed import Dist
from reasonrl.validate import check_world
from tests.conftest import require_vllm

REPO = Path(__file__).resolve().parents[1]
SMALL = ["rollout.prompts_per_step=8", "rollout.group_size=4", "rollout.max_new_tokens=48", "eval.size=8",
         "eval.every=0", "logging.progress=false", "logging.samples_per_step=64", "trainer.lr=1e-3",
         "trainer.warmup_steps=0", "logging.plots=false", "rollout.seeding=prompt", "trainer.threads=1",
         "checkpoint.keep=10"]
VARIANTS = {
    "kl": ["trainer.steps=3", "checkpoint.every=1", "algorithm.kl_coef=0.01"],
    "prime_step": ["trainer.steps=3", "checkpoint.every=1", "prm.enabled=true", "algorithm.advantage=prime",
                   "prm.lr=1e-3", "prm.granularity=step", "prm.shaping=clip_delta"],
    "prime_dpo": ["trainer.steps=3", "checkpoint.every=1", "prm.enabled=true", "algorithm.advantage=prime",
                  "prm.lr=1e-3", "prm.loss=dpo"],
}
STATS = ("loss", "pg_loss", "kl", "entropy", "grad_norm", "reward/mean", "accuracy/train", "adv/mean", "adv/std",
         "prm/loss", "prm/grad_norm", "prm/accuracy", "tokens/generated", "groups/kept")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def launch(cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-5000:]}"
    return out


def train_args(root: Path, name: str, overrides: list[str]) -> list[str]:
    return ["train.py", *SMALL, *overrides, f"logging.run_dir={root}", f"logging.name={name}"]


def one_process(root: Path, name: str, overrides: list[str]) -> Path:
    launch([sys.executable, *train_args(root, name, overrides)])
    return root / name


def two_ranks(root: Path, name: str, overrides: list[str]) -> Path:
    launch(torchrun("--nproc_per_node=2", f"--master_port={free_port()}", *train_args(root, name, overrides)))
    return root / name


def rows(run: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (run / name).read_text().splitlines() if x.strip()]


def weights(path: Path) -> torch.Tensor:
    w = load_file(str(path / "model.safetensors"))
    return torch.cat([w[k].flatten().double() for k in sorted(w)])


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-6)


def compare(one: Path, many: Path, worst: dict) -> None:
    """Every step's statistics and checkpointed weights (and the PRM's) agree; rank 0's samples are the first
    share of the one-process run's, token for token. Records the largest relative differences in `worst`."""
    m1, m2 = rows(one, "metrics.jsonl"), rows(many, "metrics.jsonl")
    assert [m["step"] for m in m1] == [m["step"] for m in m2]
    for a, b in zip(m1, m2):
        for k in STATS:
            if k in a:
                worst[k] = max(worst.get(k, 0.0), rel(a[k], b[k]))
                # a loss of whitened advantages sums to ~0: compared against the gradient's scale instead
                assert abs(a[k] - b[k]) <= 1e-4 * max(abs(a[k]), abs(b[k])) + 1e-6, (a["step"], k, a[k], b[k])
    s1, s2 = rows(one, "samples.jsonl"), rows(many, "samples.jsonl")
    for step in {s["step"] for s in s1}:
        first, rank0 = [s for s in s1 if s["step"] == step], [s for s in s2 if s["step"] == step]
        assert rank0 and [s["response"] for s in rank0] == [s["response"] for s in first[: len(rank0)]], step
        assert [s["prompt"] for s in rank0] == [s["prompt"] for s in first[: len(rank0)]]
    steps = sorted(p.name for p in (one / "checkpoints").glob("step_*"))
    assert steps and steps == sorted(p.name for p in (many / "checkpoints").glob("step_*"))
    for step in steps:
        for sub in ("", "prm"):
            a = one / "checkpoints" / step / sub
            if not (a / "model.safetensors").is_file():
                continue
            w1, w2 = weights(a), weights(many / "checkpoints" / step / sub)
            gap = ((w1 - w2).norm() / w1.norm()).item()
            worst[f"weights{'/' + sub if sub else ''}"] = max(worst.get(f"weights{'/' + sub if sub else ''}", 0.0), gap)
            assert gap < 1e-5, (step, sub, gap)
    assert rows(one, "metrics.jsonl")[-1]["grad_norm"] > 0  # the comparison covered real updates


@pytest.fixture(scope="module")
def worst():
    table: dict = {}
    yield table
    print("\nlargest relative differences, one process vs two ranks:", json.dumps(table, indent=1))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_two_ranks_reproduce_one_process(tmp_path, variant, worst):
    overrides = VARIANTS[variant]
    compare(one_process(tmp_path, "one", overrides), two_ranks(tmp_path, "two", overrides), worst)
    ckpt = tmp_path / "two" / "checkpoints" / "latest"
    assert (ckpt / "dcp" / ".metadata").is_file()
    source = json.loads((REPO / "assets" / "tiny-math" / "config.json").read_text())["architectures"]
    assert json.loads((ckpt / "config.json").read_text())["architectures"] == source  # not FSDP<name>


def test_a_vllm_engine_per_rank_reproduces_one_process(tmp_path, worst):
    """rollout.engine=vllm at two ranks: each rank builds its own engine on the job's process group (vLLM's
    external launcher), serves its share of the prompts and reloads the gathered weights after every update;
    the probe check passes on both ranks (a stale engine stops the run) and the run is the one-process run."""
    require_vllm()
    overrides = ["trainer.steps=2", "checkpoint.every=1", "rollout.engine=vllm", "rollout.vllm_memory=0.2",
                 "trainer.lr=1e-4"]  # at 1e-3 the first update leaves step 2 with no right answer: no gradient
    one, two = one_process(tmp_path, "one", overrides), two_ranks(tmp_path, "two", overrides)
    compare(one, two, worst)
    gaps = [m["rollout/sync_probe_gap"] for m in rows(two, "metrics.jsonl")]
    assert len(gaps) == 2 and all(g < 1e-4 for g in gaps)  # after each update's sync, averaged over the ranks
    out = json.loads((two / "summary.json").read_text())
    assert out["steps"] == 2 and out["evals"][-1]["accuracy"] == json.loads((one / "summary.json").read_text())["evals"][-1]["accuracy"]


def test_each_ranks_vllm_engine_is_placed_by_the_launcher_and_shares_a_cpus_memory():
    """On one process the engine is vLLM's own in-process one; under torchrun it is built by the external
    launcher, which puts it on the rank's own device (cuda:LOCAL_RANK; its in-process executor would put every
    rank's engine on cuda:0). A GPU's memory fraction is the rank's own; a CPU node's memory is shared."""
    from reasonrl.rollout.vllm import per_rank, rank_memory

    assert per_rank(Dist()) == {}
    assert per_rank(Dist(rank=1, world=4, local_rank=1, local_world=2)) == {
        "distributed_executor_backend": "external_launcher", "tensor_parallel_size": 1}
    assert rank_memory(0.4, Dist()) == 0.4
    assert rank_memory(0.4, Dist(rank=1, world=4, local_rank=1, local_world=2)) == pytest.approx(0.2)
    assert rank_memory(0.4, Dist(rank=1, world=4, local_rank=1, local_world=2, device=torch.device("cuda", 1))) == 0.4


def test_two_nodes_by_c10d_rendezvous_agree_with_one_process(tmp_path, worst):
    """Two torchrun launchers, one process each, meeting at a c10d rendezvous on 127.0.0.1."""
    overrides = VARIANTS["kl"]
    port = free_port()
    nodes = [subprocess.Popen(torchrun("--nnodes=2", "--nproc_per_node=1", f"--node_rank={r}", "--rdzv_backend=c10d",
                                       f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=two-nodes",
                                       *train_args(tmp_path, "nodes", overrides)),
                              cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in (0, 1)]
    logs = [n.communicate(timeout=600)[0] for n in nodes]
    assert all(n.returncode == 0 for n in nodes), logs[0][-3000:] + logs[1][-3000:]
    compare(one_process(tmp_path, "one", overrides), tmp_path / "nodes", worst)


def worker_pids(agent: subprocess.Popen) -> dict[int, int]:
    """rank -> pid of the workers a torchrun agent started (their RANK in /proc/<pid>/environ)."""
    out = {}
    kids = subprocess.run(["pgrep", "-P", str(agent.pid)], capture_output=True, text=True).stdout.split()
    for pid in map(int, kids):
        try:
            env = dict(x.split("=", 1) for x in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in x)
        except (FileNotFoundError, ProcessLookupError):
            continue
        if "RANK" in env:
            out[int(env["RANK"])] = pid
    return out


def test_killed_rank_ends_the_job_named_and_the_run_resumes_exactly_at_two_and_at_one(tmp_path):
    resume = ["trainer.steps=6", "checkpoint.every=2"]
    whole = two_ranks(tmp_path, "whole", resume)

    agent = subprocess.Popen(torchrun("--nproc_per_node=2", f"--master_port={free_port()}",
                                      *train_args(tmp_path, "killed", resume)),
                             cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ckpt = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 300
    while not (ckpt / "step_2" / "trainer_state.json").is_file() and agent.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert agent.poll() is None, "the run ended before it could be interrupted"
    pids = worker_pids(agent)
    assert set(pids) == {0, 1}
    os.kill(pids[1], signal.SIGKILL)
    killed_at = time.time()
    log = agent.communicate(timeout=120)[0]
    print(f"\njob ended {time.time() - killed_at:.1f} s after rank 1 was killed")
    assert time.time() - killed_at < 60, "the job outlived its dead rank by a minute"
    assert agent.returncode != 0 and not (tmp_path / "killed" / "summary.json").exists()
    assert "rank      : 1" in log and "SIGKILL" in log, log[-3000:]

    # resume at two ranks: exactly the uninterrupted run
    two_ranks(tmp_path, "killed", [*resume, "checkpoint.resume=auto"])
    a, b = rows(whole, "metrics.jsonl"), rows(tmp_path / "killed", "metrics.jsonl")
    keys = ("loss", "grad_norm", "entropy", "reward/mean", "tokens/generated")
    assert [[m[k] for k in keys] for m in a] == [[m[k] for k in keys] for m in b]
    assert torch.equal(weights(whole / "checkpoints" / "latest"), weights(tmp_path / "killed" / "checkpoints" / "latest"))

    # resume at one process from the two-rank checkpoint at step 2: DCP reshards; the run continues and evaluates
    shutil.copytree(whole, tmp_path / "single", symlinks=True)
    for late in ("step_4", "step_6"):
        shutil.rmtree(tmp_path / "single" / "checkpoints" / late)
    (tmp_path / "single" / "checkpoints" / "latest").unlink()
    (tmp_path / "single" / "checkpoints" / "latest").symlink_to("step_2")
    (tmp_path / "single" / "summary.json").unlink()
    out = launch([sys.executable, *train_args(tmp_path, "single", [*resume, "checkpoint.resume=auto"])])
    assert "from step_2 (step 2)" in out.stdout
    summary = json.loads((tmp_path / "single" / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["eval_accuracy_after"] is not None
    one = rows(tmp_path / "single", "metrics.jsonl")
    assert [m["step"] for m in one] == [1, 2, 3, 4, 5, 6]
    # not bit-identical (another summation order), but the same run within float noise at the first step after
    assert rel(one[2]["loss"], a[2]["loss"]) < 1e-3 and one[2]["tokens/generated"] == a[2]["tokens/generated"]


def stage_files(root: Path) -> tuple[Path, Path]:
    """sft.jsonl (verified traces) and values.jsonl (value targets per prefix), as search collection writes them:
    66 rows each, so a batch of 64 and a tail of 2 (one row per rank)."""
    import random

    rng = random.Random(0)
    sft, values = [], []
    for _ in range(66):
        a, b, c = rng.randint(1, 30), rng.randint(1, 30), rng.randint(1, 30)
        prompt, lines = f"Compute: {a}+{b}-{c}\n", [f"{a}+{b}={a + b}", f"{a + b}-{c}={a + b - c}"]
        sft.append({"prompt": prompt, "response": "\n".join(lines) + f"\n\\boxed{{{a + b - c}}}"})
        values.append({"prompt": prompt, "prefix": lines[0] + "\n", "target": rng.random()})
    paths = root / "sft.jsonl", root / "values.jsonl"
    for path, data in zip(paths, (sft, values)):
        path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return paths


def test_the_sft_stage_and_the_prm_warm_start_at_two_ranks_reproduce_one_process(tmp_path, worst):
    """Every rank runs the SFT stage on all traces (then rank 0's weights are everyone's); the warm start fits
    each rank's share of every batch with the whole batch's normaliser. Both then train as on one process."""
    sft, values = stage_files(tmp_path)
    args = ["trainer.steps=2", "checkpoint.every=1", f"trainer.sft_path={sft}", "trainer.sft_lr=1e-3",
            "prm.enabled=true", "algorithm.advantage=prime", "prm.lr=1e-3", f"prm.warmstart={values}",
            "prm.warmstart_epochs=2"]
    one, many = one_process(tmp_path, "one_stages", args), two_ranks(tmp_path, "two_stages", args)
    compare(one, many, worst)


def test_share_splits_the_global_batch_in_rank_order():
    for world in (1, 2, 3):
        spans = [Dist(rank=r, world=world).share(8) for r in range(world)]
        assert spans[0][0] == 0 and spans[-1][1] == 8
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        assert max(h - l for l, h in spans) - min(h - l for l, h in spans) <= 1


def test_what_several_ranks_cannot_do_yet_is_a_config_error():
    cfg = load(["model.lora.rank=4", "rollout.seeding=batch", "prm.enabled=true", "prm.loss=my_plugin_loss",
                "algorithm.advantage=prime", "rollout.prompts_per_step=1", "rollout.engine=vllm",
                "trainer.sft_path=sft.jsonl", "prm.warmstart=values.jsonl"])
    assert check_world(cfg, 1) == []
    problems = "\n".join(check_world(cfg, 2))
    for key in ("model.lora.rank", "rollout.seeding", "prm.loss", "rollout.prompts_per_step"):
        assert key in problems, key
    for key in ("sft_path", "warmstart", "rollout.engine"):  # the stages and vLLM run at any number of ranks
        assert key not in problems, key


def test_evaluate_splits_problems_across_ranks_and_reports_the_one_process_table(tmp_path):
    """Each rank searches every other batch of problems (seeded per batch), writes its rows beside
    search.output, and rank 0 prints the table of all of them: the one-process table, to the answer."""
    args = ["evaluate.py", "model.path=assets/tiny-math", "eval.size=8", "search.problems_per_call=2",
            "search.methods=[greedy,majority]", "search.budgets=[96]", "trainer.threads=1"]
    one = launch([sys.executable, *args, f"search.output={tmp_path / 'one.jsonl'}"])
    two = launch(torchrun("--nproc_per_node=2", f"--master_port={free_port()}", *args,
                          f"search.output={tmp_path / 'two.jsonl'}"))
    table_one, table_two = (json.loads(out.stdout.strip().splitlines()[-1]) for out in (one, two))
    assert [(r["method"], r["accuracy"], r["tokens_per_problem"]) for r in table_one] == \
           [(r["method"], r["accuracy"], r["tokens_per_problem"]) for r in table_two]
    mine = rows(tmp_path, "two.jsonl") + rows(tmp_path, "two.rank1.jsonl")
    theirs = {(r["method"], r["index"]): r["response"] for r in rows(tmp_path, "one.jsonl")}
    assert len(mine) == len(theirs) == 16 and all(theirs[r["method"], r["index"]] == r["response"] for r in mine)
    assert rows(tmp_path, "two.rank1.jsonl")  # rank 1 did its share


def test_collection_splits_the_problems_across_ranks_and_rank_0_writes_them_all(tmp_path):
    """search.collect_dir at two ranks: each searches its half of the same draw of problems (seeded by rank),
    and rank 0 writes every rank's traces and value targets: rank 0's rows, then rank 1's."""
    data = tmp_path / "collected"
    args = ["evaluate.py", "model.path=assets/tiny-math", f"search.collect_dir={data}", "search.collect_size=16",
            "search.budgets=[1024]", "search.max_simulations=32", "search.value=verifier", "trainer.threads=1"]
    out = launch(torchrun("--nproc_per_node=2", f"--master_port={free_port()}", *args))
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    values, sft = rows(data, "values.jsonl"), rows(data, "sft.jsonl")
    first, second = summary["ranks"]
    assert summary["problems"] == 16 and first["value_rows"] > 0 and second["value_rows"] > 0
    assert len(values) == first["value_rows"] + second["value_rows"] and len(sft) == first["sft_rows"] + second["sft_rows"]
    ours = {v["prompt"] for v in values[:first["value_rows"]]}
    assert ours and not ours & {v["prompt"] for v in values[first["value_rows"]:]}  # no problem searched twice


def test_refilling_filters_and_mini_batches_run_at_two_ranks(tmp_path):
    """Dynamic sampling and the accuracy filter refill each rank to its own share: a rank that is full still
    enters the generation phase (a collective on sharded weights) while others draw again, and mini-batches
    update on every rank or on none; with a 300-token micro-batch budget the ranks split their rows into
    different numbers of micro-batches, so the zero-weight padding passes run. This hung before those rules."""
    run = two_ranks(tmp_path, "refill", ["trainer.steps=3", "algorithm.dynamic_sampling=true", "algorithm.max_gen_batches=3",
                                         "prm.enabled=true", "algorithm.advantage=prime", "algorithm.accuracy_filter=true",
                                         "algorithm.accuracy_low=0.25", "trainer.mini_batches=2", "eval.size=4",
                                         "trainer.max_tokens_per_microbatch=300"])  # several, uneven micro-batches
    metrics = rows(run, "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3] and json.loads((run / "summary.json").read_text())["steps"] == 3
    assert max(m["gen_rounds"] for m in metrics) > 1  # the refill path ran
