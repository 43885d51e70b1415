// test_landmarks.c — the C shape predictor against dlib's C++ one, and AKD (issue #6).
#include "test.h"

const TestCase landmarks_tests[] = {
    {NULL, NULL},
};
