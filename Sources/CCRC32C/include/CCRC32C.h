// CCRC32C: the CPU's CRC32C instruction, behind TandemCore's CRC32C (see CCRC32C.c).
#ifndef TANDEM_CCRC32C_H
#define TANDEM_CCRC32C_H
#include <stddef.h>
#include <stdint.h>

/// CRC32C (Castagnoli) with the SSE4.2 instruction; `tandem_crc32c_hw_available` says
/// whether this CPU has it (otherwise TandemCore's CRC32C uses its table-driven code).
/// Same convention as the table-driven code: checksum(b, seed: checksum(a)) == checksum(a + b).
int tandem_crc32c_hw_available(void);
uint32_t tandem_crc32c_hw(uint32_t seed, const void *bytes, size_t count);

#endif
