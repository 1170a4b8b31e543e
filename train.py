"""Train a model with minigrad: the command line.

Until the sequence-to-sequence models arrive (models/), this trains the engine's
smallest real job: a two-layer perceptron classifying points of three
interleaved spirals, a generated task (no download), with softmax
cross-entropy and SGD with momentum. Everything it uses is written by hand in
minigrad: the tensors, the ops, their gradients.

    python train.py                      # CPU (NumPy)
    python train.py --backend cupy       # GPU (CuPy)

It prints the loss and the accuracy on the training points and on held-out
points (a second draw of the spirals) as it goes and writes, under --out,
``metrics.json`` (the curve and the final accuracy) and ``model.npz`` (the
weights, written atomically: an interrupted run never leaves a corrupt file).
"""
import argparse
import json
import math
import os
import tempfile
import time

import numpy as np

import minigrad as mg


def make_spirals(n_per_class, n_classes, seed):
    """Points on ``n_classes`` noisy spiral arms in the plane: X (N, 2), y (N,)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(n_classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        theta = np.linspace(c * 2 * math.pi / n_classes, c * 2 * math.pi / n_classes + 4.0, n_per_class)
        theta += rng.normal(scale=0.15, size=n_per_class)
        xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


class MLP:
    """logits = relu(X W1 + b1) W2 + b2 with He-initialised weights."""

    def __init__(self, n_in, n_hidden, n_out):
        self.W1 = mg.Tensor(mg.randn(n_in, n_hidden).data * math.sqrt(2.0 / n_in), requires_grad=True)
        self.b1 = mg.zeros((n_hidden,), requires_grad=True)
        self.W2 = mg.Tensor(mg.randn(n_hidden, n_out).data * math.sqrt(2.0 / n_hidden), requires_grad=True)
        self.b2 = mg.zeros((n_out,), requires_grad=True)

    def parameters(self):
        return {"W1": self.W1, "b1": self.b1, "W2": self.W2, "b2": self.b2}

    def __call__(self, x):
        h = mg.relu(x @ self.W1 + self.b1)          # (N, H)
        return h @ self.W2 + self.b2                 # (N, C)


def save_weights(params, path):
    """Write the weights to ``path`` atomically: a temporary file, then a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{name: p.numpy() for name, p in params.items()})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    parser.add_argument("--steps", type=int, default=2000, help="SGD steps (full batch)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/spirals", help="folder for metrics.json and model.npz")
    args = parser.parse_args(argv)

    try:
        mg.set_backend(args.backend)
    except mg.BackendError as error:
        parser.exit(2, f"train.py: {error}\n")
    mg.manual_seed(args.seed)
    X_np, y_np = make_spirals(n_per_class=200, n_classes=3, seed=args.seed)
    X_test_np, y_test_np = make_spirals(n_per_class=200, n_classes=3, seed=args.seed + 1)
    X, y, X_test = mg.Tensor(X_np), mg.Tensor(y_np), mg.Tensor(X_test_np)
    model = MLP(2, args.hidden, 3)
    params = model.parameters()
    velocity = {name: None for name in params}

    curve, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        loss = mg.cross_entropy(model(X), y)
        for p in params.values():
            p.grad = None
        loss.backward()
        with mg.no_grad():
            for name, p in params.items():                      # v = mu v + g;  p -= lr v
                v = velocity[name]
                velocity[name] = p.grad if v is None else args.momentum * v + p.grad
                p.data = p.data - args.lr * velocity[name]
        if step % 200 == 0 or step == 1:
            with mg.no_grad():
                accuracy = float((model(X).numpy().argmax(axis=1) == y_np).mean())
                test_accuracy = float((model(X_test).numpy().argmax(axis=1) == y_test_np).mean())
            curve.append({"step": step, "loss": loss.item(), "accuracy": accuracy,
                          "test_accuracy": test_accuracy})
            print(f"step {step:5d}  loss {loss.item():.4f}  train accuracy {accuracy:.3f}  "
                  f"held-out accuracy {test_accuracy:.3f}")

    os.makedirs(args.out, exist_ok=True)
    seconds = time.perf_counter() - start
    metrics = {"task": "spirals-3", "backend": args.backend, "steps": args.steps,
               "final_loss": curve[-1]["loss"], "final_accuracy": curve[-1]["accuracy"],
               "final_test_accuracy": curve[-1]["test_accuracy"],
               "seconds": round(seconds, 2), "curve": curve}
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    save_weights(params, os.path.join(args.out, "model.npz"))
    print(f"trained in {seconds:.1f} s: held-out accuracy {metrics['final_test_accuracy']:.3f}; "
          f"wrote {args.out}/metrics.json and {args.out}/model.npz")
    return metrics


if __name__ == "__main__":
    main()
