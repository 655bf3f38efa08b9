"""PyTorch side of deployments/bench-train.sh.

Trains the networks of pdmkit/nn's BenchmarkTrain (train_bench_test.go:
same list, same data formula, same initialisation scheme, same Adam
settings, batch, rows and epochs) on the CPU in float32 and prints one line
per run in Go benchmark format, under the configuration line "impl: torch",
so that benchstat can set it beside the Go figures: 1 thread is reported
as BenchmarkTrain/NAME, 2 threads as BenchmarkTrain/NAME-2 (the suffix Go
gives -cpu 2).
"""

import argparse
import math
import os
import re
import statistics
import sys
import time
from collections import defaultdict

ROWS, EPOCHS = 10000, 5
# fused=True is the fastest of torch's Adam implementations on this CPU
# (measured against the default and foreach=True).
ADAM = {"fused": True}

# name, sizes, activations, data kind, lr, L2, batch: as trainCases in
# pdmkit/nn/train_bench_test.go.
CASES = [
    ("ae-32-8-32/batch=32", [32, 8, 32], ["tanh", "linear"], "ae", 0.005, 1e-4, 32),
    ("ae-128-32-128/batch=32", [128, 32, 128], ["tanh", "linear"], "ae", 0.005, 1e-4, 32),
    ("ae-416-64-16-64-416/batch=32", [416, 64, 16, 64, 416], ["tanh", "tanh", "tanh", "linear"], "ae", 0.005, 1e-4, 32),
    ("fc-96-12-24/batch=32", [96, 12, 24], ["tanh", "linear"], "fc", 0.005, 1e-4, 32),
    ("fc-832-104-208/batch=32", [832, 104, 208], ["tanh", "linear"], "fc", 0.005, 1e-4, 32),
    ("rul-960-64-32-1/batch=32", [960, 64, 32, 1], ["relu", "relu", "linear"], "rul", 0.001, 1e-4, 32),
    ("rul-960-64-32-1/batch=128", [960, 64, 32, 1], ["relu", "relu", "linear"], "rul", 0.001, 1e-4, 128),
    # The rul default window, 80 cycles of 16 features.
    ("rul-1280-64-32-1/batch=32", [1280, 64, 32, 1], ["relu", "relu", "linear"], "rul", 0.001, 1e-4, 32),
    ("rul-1280-64-32-1/batch=128", [1280, 64, 32, 1], ["relu", "relu", "linear"], "rul", 0.001, 1e-4, 128),
]


def signal(t, j):
    """benchSignal in train_bench_test.go: sensor j at time t."""
    t, j = t.double(), float(j)
    return torch.sin(0.013 * t * (1 + int(j) % 7) + 0.5 * j) + 0.3 * torch.sin(0.11 * t + j)


