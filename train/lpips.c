// lpips.c — (being written)
