"""Figures and files of `tandem-bench rpo`: percentiles, the truth check's verdict for one
killed run, and the CSV, JSON and SVG outputs. No I/O other than writing those files."""
import csv, json, math

MIB = 1 << 20


def percentile(values, p):
    """Nearest-rank percentile (the convention of Benchmarks/pair.py); None when empty."""
    xs = sorted(values)
    if not xs:
        return None
    return xs[max(1, math.ceil(p / 100.0 * len(xs))) - 1]


def spread(values):
    return {"p50": percentile(values, 50), "p99": percentile(values, 99),
            "max": max(values) if values else None, "count": len(values)}


def truth(writer, contents, run_id, kill_sent_ns, last_sample):
    """What the failed-over secondary lacks of what the application was told is written.

    `contents` is slot_contents of the secondary after failover; `last_sample` the status
    taken just before the kill: {"sent_ns", "rpo_ms", "lag_bytes"}. The reported bound on
    the loss at the kill is that sample moved forward to the kill: every write the daemon
    had acknowledged when it answered was in its lag_bytes unless confirmed, and a write
    acknowledged later reached the writer after the request was sent; its rpo_ms (whole ms,
    rounded down: +1) plus the time from sending the request to the kill bounds the age of
    the oldest unconfirmed acknowledged write at the kill."""
    bs = writer.block_bytes
    lost, present_submit_ns = [], 0
    for slot, held in enumerate(contents):
        if held and held[0] == run_id and held[1] in writer.submitted:
            present_submit_ns = max(present_submit_ns, writer.submitted[held[1]][0])
    for seq, (ack_ns, slot) in writer.acks.items():
        held = contents[slot]
        if not (held and held[0] == run_id and held[1] >= seq):
            lost.append((ack_ns, seq))
    lost.sort()
    # A slot that lacks several acknowledged writes lacks one block of data: compared with
    # lag_bytes (which counts out-of-sync regions once while the primary tracks them),
    # the distinct blocks are the fair measure; the writes are reported too.
    lost_slots = {writer.acks[seq][1] for _, seq in lost}
    acked_after = sum(bs for ack_ns, _ in writer.acks.values() if ack_ns > last_sample["sent_ns"])
    lost_ms = max(0.0, (kill_sent_ns - lost[0][0]) / 1e6) if lost else 0.0
    bound_bytes = (last_sample["lag_bytes"] or 0) + acked_after
    bound_ms = (last_sample["rpo_ms"] or 0) + 1 + (kill_sent_ns - last_sample["sent_ns"]) / 1e6
    result = {
        "acknowledged_writes": len(writer.acks),
        "in_flight_at_kill": len(writer.submitted) - len(writer.acks) - writer.errors,
        "failed_writes": writer.errors,
        "lost_writes": len(lost),
        "lost_bytes": len(lost) * bs,
        "lost_distinct_bytes": len(lost_slots) * bs,
        "lost_ms": round(lost_ms, 3),
        "oldest_lost_seq": lost[0][1] if lost else None,
        # Lost acknowledged writes older than a write the secondary holds: a hole, not a
        # missing tail (the secondary is meant to be a crash-consistent prefix).
        "gap_writes": sum(1 for ack_ns, _ in lost if ack_ns < present_submit_ns),
        "last_sample_rpo_ms": last_sample["rpo_ms"],
        "last_sample_lag_bytes": last_sample["lag_bytes"],
        "last_sample_before_kill_ms": round((kill_sent_ns - last_sample["sent_ns"]) / 1e6, 3),
        "acked_after_last_sample_bytes": acked_after,
        "reported_bound_bytes": bound_bytes,
        "reported_bound_ms": round(bound_ms, 3),
    }
    result["exceeds_reported"] = len(lost_slots) * bs > bound_bytes or lost_ms > bound_ms
    return result


CSV_FIELDS = ["run", "t_s", "rpo_ms", "lag_bytes", "replication_state", "acked_bytes", "write_mib_s"]


