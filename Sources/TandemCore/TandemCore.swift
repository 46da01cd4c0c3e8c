// TandemCore owns the logic of replication with no I/O: the replication state machine,
// epochs, bitmaps, generation identifiers, the resync planner, the rate controller, the
// metadata layout, and the wire and NBD message codecs.
// It must never perform I/O, read a clock or draw randomness: time and randomness come in
// as inputs, so that the simulator can run it deterministically.
