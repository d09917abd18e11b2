"""The outside world, simulated: synthetic listings and photos, and local MLS servers.

It plays the MLS, so it knows nothing of our schema: it speaks RESO names and raw feeds.
"""
