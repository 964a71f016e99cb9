"""The demand profile of stored sales: each series' Syntetos-Boylan pattern over its recent
days (`policy.demand`), at ingest and each night."""

from __future__ import annotations

import pandas as pd

from compression.windows import sales_matrix
from policy.demand import DemandMix, demand_mix, profile_series

PROFILE_DAYS = 365  # recent enough to be tonight's demand, long enough for sparse sellers


def profile_sales(sales: pd.DataFrame, *, days: int = PROFILE_DAYS) -> DemandMix:
    """The mix of the series in `sales` (`date,store,item,sales`) over their last `days` days
    up to the newest date in `sales`."""
    if sales.empty:
        raise ValueError("no sales to profile")
    newest = pd.Timestamp(sales["date"].max())
    recent = sales[sales["date"] > newest - pd.Timedelta(days=days)]
    matrix = sales_matrix(recent)
    return demand_mix(profile_series(matrix.values, matrix.series))
