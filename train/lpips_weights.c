// lpips_weights.c — (being written)
