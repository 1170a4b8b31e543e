"""Plots of a run, as PNG files (matplotlib, no screen needed).

    curves.png      training and validation loss, and validation metrics, against steps
    attention_<i>.png
                    for a few test sentences: the attention weights, source tokens
                    (columns) against output tokens (rows). RNN models have one map per
                    sentence; the Transformer one per chosen (layer, head) of its
                    encoder-decoder attention.
"""
import matplotlib

matplotlib.use("Agg")                          # files only: no display needed
import matplotlib.pyplot as plt                # noqa: E402
import numpy as np                             # noqa: E402

from models.checkpoint import atomic_write     # noqa: E402

__all__ = ["plot_curves", "plot_attention", "save_figure"]


def save_figure(fig, path):
    """The figure as a PNG, written like every file of a run: to a temporary file, then
    renamed (a kill during the drawing leaves the previous PNG whole, never 0 bytes)."""
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)


def plot_curves(history, path, metrics=(("valid_token_accuracy", "token accuracy"),
                                        ("valid_exact_match", "exact match")), unit_range=True):
    """history: list of dicts with "step", "train_loss" and, on validation rows,
    "valid_loss" and the validation ``metrics`` (key, label) drawn on the right
    (on [0, 1] when ``unit_range``: accuracies)."""
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    train = [(h["step"], h["train_loss"]) for h in history if h.get("train_loss") is not None]
    valid = [h for h in history if h.get("valid_loss") is not None]
    if train:
        ax_loss.plot(*zip(*train), label="train", alpha=0.8)
    if valid:
        ax_loss.plot([h["step"] for h in valid], [h["valid_loss"] for h in valid], "o-", label="valid")
        for key, label in metrics:
            ax_metric.plot([h["step"] for h in valid], [h.get(key) for h in valid], "o-", label=label)
    ax_loss.set(xlabel="step", ylabel="loss", title="loss", yscale="log")
    ax_metric.set(xlabel="step", ylabel="validation", title="metrics")
    if unit_range:
        ax_metric.set_ylim(0, 1.02)
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def plot_attention(source_tokens, output_tokens, maps, titles, path):
    """maps: a list of (len(output), len(source)) arrays, one panel each."""
    n = len(maps)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    width = max(3.0, 0.32 * len(source_tokens) + 1.5)
    height = max(2.5, 0.32 * len(output_tokens) + 1.2)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax, weights, title in zip(axes.flat, maps, titles):
        ax.imshow(np.asarray(weights), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(source_tokens)), source_tokens, rotation=90, fontsize=8)
        ax.set_yticks(range(len(output_tokens)), output_tokens, fontsize=8)
        ax.set_xlabel("source")
        ax.set_ylabel("output")
        ax.set_title(title, fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path)
