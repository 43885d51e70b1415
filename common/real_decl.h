// real_decl.h — declares a *_decl.h file for both precisions: float with plain names, double with names
// suffixed _f64 (see real.h). Usage, inside the including header's guard:
//     #define REAL_DECL "../model/layers_decl.h"   (the path is relative to common/)
//     #include "../common/real_decl.h"
// No include guard on purpose: each precision-generic header includes it once.
#define real float
#define R_(name) name
#include REAL_DECL
#undef real
#undef R_

#define real double
#define R_(name) name##_f64
#include REAL_DECL
#undef real
#undef R_
#undef REAL_DECL
