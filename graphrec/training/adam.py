"""Adam, the update of ``torch.optim.Adam`` (default betas and eps, bias correction, no
weight decay, no amsgrad) written out over plain tensors.

Why not ``torch.optim.Adam`` itself: constructing any ``torch.optim`` optimiser imports
``torch._dynamo`` (torch's compiler), 1.8 s of a 20 s ``graphrec train`` on the 2-core
machine, for a loop that never compiles. The arithmetic is the same operations in the same
order as torch's single-tensor implementation, so the weights come out bit for bit equal (a
test checks it), and :meth:`state_dict` has torch's layout (``state[i]`` with ``step``,
``exp_avg``, ``exp_avg_sq``; ``param_groups``), so checkpoints read the same.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor

__all__ = ["Adam"]


class Adam:
    """Adam over ``params`` with learning rate ``lr``: ``zero_grad``, ``step``, ``state_dict``
    and ``load_state_dict`` as torch's optimisers have them."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = list(params)
        self.lr, self.betas, self.eps = float(lr), (float(betas[0]), float(betas[1])), float(eps)
        self.state: dict[int, dict[str, Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.params:
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for index, param in enumerate(self.params):
            if param.grad is None:
                continue
            grad = param.grad
            state = self.state.get(index)
            if state is None:  # created at a parameter's first step, as torch does
                state = self.state[index] = {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(param),
                                             "exp_avg_sq": torch.zeros_like(param)}
            state["step"] += 1
            step = float(state["step"])
            state["exp_avg"].lerp_(grad, 1 - beta1)
            state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step_size = self.lr / (1 - beta1**step)
            denom = (state["exp_avg_sq"].sqrt() / (1 - beta2**step) ** 0.5).add_(self.eps)
            param.addcdiv_(state["exp_avg"], denom, value=-step_size)

    def state_dict(self) -> dict[str, Any]:
        group = {"lr": self.lr, "betas": self.betas, "eps": self.eps, "weight_decay": 0, "amsgrad": False,
                 "params": list(range(len(self.params)))}
        return {"state": {index: dict(state) for index, state in self.state.items()}, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (this class's or ``torch.optim.Adam``'s): the moments
        are copied onto the parameters' devices and dtypes."""
        groups = state_dict.get("param_groups") or [{}]
        self.lr = float(groups[0].get("lr", self.lr))
        self.state = {}
        for index, state in state_dict.get("state", {}).items():
            param = self.params[int(index)]
            self.state[int(index)] = {
                "step": torch.as_tensor(state["step"], dtype=torch.float32).clone(),
                "exp_avg": state["exp_avg"].to(param.device, param.dtype).clone(),
                "exp_avg_sq": state["exp_avg_sq"].to(param.device, param.dtype).clone(),
            }
