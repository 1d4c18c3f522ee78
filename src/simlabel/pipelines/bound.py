"""Node functions with some arguments bound, for stages that build one node per method."""

from __future__ import annotations

import inspect


class BoundFunction:
    """``function(*inputs, **bound)`` as a Kedro node function. Not ``functools.partial``: with a
    partial (even with ``update_wrapper``) Kedro warns that it cannot name the function, and a
    closure cannot go to ParallelRunner's workers. An instance keeps the name, the signature
    Kedro checks the inputs against and the type hints Kedro reads (without the bound
    arguments), and pickles by reference to ``function``."""

    def __init__(self, function, **bound):
        self.function, self.bound = function, bound
        self.__name__ = function.__name__
        signature = inspect.signature(function)
        self.__signature__ = signature.replace(parameters=[p for p in signature.parameters.values() if p.name not in bound])
        self.__annotations__ = {k: v for k, v in function.__annotations__.items() if k not in bound}
        self.__globals__ = function.__globals__

    def __reduce__(self):
        return _rebuild, (self.function, self.bound)

    def __call__(self, *args, **inputs):
        return self.function(*args, **inputs, **self.bound)


def _rebuild(function, bound: dict) -> BoundFunction:
    return BoundFunction(function, **bound)
