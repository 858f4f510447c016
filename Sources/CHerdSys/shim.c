// CHerdSys is a C target (not a system library) so that SwiftPM tracks include/shim.h: an edit to
// the header recompiles this file and every Swift module that imports CHerdSys. Everything lives
// in the header as static inline functions; this file only gives the target a source to compile.
#include "shim.h"
