// train_config.c — (being written)
