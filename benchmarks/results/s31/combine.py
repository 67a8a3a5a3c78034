"""Does one combined score (judge logit and network logit, weighted) find more positives than the OR of two thresholds,
within every clean bar, on the pooled calibration sets? Blocks left out, as in s30 joint.py."""
import json, sys, numpy as np
from ccscore.resized_judge import ResizedJudge
from ccscore_export.bars import CLEAN_GROUPS
net_rows = {r["path"]: r for r in json.load(open(sys.argv[1]))}
judge = ResizedJudge.from_spec(json.load(open('runtime/ccscore/resized_judge.json')))
cache = json.load(open('data/judge/features.json'))
rows = [r for f in ("data/eval-wild-cal", "data/eval-wild-cal-small") for r in cache[f]["rows"]]
P, S, LEAN, PRE = [], [], [], []
for r in rows:
    n = net_rows.get(r["path"]); s = None if n is None else n["score"]
    x = r["x"]
    P.append(judge.probability(np.array(x)) if x is not None and x[0] <= 0.99 else np.nan)
    S.append(np.nan if s is None else s)
    LEAN.append(9 if x is None else x[0]); PRE.append(r["verdict"] != "clean")
P, S, LEAN, PRE = map(np.array, (P, S, LEAN, PRE))
Y = np.array([r["y"] for r in rows]); K = np.array([r["kind"] for r in rows])
small = np.array(["cal-small" in r["path"] for r in rows])
groups = []
for name, kinds, bar in CLEAN_GROUPS:
    if np.isnan(bar): continue
    m = (Y == 0) & (np.ones(len(K), bool) if kinds is None else np.isin(K, kinds))
    groups.append((name, m, max(int(np.floor(bar * m.sum())), int(PRE[m].sum()))))
def broken(f): return [n for n, m, lim in groups if f[m].sum() > lim]
def lg(p): p = np.clip(p, 1e-9, 1 - 1e-9); return np.log(p / (1 - p))
def report(tag, f):
    jd = (Y == 1) & (K == "jpeg_downscaled")
    print(f"{tag}: found {f[Y==1].sum()} (jd cal {f[jd&~small].sum()}/{(jd&~small).sum()} small {f[jd&small].sum()}/{(jd&small).sum()}) clean {f[Y==0].sum()} broken {broken(f)}")
def best(scores, eligible):
    """Lowest threshold on `scores` (flag eligible & score > t) keeping every bar."""
    cand = np.sort(np.unique(scores[eligible & ~PRE & np.isfinite(scores)]))[::-1]
    last = None
    for t in cand:
        f = PRE | (eligible & (scores >= t))
        if broken(f): break
        last = t
    return last
print("pre found", PRE[Y==1].sum())
cur = PRE | (~PRE & (P > 0.9811676) & ~(S < 0.02)) | (~PRE & (LEAN <= 0.999) & (S > 0.8188429))
report("current OR", cur)
LP, LS = lg(np.nan_to_num(P, nan=0.0)), lg(np.nan_to_num(S, nan=0.5))
for a in [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0]:
    z = np.where(np.isnan(P), LS * (1 - a) + a * -20, a * LP + (1 - a) * LS)  # no judge read: its logit very low
    el = (LEAN <= 0.999) & ~np.isnan(S)
    t = best(z, el)
    if t is None: print(a, "none"); continue
    report(f"a {a:.1f} t {t:.2f}", PRE | (el & (z >= t)))
print("--- groups at the network-only threshold")
el = (LEAN <= 0.999) & ~np.isnan(S)
t = best(LS, el); f = PRE | (el & (LS >= t))
for n, m, lim in groups: print(f"  {n}: {f[m].sum()} / lim {lim} (pre {PRE[m].sum()}, n {m.sum()})")
order = np.argsort(-np.nan_to_num(S, nan=-1))
print("--- top clean by network score (not pre)")
c = 0
for i in order:
    if Y[i] == 0 and not PRE[i] and LEAN[i] <= 0.999:
        print(f"  {S[i]:.4f} {K[i]} {rows[i]['path']}"); c += 1
        if c > 40: break
print("--- downscaled group's room raised by k (as if the head flagged k fewer of it)")
base = list(groups)
for k in [0, 3, 6, 10, 15]:
    groups[:] = [(n, m, lim + (k if n == "downscaled" else 0)) for n, m, lim in base]
    t = best(LS, el); f = PRE | (el & (LS >= t))
    jd = (Y == 1) & (K == "jpeg_downscaled")
    print(f"  +{k}: t {1/(1+np.exp(-t)):.3f} found {f[Y==1].sum()} jd cal {f[jd&~small].sum()} small {f[jd&small].sum()} binding {[n for n,m,lim in groups if f[m].sum()==lim]}")
groups[:] = base
print("--- missed jd positives (cal+small): network score, lean, judge p")
jd = (Y == 1) & (K == "jpeg_downscaled")
t = best(LS, el); f = PRE | (el & (LS >= t))
miss = np.where(jd & ~f)[0]
print(" n", len(miss), " no S", np.isnan(S[miss]).sum(), " lean>0.999", (LEAN[miss] > 0.999).sum())
print(" S bins", np.histogram(np.nan_to_num(S[miss], nan=-1), bins=[-1, 0, 0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])[0])
print(" P bins", np.histogram(np.nan_to_num(P[miss], nan=-1), bins=[-1, 0, 0.05, 0.3, 0.6, 0.9, 0.98, 1.0])[0])
print(" lean bins", np.histogram(LEAN[miss], bins=[0, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0, 10])[0])
print("--- under current OR")
miss = np.where(jd & ~cur)[0]
print(" n", len(miss))
print(" S bins", np.histogram(np.nan_to_num(S[miss], nan=-1), bins=[-1, 0, 0.001, 0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])[0])
print(" P bins", np.histogram(np.nan_to_num(P[miss], nan=-1), bins=[-1, 0, 0.05, 0.3, 0.6, 0.9, 0.98, 1.0])[0])
m2 = miss[(np.nan_to_num(P[miss]) > 0.98)]
for i in m2: print("  ", f"P {P[i]:.4f} S {S[i]:.4f} lean {LEAN[i]:.3f}", rows[i]['path'])
# clean side: how many clean (not pre) have P>0.981 but S<0.02 (vetoed)?
cv = (Y == 0) & ~PRE & (P > 0.9811676) & (S < 0.02)
print(" clean vetoed by S<0.02:", cv.sum(), " positives vetoed:", ((Y==1) & ~PRE & (P > 0.9811676) & (S < 0.02)).sum())
print(" cal-only: clean vetoed", (cv & ~small).sum(), "small", (cv & small).sum())
