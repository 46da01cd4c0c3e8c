"""The group-commit cycle arithmetic of uringtrace (tandem-bench rpo --uring-trace) on
made-up `perf script` lines, where the right answer is known.
Run: python3 -m unittest discover -s Benchmarks/lib -p 'test_*.py'"""
import unittest

import uringtrace

REPLICATOR, METADATA = 5, 7


def submit(t_ms, req, handler, tag, opcode):
    return (f" {100 + t_ms / 1e3:.6f}: io_uring:io_uring_submit_req: ring 0x1, req {req}, "
            f"user_data {hex(handler << 32 | tag)}, opcode {opcode}, flags 0x0, sq_thread 0")


def complete(t_ms, req, handler, tag):
    return (f" {100 + t_ms / 1e3:.6f}: io_uring:io_uring_complete: ring 0x1, req {req}, "
            f"user_data {hex(handler << 32 | tag)}, result 0, cflags 0x0 extra1 0 extra2 0 ")


def op(start_ms, end_ms, req, handler, tag, opcode):
    return [submit(start_ms, req, handler, tag, opcode), complete(end_ms, req, handler, tag)]


def summary(*ops):
    lines = sorted((line for pair in ops for line in pair), key=lambda line: float(line.split(":")[0]))
    return uringtrace.summarize(uringtrace.parse(["unrelated line"] + lines))


class CycleTests(unittest.TestCase):
    def test_a_cycle_is_split_into_wait_flush_gap_and_record(self):
        s = summary(op(0, 0.5, "0xa", REPLICATOR, 3, "WRITE_FIXED"),
                    op(2.5, 3.5, "0xb", REPLICATOR, uringtrace.FLUSH_TAG, "FSYNC"),
                    op(3.6, 3.8, "0xc", METADATA, uringtrace.RECORD_WRITE_TAG, "WRITE"),
                    op(3.9, 4.9, "0xd", METADATA, uringtrace.RECORD_FLUSH_TAG, "FSYNC"))
        self.assertEqual(s["cycles"], 1)
        self.assertEqual(s["record_flushes"], 1)
        for name, value in {"wait": 2.0, "flush": 1.0, "gap": 0.1, "record": 1.3, "record_write": 0.2,
                            "hold": 4.4, "apply": 0.5}.items():
            self.assertAlmostEqual(s[name + "_ms"]["p50"], value, places=3, msg=name)

    def test_an_rwf_dsync_record_write_is_stable_at_its_own_completion(self):
        s = summary(op(0, 0.5, "0xa", REPLICATOR, 1, "WRITE_FIXED"),
                    op(2.5, 3.5, "0xb", REPLICATOR, uringtrace.FLUSH_TAG, "FSYNC"),
                    op(3.6, 4.6, "0xc", METADATA, uringtrace.RECORD_WRITE_TAG, "WRITE"))
        self.assertEqual(s["record_flushes"], 0)
        self.assertAlmostEqual(s["record_ms"]["p50"], 1.0, places=3)
        self.assertAlmostEqual(s["hold_ms"]["p50"], 4.1, places=3)

    def test_a_cycles_oldest_write_is_the_first_completed_after_the_previous_flush_was_submitted(self):
        # Write 2 completes while flush 1 runs: cycle 2's wait counts from it (the flush in
        # flight is part of its wait), not from flush 1's completion.
        s = summary(op(0, 0.5, "0x1", REPLICATOR, 3, "WRITE_FIXED"),
                    op(2.5, 4.5, "0x2", REPLICATOR, uringtrace.FLUSH_TAG, "FSYNC"),
                    op(2.6, 3.0, "0x3", REPLICATOR, 4, "WRITE_FIXED"),
                    op(4.6, 4.8, "0x4", METADATA, uringtrace.RECORD_WRITE_TAG, "WRITE"),
                    op(4.9, 5.9, "0x5", METADATA, uringtrace.RECORD_FLUSH_TAG, "FSYNC"),
                    op(5.0, 6.0, "0x6", REPLICATOR, uringtrace.FLUSH_TAG, "FSYNC"),
                    op(6.1, 6.3, "0x7", METADATA, uringtrace.RECORD_WRITE_TAG, "WRITE"),
                    op(6.4, 7.4, "0x8", METADATA, uringtrace.RECORD_FLUSH_TAG, "FSYNC"))
        self.assertEqual(s["cycles"], 2)
        self.assertEqual(s["wait_ms"]["max"], 2.0)
        self.assertEqual(s["hold_ms"]["max"], 5.4)  # write 1: 0.5 -> 5.9
        self.assertAlmostEqual(s["between_flushes_ms"]["p50"], 2.5, places=3)
        self.assertEqual(sorted([s["hold_ms"]["p50"], s["hold_ms"]["max"]]), [4.4, 5.4])  # write 2: 3.0 -> 7.4

    def test_no_flush_no_cycle(self):
        self.assertEqual(summary(op(0, 0.5, "0xa", REPLICATOR, 3, "WRITE_FIXED"))["cycles"], 0)
        self.assertIn("no complete", uringtrace.describe({"cycles": 0}))


if __name__ == "__main__":
    unittest.main()
