import json, sys, numpy as np
from ccscore_export.bars import CLEAN_GROUPS
R = json.load(open(sys.argv[1]))  # the fit's --rows JSON
cache = json.load(open('data/judge/features.json'))
pre = {r["path"]: r["verdict"] != "clean" for f in ("data/eval-wild-cal", "data/eval-wild-cal-small") for r in cache[f]["rows"]}
V = np.array([r["verdict"] != "clean" for r in R]); A = np.array([r["asked"] for r in R]); S = np.array([r["score"] for r in R])
Y = np.array([r["y"] for r in R]); K = np.array([r["kind"] for r in R]); small = np.array(["cal-small" in r["path"] for r in R])
PRE = np.array([pre[r["path"]] for r in R])
F = V | (A & (S > 0.8188429))
jd = (Y == 1) & (K == "jpeg_downscaled")
print("jd found: head", PRE[jd].sum(), "judge/blocks", (V & ~PRE)[jd].sum(), "network", (F & ~V)[jd].sum(), "missed", (~F)[jd].sum(), "of", jd.sum())
for n, kinds, bar in CLEAN_GROUPS:
    if np.isnan(bar): continue
    m = (Y == 0) & (np.ones(len(K), bool) if kinds is None else np.isin(K, kinds))
    print(f"  {n}: head {PRE[m].sum()} judge {(V&~PRE)[m].sum()} net {(F&~V)[m].sum()} limit {max(int(np.floor(bar*m.sum())), PRE[m].sum())}")
miss = jd & ~F
print(" missed: not asked", (miss & ~A).sum(), " S bins", np.histogram(S[miss & A], bins=[0, 0.001, 0.02, 0.1, 0.3, 0.5, 0.7, 0.82])[0])
print("--- network threshold if grey/downscaled groups had room (head flags fewer); judge verdicts kept")
def groups_with(extra):
    out = []
    for n, kinds, bar in CLEAN_GROUPS:
        if np.isnan(bar): continue
        m = (Y == 0) & (np.ones(len(K), bool) if kinds is None else np.isin(K, kinds))
        out.append((n, m, max(int(np.floor(bar*m.sum())), PRE[m].sum()) + extra.get(n, 0)))
    return out
for extra in [{}, {"grey": 3, "downscaled": 5}, {"grey": 6, "downscaled": 10}, {"grey": 99, "downscaled": 99}]:
    G = groups_with(extra)
    ts = np.sort(np.unique(S[A & ~V & (Y == 0)]))[::-1]
    last = None
    for t in ts:
        f = V | (A & (S >= t))
        if any(f[m].sum() > lim for n, m, lim in G): break
        last = t
    f = V | (A & (S >= last))
    print(extra, f"t {last:.3f} jd {f[jd].sum()} (cal {f[jd&~small].sum()} small {f[jd&small].sum()}) all pos {f[Y==1].sum()}", "binding", [n for n, m, lim in G if f[m].sum() >= lim])
