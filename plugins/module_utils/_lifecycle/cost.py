# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the tiers cost in the steady state, for a given size of one day's backup."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.dbdr.backup.plugins.module_utils._errors import InputError
from ansible_collections.dbdr.backup.plugins.module_utils._lifecycle.rules import PERIOD_DAYS
from ansible_collections.dbdr.backup.plugins.module_utils._status import DEFAULT_CURRENCY, GIB, price_table, validate_prices

# A tier that never expires grows without bound; its projection is what it holds after this long.
HORIZON_DAYS = 365


def project_cost(spec, daily_backup_bytes, prices=None, currency=DEFAULT_CURRENCY):
    """Monthly storage cost per tier: a class with period P holds one backup per P days, and each
    spends the days between its transitions in each storage class, so the steady state holds
    size * days / P bytes in that class."""
    if isinstance(daily_backup_bytes, bool) or not isinstance(daily_backup_bytes, int) or daily_backup_bytes < 0:
        raise InputError("daily_backup_bytes must be a whole number of bytes, got %r" % (daily_backup_bytes,))
    validate_prices(prices, currency)
    table = price_table(prices)
    tiers, total = {}, 0.0
    for tier in spec.tiers:
        by_class, cost = {}, 0.0
        for storage_class, days in tier.storage_days(HORIZON_DAYS):
            stored = daily_backup_bytes * days / PERIOD_DAYS[tier.name]
            by_class[storage_class] = by_class.get(storage_class, 0) + int(round(stored))
            cost += stored / GIB * table.get(storage_class, 0.0)
        tiers[tier.name] = {"bytes_by_storage_class": by_class, "monthly_cost": round(cost, 2),
                            "expire_days": tier.expire_days}
        total += cost
    assumptions = [
        "one backup of %d bytes per GFS period (daily: 1 day, weekly: 7, monthly: %.2f, yearly: %.2f days)"
        % (daily_backup_bytes, PERIOD_DAYS["monthly"], PERIOD_DAYS["yearly"]),
        "storage only (no requests, retrieval, transition or early-deletion charges), prices per GiB-month",
    ]
    if any(t.expire_days is None for t in spec.tiers):
        assumptions.append("tiers without expire_days are shown as they stand after %d days; they keep growing"
                           % HORIZON_DAYS)
    if spec.wal_clusters:
        assumptions.append("WAL archives are not included")
    return {"currency": currency, "daily_backup_bytes": daily_backup_bytes, "tiers": tiers,
            "monthly_cost": round(total, 2), "prices": table, "assumptions": assumptions}
