// test_loss_image.c — (being written)
#include <stddef.h>
#include "test.h"
const TestCase loss_image_tests[] = {{NULL, NULL}};
