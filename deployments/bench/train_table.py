"""Table of deployments/bench-train.sh: the median time of every case for
pdmkit/nn (impl go, GOMAXPROCS 1 and 2) and PyTorch (impl torch, 1 and 2
threads), and the ratio ours / PyTorch (below 1: ours is faster)."""

import re
import statistics
import sys
from collections import defaultdict

# Every case name ends in batch=N, so a -N after it is GOMAXPROCS.
LINE = re.compile(r"^BenchmarkTrain/(\S+?batch=\d+)(?:-(\d+))?\s+\d+\s+(\d+(?:\.\d+)?) ns/op(?:\s+(\S+) mse)?")


def main(path):
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
    print(f"\nMedians of {runs} runs, seconds for 5 epochs of 10,000 rows, 2 cores; ratio = ours / PyTorch")
    print("| network | ours P=1 | ours P=2 | torch 1 thr | torch 2 thr | ratio 1 | ratio 2 | mse ours / torch |")
    print("|---|---|---|---|---|---|---|---|")
    for name in order:
        g1, g2, t1, t2 = med("go", name, 1), med("go", name, 2), med("torch", name, 1), med("torch", name, 2)
        mg = statistics.median(mse[("go", name)]) if mse[("go", name)] else float("nan")
        mt = statistics.median(mse[("torch", name)]) if mse[("torch", name)] else float("nan")
        print(f"| {name} | {g1:.3f} | {g2:.3f} | {t1:.3f} | {t2:.3f} | {g1 / t1:.2f} | {g2 / t2:.2f} | {mg:.2e} / {mt:.2e} |")


if __name__ == "__main__":
    main(sys.argv[1])
