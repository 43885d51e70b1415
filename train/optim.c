// optim.c — (being written)
