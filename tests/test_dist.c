// test_dist.c — data-parallel training across processes on the CPU (issue #8).
#include "test.h"

const TestCase dist_tests[] = {
    {NULL, NULL},
};
