"""Does our evaluation predict the held-out set? Issue #12 gives v0.5.0's held-out figures for its four kinds, and the
project's brief its held-out flagged shares on clean art; v0.5.0 run on our sets (`verdicts.py`) shows how far each
set is from the held-out one for that model. Reweighting a set's images so that v0.5.0's verdicts are mixed as on the
held-out set (strata: v0.5.0's verdict, clean or caught; for JPEG then downscaled clean / named JPEG / named otherwise,
WebP on our sets, reading the issue's "29%" as of all images) estimates what the shipped model does there, ASSUMING
its rate within a stratum carries over from our art to the held-out art. Printed: the plug-in estimate, then a 95%
interval of sampling error alone (each stratum's rate drawn from its Jeffreys posterior, Beta(k + 1/2, n - k + 1/2),
whose mean is not 0 at 0 of n: the interval can lie above a plug-in 0%) and the chance the bar is met; how far the
assumption errs is checked once, by predicting the large-art set from the report set's strata (`cross_check`). Session 35; not part of
the package.

    python benchmarks/results/s35/reweighted.py V050.json SHIPPED.json [V050-CLEAN.json SHIPPED-CLEAN.json] \
        > benchmarks/results/s35/reweighted.txt
"""
import json
import math
import sys

import numpy as np

# Issue #12's held-out table for v0.5.0, per kind: (our kinds, the codec naming it right, v0.5.0's caught share,
# its named-JPEG share of all images or None where the issue gives none, (caught bar, codec-right bar or None)).
HELD_OUT = {
    "AVIF": (("avif_avifenc", "avif_pillow"), "avif", 0.696, None, (0.90, 0.90)),
    "JPEG XL": (("jxl_cjxl",), "jxl", 0.402, None, (0.80, 0.85)),
    "JPEG then downscaled": (("jpeg_downscaled",), "jpeg", 0.922, 0.29, (0.95, 0.90)),
    "JPEG then upscaled x2": (("jpeg_upscaled_x2",), "jpeg", 0.353, None, (0.90, None)),
}
# The brief's held-out flagged shares for v0.5.0 on clean art, with issue #7's bars (largest flagged share): (our
# kinds, v0.5.0's flagged share, bar).
HELD_OUT_CLEAN = {
    "originals": (("clean",), 0.17, 0.05),
    "grey": (("grey",), 0.22, 0.04),
    "line art": (("lineart",), 0.20, 0.06),
    "manga": (("manga",), 0.41, 0.06),
    "upscaled x2": (("upscaled_x2",), 0.18, 0.04),
    "downscaled (every kernel)": (("downscaled",), 0.11, 0.03),
    "downscaled with Lanczos": (("downscaled_lanczos",), 0.27, 0.03),
    "smaller than a tile": (("small",), 0.41, 0.06),
}
# 54 of the large-art set's 214 sources are also the report set's (other draws): "both" is no independent sample.
SETS = {"report set": "data/eval-wild/", "large art": "data/eval-wild-large3-nocal/"}
DRAWS = 200_000


def stratum(label, named):
    """v0.5.0's verdict as a stratum: clean / caught (or, where the held-out naming is known, clean / jpeg / other)."""
    if label == "clean":
        return "clean"
    return ("jpeg" if label == "jpeg" else "other") if named is not None else "caught"


def held_out_mix(caught, named):
    """Each stratum's share of v0.5.0's verdicts on the held-out set."""
    if named is None:
        return {"clean": 1 - caught, "caught": caught}
    return {"clean": 1 - caught, "jpeg": named, "other": caught - named}