def data(sizes, kind):
    """benchData in train_bench_test.go."""
    n_in, n_out = sizes[0], sizes[-1]
    window = {"fc": 16, "rul": n_in // 16}.get(kind, 4 if n_in == 32 else 8)
    d = n_in // window
    r = torch.arange(ROWS)
    x = torch.empty(ROWS, n_in, dtype=torch.float64)
    for w in range(window):
        for j in range(d):
            x[:, w * d + j] = signal(r + w, j)
    if kind == "ae":
        y = x
    elif kind == "fc":
        y = torch.empty(ROWS, n_out, dtype=torch.float64)
        for h in range(n_out // d):
            for j in range(d):
                y[:, h * d + j] = signal(r + window + h, j)
    else:
        s = sum(signal(r + window - 1, j) for j in range(d))
        y = (0.5 + 0.4 * torch.tanh(s / d)).unsqueeze(1)
    x32 = x.float().contiguous()
    # An autoencoder's targets are its inputs: the same tensor, as in Go.
    return x32, x32 if y is x else y.float().contiguous()


def network(sizes, acts, gen):
    """Dense layers with nn.New's scheme: Glorot uniform, He uniform before
    a rectifier, zero biases."""
    layers, weights, biases = [], [], []
    for i, act in enumerate(acts):
        fan_in, fan_out = sizes[i], sizes[i + 1]
        lin = torch.nn.Linear(fan_in, fan_out)
        limit = math.sqrt(6 / fan_in) if act in ("relu", "leaky_relu") else math.sqrt(6 / (fan_in + fan_out))
        with torch.no_grad():
            lin.weight.uniform_(-limit, limit, generator=gen)
            lin.bias.zero_()
        layers.append(lin)
        weights.append(lin.weight)
        biases.append(lin.bias)
        if act == "tanh":
            layers.append(torch.nn.Tanh())
        elif act == "relu":
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers), weights, biases


def train(case, x, y, epochs, seed=1):
    _, sizes, acts, _, lr, l2, batch = case
    gen = torch.Generator().manual_seed(seed)
    model, weights, biases = network(sizes, acts, gen)
    # nn's L2 adds L2/2·‖W‖² over weights only, whose gradient L2·W is what
    # Adam's weight_decay adds to the gradient: weights get it, biases not.
    opt = torch.optim.Adam(
        [{"params": weights, "weight_decay": l2}, {"params": biases, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.999), eps=1e-8, **ADAM,
    )
    loss_fn = torch.nn.MSELoss()
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(ROWS, generator=gen)
        for s in range(0, ROWS, batch):
            idx = perm[s : s + batch]
            xb = x[idx]
            yb = xb if y is x else y[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
    elapsed = time.perf_counter() - start
    with torch.no_grad():
        mse = loss_fn(model(x), y).item()
    return elapsed, mse


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--table", metavar="FILE", help="print the table of a bench-train.sh result file instead")
    p.add_argument("--count", type=int, default=1, help="runs of every case and thread count")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--filter", default=".", help="only cases whose name matches this regular expression")
    args = p.parse_args()
    if args.table:
        return table(args.table)
    global torch
    import torch
    torch.manual_seed(0)
    print("impl: torch")
    print(f"torch {torch.__version__}, MKL-DNN {torch.backends.mkldnn.is_available()}", file=sys.stderr)
    for case in CASES:
        if not re.search(args.filter, case[0]):
            continue
        x, y = data(case[1], case[3])
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            train(case, x, y, 1)  # warm-up: allocator, kernels, thread pool
            suffix = "" if threads == 1 else f"-{threads}"
            for _ in range(args.count):
                elapsed, mse = train(case, x, y, EPOCHS)
                print(f"BenchmarkTrain/{case[0]}{suffix} \t1\t{elapsed * 1e9:.0f} ns/op\t{mse:.6g} mse", flush=True)


# Every case name ends in batch=N, so a -N after it is GOMAXPROCS. Ours
# carry their precision before it (network/float64/batch=N); PyTorch's are
# float32 and do not.
LINE = re.compile(r"^BenchmarkTrain/(\S+?batch=\d+)(?:-(\d+))?\s+\d+\s+(\d+(?:\.\d+)?) ns/op(?:\s+(\S+) mse)?")


def table(path):
    """The table of bench-train.sh: the median time of every case for
    pdmkit/nn (impl go, GOMAXPROCS 1 and 2) and PyTorch (impl torch, 1 and 2
    threads), and the ratio ours / PyTorch (below 1: ours is faster)."""
    times, mse = defaultdict(list), defaultdict(list)
    impl, order = None, []
    for line in open(path):
        if line.startswith("impl:"):
            impl = line.split(":", 1)[1].strip()
            continue
        m = LINE.match(line)
        if not m or impl is None:
            continue
        name, procs = m.group(1), int(m.group(2) or 1)
        if name not in order:
            order.append(name)
        times[impl, name, procs].append(float(m.group(3)) / 1e9)
        if m.group(4):
            mse[impl, name].append(float(m.group(4)))

    def med(impl, name, procs):
        v = times.get((impl, name, procs))
        return statistics.median(v) if v else float("nan")

    runs = min((len(v) for v in times.values()), default=0)
    print(f"\nMedians of {runs} runs, seconds for 5 epochs of 10,000 rows, {os.cpu_count()} cores; ratio = ours / PyTorch")
    print("| network | ours P=1 | ours P=2 | torch 1 thr | torch 2 thr | ratio 1 | ratio 2 | mse ours / torch |")
    print("|---|---|---|---|---|---|---|---|")
    for name in order:
        torch = re.sub(r"/float(32|64)/", "/", name)
        if name == torch and times.get(("go", name, 1)) is None:
            continue  # a PyTorch case: its row is that of our cases
        g1, g2, t1, t2 = med("go", name, 1), med("go", name, 2), med("torch", torch, 1), med("torch", torch, 2)
        mg = statistics.median(mse[("go", name)]) if mse[("go", name)] else float("nan")
        mt = statistics.median(mse[("torch", torch)]) if mse[("torch", torch)] else float("nan")
        print(f"| {name} | {g1:.3f} | {g2:.3f} | {t1:.3f} | {t2:.3f} | {g1 / t1:.2f} | {g2 / t2:.2f} | {mg:.2e} / {mt:.2e} |")



if __name__ == "__main__":
    sys.exit(main())
