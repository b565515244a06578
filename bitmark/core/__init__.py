"""The watermark itself: keys, green rules, the sampling hook and the bit-pyramid format.

The bottom layer: it imports nothing else of bitmark, so any generator can use it on its own.
"""
