"""Does our evaluation predict the held-out set? Issue #12 gives v0.5.0's held-out figures for its four kinds; v0.5.0
run on our sets (`verdicts.py`) shows how far each set is from the held-out one for that model, and reweighting each
set's images so that v0.5.0's verdicts are mixed as on the held-out set (strata: v0.5.0's verdict; JPEG then
downscaled: clean / JPEG / WebP, the held-out figure naming JPEG for 29%, the rest WebP) estimates what the shipped
model catches there, assuming its rate within a stratum carries over. Session 35; not part of the package.

    python benchmarks/results/s35/reweighted.py V050.json SHIPPED.json [V050-CLEAN.json SHIPPED-CLEAN.json] \
        > benchmarks/results/s35/reweighted.txt
"""
import json
import math
import sys

# Issue #12's held-out table for v0.5.0: caught share, and how it named them where the issue says.
HELD_OUT = {
    "AVIF": (("avif_avifenc", "avif_pillow"), "avif", 0.696, None, (0.90, 0.90)),
    "JPEG XL": (("jxl_cjxl",), "jxl", 0.402, None, (0.80, 0.85)),
    "JPEG then downscaled": (("jpeg_downscaled",), "jpeg", 0.922, 0.29, (0.95, 0.90)),
    "JPEG then upscaled x2": (("jpeg_upscaled_x2",), "jpeg", 0.353, None, (0.90, math.nan)),
}
# The brief's held-out figures for v0.5.0 on clean art (flagged share) and issue #7's bars (largest flagged share):
# the shipped model's flagged share reweighted the same way (strata: v0.5.0 flagged or not).
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
SETS = {"report set": "data/eval-wild/", "large art": "data/eval-wild-large3-nocal/"}


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


def verdicts(old_file, new_file):
    old = {r["path"]: r for r in json.load(open(old_file))}
    new = {r["path"]: r for r in json.load(open(new_file))}
    assert old.keys() == new.keys(), "verdicts of other images"
    assert not any(r["label"] == "error" for r in [*old.values(), *new.values()]), "unreadable images"
    return old, new


def clean_lines(old, new):
    print("\n== clean art: held-out v0.5.0 flagged | per set: v0.5.0 flagged there; shipped flagged | per v0.5.0 "
          "stratum the shipped model's flagged/n | reweighted to the held-out mix, +- one standard error")
    for name, (kinds, flagged, bar) in HELD_OUT_CLEAN.items():
        print(f"\n{name}: held-out v0.5.0 flagged {flagged:.0%}; bar <= {bar:.0%}")
        for set_name, prefix in [*SETS.items(), ("both", "")]:
            paths = [p for p in old if p.startswith(prefix) and old[p]["kind"] in kinds]
            estimate = variance = 0.0
            parts = []
            for key, share in (("clean", 1 - flagged), ("flagged", flagged)):
                members = [p for p in paths if (old[p]["label"] != "clean") == (key == "flagged")]
                if not members:  # v0.5.0 flags none of this set's images: nothing to reweight by
                    estimate = variance = math.nan
                    parts.append(f"v0.5.0 {key} 0/0")
                    continue
                f = sum(new[p]["label"] != "clean" for p in members) / len(members)
                estimate += share * f
                variance += share ** 2 * max(f * (1 - f), 1 / len(members) ** 2) / len(members)
                parts.append(f"v0.5.0 {key} {round(f * len(members))}/{len(members)}")
            print(f"  {set_name:10s} n {len(paths):3d}: v0.5.0 {sum(old[p]['label'] != 'clean' for p in paths) / len(paths):5.1%}; "
                  f"shipped {sum(new[p]['label'] != 'clean' for p in paths) / len(paths):5.1%} | {'; '.join(parts)} | "
                  f"reweighted {estimate:5.1%} +- {math.sqrt(variance):.1%}")


def slices(old, new):
    """JPEG then downscaled by kernel, quality, scale and size (detail: encoder:qQ:xS:kernel): is any slice of ours as
    easy for v0.5.0 as the held-out set?"""
    print("\n== JPEG then downscaled, both sets, by slice: v0.5.0 caught; shipped caught")
    paths = [p for p in old if old[p]["kind"] == "jpeg_downscaled"]
    keys = {
        "kernel": lambda r: r["detail"].split(":")[3],
        "quality": lambda r: ("q50-69", "q70-84", "q85-90")[(int(r["detail"].split(":")[1][1:]) >= 70)
                                                          + (int(r["detail"].split(":")[1][1:]) >= 85)],
        "scale": lambda r: ("x0.50-0.64", "x0.65-0.79", "x0.80-0.90")[(float(r["detail"].split(":")[2][1:]) >= 0.65)
                                                                      + (float(r["detail"].split(":")[2][1:]) >= 0.8)],
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


def main():
    old, new = verdicts(sys.argv[1], sys.argv[2])
    print("kind: held-out v0.5.0 caught | per set: v0.5.0 caught there; shipped caught (codec right); per v0.5.0 stratum "
          "the shipped model's caught/n (codec right); reweighted to the held-out mix: caught (codec right), +- one "
          "standard error (binomial, per stratum)")
    for name, (kinds, codec, caught, named, bar) in HELD_OUT.items():
        mix = held_out_mix(caught, named)
        print(f"\n{name}: held-out v0.5.0 caught {caught:.1%}" + (f" (named JPEG {named:.0%})" if named else "")
              + f"; bar caught >= {bar[0]:.0%}" + ("" if math.isnan(bar[1]) else f", codec right >= {bar[1]:.0%}"))
        for set_name, prefix in [*SETS.items(), ("both", "")]:
            paths = [p for p in old if p.startswith(prefix) and old[p]["kind"] in kinds]
            flagged_old = sum(old[p]["label"] != "clean" for p in paths)
            caught_new = sum(new[p]["label"] != "clean" for p in paths)
            right_new = sum(new[p]["label"] == codec for p in paths)
            estimate = right = variance = 0.0
            parts = []
            for key, share in mix.items():
                members = [p for p in paths if stratum(old[p]["label"], named) == key]
                if not members:
                    parts.append(f"{key} -")
                    continue
                c = sum(new[p]["label"] != "clean" for p in members) / len(members)
                r = sum(new[p]["label"] == codec for p in members) / len(members)
                estimate, right = estimate + share * c, right + share * r
                variance += share ** 2 * max(c * (1 - c), 1 / len(members) ** 2) / len(members)
                parts.append(f"{key} {round(c * len(members))}/{len(members)} ({round(r * len(members))})")
            print(f"  {set_name:10s} n {len(paths):3d}: v0.5.0 caught {flagged_old / len(paths):5.1%}; shipped "
                  f"{caught_new / len(paths):5.1%} ({right_new / len(paths):5.1%}) | {'; '.join(parts)} | reweighted "
                  f"{estimate:5.1%} ({right:5.1%}) +- {math.sqrt(variance):.1%}")
    slices(old, new)
    if len(sys.argv) > 4:
        clean_lines(*verdicts(sys.argv[3], sys.argv[4]))


if __name__ == "__main__":
    main()
