#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbdr.backup contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: pg_backup
short_description: Stream compressed, encrypted, checksummed PostgreSQL backups into a repository
version_added: 0.1.0
description:
  - Takes a logical backup of a PostgreSQL cluster, one C(pg_dump) archive per database plus the cluster
    globals (roles, tablespaces) from C(pg_dumpall --globals-only).
  - Each dump streams through compression (zstd by default), GPG public-key encryption and SHA-256 straight
    into the repository, a local directory or S3; for the custom format no temporary copy is made.
  - Row counts of every dumped table are taken in the same snapshot as the dump and recorded in the manifest.
  - The manifest is written last; a failure at any stage removes what was written and reports the stage.
  - A lock makes sure two backups of one cluster never run at once; nothing in the repository is overwritten.
  - An audit record of every run (successful or not) is stored under C(<cluster>/audit/).
author:
  - dbdr.backup maintainers (@dbdr-backup)
extends_documentation_fragment:
  - dbdr.backup.postgres
  - dbdr.backup.repository
  - dbdr.backup.encryption
  - dbdr.backup.compression
options:
  kind:
    description: Kind of backup. Only V(logical) (C(pg_dump)) is available in this version.
    type: str
    default: logical
    choices: [ logical ]
  databases:
    description: Databases to back up, or V([all]) for every database that allows connections except templates.
    type: list
    elements: str
    default: [ all ]
  globals:
    description:
      - Also store roles and tablespaces (C(pg_dumpall --globals-only)).
      - Without superuser rights, role passwords are left out.
    type: bool
    default: true
  format:
    description:
      - V(custom) streams each dump without a temporary file.
      - V(directory) runs C(pg_dump --jobs) into a temporary directory under O(tmp_dir), then streams it as a tar archive.
    type: str
    default: custom
    choices: [ custom, directory ]
  jobs:
    description:
      - For O(format=directory), parallel C(pg_dump) workers.
      - For O(format=custom), databases dumped at the same time.
    type: int
    default: 1
  schema_only:
    description: Dump only object definitions.
    type: bool
    default: false
  data_only:
    description: Dump only table data.
    type: bool
    default: false
  tables:
    description:
      - Only these tables (C(pg_dump --table) patterns, for example V(public.orders) or V(sales.*)); needs exactly one database.
      - Every pattern must match at least one table.
    type: list
    elements: str
    default: []
  exclude_tables:
    description: Leave out these tables (C(pg_dump --exclude-table) patterns); needs exactly one database.
    type: list
    elements: str
    default: []
  labels:
    description:
      - Free-form string labels stored in the manifest, for example a label C(reason) with the value C(pre-deploy).
      - The label V(keep) protects a backup from retention.
    type: dict
    default: {}
  gfs_class:
    description: Retention class recorded in the manifest and, on S3, in the C(dbdr-class) tag of every object.
    type: str
    default: daily
    choices: [ daily, weekly, monthly, yearly ]
  pg_bin_dir:
    description:
      - Directory of C(pg_dump)/C(pg_dumpall).
      - By default the tools of the server's major version are looked up in C(/usr/lib/postgresql/<major>/bin),
        C(/usr/pgsql-<major>/bin), then E(PATH).
    type: path
  tmp_dir:
    description: Where O(format=directory) dumps are staged. Needs room for the uncompressed dump.
    type: path
  lock_wait_timeout:
    description: Seconds C(pg_dump) waits for table locks before failing, instead of waiting forever behind an exclusive lock.
    type: int
notes:
  - Check mode connects and validates everything (server, databases, tables, keys, repository) and returns the plan, writing nothing.
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Returns the plan and reports C(changed=true) without writing anything.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
'''

EXAMPLES = r'''
- name: Back up every database into S3, encrypted to the backup key
  dbdr.backup.pg_backup:
    login_host: 127.0.0.1
    login_user: backup
    login_password: "{{ vault_backup_password }}"
    cluster: prod-main
    repository:
      type: s3
      bucket: acme-db-backups
      prefix: postgres
      region: eu-central-1
    encryption:
      recipients: [ 0A1B2C3D4E5F60718293A4B5C6D7E8F901234567 ]
    labels:
      reason: nightly

- name: Two databases to a local directory before a deploy
  dbdr.backup.pg_backup:
    cluster: prod-main
    repository: {type: local, path: /var/backups/dbdr}
    encryption: {recipients: [/etc/dbdr/backup-key.asc]}
    databases: [app, "odd name"]
    globals: false
    labels: {reason: pre-deploy}
  register: backup

- name: Only the orders tables, parallel directory format
  dbdr.backup.pg_backup:
    cluster: prod-main
    repository: {type: local, path: /var/backups/dbdr}
    encryption: {recipients: [0A1B2C3D4E5F60718293A4B5C6D7E8F901234567]}
    databases: [app]
    tables: ["public.orders*"]
    format: directory
    jobs: 2
'''

RETURN = r'''
backup_id:
  description: Identifier of the new backup (UTC start time).
  returned: success, not in check mode
  type: str
  sample: 20261123T030000Z
manifest:
  description: Summary of the manifest that was written.
  returned: success, not in check mode
  type: dict
  sample:
    backup_id: 20261123T030000Z
    cluster: prod-main
    total_bytes: 104857600
    databases: [{name: app, object: app.pgdump.zst.gpg, tables: 12, rows: 420000}]
    objects: [{name: app.pgdump.zst.gpg, kind: database, bytes: 104857600, sha256: "9f86d08..."}]
