// No feature macros here: see Sources/CURing/shim.h.
#include <lz4.h>
