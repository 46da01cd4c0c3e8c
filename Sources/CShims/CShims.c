// Intentionally empty: every shim is static inline in include/CShims.h.
#include "CShims.h"
