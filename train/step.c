// step.c — (being written)
