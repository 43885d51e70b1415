// loop.c — (being written)
