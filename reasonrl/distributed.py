"""Everything that talks to torch.distributed: the process group, each rank's device, collectives for
normalisers and metrics, FSDP2 sharding and sharded checkpoints. No other module imports torch.distributed.

A run started by `torchrun` (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT in the environment) joins the
process group: NCCL with one GPU per rank (`cuda:<local_rank>`), gloo on CPUs. Without those variables, or
with WORLD_SIZE=1, nothing is initialised and every helper below is the identity: one process runs exactly
as it did before this module existed.

Sharding is FSDP2 (`fully_shard` on every decoder layer, then the root) on CUDA and on CPU alike: torch 2.13
runs it with gloo, so the CPU tests exercise the same path a GPU run takes. The learner divides its loss by
global token / sequence counts (`Dist.sum`) and multiplies it by `grad_scale`, so FSDP's average of the
ranks' gradients is the gradient one process would compute on the whole batch.
Forward-only passes (generation, old / reference log-probs, PRM scoring) run inside `unsharded(model)`:
every layer is gathered once on entry (a collective: every rank enters every such phase, with or without
work of its own) and kept, so within the phase ranks with different numbers of decode steps or micro-batches
issue no collectives and cannot deadlock. Training passes go through FSDP's per-layer gathers; the learner
makes every rank run the same number of micro-batches (`Dist.max`, zero-weight padding micro-batches), and
the loop skips an update on every rank unless each has rows for every mini-batch.
"""
from __future__ import annotations

import datetime
import logging
import os
import pickle
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as tdist

# metrics that are counts (summed over ranks), extremes (max), everything else a mean over ranks
SUM_PREFIXES = ("groups/", "verifier/", "tokens/generated")
MAX_SUFFIXES = ("_max", "gen_rounds")
TIMEOUT_S = 600  # a collective waiting this long (a peer hung, not dead) fails the job


