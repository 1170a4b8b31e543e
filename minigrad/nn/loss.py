"""Loss functions as modules, with PyTorch's names and arguments:
``nn.CrossEntropyLoss`` and ``nn.MSELoss``. Each holds its settings and calls the
function of ``minigrad.nn.functional`` that computes it (the formulas are there).

    criterion = nn.CrossEntropyLoss(ignore_index=PAD_ID, label_smoothing=0.1)
    loss = criterion(logits, target)          # logits (N, C), target (N,) class indices
"""
from minigrad.nn.functional import check_reduction, cross_entropy, mse_loss
from minigrad.nn.module import Module

__all__ = ["CrossEntropyLoss", "MSELoss"]


class CrossEntropyLoss(Module):
    """The cross-entropy of logits against class indices, with label smoothing:
    ``F.cross_entropy`` (its docstring and ``minigrad/ops/nn_cross_entropy.py`` carry
    the formula and its gradient, softmax(x) - q).

    >>> import minigrad as mg
    >>> criterion = mg.nn.CrossEntropyLoss()
    >>> logits = mg.zeros(2, 4)                        # every class equally likely
    >>> round(criterion(logits, mg.Tensor([0, 3])).item(), 4)     # log 4
    1.3863

    Args (PyTorch's; the options after ``weight`` by keyword only):
        weight:          per-class weights; not supported (must be None).
        ignore_index:    a target value that adds nothing to the loss (padding).
        reduction:       "mean" over the targets not ignored, "sum", or "none".
        label_smoothing: eps in [0, 1]: the target distribution (1 - eps) onehot + eps / C.

    Shapes:
        input:  (N, C), (C,), or (N, C, d1, ...) with the classes second
        target: (N,), (), or (N, d1, ...): integer class indices
        output: () for "mean" and "sum"; the target's shape for "none"
    """

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        if weight is not None:
            raise NotImplementedError("CrossEntropyLoss: class weights (weight=) are not supported "
                                      "in minigrad; pass weight=None")
        check_reduction("CrossEntropyLoss", reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.ignore_index, self.reduction = ignore_index, reduction
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return cross_entropy(input, target, ignore_index=self.ignore_index,
                             label_smoothing=self.label_smoothing, reduction=self.reduction)

    def extra_repr(self):
        settings = []
        if self.ignore_index != -100:
            settings.append(f"ignore_index={self.ignore_index}")
        if self.reduction != "mean":
            settings.append(f"reduction={self.reduction!r}")
        if self.label_smoothing:
            settings.append(f"label_smoothing={self.label_smoothing}")
        return ", ".join(settings)


class MSELoss(Module):
    """The mean squared error (1/N) sum_i (input_i - target_i)^2: ``F.mse_loss``.

    >>> import minigrad as mg
    >>> mg.nn.MSELoss()(mg.Tensor([1.0, 2.0]), mg.Tensor([1.0, 4.0])).item()     # (0 + 4) / 2
    2.0

    Args: reduction: "mean", "sum" or "none" (every squared difference).

    Shapes: input and target of one shape (...); output () or that shape for "none".
    """

    def __init__(self, reduction="mean"):
        super().__init__()
        check_reduction("MSELoss", reduction)
        self.reduction = reduction

    def forward(self, input, target):
        return mse_loss(input, target, reduction=self.reduction)

    def extra_repr(self):
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"
