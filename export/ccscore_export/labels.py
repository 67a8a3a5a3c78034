"""The detector's label names, in class order: code i (tile sets, evaluation manifests) is LABELS[i].

Shared by the data pipeline, the model and the benchmarks; importable without torch. An exported model names
its labels in its metadata and the runtime reads them there, so older models with fewer labels still load.
"""

LABELS = ("clean", "jpeg", "webp", "avif", "jxl")
