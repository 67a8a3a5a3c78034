"""Back agreement at period 4.0 (an exact half) for chosen images: tiles and whole-split reads."""
import sys
from ccscore import Scorer
from ccscore.scorer import TileReads
from ccscore.downscaled_blocks import back_agreement
from ccscore.tiling import upscale_cliff
s = Scorer()
def probe(path):
    tiles, size = s.tile(path)
    reads = TileReads(tiles)
    a = back_agreement(reads.own, tiles.boxes, size, 4.0)
    w = back_agreement([tiles.whole], [(0, 0, *size)], size, 4.0, split=True) if tiles.whole is not None else None
    own = [t for t in reads.own if t.shape[0] == t.shape[1]]
    cliff = max((upscale_cliff(t[None]) for t in own), default=0)
    return a, w, cliff
for p in sys.argv[1:]:
    a, w, cliff = probe(p)
    print(f"{a.agreeing}/{a.read}", f"{w.agreeing}/{w.read}" if w else "-", f"cliff {cliff:.2f}", p)
