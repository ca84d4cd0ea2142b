"""Package-wide settings, as scikit-learn's ``set_config``: a default, and a
context manager for a block of code (per thread)."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_DEFAULTS = {
    # Lost workers a fit replaces per slot before it fails (0: none).
    "max_replacements": 3,
    # Workers that serve many fits: 'auto' (on where they cost nothing idle:
    # localhost), True (also cloud functions), False.
    "worker_pool": "auto",
    # Seconds a pool of workers waits for its next fit before it ends.
    "pool_idle": 60.0,
    # Fraction of a pool worker's memory that keeps dataset rows between fits.
    "dataset_cache": 0.25,
    # The price table's entry fits are priced as (None: their compute backend).
    "price_as": None,
    # The user's prices, over the table's: {entry: {item: price}}.
    "prices": None,
}
_config: contextvars.ContextVar[dict] = contextvars.ContextVar(
    "sklearn_serverless_config", default=_DEFAULTS)


def get_config() -> dict:
    """The current settings (see :func:`set_config`).

    Returns
    -------
    config : dict
        Each setting's name and value, ``{'max_replacements': 3}`` by default.
    """
    return dict(_config.get())


def set_config(*, max_replacements: int | None = None, worker_pool=None,
               pool_idle: float | None = None, dataset_cache: float | None = None,
               price_as: str | None = None, prices: dict | None = None) -> None:
    """Change a setting for the rest of this thread (or context).

    Parameters
    ----------
    max_replacements : int, default=None
        How many times a fit replaces the worker of one slot when its
        function is lost (killed, out of memory, a failed host) before it
        fails naming the cause; 0 turns replacement off. Default 3. None
        keeps the current value.
    worker_pool : {'auto', True, False}, default=None
        Whether fits are served by pools of long-lived workers that outlive
        a fit (see the user guide, "Workers that serve many fits"). 'auto'
        (the default): on when the workers run on this machine with its
        storage (Lithops localhost), where an idle worker costs nothing but
        memory; True: on for every backend, cloud functions included (an
        idle function is billed; its jobs travel through the Lithops storage
        and the fit's Redis state store). None keeps the current value.
    pool_idle : float, default=None
        Seconds a pool's workers wait for the next fit before they end
        (default 60). Applies to pools started afterwards. None keeps the
        current value.
    dataset_cache : float, default=None
        The fraction of a pool worker's memory (the function's memory; on
        this machine, its memory divided among the pool's workers) in which
        it keeps the rows it read of a dataset for the next fit, so that a
        pipeline's steps read the objects once (see the user guide,
        "Pipelines where the data lies"). Default 0.25; 0 keeps nothing.
        Applies to pools started afterwards. None keeps the current value.
    price_as : str, default=None
        The entry of the price table fits are priced as (see the user
        guide, "What a fit costs"), e.g. ``'aws_lambda'`` to see what a fit
        run on this machine would cost on AWS Lambda; ``''`` goes back to
        pricing each fit as its compute backend (the default; localhost and
        Kubernetes cost nothing unless ``prices`` says). None keeps the
        current value.
    prices : dict, default=None
        Prices over the table's, by entry and item, e.g.
        ``{'aws_lambda': {'memory_mb': 1769}, 'k8s': {'gb_second': 1e-6}}``;
        ``{}`` goes back to the table. None keeps the current value.
    """
    config = get_config()
    if max_replacements is not None:
        if int(max_replacements) < 0:
            raise ValueError(f"max_replacements must be >= 0, got {max_replacements}")
        config["max_replacements"] = int(max_replacements)
    if worker_pool is not None:
        if worker_pool not in ("auto", True, False):
            raise ValueError(f"worker_pool must be 'auto', True or False, got {worker_pool!r}")
        config["worker_pool"] = worker_pool
    if pool_idle is not None:
        if not float(pool_idle) > 0:
            raise ValueError(f"pool_idle must be > 0 seconds, got {pool_idle}")
        config["pool_idle"] = float(pool_idle)
    if dataset_cache is not None:
        if isinstance(dataset_cache, bool) or not 0 <= float(dataset_cache) <= 1:
            raise ValueError(f"dataset_cache must be a fraction in [0, 1], got "
                             f"{dataset_cache!r}")
        config["dataset_cache"] = float(dataset_cache)
    if price_as is not None:
        config["price_as"] = _checked_price_as(price_as)
    if prices is not None:
        config["prices"] = _checked_prices(prices)
    _config.set(config)


def _checked_price_as(name: str) -> str | None:
    from ._common._prices import PRICES

    if name == "":
        return None
    if name not in PRICES or name in ("storage", "redis"):
        known = sorted(set(PRICES) - {"storage", "redis"})
        raise ValueError(f"price_as must be one of {known} or '', got {name!r}")
    return name


def _checked_prices(prices: dict) -> dict:
    from ._common._prices import PRICES

    if not isinstance(prices, dict):
        raise TypeError(f"prices must be a dict, got {type(prices).__name__}")
    checked = {}
    for name, items in prices.items():
        known = PRICES.get(name, PRICES["localhost"])
        if not isinstance(items, dict) or any(
                item not in known or not float(value) >= 0 for item, value in items.items()):
            raise ValueError(f"prices[{name!r}] must map some of {sorted(known)} to "
                             f"prices >= 0, got {items!r}")
        checked[name] = {item: float(value) for item, value in items.items()}
    return checked


@contextmanager
def config_context(*, max_replacements: int | None = None, worker_pool=None,
                   pool_idle: float | None = None, dataset_cache: float | None = None,
                   price_as: str | None = None, prices: dict | None = None) -> Iterator[None]:
    """:func:`set_config` for the block of a ``with`` statement only.

    Parameters
    ----------
    max_replacements : int, default=None
        See :func:`set_config`.
    worker_pool : {'auto', True, False}, default=None
        See :func:`set_config`.
    pool_idle : float, default=None
        See :func:`set_config`.
    dataset_cache : float, default=None
        See :func:`set_config`.
    price_as : str, default=None
        See :func:`set_config`.
    prices : dict, default=None
        See :func:`set_config`.

    Yields
    ------
    None
        The settings apply inside the ``with`` block.
    """
    token = _config.set(get_config())
    try:
        set_config(max_replacements=max_replacements, worker_pool=worker_pool,
                   pool_idle=pool_idle, dataset_cache=dataset_cache, price_as=price_as,
                   prices=prices)
        yield
    finally:
        _config.reset(token)
