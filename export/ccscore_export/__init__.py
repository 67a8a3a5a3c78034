"""ccscore's PyTorch side: model definitions, data synthesis, training and export to one ONNX graph.

Needs the `[train]` extra (torch). The scoring runtime, package `ccscore`, never imports this package.
"""

__version__ = "0.1.0"
