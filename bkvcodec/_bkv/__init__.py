"""The BKV protocol family: the ``fcfe``/``fcff`` envelope, GN and BKV packets."""
