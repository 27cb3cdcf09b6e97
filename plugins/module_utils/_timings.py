# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Seconds per step of a long operation, for results, records and the benchmark's breakdown."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time


class Timings:
    """Seconds spent per step, in order: the achieved RTO, broken down."""

    def __init__(self):
        self.steps = []
        self._clock = time.monotonic()

    def step(self, name, started):
        self.steps.append({"step": name, "seconds": round(time.monotonic() - started, 3)})

    @property
    def total(self):
        return round(time.monotonic() - self._clock, 3)
