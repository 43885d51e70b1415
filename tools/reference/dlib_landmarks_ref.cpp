// dlib_landmarks_ref.cpp — dlib's own shape predictor, the oracle for tools/landmarks.c. Scaffold.
int main() { return 0; }
