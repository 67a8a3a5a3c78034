import json,csv,sys,collections
def load(setdir, jsonl):
    man={r['path']:r for r in csv.DictReader(open(f'{setdir}/manifest.csv'))}
    rows=[]
    for l in open(jsonl):
        r=json.loads(l); p=r['path'][len(setdir)+1:]; m=man[p]
        enc,q,x,k=m['detail'].split(':')[-4:]
        rows.append(dict(path=r['path'],kind=m['kind'],side=min(r['width'],r['height']),x=float(x[1:]),q=int(q[1:]),enc=enc,kern=k,caught=r['label']!='clean',ev=r.get('evidence'),pc=r['scores']['clean']))
    return rows
for s, jsonl in zip(sys.argv[1::2], sys.argv[2::2]):  # SET RECORDS.jsonl ...
    rows=load(f'data/{s}', jsonl)
    print(s, len(rows), sum(r['caught'] for r in rows))
    miss=[r for r in rows if not r['caught']]
    print(' exact .50/.51:', sum(1 for r in rows if r['x']<=0.51), 'missed', sum(1 for r in miss if r['x']<=0.51))
    print(' pc>=0.999 missed', sum(1 for r in miss if r['pc']>=0.999), ' pc in (.99,.999)', sum(1 for r in miss if .99<r['pc']<.999), ' pc<=.99', sum(1 for r in miss if r['pc']<=.99))
    for key in ['kern','enc']:
        c=collections.Counter(r[key] for r in rows); m=collections.Counter(r[key] for r in miss)
        print(' ',key,{k:f"{m[k]}/{c[k]}" for k in c})
    for lo,hi in [(0,81),(81,101)]:
        print('  q',lo,hi,sum(1 for r in rows if lo<=r['q']<hi), sum(1 for r in miss if lo<=r['q']<hi))
    for lo,hi in [(0.5,0.6),(0.6,0.7),(0.7,0.8),(0.8,0.96)]:
        print('  x',lo,hi,sum(1 for r in rows if lo<=r['x']<hi), sum(1 for r in miss if lo<=r['x']<hi))
