"""A view of an evaluation set without the sources of other clean folders (session 35; not part of the package): OUT
gets the set's kind folders as links and a manifest of the rows whose source is in none of the folders, so the
accuracy benchmark reads only art the runtime's thresholds were not chosen on.

    python benchmarks/results/s35/without_sources.py data/eval-wild-large3 data/eval-wild-large3-nocal data/eval-clean-cal
"""
import csv
import os
import sys

source_set, out, *excluded = sys.argv[1:]
dropped = {name for folder in excluded for name in os.listdir(folder)}
with open(os.path.join(source_set, "manifest.csv"), newline="") as f:
    reader = csv.DictReader(f)
    rows = [r for r in reader if r["source"] not in dropped]
    fields = reader.fieldnames
os.makedirs(out, exist_ok=True)
for kind in sorted({r["path"].split("/")[0] for r in rows}):
    link = os.path.join(out, kind)
    if not os.path.lexists(link):
        os.symlink(os.path.abspath(os.path.join(source_set, kind)), link)
with open(os.path.join(out, "manifest.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
print(f"{len(rows)} rows of {len({r['source'] for r in rows})} sources kept")
