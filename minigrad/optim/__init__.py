"""``minigrad.optim``: optimizers, gradient clipping and learning-rate schedules."""
from minigrad.optim.optimizer import Optimizer
from minigrad.optim.sgd import SGD
from minigrad.optim.adam import Adam, AdamW
from minigrad.optim.clip import clip_grad_norm_
from minigrad.optim.lr_scheduler import LRScheduler, NoamSchedule, StepLR, WarmupCosine
