"""AdamW and the warm-up + cosine schedule, without ``torch.optim``.

Why not ``torch.optim.AdamW``: its ``step``, ``zero_grad``, ``add_param_group`` and state-dict
methods are wrapped to keep ``torch.compile`` out, and the first call imports ``torch._dynamo``:
1.3-2.1 s of every training process (a Kedro worker, a torchrun rank) before its first step,
for a compiler this project never uses. ``FusedAdamW`` runs torch's own fused kernel
(``torch._fused_adamw_``, what ``torch.optim.AdamW(fused=True)`` calls) on the same state, so
the updates are the same numbers bit for bit, and its state dicts have ``torch.optim``'s format:
a state saved by either loads into the other (tested). ``WarmupCosine`` is ``LambdaLR`` with a
fixed factor, state dict in ``LambdaLR``'s format.

The fused kernel exists for floating-point parameters on the CPU and CUDA
(``fused_adamw_supported``); elsewhere the training loop uses ``torch.optim.AdamW``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

# The keys torch.optim.AdamW keeps in every parameter group (besides "params" and the
# scheduler's "initial_lr"), so a state dict written here loads into torch's optimiser.
_TORCH_GROUP_KEYS = {"amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                     "differentiable": False, "fused": True, "decoupled_weight_decay": True}


def fused_adamw_supported(parameters: Iterable[torch.Tensor]) -> bool:
    """Whether torch's fused AdamW kernel takes every one of ``parameters``."""
    parameters = list(parameters)
    return bool(parameters) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in parameters)


class FusedAdamW:
    """AdamW (decoupled weight decay) with torch's fused kernel, over parameter groups.

    groups : an iterable of parameters, or of dicts ``{"params": [...], "lr": ..., ...}``; a
        group's missing options come from the keyword arguments.
    The interface is the part of ``torch.optim.Optimizer`` the training loop, ``GradScaler`` and
    ``clip_grad_norm_`` use: ``param_groups``, ``state``, ``step()``, ``zero_grad()``,
    ``state_dict()``, ``load_state_dict()``.
    """

    def __init__(self, groups, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        groups = list(groups)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, **_TORCH_GROUP_KEYS}
        self.param_groups = [{**defaults, **group, "params": list(group["params"])} for group in groups]
        every = [p for group in self.param_groups for p in group["params"]]
        if len({id(p) for p in every}) != len(every):
            raise ValueError("a parameter appears in more than one group (or twice in one)")
        if not fused_adamw_supported(every):
            raise ValueError("FusedAdamW needs floating-point parameters on the CPU or CUDA; use torch.optim.AdamW")
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def _state_of(self, parameter: torch.Tensor) -> dict[str, torch.Tensor]:
        if parameter not in self.state:  # as torch.optim.AdamW(fused=True) creates it
            self.state[parameter] = {
                "step": torch.zeros((), dtype=torch.float32, device=parameter.device),
                "exp_avg": torch.zeros_like(parameter, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(parameter, memory_format=torch.preserve_format),
            }
        return self.state[parameter]

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for group in self.param_groups:
            by_device: dict[tuple, list[torch.Tensor]] = {}  # the kernel takes one device and dtype per call
            for p in group["params"]:
                if p.grad is not None:
                    if p.grad.is_sparse:
                        raise RuntimeError("FusedAdamW does not support sparse gradients")
                    by_device.setdefault((p.device, p.dtype), []).append(p)
            for params in by_device.values():
                states = [self._state_of(p) for p in params]
                steps = [s["step"] for s in states]
                torch._foreach_add_(steps, 1)
                beta1, beta2 = group["betas"]
                torch._fused_adamw_(
                    params, [p.grad for p in params], [s["exp_avg"] for s in states],
                    [s["exp_avg_sq"] for s in states], [], steps, amsgrad=False, lr=group["lr"], beta1=beta1,
                    beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                    grad_scale=None, found_inf=None,
                )

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def state_dict(self) -> dict:
        """``torch.optim.AdamW``'s format: parameters numbered in group order."""
        numbered = {}
        groups = []
        for group in self.param_groups:
            numbers = list(range(len(numbered), len(numbered) + len(group["params"])))
            numbered.update(zip(numbers, group["params"], strict=True))
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": numbers})
        state = {n: dict(self.state[p]) for n, p in numbered.items() if p in self.state}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state dict of this class or of ``torch.optim.AdamW`` (same groups and shapes)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups) or any(
                len(s["params"]) != len(g["params"]) for s, g in zip(saved_groups, self.param_groups, strict=True)):
            raise ValueError("the saved optimiser state has different parameter groups than this model")
        if any(g.get("amsgrad") for g in saved_groups):
            raise ValueError("the saved optimiser state uses amsgrad, which FusedAdamW does not")
        self.state = {}
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            group.update({k: v for k, v in saved.items() if k != "params"}, betas=tuple(saved["betas"]))
            for number, p in zip(saved["params"], group["params"], strict=True):
                if number in state_dict["state"]:
                    entry = state_dict["state"][number]
                    self.state[p] = {
                        "step": torch.as_tensor(entry["step"], dtype=torch.float32).to(p.device).reshape(()).clone(),
                        "exp_avg": entry["exp_avg"].to(p.device, p.dtype).clone(),
                        "exp_avg_sq": entry["exp_avg_sq"].to(p.device, p.dtype).clone(),
                    }


