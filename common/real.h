// real.h — one source, two precisions. Compute files of model/ and render/ are compiled twice: as
// float (production names) and with -DAVAT3R_F64 as double (names suffixed _f64), the oracle for
// finite differences. Include this last in such a .c file; headers use their *_decl.h files.
#ifndef AVAT3R_REAL_H
#define AVAT3R_REAL_H
#include <tgmath.h> // exp/tanh/sqrt/log resolve to the float or double version by argument type
#ifdef AVAT3R_F64
#define real double
#define R_(name) name##_f64
#else
#define real float
#define R_(name) name
#endif
#endif
