// loss_image.c — (being written)
