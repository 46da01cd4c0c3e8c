"""The truth check's arithmetic (rporeport.truth) on made-up histories, where the right
answer is known: what counts as lost, superseded, a gap, and the bound a sample implies.
Run: python3 -m unittest discover -s Benchmarks/lib -p 'test_*.py'
(Integration/RPOInstrumentTests runs it too.)"""
import unittest

import rporeport

MS = 1_000_000
RUN = 77


class FakeWriter:
    """What SeqWriter leaves behind: submitted seq -> (submit ns, slot), acks seq -> (ack ns, slot)."""

    def __init__(self, slots, history, errors=0):
        self.block_bytes = 4096
        self.slots = slots
        self.errors = errors
        self.submitted = {seq: (submit, (seq - 1) % slots) for seq, submit, _ in history}
        self.acks = {seq: (ack, (seq - 1) % slots) for seq, _, ack in history if ack is not None}


def held(slots, seqs, run=RUN):
    """Slot contents where each of `seqs` is on the secondary (later ones overwrite)."""
    out = [None] * slots
    for seq in sorted(seqs):
        out[(seq - 1) % slots] = (run, seq)
    return out


def sample(sent_ms, rpo_ms, lag_bytes):
    return {"sent_ns": sent_ms * MS, "rpo_ms": rpo_ms, "lag_bytes": lag_bytes}


class TruthTests(unittest.TestCase):
    # Writes 1..4, submitted at 0/10/20/30 ms, acknowledged 5 ms later.
    history = [(1, 0, 5 * MS), (2, 10 * MS, 15 * MS), (3, 20 * MS, 25 * MS), (4, 30 * MS, 35 * MS)]

    def test_nothing_lost_when_the_secondary_holds_every_write(self):
        writer = FakeWriter(8, self.history)
        t = rporeport.truth(writer, held(8, [1, 2, 3, 4]), RUN, 40 * MS, sample(38, 0, 0))
        self.assertEqual((t["lost_writes"], t["lost_bytes"], t["lost_ms"], t["gap_writes"]), (0, 0, 0.0, 0))
        self.assertFalse(t["exceeds_reported"])

    def test_a_missing_tail_is_lost_from_the_oldest_missing_acknowledgement(self):
        writer = FakeWriter(8, self.history)
        t = rporeport.truth(writer, held(8, [1, 2]), RUN, 40 * MS, sample(38, 16, 8192))
        self.assertEqual((t["lost_writes"], t["lost_bytes"], t["gap_writes"]), (2, 8192, 0))
        self.assertEqual(t["lost_ms"], 15.0)  # kill at 40 ms, write 3 acknowledged at 25
        self.assertEqual(t["reported_bound_ms"], 16 + 1 + 2)
        self.assertFalse(t["exceeds_reported"])

    def test_a_loss_beyond_the_reported_lag_is_flagged(self):
        writer = FakeWriter(8, self.history)
        t = rporeport.truth(writer, held(8, [1, 2]), RUN, 40 * MS, sample(38, 3, 4096))
        self.assertTrue(t["exceeds_reported"])

    def test_writes_acknowledged_after_the_sample_raise_the_bound(self):
        writer = FakeWriter(8, self.history)
        # The sample at 30 ms saw no lag; write 4 was acknowledged at 35 ms, after it.
        t = rporeport.truth(writer, held(8, [1, 2, 3]), RUN, 40 * MS, sample(30, 0, 0))
        self.assertEqual(t["acked_after_last_sample_bytes"], 4096)
        self.assertEqual((t["lost_writes"], t["reported_bound_bytes"]), (1, 4096))
        self.assertFalse(t["exceeds_reported"])

    def test_a_later_write_in_the_same_slot_supersedes_an_earlier_one(self):
        # Two slots: write 3 overwrote write 1's slot, write 4 write 2's.
        writer = FakeWriter(2, self.history)
        t = rporeport.truth(writer, held(2, [1, 2, 3, 4]), RUN, 40 * MS, sample(38, 0, 0))
        self.assertEqual(t["lost_writes"], 0)
        t = rporeport.truth(writer, held(2, [1, 2, 3]), RUN, 40 * MS, sample(38, 6, 4096))
        self.assertEqual(t["lost_writes"], 1)  # write 4: its slot still holds write 2

    def test_a_block_that_lacks_two_writes_is_one_block_of_lost_data(self):
        # Two slots; the secondary holds only write 1: writes 2, 3, 4 lost, in two blocks.
        writer = FakeWriter(2, self.history)
        t = rporeport.truth(writer, held(2, [1]), RUN, 40 * MS, sample(38, 26, 8192))
        self.assertEqual((t["lost_writes"], t["lost_bytes"], t["lost_distinct_bytes"]), (3, 12288, 8192))
        self.assertFalse(t["exceeds_reported"])  # 8192 distinct bytes, within the lag

    def test_a_hole_before_a_held_write_is_a_gap(self):
        writer = FakeWriter(8, self.history)
        t = rporeport.truth(writer, held(8, [1, 3, 4]), RUN, 40 * MS, sample(38, 100, 1 << 20))
        self.assertEqual((t["lost_writes"], t["gap_writes"]), (1, 1))  # write 2 missing, 3 held

    def test_another_runs_block_or_zeros_do_not_count_as_held(self):
        writer = FakeWriter(8, self.history)
        contents = held(8, [1, 2, 3, 4], run=RUN + 1)
        t = rporeport.truth(writer, contents, RUN, 40 * MS, sample(38, 100, 1 << 20))
        self.assertEqual(t["lost_writes"], 4)

    def test_unacknowledged_writes_are_not_counted(self):
        history = self.history + [(5, 36 * MS, None)]
        writer = FakeWriter(8, history)
        t = rporeport.truth(writer, held(8, [1, 2, 3, 4]), RUN, 40 * MS, sample(38, 0, 0))
        self.assertEqual((t["lost_writes"], t["in_flight_at_kill"]), (0, 1))


class PercentileTests(unittest.TestCase):
    def test_nearest_rank(self):
        values = list(range(1, 101))
        self.assertEqual((rporeport.percentile(values, 50), rporeport.percentile(values, 99)), (50, 99))
        self.assertIsNone(rporeport.percentile([], 99))


if __name__ == "__main__":
    unittest.main()