@dataclass(frozen=True)
class Dist:
    """This process's place in the job. Dist() is a single process (rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1  # ranks on this node
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def grad_scale(self) -> float:
        """What a loss normalised by global counts is multiplied by before backward, so FSDP's average of the
        ranks' gradients is their sum: the one-process gradient of the whole batch."""
        return float(self.world)

    # ------------------------------------------------------------------ collectives (identity on one process)
    def sum(self, x: float | int | torch.Tensor) -> float | torch.Tensor:
        return self._reduce(x, tdist.ReduceOp.SUM)

    def max(self, x: float | int | torch.Tensor) -> float | torch.Tensor:
        return self._reduce(x, tdist.ReduceOp.MAX)

    def all(self, flag: bool) -> bool:
        """True when flag is true on every rank."""
        return bool(self._reduce(float(flag), tdist.ReduceOp.MIN)) if self.enabled else bool(flag)

    def _reduce(self, x, op):
        if not self.enabled:
            return x
        t = x.detach().clone().double() if isinstance(x, torch.Tensor) else torch.tensor(float(x), dtype=torch.float64)
        tdist.all_reduce(t, op=op)
        return t.to(x.dtype) if isinstance(x, torch.Tensor) else t.item()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's obj (picklable), in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        tdist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's obj on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()

    def cpu_share(self, workers: int | None) -> int | None:
        """Verifier workers for this rank: None (one per core) becomes this rank's share of the node's cores."""
        if workers is not None or not self.enabled:
            return workers
        return max(1, (os.cpu_count() or 1) // self.local_world)

    # ------------------------------------------------------------------ the global batch
    def share(self, n: int) -> tuple[int, int]:
        """[lo, hi): this rank's contiguous slice of n items (the first n % world ranks take one more)."""
        base, extra = divmod(n, self.world)
        lo = self.rank * base + min(self.rank, extra)
        return lo, lo + base + (self.rank < extra)

    def gather_rows(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(N_r, *rest_r) on each rank -> ((sum N_r, *max rest), this rank's first row): rows in rank order, the
        trailing dimensions zero-padded to the largest, as one process would collate the whole batch."""
        if not self.enabled:
            return x, 0
        parts = self.gather(x.detach().cpu())
        shape = [max(p.shape[d] for p in parts) for d in range(1, x.dim())]
        out = x.new_zeros((sum(p.shape[0] for p in parts), *shape), device="cpu")
        row = 0
        for p in parts:
            out[(slice(row, row + p.shape[0]), *(slice(0, s) for s in p.shape[1:]))] = p
            row += p.shape[0]
        return out, sum(p.shape[0] for p in parts[: self.rank])

    def reduce_metrics(self, metrics: dict) -> dict:
        """Counts summed, *_max and gen_rounds maxed, the rest averaged over the ranks that report them (exact
        for the learner's statistics, which are already global; rates from equal shares). A key only some
        ranks have (a verifier status seen on one rank) counts as 0 in a sum."""
        if not self.enabled:
            return metrics
        numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        every = self.gather(numbers)
        out = dict(metrics)
        for k in sorted(set().union(*every)):
            vals = [m[k] for m in every if k in m]
            if k.startswith(SUM_PREFIXES):
                out[k] = sum(vals)
            elif k.endswith(MAX_SUFFIXES):
                out[k] = max(vals)
            else:
                out[k] = sum(vals) / len(vals)
        return out

    def close(self) -> None:
        if self.enabled and tdist.is_initialized():
            tdist.destroy_process_group()


def init(device: str = "auto") -> Dist:
    """Join the job torchrun started, or Dist() when there is none. device: trainer.device (auto | cpu | cuda)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device != "cpu"
    if cuda:
        torch.cuda.set_device(local)
    if not tdist.is_initialized():
        # CUDA: NCCL for the models' tensors, gloo for the CPU scalars and objects of the helpers above
        tdist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=TIMEOUT_S))
    return Dist(rank=rank, world=world, local_rank=local, local_world=int(os.environ.get("LOCAL_WORLD_SIZE", world)),
                device=torch.device(f"cuda:{local}") if cuda else torch.device("cpu"))


# ---------------------------------------------------------------------------- FSDP2

def _fsdp():
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    return FSDPModule, MixedPrecisionPolicy, fully_shard


def is_sharded(model: torch.nn.Module) -> bool:
    return isinstance(model, _fsdp()[0])


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated blocks to shard one by one: a transformers model's decoder layers (model.model.layers),
    else every module whose class name ends in DecoderLayer / Block."""
    inner = getattr(getattr(model, "model", None), "layers", None)
    if isinstance(inner, torch.nn.ModuleList):
        return list(inner)
    return [m for m in model.modules() if type(m).__name__.endswith(("DecoderLayer", "Block"))]


def broadcast_weights(model: torch.nn.Module, d: Dist) -> None:
    """Rank 0's weights (and buffers) on every rank, in place, before sharding: after a stage every rank ran alone
    (the SFT stage), float noise (CUDA atomics) must not leave the ranks with different models. Identity on one
    process."""
    if not d.enabled:
        return
    with torch.no_grad():
        for t in model.state_dict().values():
            tdist.broadcast(t, src=0)


def shard(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """FSDP2 over d's ranks, in place (idempotent): each decoder layer, then the root. On CUDA, bf16 compute
    with fp32 gradient reduction. FSDP averages gradients over ranks; a loss multiplied by `d.grad_scale`
    makes that the sum (gloo has no pre-multiplied sum for a divide factor of 1). Identity on one process."""
    if not d.enabled or is_sharded(model):
        return model
    FSDPModule, MixedPrecisionPolicy, fully_shard = _fsdp()
    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if d.device.type == "cuda" else None
    kwargs = {"mp_policy": mp} if mp is not None else {}
    for layer in decoder_layers(model):
        fully_shard(layer, reshard_after_forward=True, **kwargs)
        layer._reasonrl_reshard = True
    fully_shard(model, reshard_after_forward=False, **kwargs)  # the root: gathered again at once by the backward
    model._reasonrl_reshard = False
    return model


@contextmanager
def unsharded(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Within the block every FSDP layer of model holds its full weights and keeps them across forwards: no
    collective runs, whatever each rank does (generation, no-grad scoring). Nests; a plain module is left as is."""
    if not is_sharded(model):
        yield model
        return
    depth = getattr(model, "_reasonrl_unsharded", 0)
    model._reasonrl_unsharded = depth + 1
    FSDPModule = _fsdp()[0]
    layers = [m for m in model.modules() if isinstance(m, FSDPModule)]
    if depth == 0:
        for m in layers:
            m.unshard()
            m.set_reshard_after_forward(False, recurse=False)
    try:
        yield model
    finally:
        model._reasonrl_unsharded = depth
        if depth == 0:
            for m in layers:
                m.reshard()
                m.set_reshard_after_forward(getattr(m, "_reasonrl_reshard", True), recurse=False)


def full_tensor(x: Any) -> Any:
    """A DTensor's full value (a collective: every rank must call it), anything else as is."""
    return x.full_tensor() if hasattr(x, "full_tensor") else x


def to_float(x: Any) -> float:
    return float(full_tensor(x)) if isinstance(x, torch.Tensor) else float(x)


# ---------------------------------------------------------------------------- checkpoints

def _state_dict_api():
    from torch.distributed.checkpoint import state_dict as sd

    return sd


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's tensors on CPU, on rank 0 ({} elsewhere); every rank must call it."""
    sd = _state_dict_api()
    return sd.get_model_state_dict(model, options=sd.StateDictOptions(full_state_dict=True, cpu_offload=True))


_SAFE_GLOBALS = {("torch", "Size"), ("torch.serialization", "_get_layout"), ("pathlib", "PosixPath"),
                 ("pathlib", "PurePosixPath"), ("collections", "OrderedDict")}  # what DCP's metadata holds


class _MetadataUnpickler(pickle.Unpickler):
    """Unpickles a DCP .metadata file: DCP's own classes, torch.Size, dtypes, layouts and paths; nothing else."""

    def find_class(self, module: str, name: str):
        obj = super().find_class(module, name) if "." not in name else None
        ours = isinstance(obj, type) and module.startswith("torch.distributed.checkpoint.") \
            and getattr(obj, "__module__", "").startswith("torch.distributed.checkpoint.")
        if ours or (module, name) in _SAFE_GLOBALS or (module == "torch" and isinstance(obj, torch.dtype)):
            return obj
        raise pickle.UnpicklingError(f"the checkpoint's DCP metadata names {module}.{name}, which is not DCP's: "
                                     f"refused (unpickling it could run code)")


def _safe_reader(directory: Path):
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import StorageMeta

    class SafeReader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any):
            with open(Path(self.path) / ".metadata", "rb") as f:
                metadata = _MetadataUnpickler(f).load()
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    return SafeReader(str(directory))


def _SafeLoadPlanner():  # noqa: N802  (a class built on first use: DCP is imported lazily)
    from torch.distributed.checkpoint import DefaultLoadPlanner
    from torch.distributed.checkpoint._traverse import set_element

    class SafeLoadPlanner(DefaultLoadPlanner):
        """DefaultLoadPlanner whose non-tensor items (optimiser hyper-parameters) load with weights_only=True."""

        def load_bytes(self, read_item, value) -> None:
            item = torch.load(value, weights_only=True)
            if self.flatten_state_dict:
                set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], item)
            else:
                self.state_dict[read_item.dest_index.fqn] = item

    return SafeLoadPlanner()


