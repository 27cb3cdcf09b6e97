# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  login_host:
    description:
      - Host running the PostgreSQL server.
      - Empty means the local Unix socket (or O(login_unix_socket)).
    type: str
    default: ''
    aliases: [ host ]
  login_port:
    description: Port of the PostgreSQL server.
    type: int
    default: 5432
    aliases: [ port ]
  login_user:
    description: Role to connect as. Logical backups of every table need a superuser or a member of C(pg_read_all_data).
    type: str
    default: postgres
    aliases: [ login ]
  login_password:
    description:
      - Password of O(login_user).
      - Passed to the PostgreSQL client tools through a temporary 0600 password file, never on a command line.
    type: str
    default: ''
  login_unix_socket:
    description: Directory of the server's Unix socket, used when O(login_host) is empty.
    type: str
    default: ''
    aliases: [ unix_socket ]
  login_db:
    description: Database to connect to for cluster-wide queries (listing databases, globals).
    type: str
    default: postgres
  ssl_mode:
    description: libpq's sslmode.
    type: str
    default: prefer
    choices: [ allow, disable, prefer, require, verify-ca, verify-full ]
  ca_cert:
    description: CA certificate file that verifies the server's certificate (libpq's sslrootcert).
    type: str
    aliases: [ ssl_rootcert ]
  connect_timeout:
    description: Seconds to wait for a connection.
    type: int
    default: 10
notes:
  - Connection options have the same names as in the community.postgresql collection.
requirements:
  - psycopg2 (psycopg2-binary) on the managed host
  - PostgreSQL client tools of the server's major version or newer on the managed host
'''
