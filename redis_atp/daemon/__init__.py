"""The worker fleet's parts (the public face is :mod:`redis_atp.worker`)."""
