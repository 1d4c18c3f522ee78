"""The SimLabel method as plain numpy / torch code: no Kedro, no file I/O."""
