// avat3r.h — the Avat3r network (docs/model.md) in float and double (_f64, the test oracle).
#ifndef AVAT3R_MODEL_H
#define AVAT3R_MODEL_H
#include <stddef.h>
#include <stdint.h>

#include "model_config.h"
#include "params.h"

#define real float
#define R_(name) name
#include "avat3r_decl.h"
#undef real
#undef R_

#define real double
#define R_(name) name##_f64
#include "avat3r_decl.h"
#undef real
#undef R_

#endif
