// An area with no sources yet still links as a library.
