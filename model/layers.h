// layers.h — the network's layers as forward/backward pairs, in float and double (_f64).
#ifndef AVAT3R_LAYERS_H
#define AVAT3R_LAYERS_H
#include <stddef.h>

#define real float
#define R_(name) name
#include "layers_decl.h"
#undef real
#undef R_

#define real double
#define R_(name) name##_f64
#include "layers_decl.h"
#undef real
#undef R_

#endif