def weighted(counts, mix, bar=None, at_most=False):
    """The rate weighted by `mix` from per-stratum (hits, n): (plug-in estimate, 2.5% and 97.5% points of its
    sampling distribution, P(rate >= bar), or with `at_most` P(rate <= bar), or None without a bar); NaN where a
    weighted stratum is empty."""
    if any(counts[key][1] == 0 for key, share in mix.items() if share > 0):
        return math.nan, math.nan, math.nan, None
    rng = np.random.default_rng(0)
    estimate = sum(share * counts[key][0] / counts[key][1] for key, share in mix.items() if share > 0)
    draws = sum(share * rng.beta(counts[key][0] + 0.5, counts[key][1] - counts[key][0] + 0.5, DRAWS)
                for key, share in mix.items() if share > 0)
    low, high = np.quantile(draws, [0.025, 0.975])
    if bar is None:
        return estimate, low, high, None
    return estimate, low, high, float(np.mean(draws <= bar if at_most else draws >= bar))


def shown(estimate, low, high, chance, chance_of="P(>= bar)"):
    """A weighted rate as printed: plug-in estimate [sampling interval] and the chance of `chance_of`."""
    if math.isnan(estimate):
        return "- (a stratum is empty)"
    return f"{estimate:5.1%} [{low:.1%}, {high:.1%}]" + ("" if chance is None else f" {chance_of} {chance:.2f}")


def strata_counts(paths, old, new, named, hit):
    """Per stratum of v0.5.0's verdict: (images `hit` counts, images)."""
    keys = ("clean", "jpeg", "other") if named is not None else ("clean", "caught")
    counts = {key: [0, 0] for key in keys}
    for p in paths:
        key = stratum(old[p]["label"], named)
        counts[key][0] += hit(new[p])
        counts[key][1] += 1
    return counts


def verdicts(old_file, new_file):
    old = {r["path"]: r for r in json.load(open(old_file))}
    new = {r["path"]: r for r in json.load(open(new_file))}
    assert old.keys() == new.keys(), "verdicts of other images"
    assert not any(r["label"] == "error" for r in [*old.values(), *new.values()]), "unreadable images"
    return old, new


def lossy_lines(old, new):
    print("kind: held-out v0.5.0 caught | per set: v0.5.0 caught there; the shipped model caught (codec right) | per "
          "v0.5.0 stratum the shipped model's caught/n (codec right) | weighted to the held-out mix: caught, then "
          "codec right, each with its 95% sampling interval and the chance it reaches the bar")
    for name, (kinds, codec, caught, named, bar) in HELD_OUT.items():
        mix = held_out_mix(caught, named)
        print(f"\n{name}: held-out v0.5.0 caught {caught:.1%}" + (f" (named JPEG {named:.0%})" if named else "")
              + f"; bar caught >= {bar[0]:.0%}" + ("" if bar[1] is None else f", codec right >= {bar[1]:.0%}"))
        for set_name, prefix in [*SETS.items(), ("both", "")]:
            paths = [p for p in old if p.startswith(prefix) and old[p]["kind"] in kinds]
            caught_counts = strata_counts(paths, old, new, named, lambda r: r["label"] != "clean")
            right_counts = strata_counts(paths, old, new, named, lambda r: r["label"] == codec)
            parts = "; ".join(f"{key} {caught_counts[key][0]}/{n} ({right_counts[key][0]})"
                              for key, (_, n) in caught_counts.items())
            print(f"  {set_name:10s} n {len(paths):3d}: v0.5.0 {sum(old[p]['label'] != 'clean' for p in paths) / len(paths):5.1%}; "
                  f"shipped {sum(new[p]['label'] != 'clean' for p in paths) / len(paths):5.1%} "
                  f"({sum(new[p]['label'] == codec for p in paths) / len(paths):5.1%}) | {parts}")
            print(f"  {'':10s}        weighted: caught {shown(*weighted(caught_counts, mix, bar[0]))}; codec right "
                  f"{shown(*weighted(right_counts, mix, bar[1]))}")


