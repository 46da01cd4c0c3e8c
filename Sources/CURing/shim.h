// liburing defines _GNU_SOURCE and _XOPEN_SOURCE itself. Included first, <sys/types.h>
// settles glibc's feature set as Swift's Glibc module has it, so that both modules define
// fd_set alike and a file may import Foundation and TandemIO together (docs/architecture.md).
#include <sys/types.h>
#include <liburing.h>
