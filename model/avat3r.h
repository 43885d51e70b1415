// avat3r.h — the Avat3r network (docs/model.md) in float and double (_f64, the test oracle).
#ifndef AVAT3R_MODEL_H
#define AVAT3R_MODEL_H
#include <stddef.h>
#include <stdint.h>

#include "layers.h" // GaussAct
#include "model_config.h"
#include "params.h"

#define REAL_DECL "../model/avat3r_decl.h" // relative to common/, where it is included
#include "../common/real_decl.h"

#endif