def with_throughput(samples):
    """Adds write_mib_s: bytes acknowledged since the previous sample of the run, per second."""
    out, previous = [], {}
    for row in samples:
        before = previous.get(row["run"])
        rate = None
        if before is not None and row["t_s"] > before["t_s"]:
            rate = (row["acked_bytes"] - before["acked_bytes"]) / MIB / (row["t_s"] - before["t_s"])
        out.append(dict(row, write_mib_s=None if rate is None else round(rate, 3)))
        previous[row["run"]] = row
    return out


def write_csv(path, samples):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in samples:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_FIELDS})


def write_json(path, document):
    with open(path, "w") as f:
        json.dump(document, f, indent=1)
        f.write("\n")


def _nice_max(value):
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_svg(path, samples, runs, title):
    """RPO (red, left axis) and acknowledged write throughput (blue, right axis) over time,
    one panel per run; a dashed line marks a kill."""
    width, panel_h, left, right, top = 960, 210, 70, 70, 56
    by_run = {}
    for row in samples:
        by_run.setdefault(row["run"], []).append(row)
    order = [run["run"] for run in runs if run["run"] in by_run]
    height = top + len(order) * (panel_h + 40) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="22" font-size="14">{_escape(title)}</text>']
    t_max = max((row["t_s"] for row in samples), default=1.0) or 1.0
    rpo_max = _nice_max(max((row["rpo_ms"] or 0 for row in samples), default=0))
    mib_max = _nice_max(max((row.get("write_mib_s") or 0 for row in samples), default=0))
    plot_w = width - left - right
    for index, run_id in enumerate(order):
        y0 = top + index * (panel_h + 40)
        rows = by_run[run_id]
        run = next(r for r in runs if r["run"] == run_id)
        x = lambda t: left + plot_w * t / t_max
        y_rpo = lambda v: y0 + panel_h - panel_h * (v or 0) / rpo_max
        y_mib = lambda v: y0 + panel_h - panel_h * (v or 0) / mib_max
        parts.append(f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel_h}" fill="none" stroke="#999"/>')
        for k in range(1, 5):  # grid and axis labels at quarters
            gy = y0 + panel_h - panel_h * k / 4
            parts.append(f'<line x1="{left}" y1="{gy:.1f}" x2="{left + plot_w}" y2="{gy:.1f}" stroke="#eee"/>')
            parts.append(f'<text x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end" fill="#c0392b">{rpo_max * k / 4:g}</text>')
            parts.append(f'<text x="{left + plot_w + 6}" y="{gy + 4:.1f}" fill="#2c6fbb">{mib_max * k / 4:g}</text>')
        for k in range(0, 6):
            t = t_max * k / 5
            parts.append(f'<text x="{x(t):.1f}" y="{y0 + panel_h + 14}" text-anchor="middle">{t:.1f} s</text>')
        parts.append(f'<text x="{left}" y="{y0 - 5}">run {run_id}: {_escape(run.get("label", ""))}</text>')
        parts.append(f'<text x="12" y="{y0 + panel_h / 2}" fill="#c0392b" transform="rotate(-90 12 {y0 + panel_h / 2})" '
                     f'text-anchor="middle">rpo_ms</text>')
        parts.append(f'<text x="{width - 12}" y="{y0 + panel_h / 2}" fill="#2c6fbb" '
                     f'transform="rotate(90 {width - 12} {y0 + panel_h / 2})" text-anchor="middle">write MiB/s</text>')
        mib_points = " ".join(f"{x(r['t_s']):.1f},{y_mib(r.get('write_mib_s')):.1f}" for r in rows if r.get("write_mib_s") is not None)
        rpo_points = " ".join(f"{x(r['t_s']):.1f},{y_rpo(r['rpo_ms']):.1f}" for r in rows if r["rpo_ms"] is not None)
        parts.append(f'<polyline points="{mib_points}" fill="none" stroke="#2c6fbb" stroke-width="1.2"/>')
        parts.append(f'<polyline points="{rpo_points}" fill="none" stroke="#c0392b" stroke-width="1.5"/>')
        if run.get("kill_at_s") is not None:
            kx = x(run["kill_at_s"])
            parts.append(f'<line x1="{kx:.1f}" y1="{y0}" x2="{kx:.1f}" y2="{y0 + panel_h}" stroke="black" stroke-dasharray="4 3"/>')
            parts.append(f'<text x="{kx + 3:.1f}" y="{y0 + 12}">kill -9</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")
