// The integration suite: real tandemd processes driven by real clients (nbdinfo, qemu-io,
// qemu-img, nbdcopy, fio) and by hand-written bad input.
//
// Every test runs inside `Integration`, which is `.serialized` (the trait covers nested
// suites, the replication ones included): daemons are real processes and CI has two cores. Each test builds its own temporary directory and daemon, so a test
// never depends on what another one left behind.
//
// Environment:
//   TANDEM_TEST_NBD_SERVER=nbdkit  runs the NBD-client tests against `nbdkit file` instead of
//                                  tandemd (to check the tests themselves; control-socket and
//                                  restart tests still need tandemd).
//   TANDEM_TEST_KEEP=1             keeps temporary directories for inspection.
import Testing

@Suite(.serialized) enum Integration {}
