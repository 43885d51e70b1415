// real.h — one source, two precisions. Files of model/ are compiled twice: as float (production
// names) and with -DAVAT3R_F64 as double (names suffixed _f64), the finite-difference oracle.
// Include this once at the top of such a .c file; headers use the *_decl.h files below.
#ifndef AVAT3R_REAL_H
#define AVAT3R_REAL_H
#include <tgmath.h> // exp/tanh/sqrt/log resolve to the float or double version by argument type
#include <cblas.h>
#ifdef AVAT3R_F64
#define real double
#define R_(name) name##_f64
#define GEMM cblas_dgemm
#else
#define real float
#define R_(name) name
#define GEMM cblas_sgemm
#endif
#endif
