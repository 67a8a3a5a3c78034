"""A copy of a model file with other grid gate centers (metadata only; the graph, weights included, unchanged), for
`gate_rows.py` (session 34; not part of the package: a shipped gate comes from `ccscore-export calibrate` and
`export --grid-gate`).

    python benchmarks/results/s34/regate.py models/ccscore-detector.onnx /tmp/s34/strict.onnx \\
        '{"avif": 0.5, "jpeg": 0.5, "webp": 0.5, "jxl": 0.5}'
"""
import json
import sys

import onnx

source, target, centers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = onnx.load(source)
for prop in model.metadata_props:
    if prop.key == "grid_gate":
        gate = json.loads(prop.value)
        gate["center"].update(centers)
        prop.value = json.dumps(gate)
        print(prop.value)
onnx.save(model, target)
