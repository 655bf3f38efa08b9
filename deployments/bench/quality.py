#!/usr/bin/env python3
"""Detection-quality figures from `scorer backtest` outputs (the alert
column is the live decision's: 1 while an alert is open after the row).

  quality.py skab   SKAB_DIR OUT_DIR     pooled SKAB F1/FAR/MAR (all, valve1, held out)
  quality.py corpus CORPUS_DIR OUT_DIR   healthy alert events, set-point learning, degradation lead
  quality.py sim    SIM_DIR OUT_DIR      lead time before the simulator's failure, per mode

OUT_DIR holds NAME.out for every input NAME.csv (same relative path, '/'
replaced by '_'). Each command prints markdown table rows.
"""
import csv
import glob
import json
import os
import sys
from datetime import datetime, timezone


def out_path(out_dir, rel):
    return os.path.join(out_dir, rel.replace('/', '_')[:-4] + '.out')


def alert_column(path):
    with open(path) as f:
        return [row['alert'] == '1' for row in csv.DictReader(f)]


def times(path):
    with open(path) as f:
        return [parse(row['timestamp']) for row in csv.DictReader(f)]


def parse(s):
    s = s.replace('Z', '+00:00')
    try:
        return datetime.fromisoformat(s)
    except ValueError:
        return datetime.strptime(s[:19], '%Y-%m-%d %H:%M:%S').replace(tzinfo=timezone.utc)


def openings(alerts, start):
    """Rows (>= start) where an alert opens."""
    return [i for i in range(max(start, 1), len(alerts)) if alerts[i] and not alerts[i - 1]] + \
        ([start] if start < len(alerts) and alerts[start] and (start == 0 or not alerts[start - 1]) else [])


def skab(data, out_dir):
    def counts(files):
        tp = fp = fn = tn = 0
        for f in files:
            rel = os.path.relpath(f, data)
            with open(f) as h:
                labels = [float(r['anomaly']) > 0 for r in csv.DictReader(h, delimiter=';')]
            alerts = alert_column(out_path(out_dir, rel))
            for i in range(400, len(labels)):
                l, a = labels[i], alerts[i]
                tp += l and a
                fn += l and not a
                fp += a and not l
                tn += not a and not l
        f1 = tp / (tp + (fp + fn) / 2)
        return f1, 100 * fp / (fp + tn), 100 * fn / (fn + tp), (tp, fp, fn, tn)
    v1 = sorted(glob.glob(os.path.join(data, 'valve1', '*.csv')))
    held = sorted(glob.glob(os.path.join(data, 'valve2', '*.csv')) + glob.glob(os.path.join(data, 'other', '*.csv')))
    for name, files in (('all 34 anomalous files', v1 + held), ('valve1 (16 files, the tuning set)', v1), ('valve2 + other (18 files, held out)', held)):
        f1, far, mar, c = counts(files)
        print(f'| SKAB, {name} | F1 / FAR % / MAR % | {f1:.3f} / {far:.2f} / {mar:.2f} | TP {c[0]} FP {c[1]} FN {c[2]} TN {c[3]} |')


def corpus(cdir, out_dir):
    with open(os.path.join(cdir, 'index.jsonl')) as f:
        index = [json.loads(l) for l in f]
    events = rows = 0
    noisy = []
    learnt, unresolved = [], []
    leads, missed = [], []
    for e in index:
        alerts = alert_column(out_path(out_dir, e['file']))
        w = e['warmup_rows']
        opened = openings(alerts, w)
        if e['set'] == 'healthy':
            events += len(opened)
            rows += len(alerts) - w
            if opened:
                noisy.append(e['name'])
        elif e['set'] == 'setpoint':
            c = e['change_row']
            after = [i for i in range(c, len(alerts)) if alerts[i - 1] and not alerts[i]]
            if any(alerts[c:]) and not after:
                unresolved.append(e['name'])
            elif any(alerts[c:]):
                learnt.append(after[0] - c)
            else:
                learnt.append(0)
        else:
            fail = e['failure_row']
            k = fail - 1
            if not alerts[k]:
                missed.append(e['name'])
                continue
            while k > e['change_row'] and alerts[k - 1]:
                k -= 1
            leads.append(fail - k)
    print(f'| healthy corpus ({len(index) and sum(1 for e in index if e["set"] == "healthy")} streams, {rows} rows after warm-up) | alert events per 10,000 rows | {1e4 * events / rows:.2f} ({events} events{": " + ", ".join(noisy) if noisy else ""}) | 0 |')
    sp = f'{min(learnt)}–{max(learnt)}' if learnt else 'n/a'
    print(f'| set-point changes ({len(learnt) + len(unresolved)} streams) | readings from the change until the alert resolves | {sp}{"; never resolved: " + ", ".join(unresolved) if unresolved else ""} | ≤ 288 at 5 min (one day), ≤ 300 at 1 s |')
    ld = f'{min(leads)}–{max(leads)}' if leads else 'n/a'
    print(f'| degradations ({len(leads) + len(missed)} streams) | readings an alert is open before failure | {ld}{"; missed: " + ", ".join(missed) if missed else ""} | > 0, never resolved before failure |')


def sim(sdir, out_dir):
    modes = {}
    false_alarms = healthy_rows = 0
    for f in sorted(glob.glob(os.path.join(sdir, '*.csv'))):
        rel = os.path.relpath(f, sdir)
        with open(f[:-4] + '.json') as h:
            truth = json.load(h)
        alerts = alert_column(out_path(out_dir, rel))
        ts = times(f)
        if 'failure' not in truth or not truth.get('mode'):
            false_alarms += len(openings(alerts, 400))
            healthy_rows += len(alerts) - 400
            continue
        onset, fail = parse(truth['onset']), parse(truth['failure'])
        before = [i for i, t in enumerate(ts) if t < onset]
        fa = len(openings(alerts[:len(before)], 400))
        k = max(i for i, t in enumerate(ts) if t <= fail)
        lead = 0.0
        if alerts[k]:
            while k > 0 and alerts[k - 1] and ts[k - 1] >= onset:
                k -= 1
            lead = (fail - ts[k]).total_seconds() / 3600
        modes.setdefault(truth['mode'], []).append((lead, (fail - onset).total_seconds() / 3600, fa))
    for mode, runs in sorted(modes.items()):
        leads = [r[0] for r in runs]
        print(f'| simulator {mode} ({len(runs)} pumps) | lead before failure, mean / worst (simulated h; onset to failure {sum(r[1] for r in runs) / len(runs):.0f} h) | {sum(leads) / len(leads):.1f} / {min(leads):.1f} | false alarms before onset: {sum(r[2] for r in runs)} |')
    if healthy_rows:
        print(f'| simulator healthy pumps and motors | alert events per 10,000 rows | {1e4 * false_alarms / healthy_rows:.2f} ({false_alarms} events in {healthy_rows} rows) | 0 |')


if __name__ == '__main__':
    {'skab': skab, 'corpus': corpus, 'sim': sim}[sys.argv[1]](sys.argv[2], sys.argv[3])