def _states(parts: dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]]) -> dict:
    """{"<name>/model": ..., "<name>/optimizer": ...}: each part's state dicts as DCP reads and writes them."""
    sd, state = _state_dict_api(), {}
    for name, (model, optim) in parts.items():
        state[f"{name}/model"], state[f"{name}/optimizer"] = sd.get_state_dict(model, optim)
    return state


def save_sharded(directory: Path, parts: dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]]) -> None:
    """torch.distributed.checkpoint of each named (model, optimizer): every rank writes its own shards into
    one directory (which every rank must see: a shared filesystem across nodes)."""
    import torch.distributed.checkpoint as dcp

    dcp.save(_states(parts), checkpoint_id=str(directory))


def load_sharded(directory: Path, parts: dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]]) -> None:
    """Restore what save_sharded wrote into models and optimizers sharded over any number of ranks (one, too):
    DCP reshards on load. Safely: DCP's own reader unpickles .metadata and torch.loads non-tensor items with
    weights_only=False; here the metadata may only name DCP's own classes and a few torch values, and the items
    load with weights_only=True (a crafted pickle raises pickle.UnpicklingError, never runs)."""
    import torch.distributed.checkpoint as dcp

    sd = _state_dict_api()
    state = _states(parts)
    from torch.distributed.checkpoint.api import CheckpointException  # a BaseException: turned into an Exception

    quiet = logging.getLogger("torch.distributed.checkpoint.state_dict_loader")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its warnings carry a traceback per failed metadata read
    try:
        dcp.load(state, storage_reader=_safe_reader(directory), planner=_SafeLoadPlanner())
    except CheckpointException as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        refused = next((ln for ln in lines if "refused (unpickling" in ln or "Weights only load failed" in ln), None)
        if refused is not None:
            raise pickle.UnpicklingError(refused[refused.rfind("the checkpoint's"):] if "the checkpoint's" in refused
                                         else refused) from None
        raise RuntimeError(f"loading the sharded checkpoint {directory} failed: {lines[-1] if lines else exc}") from None
    finally:
        quiet.setLevel(level)
    for name, (model, optim) in parts.items():
        sd.set_state_dict(model, optim, model_state_dict=state[f"{name}/model"],
                          optim_state_dict=state[f"{name}/optimizer"])
