// test_animate.c — `avat3r animate` and the web viewer (issue #6).
#include "test.h"

const TestCase animate_tests[] = {
    {NULL, NULL},
};
