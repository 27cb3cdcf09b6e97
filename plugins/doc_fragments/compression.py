# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  compression:
    description: Compression applied before encryption.
    type: dict
    default: {algorithm: zstd}
    suboptions:
      algorithm:
        description: V(zstd) (the C(zstd) tool), V(gzip) (the C(gzip) tool) or V(none).
        type: str
        default: zstd
        choices: [ zstd, gzip, none ]
      level:
        description: Compression level; default 3 for zstd (1-19), 6 for gzip (1-9).
        type: int
      threads:
        description:
          - Worker threads of zstd per stream (C(zstd -T)); V(0) means one per core.
          - Two threads let compression share the load with the PostgreSQL server process on small hosts;
            see docs/performance.md.
        type: int
        default: 2
'''