manifest_key:
  description: Repository location of the manifest.
  returned: success, not in check mode
  type: str
  sample: s3://acme-db-backups/postgres/prod-main/backups/20261123T030000Z/manifest.json
bytes:
  description: Stored bytes of all objects of the backup.
  returned: success, not in check mode
  type: int
duration_seconds:
  description: Wall-clock time of the backup.
  returned: success, not in check mode
  type: float
throughput_bytes_per_second:
  description: Stored bytes per second.
  returned: success, not in check mode
  type: int
orphans_removed:
  description: Objects of earlier failed or interrupted runs (without a manifest) that were removed.
  returned: success, not in check mode
  type: int
audit_record:
  description: Repository key of the audit record of this run.
  returned: success, not in check mode
  type: str
plan:
  description: What the backup covers and where it goes; in check mode, what it would do.
  returned: always
  type: dict
  sample:
    destination: /var/backups/dbdr/prod-main/backups/
    databases: [{name: app, object: app.pgdump.zst.gpg, size_bytes: 8123456}]
    objects: [globals.sql.zst.gpg, app.pgdump.zst.gpg, manifest.json]
resources:
  description: Peak resident memory of the module process and of its child processes (pg_dump, zstd, gpg), in bytes.
  returned: success, not in check mode
  type: dict
  sample: {peak_rss_bytes: 61234176, children_peak_rss_bytes: 20123648}
stage:
  description: The stage that failed (validate, connect, encryption, storage, lock, pg_dump, zstd, gpg encrypt, ...).
  returned: failure
  type: str
'''

import resource
import signal

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dbdr.backup.plugins.module_utils import _argspec
from ansible_collections.dbdr.backup.plugins.module_utils._backup.plan import BackupRequest, plan_backup
from ansible_collections.dbdr.backup.plugins.module_utils._backup.run import run_backup
from ansible_collections.dbdr.backup.plugins.module_utils._errors import DbdrError
from ansible_collections.dbdr.backup.plugins.module_utils._layout import manifest_key
from ansible_collections.dbdr.backup.plugins.module_utils._glue import Interrupted, check_libraries, raise_on_signals


def argument_spec():
    spec = _argspec.storage_module_argspec()
    spec.update(
        kind=dict(type="str", default="logical", choices=["logical"]),
        databases=dict(type="list", elements="str", default=["all"]),
        globals=dict(type="bool", default=True),
        format=dict(type="str", default="custom", choices=["custom", "directory"]),
        jobs=dict(type="int", default=1),
        schema_only=dict(type="bool", default=False),
        data_only=dict(type="bool", default=False),
        tables=dict(type="list", elements="str", default=[]),
        exclude_tables=dict(type="list", elements="str", default=[]),
        labels=dict(type="dict", default={}),
        gfs_class=dict(type="str", default="daily", choices=["daily", "weekly", "monthly", "yearly"]),
        pg_bin_dir=dict(type="path"),
        tmp_dir=dict(type="path"),
        lock_wait_timeout=dict(type="int"),
    )
    return spec


def request_from(params):
    return BackupRequest(
        cluster=params["cluster"], repository=params["repository"], connection=_argspec.connection_params(params),
        encryption=params["encryption"], compression=params["compression"], kind=params["kind"],
        databases=params["databases"], include_globals=params["globals"], dump_format=params["format"],
        jobs=params["jobs"], schema_only=params["schema_only"], data_only=params["data_only"],
        tables=params["tables"], exclude_tables=params["exclude_tables"], labels=params["labels"],
        gfs_class=params["gfs_class"], pg_bin_dir=params["pg_bin_dir"], tmp_dir=params["tmp_dir"],
        lock_wait_timeout=params["lock_wait_timeout"])


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=[("schema_only", "data_only")])
    check_libraries(module, gnupg=module.params["encryption"]["type"] == "gpg")
    raise_on_signals((signal.SIGTERM,))
    plan = None
    try:
        plan = plan_backup(request_from(module.params))
        if module.check_mode:
            module.exit_json(changed=True, plan=plan.to_dict())
        result = run_backup(plan)
    except DbdrError as exc:
        module.fail_json(msg=str(exc), stage=exc.stage, plan=plan.to_dict() if plan else None)
    except Interrupted as exc:
        module.fail_json(msg="backup interrupted; what it wrote was removed: %s" % exc, stage="interrupted")
    for warning in result.warnings:
        module.warn(warning)
    usage_self = resource.getrusage(resource.RUSAGE_SELF)
    usage_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    manifest = result.manifest
    module.exit_json(
        changed=True, backup_id=manifest.backup_id, manifest=manifest.summary(),
        manifest_key=plan.repository.describe(manifest_key(manifest.cluster, manifest.backup_id)),
        bytes=result.bytes, duration_seconds=result.duration_seconds,
        throughput_bytes_per_second=result.throughput_bytes_per_second, orphans_removed=result.orphans_removed,
        audit_record=result.audit_key, plan=plan.to_dict(),
        resources={"peak_rss_bytes": usage_self.ru_maxrss * 1024, "children_peak_rss_bytes": usage_children.ru_maxrss * 1024})


if __name__ == "__main__":
    main()
