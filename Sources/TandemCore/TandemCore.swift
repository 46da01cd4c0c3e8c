// TandemCore owns every replication decision, as pure code: the primary's and the
// secondary's state machines (Replication/), disk states and session bases, the role rules
// (how a primary session starts, failover, promotion, demotion: ResourceRoles), what the
// persisted ReplicationRecord says, the metadata file's codec and loading verdict (Metadata/),
// the resource spec, and the wire and NBD message codecs; change tracking and catch-up
// planning (Tracking/: dirty bitmap, activity log, cycle planner, token bucket, resync rate
// controller) and the generation identifiers with the handshake decision (Generations/).
// It must never perform I/O, read a clock or draw entropy: time (`nowNs`), session numbers
// and seeds come in as inputs, so that the simulator runs exactly what production runs.
