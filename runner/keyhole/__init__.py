"""Keyhole: the in-job client, its wire protocol and the batch-script expansion that embeds it."""
