// landmarks.c — see landmarks.h. Scaffold.
#include "landmarks.h"
