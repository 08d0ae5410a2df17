"""Built-in codec plugins, one module each, registered through ``migcodec.codecs`` entry points.

Nothing imports these modules directly: the registry loads them by entry point, exactly as it
loads third-party plugins.
"""
