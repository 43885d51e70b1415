// dist.c — see dist.h. Scaffold.
#include "dist.h"
