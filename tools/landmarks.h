// landmarks.h — dlib's 68-point ensemble-of-regression-trees shape predictor, read from dlib's own
// model file and run in C, and the AKD metric built on it (issue #6). Scaffold.
#ifndef AVAT3R_LANDMARKS_H
#define AVAT3R_LANDMARKS_H

#endif
