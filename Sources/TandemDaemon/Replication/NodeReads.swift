// NodeReads: reading a replicator's node (PrimaryNode, SecondaryNode) on the per-event path
// without copying it. A computed property or non-mutating method of TandemCore called on a
// struct stored in a class gets a copy of the whole struct: the compiler cannot prove that
// the callee, in another module, does not reach the class and change the property meanwhile,
// so it copies the node (a memcpy and a retain of every array and object it holds, then as
// many releases). Once per event that was 18 % of the primary's CPU under 4 KiB random writes
// (publishPeerDiskState and armResyncPacer; docs/benchmarks.md, *CPU per payload byte*).
// Read through an inout access instead, the node is borrowed where it lies: exclusivity
// guarantees nothing else changes it during the access. Loop thread only.
import TandemCore

extension PrimaryReplicator {
    /// `body` reads the node in place; it must not change it (the access is inout only so
    /// that nothing is copied).
    @inline(__always)
    func peekNode<Result>(_ body: (inout PrimaryNode) -> Result) -> Result { body(&node) }
}
