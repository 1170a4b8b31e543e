"""Learning-rate schedules: each sets ``group["lr"]`` of an optimizer at every ``step()``.

    NoamSchedule     the Transformer's warm-up (Vaswani et al., 2017, §5.3):
                     lr = factor * d_model^-0.5 * min(t^-0.5, t * warmup^-1.5)
    WarmupCosine     linear warm-up to the base lr, then cosine decay to ``min_lr``
                     (Loshchilov & Hutter, 2017, SGDR, without restarts)
    StepLR           lr = base * gamma^floor((t - 1) / step_size)
"""
import math

__all__ = ["LRScheduler", "NoamSchedule", "WarmupCosine", "StepLR"]


class LRScheduler:
    """Base class: ``lr_at(t)`` for step t = 1, 2, ...; ``step()`` applies the next one."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_step = 0
        self.step()

    def lr_at(self, t, base_lr):
        raise NotImplementedError

    def step(self):
        self.last_step += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(self.last_step, base)

    def get_last_lr(self):
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self):
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state):
        self.last_step, self.base_lrs = state["last_step"] - 1, list(state["base_lrs"])
        self.step()


class NoamSchedule(LRScheduler):
    """lr = factor * d_model^-0.5 * min(t^-0.5, t * warmup^-1.5): rises linearly for
    ``warmup`` steps, then decays as 1/sqrt(t). The optimizer's own lr is ignored."""

    def __init__(self, optimizer, d_model, warmup=4000, factor=1.0):
        self.d_model, self.warmup, self.factor = d_model, warmup, factor
        super().__init__(optimizer)

    def lr_at(self, t, base_lr):
        return self.factor * self.d_model ** -0.5 * min(t ** -0.5, t * self.warmup ** -1.5)


class WarmupCosine(LRScheduler):
    """Linear warm-up over ``warmup`` steps, then half a cosine down to ``min_lr`` at ``total``."""

    def __init__(self, optimizer, warmup, total, min_lr=0.0):
        if total <= warmup:
            raise ValueError(f"WarmupCosine: total ({total}) must exceed warmup ({warmup})")
        self.warmup, self.total, self.min_lr = warmup, total, min_lr
        super().__init__(optimizer)

    def lr_at(self, t, base_lr):
        if t <= self.warmup:
            return base_lr * t / self.warmup
        progress = min(1.0, (t - self.warmup) / (self.total - self.warmup))
        return self.min_lr + 0.5 * (base_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress))


class StepLR(LRScheduler):
    """lr = base * gamma^floor((t - 1) / step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, t, base_lr):
        return base_lr * self.gamma ** ((t - 1) // self.step_size)