class WarmupCosine:
    """Each group's learning rate = its initial one x ``factor(steps taken)``, set after every
    ``step()`` (``torch.optim.lr_scheduler.LambdaLR``'s behaviour and state-dict format)."""

    def __init__(self, optimizer, factor: Callable[[int], float]):
        self.optimizer, self.factor = optimizer, factor
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def _apply(self) -> None:
        self._last_lr = [base * self.factor(self.last_epoch) for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            group["lr"] = lr

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {"base_lrs": list(self.base_lrs), "last_epoch": self.last_epoch, "_step_count": self.last_epoch + 1,
                "_is_initial": False, "_get_lr_called_within_step": False, "_last_lr": list(self._last_lr),
                "lr_lambdas": [None] * len(self.base_lrs)}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores the step count (the optimiser's own state dict restores the groups' rates)."""
        self.base_lrs = list(state_dict["base_lrs"])
        self.last_epoch = int(state_dict["last_epoch"])
        self._last_lr = list(state_dict["_last_lr"])


def warmup_cosine(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over the first ``warmup_fraction`` of steps, then cosine to 0."""
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


class AnnotatorRowsAdamW:
    """AdamW for the annotator parameters that touches only the annotators a sampled step evaluates.

    The per-annotator parameters (``model.annotator_parameters()``: heads, annotator embeddings,
    first axis = annotator) are O(A) in size; a dense optimiser zero-fills their gradient and
    updates all of them every step (at 100,000 annotators x 32 hidden x 10 classes, 32 M
    numbers per step for the ~1,800 annotators a batch of 256 items evaluates). Here a step
    gathers the rows of the batch's annotators into small leaf tensors (``call``: the model runs
    on them through ``torch.func.functional_call`` with the annotators renumbered), and ``step``
    applies AdamW to those rows only, written back in place.

    What dense AdamW does to a row in the steps it has no gradient (its moments decay, the
    parameter moves on along its momentum and decays) is applied when the row is next used
    (``call``) or at ``flush`` (the training loop's epoch end), in closed form: weight decay as
    the product of the skipped steps' factors (exact), moments times beta^k (exact), and the
    momentum drift ``sum_j rate_j rho^j * m / (sqrt(v) + eps)`` over the skipped steps, with
    ``rate_s = lr_s sqrt(1 - beta2^s) / (1 - beta1^s)`` recorded per step and ``rho = beta1 /
    sqrt(beta2)`` (exact but for eps inside the sum and the drift's own weight decay, both of
    order 1e-5 relative; terms past ``WINDOW`` steps are below 2e-6). Bias corrections count
    global steps, as dense AdamW's do. So a run matches dense AdamW closely (tested), and where
    every annotator is in every step it is AdamW to float rounding. The other parameters stay
    with the main optimiser: their rows have no gradient there, so it skips them.
    """

    WINDOW = 128

    def __init__(self, model: torch.nn.Module, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        annotator_ids = {id(p) for p in model.annotator_parameters()}
        self.named = [(name, p) for name, p in model.named_parameters() if id(p) in annotator_ids]
        if not self.named:
            raise ValueError("the model lists no annotator parameters")
        self.n_annotators = self.named[0][1].shape[0]
        self.betas, self.eps, self.weight_decay = tuple(betas), eps, weight_decay
        device = self.named[0][1].device
        self.exp_avg = [torch.zeros_like(p) for _, p in self.named]
        self.exp_avg_sq = [torch.zeros_like(p) for _, p in self.named]
        self.n_steps = 0
        self.current = torch.zeros(self.n_annotators, dtype=torch.long, device=device)  # each row is as of this step
        self.rates = torch.zeros(1024, dtype=torch.float64, device=device)  # rates[s]: step s's rate_s
        self.log_decay = torch.zeros(1024, dtype=torch.float64, device=device)  # sum of log(1 - lr wd) to step s
        self.rows: torch.Tensor | None = None
        self.leaves: list[torch.Tensor] = []

    def call(self, model: torch.nn.Module, inputs, items: torch.Tensor, annotators: torch.Tensor) -> torch.Tensor:
        """``model(inputs, items, annotators)`` on leaf copies of the batch's annotators' rows,
        brought up to date first (what the steps without them would have done)."""
        self.rows, local = torch.unique(annotators, return_inverse=True)
        self._catch_up(self.rows)
        self.leaves = [p.detach().index_select(0, self.rows).requires_grad_() for _, p in self.named]
        overrides = {name: leaf for (name, _), leaf in zip(self.named, self.leaves, strict=True)}
        return torch.func.functional_call(model, overrides, (inputs, items, local))

    def gradients(self) -> list[torch.Tensor]:
        """The leaves whose gradients the last ``call`` left (for the global gradient clip)."""
        return [leaf for leaf in self.leaves if leaf.grad is not None]

    @torch.no_grad()
    def step(self, lr: float) -> None:
        """One step (at ``lr``, the heads' rate now): AdamW on the rows of the last ``call``; every
        other row catches this step up when it is next used or flushed."""
        self._record(lr)
        if self.rows is None:
            return
        rows, (beta1, beta2), t = self.rows, self.betas, self.n_steps
        step_size, bias2_sqrt = lr / (1 - beta1**t), math.sqrt(1 - beta2**t)
        for (_, p), leaf, exp_avg, exp_avg_sq in zip(self.named, self.leaves, self.exp_avg, self.exp_avg_sq, strict=True):
            grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
            m = exp_avg.index_select(0, rows).mul_(beta1).add_(grad, alpha=1 - beta1)
            v = exp_avg_sq.index_select(0, rows).mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            value = leaf.detach().mul_(1 - lr * self.weight_decay)
            value.addcdiv_(m, v.sqrt().div_(bias2_sqrt).add_(self.eps), value=-step_size)
            exp_avg.index_copy_(0, rows, m)
            exp_avg_sq.index_copy_(0, rows, v)
            p.index_copy_(0, rows, value)
        self.current[rows] = t
        self.rows, self.leaves = None, []

    @torch.no_grad()
    def flush(self) -> None:
        """Bring every row up to date (before the weights are read: validation, checkpoints)."""
        self._catch_up(torch.arange(self.n_annotators, device=self.current.device))

    def _record(self, lr: float) -> None:
        self.n_steps = t = self.n_steps + 1
        if t >= len(self.rates):
            self.rates = torch.cat([self.rates, torch.zeros_like(self.rates)])
            self.log_decay = torch.cat([self.log_decay, torch.zeros_like(self.log_decay)])
        beta1, beta2 = self.betas
        self.rates[t] = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
        self.log_decay[t] = self.log_decay[t - 1] + math.log1p(-lr * self.weight_decay)

    @torch.no_grad()
    def _catch_up(self, rows: torch.Tensor) -> None:
        """Apply to ``rows`` the steps since each was last current, in which it had no gradient."""
        t, (beta1, beta2) = self.n_steps, self.betas
        last = self.current.index_select(0, rows)
        if not len(rows) or t == 0:
            return
        skipped = (t - last).to(torch.float64)  # (u,)
        decay = (self.log_decay[t] - self.log_decay.index_select(0, last)).exp()
        offsets = torch.arange(1, self.WINDOW + 1, device=rows.device)
        rho = beta1 / math.sqrt(beta2)
        steps = (last[:, None] + offsets).clamp_(max=t)  # (u, WINDOW): the skipped steps s = last + j
        drift = (self.rates[steps] * rho**offsets * (offsets <= (t - last)[:, None])).sum(1)
        for (_, p), exp_avg, exp_avg_sq in zip(self.named, self.exp_avg, self.exp_avg_sq, strict=True):
            shape = (-1,) + (1,) * (p.dim() - 1)
            m, v = exp_avg.index_select(0, rows), exp_avg_sq.index_select(0, rows)
            value = p.detach().index_select(0, rows).mul_(decay.to(p.dtype).view(shape))
            value.sub_(drift.to(p.dtype).view(shape) * m / (v.sqrt() + self.eps))
            p.index_copy_(0, rows, value)
            exp_avg.index_copy_(0, rows, m.mul_((beta1**skipped).to(p.dtype).view(shape)))
            exp_avg_sq.index_copy_(0, rows, v.mul_((beta2**skipped).to(p.dtype).view(shape)))
        self.current[rows] = t

    def state_dict(self) -> dict:
        return {"n_steps": self.n_steps, "current": self.current, "rates": self.rates, "log_decay": self.log_decay,
                "exp_avg": list(self.exp_avg), "exp_avg_sq": list(self.exp_avg_sq)}

    def load_state_dict(self, state: dict) -> None:
        if len(state["exp_avg"]) != len(self.exp_avg) or state["current"].shape != self.current.shape:
            raise ValueError("the saved annotator-row optimiser state belongs to another model")
        device = self.current.device
        self.n_steps = int(state["n_steps"])
        self.current, self.rates, self.log_decay = (state[k].to(device).clone() for k in ("current", "rates", "log_decay"))
        self.exp_avg = [saved.to(mine.device).clone() for saved, mine in zip(state["exp_avg"], self.exp_avg, strict=True)]
        self.exp_avg_sq = [saved.to(mine.device).clone() for saved, mine in zip(state["exp_avg_sq"], self.exp_avg_sq,
                                                                                 strict=True)]
