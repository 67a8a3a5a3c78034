import json, csv, collections, sys, numpy as np
man = {}
for s in ['eval-wild-cal', 'eval-wild-cal-small']:
    for r in csv.DictReader(open(f'data/{s}/manifest.csv')): man[f'data/{s}/{r["path"]}'] = r
R = [json.loads(l) for l in open(sys.argv[1])]
R = [r for r in R if r['path'] in man and 'error' not in r]
print(len(R))
GRID = {'jpeg': '8x8', 'jxl': '8x8', 'webp': '4x4', 'avif': '4x4'}
rows = []
for r in R:
    m = man[r['path']]
    ag = r.get('grid_agreement') or {}
    rows.append(dict(path=r['path'], y=int(m['label']), kind=m['kind'], label=r['label'], ev=r.get('evidence'),
                     side=min(r['width'], r['height']), ag=ag.get(GRID.get(r['label'], '8x8')), pc=r['scores']['clean'],
                     small='cal-small' in r['path']))
fp = [x for x in rows if x['y'] == 0 and x['label'] != 'clean']
print('clean flagged', len(fp), collections.Counter((x['ev'], x['label']) for x in fp).most_common())
g = [x for x in rows if x['label'] != 'clean' and x['ev'] == 'grid']
for name, sel in [('clean', lambda x: x['y'] == 0), ('lossy', lambda x: x['y'] == 1)]:
    sub = [x for x in g if sel(x)]
    for lo, hi in [(0, 128), (128, 192), (192, 256), (256, 384), (384, 99999)]:
        ss = [x for x in sub if lo <= x['side'] < hi]
        ags = np.array([x['ag'] if x['ag'] is not None else -1 for x in ss])
        print(f"{name} side {lo}-{hi}: n {len(ss)}  ag<0.34 {np.sum((ags>=0)&(ags<0.34))}  ag<0.5 {np.sum((ags>=0)&(ags<0.5))} none {np.sum(ags<0)}")
