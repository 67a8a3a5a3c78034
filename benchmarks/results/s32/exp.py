"""Session 32: appearance-network training variants (`--variant cell`: the fit's own `train`; `mil`: one loss an image on the mean logit of its cells; `--layers`: other widths; `--extra`: more training folders), scored on the two calibration sets by the fit's rule; writes OUT (the weights) and OUT's .rows.json."""
import argparse, json, time
from pathlib import Path
import numpy as np
import torch
from ccscore_export import resized_appearance as ra
from common import CELLS_CACHE, calibration_rows, reader

p = argparse.ArgumentParser()
p.add_argument("--variant", default="cell")  # cell | mil
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--extra", nargs="*", default=[])
p.add_argument("--layers", default="")
p.add_argument("--out", required=True)
p.add_argument("--lr", type=float, default=2e-3)
args = p.parse_args()
torch.set_num_threads(2)
if args.layers:
    ra.LAYERS = tuple(tuple(int(v) for v in l.split(":")) for l in args.layers.split(","))
reader_key = reader()
train_folders = [f"data/judge/train-{x}" for x in "abefghijk"] + args.extra
cal = calibration_rows(reader_key)
rows = [r for root in train_folders for r in ra.collect_cached(Path(root), False, CELLS_CACHE, reader_key, 2)]
print(f"training on {sum(r['y'] for r in rows)} positive, {sum(1 - r['y'] for r in rows)} clean", flush=True)


def train_mil(rows, epochs, seed, clean_share=0.5, k_cells=6, images_per_batch=48):
    """Image-level loss on the mean logit of k cells (the runtime pools mean logits): the top-k most textured cells
    half the time, a random k otherwise."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = ra.build_network()
    cells = [r["cells"] for r in rows]
    labels = np.array([r["y"] for r in rows])
    has = np.array([len(c) > 0 for c in cells])
    positives, cleans = np.flatnonzero((labels == 1) & has), np.flatnonzero((labels == 0) & has)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for epoch in range(epochs):
        t0 = time.time()
        chosen = np.concatenate([positives, rng.choice(cleans, int(clean_share * len(cleans)), replace=False)])
        chosen = chosen[rng.permutation(len(chosen))]
        y_all = labels[chosen].astype(np.float32)
        w = float((y_all == 0).sum()) / max(1.0, float((y_all == 1).sum()))
        loss_of = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w))
        net.train(); total = 0.0
        for s in range(0, len(chosen), images_per_batch):
            idx = chosen[s:s + images_per_batch]
            picked, seg = [], []
            for j, k in enumerate(idx):
                n = len(cells[k])
                sel = np.arange(min(k_cells, n)) if rng.random() < 0.5 else rng.permutation(n)[:k_cells]
                picked.append(cells[k][sel]); seg += [j] * len(sel)
            batch = torch.from_numpy(np.concatenate(picked))
            if rng.random() < 0.5: batch = batch.flip(2)
            if rng.random() < 0.5: batch = batch.transpose(1, 2)
            seg = torch.tensor(seg)
            logit = net(ra.torch_input(batch)).squeeze(1)
            sums = torch.zeros(len(idx)).index_add(0, seg, logit)
            counts = torch.zeros(len(idx)).index_add(0, seg, torch.ones_like(logit))
            target = torch.from_numpy(labels[idx].astype(np.float32))
            opt.zero_grad()
            loss = loss_of(sums / counts, target)
            loss.backward(); opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        print(f"epoch {epoch + 1}/{epochs}: {len(chosen)} images, loss {total / len(chosen):.4f}, "
              f"{time.time() - t0:.0f} s", flush=True)
    net.eval()
    return net


net = train_mil(rows, args.epochs, args.seed) if args.variant == "mil" else ra.train(rows, args.epochs, args.seed)
spec = ra.folded_spec(net)
ours = ra.runtime_scores(spec, cal)
threshold, scores, summary = ra.calibrate(ours, cal, 0.002)
print(args, summary, flush=True)
spec.update(threshold=threshold)
Path(args.out).write_text(json.dumps(spec))
ra.write_rows(Path(args.out).with_suffix(".rows.json"), cal, scores)