def cross_check(old, new):
    """How far the assumption errs once: each kind's report-set strata weighted to the large-art set's own mix of
    v0.5.0's verdicts, against what the shipped model catches on the large-art set."""
    print("\n== cross-check: the report set's strata weighted to the large-art set's mix of v0.5.0's verdicts, "
          "against the large-art set's own figure (caught)")
    for name, (kinds, codec, caught, named, bar) in HELD_OUT.items():
        report, large = ([p for p in old if p.startswith(SETS[s]) and old[p]["kind"] in kinds] for s in SETS)
        large_counts = strata_counts(large, old, new, named, lambda r: True)
        mix = {key: n / len(large) for key, (_, n) in large_counts.items()}
        predicted = weighted(strata_counts(report, old, new, named, lambda r: r["label"] != "clean"), mix)
        print(f"  {name}: predicted {shown(*predicted)}; large art {sum(new[p]['label'] != 'clean' for p in large) / len(large):.1%}")


def slices(old, new):
    """JPEG then downscaled by kernel, quality, scale and size (detail: encoder:qQ:xS:kernel): is any slice of ours as
    easy for v0.5.0 as the held-out set?"""
    print("\n== JPEG then downscaled, both sets, by slice: v0.5.0 caught; shipped caught")
    paths = [p for p in old if old[p]["kind"] == "jpeg_downscaled"]

    def quality(r):
        return int(r["detail"].split(":")[1][1:])

    def scale(r):
        return float(r["detail"].split(":")[2][1:])

    keys = {
        "kernel": lambda r: r["detail"].split(":")[3],
        "quality": lambda r: ("q50-69", "q70-84", "q85-90")[(quality(r) >= 70) + (quality(r) >= 85)],
        "scale": lambda r: ("x0.50-0.64", "x0.65-0.79", "x0.80-0.90")[(scale(r) >= 0.65) + (scale(r) >= 0.8)],
        "shorter side": lambda r: ("128-255 px", "256-511 px", "512-767 px", "768 px or more")[
            sum(min(r["size"]) >= side for side in (256, 512, 768))],
    }
    for name, key in keys.items():
        groups = {}
        for p in paths:
            groups.setdefault(key(new[p]), []).append(p)
        print(f"  by {name}: " + "; ".join(
            f"{k} {sum(old[p]['label'] != 'clean' for p in g) / len(g):.0%}, {sum(new[p]['label'] != 'clean' for p in g)}"
            f"/{len(g)}" for k, g in sorted(groups.items())))


def clean_lines(old, new):
    print("\n== clean art: held-out v0.5.0 flagged | per set: v0.5.0 flagged there; the shipped model flagged | per "
          "v0.5.0 stratum the shipped model's flagged/n | weighted to the held-out mix, with its 95% sampling interval "
          "and the chance it stays within the bar")
    for name, (kinds, flagged, bar) in HELD_OUT_CLEAN.items():
        print(f"\n{name}: held-out v0.5.0 flagged {flagged:.0%}; bar <= {bar:.0%}")
        for set_name, prefix in [*SETS.items(), ("both", "")]:
            paths = [p for p in old if p.startswith(prefix) and old[p]["kind"] in kinds]
            counts = strata_counts(paths, old, new, None, lambda r: r["label"] != "clean")
            estimate, low, high, within = weighted(counts, held_out_mix(flagged, None), bar, at_most=True)
            parts = "; ".join(f"v0.5.0 {'flagged' if key == 'caught' else key} {f}/{n}" for key, (f, n) in counts.items())
            print(f"  {set_name:10s} n {len(paths):3d}: v0.5.0 {sum(old[p]['label'] != 'clean' for p in paths) / len(paths):5.1%}; "
                  f"shipped {sum(new[p]['label'] != 'clean' for p in paths) / len(paths):5.1%} | {parts} | weighted "
                  f"{shown(estimate, low, high, within, 'P(<= bar)')}")


def main():
    old, new = verdicts(sys.argv[1], sys.argv[2])
    lossy_lines(old, new)
    cross_check(old, new)
    slices(old, new)
    if len(sys.argv) > 4:
        clean_lines(*verdicts(sys.argv[3], sys.argv[4]))


if __name__ == "__main__":
    main()
