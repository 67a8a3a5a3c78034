"""Rebuildable training / validation data: clean art (procedural + verified real sources), degradations, tiles.

Modules: `procedural` (drawn illustrations), `sources` (Debian-packaged art, fetched at build time and
checked lossless), `lossless_check` (block-grid evidence statistic), `degrade` (JPEG / WebP / hard
negatives), `build` (tile .npz files and per-kind evaluation folders; `build.main` is the CLI).
"""
