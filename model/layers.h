// layers.h — the network's layers as forward/backward pairs, in float and double (_f64).
#ifndef AVAT3R_LAYERS_H
#define AVAT3R_LAYERS_H
#include <stddef.h>

#define REAL_DECL "../model/layers_decl.h" // relative to common/, where it is included
#include "../common/real_decl.h"

#endif
