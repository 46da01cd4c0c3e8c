#!/usr/bin/env python3
"""The activity log's work in measured pair.sh runs (docs/benchmarks.md, *The activity log's
cost*): from the primary's status saved before and after each run (JSON_DIR/sync.NAME.ROUND.
status-{before,after}.json, written by pair.sh), per run: fio's writes, transactions, writes
held per transaction, eviction volume flushes, and the transactions' latency p50/p90 (the
upper bound of the LatencyHistogram bucket holding it) and mean; where the build reports them,
each held write's wait from hold to issue (mean and p50/p90), the transactions written while
another was in flight, and the admissions the log refused for want of an extent.

usage: al-status-delta.py JSON_DIR
"""
import glob, json, os, sys


def status(path):
    with open(path) as f:
        reply = json.load(f)
    # The control reply wraps the status: find the object carrying the log's fields.
    stack = [reply]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if "activity_log_writes" in value:
                return value
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return {}


def percentile(buckets, fraction):
    total = sum(buckets.values())
    if total == 0:
        return None
    seen = 0
    for bound in sorted(buckets, key=lambda b: float("inf") if b == "+Inf" else int(b)):
        seen += buckets[bound]
        if seen >= fraction * total:
            return bound
    return None


def main(directory):
    for before_path in sorted(glob.glob(os.path.join(directory, "*.status-before.json"))):
        stem = before_path[: -len(".status-before.json")]
        after_path = stem + ".status-after.json"
        if not os.path.exists(after_path):
            continue
        before, after = status(before_path), status(after_path)
        with open(stem + ".json") as f:
            text = f.read()
        writes = json.loads(text[text.index("{"):])["jobs"][0]["write"]["total_ios"]
        transactions = after.get("activity_log_writes", 0) - before.get("activity_log_writes", 0)
        held = None
        if "activity_log_held_writes" in after:
            held = after["activity_log_held_writes"] - before.get("activity_log_held_writes", 0)
        flushes = None
        if "activity_log_volume_flushes" in after:
            flushes = after["activity_log_volume_flushes"] - before.get("activity_log_volume_flushes", 0)
        buckets, mean = histogram(before, after, "activity_log_write_latency")
        per = f"{held / transactions:.1f}" if held is not None and transactions else "-"
        line = (f"{os.path.basename(stem)}: {writes} writes, {transactions} transactions, held {held if held is not None else '-'}"
                f" ({per} per transaction), volume flushes {flushes if flushes is not None else '-'},"
                f" latency p50 <= {percentile(buckets, 0.5)} us, p90 <= {percentile(buckets, 0.9)} us, mean {mean} us")
        if "activity_log_hold_latency" in after:
            hold, hold_mean = histogram(before, after, "activity_log_hold_latency")
            line += (f"; hold mean {hold_mean} us, p50 <= {percentile(hold, 0.5)} us, p90 <= {percentile(hold, 0.9)} us"
                     f", overlapping {delta(before, after, 'activity_log_overlapping_writes')}"
                     f", blocked admissions {delta(before, after, 'activity_log_blocked_admissions')}")
        print(line)


def delta(before, after, key):
    return after.get(key, 0) - before.get(key, 0)


def histogram(before, after, key):
    """Per-bucket counts of a run (after - before) and the mean in µs (None: no sample)."""
    a, b = after.get(key, {}), before.get(key, {})
    buckets = {bound: count - b.get("buckets_us", {}).get(bound, 0) for bound, count in a.get("buckets_us", {}).items()}
    count = a.get("count", 0) - b.get("count", 0)
    mean = round((a.get("sum_us", 0) - b.get("sum_us", 0)) / count) if count else None
    return buckets, mean


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
