// test_train.c — (being written)
#include <stddef.h>
#include "test.h"
const TestCase train_tests[] = {{NULL, NULL}};
